"""The persona-encoder workflow behind `personalign train encoder` / `eval encoder`: read excerpts from a source,
train with held-out personas, write the encoder, its card and its results."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, concatenate_datasets
from huggingface_hub import EvalResult, ModelCardData

from ..data.loading import load_source
from ..errors import InputError
from ..hub.cards import render_model_card
from ..hub.run_record import set_aside_earlier_run
from ..io import atomic_output, check_run_unfinished, checkpoint_to_resume, ensure_writable, list_checkpoints
from ..papers import DPORE_CITATION
from .data import (
    PERSONA_ID_COLUMN,
    alignx_excerpts,
    aloe_excerpts,
    check_retrieval_split,
    split_personas,
    table_excerpts,
)
from .evaluation import PersonaRetrievalEvaluator, evaluate_encoder
from .modeling_persona_encoder import PersonaEncoder
from .trainer import PersonaEncoderTrainer

ExcerptFormat = Literal["alignx", "aloe", "table"]
EXCERPT_FORMATS = ("alignx", "aloe", "table")
CARD_METRICS = ("recall@1", "recall@5", "mrr", "pair_auc")
RESULTS_FILE = "eval_results.json"


def load_excerpts(
    source: str | Path,
    excerpt_format: ExcerptFormat = "alignx",
    persona_column: str | None = None,
    text_column: str = "text",
    include_demographics: bool = False,
    include_preferred_replies: bool = False,
    **load_kwargs: Any,
) -> Dataset:
    """An excerpt table (`persona_id`, `text`) from a local file or folder or a Hub dataset, in one of three formats.

    Args:
        source (`str` or `Path`): A parquet / jsonl / json file, a folder of them, or a Hub dataset id.
        excerpt_format (`str`, *optional*, defaults to `"alignx"`): `"alignx"` (AlignX rows: each comment and pair is
            an excerpt), `"aloe"` (`profile`, `personality`, `conversations` rows) or `"table"` (any persona / text
            columns).
        persona_column (`str`, *optional*): The persona column: for `alignx` it groups rows into personas (default
            `persona_id` when present, else one persona per row); for `table` it defaults to `persona_id`.
        text_column (`str`, *optional*, defaults to `"text"`): The text column of a `table`.
        include_demographics (`bool`, *optional*, defaults to `False`): For `alignx`, the demographic description is
            one more excerpt.
        include_preferred_replies (`bool`, *optional*, defaults to `False`): For `aloe`, excerpts also hold the chosen
            assistant replies (by default only what the user said; rejected replies never).
    """
    if excerpt_format not in EXCERPT_FORMATS:
        raise InputError(f"unknown excerpt format {excerpt_format!r}; use one of {', '.join(EXCERPT_FORMATS)}")
    tables = []
    loaded = load_source(source, **load_kwargs)
    for where, data in loaded.all_parts():
        names = loaded.part_row_names(where)  # a JSON-lines row by its 1-based line, any other by its 0-based row
        if excerpt_format == "alignx":
            tables.append(
                alignx_excerpts(data, persona_column or PERSONA_ID_COLUMN, include_demographics, where, names)
            )
        elif excerpt_format == "aloe":
            tables.append(
                aloe_excerpts(data, include_preferred_replies=include_preferred_replies, where=where, names=names)
            )
        else:
            tables.append(table_excerpts(data, persona_column or PERSONA_ID_COLUMN, text_column, where, names))
    excerpts = tables[0] if len(tables) == 1 else concatenate_datasets(tables)
    if not len(excerpts):
        raise InputError(f"{source}: no excerpts found (format {excerpt_format!r}).")
    return excerpts


def encoder_card(
    encoder: PersonaEncoder,
    base_model: str,
    dataset: str,
    train_excerpts: Dataset,
    hyperparameters: Mapping[str, Any],
    results: Mapping[str, Any] | None,
    name: str = "Persona encoder",
) -> str:
    """The README.md of a trained encoder: metadata (base model, tags, `model-index` with the held-out results) and a
    body rendered from `model_cards/persona_encoder_card.md.j2`, written by `personalign.hub.cards`."""
    data = ModelCardData(
        base_model=None if Path(base_model).exists() else base_model,  # a local path is not a Hub id
        datasets=None if Path(dataset).exists() else [dataset],
        library_name="personalign",
        license="apache-2.0",
        pipeline_tag="feature-extraction",
        tags=[
            "personalign",
            "persona-encoder",
            "personalization",
            "sentence-transformers",
            "sentence-similarity",
            "dpore",
        ],
    )
    evaluation = [
        EvalResult(
            task_type="feature-extraction",
            task_name="Held-out persona retrieval",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="held-out personas",
            metric_type=key.replace("@", "_at_"),
            metric_value=round(results["after"][key], 4),
            metric_name=key,
        )
        for key in (CARD_METRICS if results else ())
    ]
    config = encoder.config
    return render_model_card(
        "persona_encoder_card.md.j2",
        data,
        name,
        evaluation,
        name=name,
        temperature=hyperparameters.get("temperature"),
        base_model=base_model,
        dataset=dataset,
        num_train_excerpts=len(train_excerpts),
        num_train_personas=len(set(train_excerpts[PERSONA_ID_COLUMN])),
        repo_hint="<this repo or folder>",
        embedding_dim=config.embedding_dim,
        backbone=config.backbone_config.model_type,
        pooling=config.pooling,
        projection_dim=config.projection_dim,
        projection_activation=config.projection_activation,
        normalize=config.normalize,
        hyperparameters=dict(hyperparameters),
        held_out=results,
        metric_keys=CARD_METRICS,
        citation=DPORE_CITATION,
    )


def check_eval_fraction(eval_fraction: float) -> None:
    """Refuse a held-out share of personas outside [0, 1) (0 holds none out), naming the option (`eval_fraction`
    of `train_encoder` and of `personalign train encoder`).

    Raises:
        `InputError`: `"eval_fraction must be at least 0 and below 1 (0: no held-out personas), got 1.5."`.
    """
    if not 0 <= eval_fraction < 1:
        raise InputError(
            f"eval_fraction must be at least 0 and below 1 (0: no held-out personas), got {eval_fraction}."
        )


def train_encoder(
    encoder: PersonaEncoder,
    excerpts: Dataset,
    output: str | Path,
    args: Any,
    base_model: str,
    dataset: str,
    eval_fraction: float = 0.1,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train `encoder` on `excerpts` and write it, with its card and held-out results, to `output` (atomically).

    Personas are split first (`eval_fraction` of them held out, seeded by `args.seed`); the held-out ones are scored
    before and after training and, during training, by a `PersonaRetrievalEvaluator` whenever `args` evaluates.
    Checkpoints go to `args.output_dir`; `resume=True` continues from the last one there, `overwrite=True` moves the
    earlier run's checkpoints aside first (deleted once this run has finished). Under `accelerate launch` every
    process trains and the first one alone moves, scores and writes.

    Returns:
        `dict`: The results written to `eval_results.json` (`before`, `after`, sizes), empty without held-out personas.

    Raises:
        `InputError`: If `eval_fraction` is not in [0, 1), the output exists (without `overwrite`), or the checkpoints
            do not fit `resume`.
    """
    check_eval_fraction(eval_fraction)
    ensure_writable(output, overwrite)
    checkpoints = Path(args.output_dir)
    # The last intact checkpoint (one cut short by a kill during its save is passed over, a damaged one refused).
    last_checkpoint = checkpoint_to_resume(checkpoints) if resume else None
    if resume and last_checkpoint is None:
        raise InputError(f"--resume: no checkpoint found in {checkpoints}.")
    if last_checkpoint is not None:  # a finished run would train a step past max_steps
        check_run_unfinished(last_checkpoint, args.max_steps, args.num_train_epochs)
    if not resume and list_checkpoints(checkpoints) and not overwrite:
        raise InputError(
            f"{checkpoints} holds checkpoints of an earlier run; pass --resume to continue it or --overwrite to "
            "start again."
        )
    # Started again: the earlier run's checkpoints must not stay to be resumed (deleted once this run has finished).
    earlier = None
    if overwrite and not resume:
        # Under `accelerate launch` the first process moves them, before any process writes a checkpoint there.
        with args.main_process_first(local=False, desc="moving the earlier run's checkpoints aside"):
            if args.process_index == 0:
                earlier = set_aside_earlier_run(checkpoints)
    train, held_out = (excerpts, None) if not eval_fraction else split_personas(excerpts, eval_fraction, args.seed)
    check_retrieval_split(train, held_out, dataset)
    results: dict[str, Any] = {}
    evaluator = None
    if held_out is not None:
        results["before"] = evaluate_encoder(encoder, held_out)
        evaluator = PersonaRetrievalEvaluator(held_out)
    trainer = PersonaEncoderTrainer(model=encoder, args=args, train_dataset=train, evaluator=evaluator)
    trainer.train(resume_from_checkpoint=None if last_checkpoint is None else str(last_checkpoint))
    if not trainer.is_world_process_zero():
        return results  # under `accelerate launch` the first process scores and writes the (same) trained encoder
    if held_out is not None:
        results["after"] = evaluate_encoder(encoder, held_out)
        results.update(num_train_excerpts=len(train), num_held_out_excerpts=len(held_out))
    hyperparameters = {
        key: getattr(args, key)
        for key in (
            "temperature",
            "num_negatives",
            "truncation_probability",
            "min_truncation_fraction",
            "learning_rate",
            "per_device_train_batch_size",
            "num_train_epochs",
            "max_steps",
            "warmup_steps",
            "lr_scheduler_type",
            "seed",
        )
    }
    hyperparameters["lr_scheduler_type"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    card = encoder_card(encoder, base_model, dataset, train, hyperparameters, results or None)
    with atomic_output(output, overwrite) as folder:
        encoder.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")
        if results:
            (folder / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)
    return results
