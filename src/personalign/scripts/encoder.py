"""`personalign train encoder`: a PersonaEncoder, InfoNCE over persona excerpts (the DPORE paper, §3.2).

Script arguments: `EncoderScriptArguments` (the method-neutral ones plus where the excerpts come from, the held-out
share and the settings of a new encoder around a plain backbone); config: `PersonaEncoderTrainingArguments`; model:
`trl.ModelConfig` (`model_name_or_path`: a backbone, a sentence-transformers model or a PersonaEncoder).

The output folder (`output_dir`) receives the encoder, its model card and `eval_results.json`, written at once when
training ends; checkpoints go to `checkpoint_dir` (default `OUTPUT_DIR-checkpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import ModelConfig, TrlParser

from ..encoder.modeling_persona_encoder import PersonaEncoder
from ..encoder.pipeline import check_eval_fraction, load_excerpts, train_encoder
from ..encoder.training_args import PersonaEncoderTrainingArguments
from ..errors import InputError
from ..io import ensure_writable
from .utils import ScriptArguments, finish_run, start_run


@dataclass
class EncoderScriptArguments(ScriptArguments):
    """`ScriptArguments` plus the encoder's own. The excerpts come from every split of `dataset_name` (of its
    `dataset_config`), and `eval_fraction` of the personas are held out, so `dataset_train_split` keeps its default
    and `dataset_test_split` is not set; `max_train_samples` keeps the first N excerpts.

    Args:
        excerpt_format (`str`, *optional*, defaults to `"alignx"`): `"alignx"` (comments and pairs of AlignX rows),
            `"aloe"` (profile, personality, conversations) or `"table"` (a persona column and a text column).
        persona_column (`str`, *optional*): The persona column (alignx: groups rows; table: defaults to
            `persona_id`).
        text_column (`str`, *optional*, defaults to `"text"`): The text column of a table.
        include_demographics (`bool`, *optional*, defaults to `False`): alignx: the demographic text is one more
            excerpt.
        eval_fraction (`float`, *optional*, defaults to `0.1`): Share of personas held out and scored before and
            after training (0: none).
        pooling (`str`, *optional*): Pooling of a new encoder around a plain backbone.
        projection_dim (`int`, *optional*): Projection size of a new encoder around a plain backbone.
        checkpoint_dir (`str`, *optional*): Checkpoints folder (default: `OUTPUT_DIR-checkpoints`).

    Raises:
        `InputError`: If a split is set, or `eval_fraction` is not in [0, 1).
    """

    excerpt_format: str = field(default="alignx", metadata={"help": "'alignx', 'aloe' or 'table' rows."})
    persona_column: str | None = field(
        default=None, metadata={"help": "Persona column (alignx: groups rows; table: defaults to persona_id)."}
    )
    text_column: str = field(default="text", metadata={"help": "Text column of a table."})
    include_demographics: bool = field(
        default=False, metadata={"help": "alignx: the demographic text is one more excerpt."}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of personas held out for evaluation (0: none)."}
    )
    pooling: str | None = field(default=None, metadata={"help": "Pooling of a new encoder around a plain backbone."})
    projection_dim: int | None = field(
        default=None, metadata={"help": "Projection size of a new encoder around a plain backbone."}
    )
    checkpoint_dir: str | None = field(
        default=None, metadata={"help": "Checkpoints folder (default: OUTPUT_DIR-checkpoints)."}
    )

    def __post_init__(self) -> None:
        if self.dataset_test_split is not None or self.dataset_train_split != "train":
            raise InputError(
                "`train encoder` reads every file of dataset_name and holds out eval_fraction of the personas; "
                "it takes no dataset_train_split / dataset_test_split."
            )
        check_eval_fraction(self.eval_fraction)  # before the excerpts and the encoder load


def make_parser() -> TrlParser:
    """The parser of `personalign train encoder` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((EncoderScriptArguments, PersonaEncoderTrainingArguments, ModelConfig), exit_on_error=False)


def main(
    script_args: EncoderScriptArguments, training_args: PersonaEncoderTrainingArguments, model_args: ModelConfig
) -> dict[str, Any]:
    """Train a PersonaEncoder and write it, with its card and held-out results, to `training_args.output_dir`.

    Returns:
        `dict`: The run record, with `eval` (held-out scores before and after training; empty without held-out
        personas).
    """
    output = ensure_writable(training_args.output_dir, script_args.overwrite)  # before loading models and data
    record, push_token = start_run("encoder", script_args, training_args, model_args)
    training_args.output_dir = script_args.checkpoint_dir or str(output.with_name(f"{output.name}-checkpoints"))
    excerpts = load_excerpts(
        script_args.dataset_name,
        script_args.excerpt_format,
        script_args.persona_column,
        script_args.text_column,
        script_args.include_demographics,
        config=script_args.dataset_config,
    )
    if script_args.max_train_samples is not None:
        excerpts = excerpts.select(range(min(script_args.max_train_samples, len(excerpts))))
    encoder = PersonaEncoder.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        pooling=script_args.pooling,
        projection_dim=script_args.projection_dim,
    )
    results = train_encoder(
        encoder,
        excerpts,
        output,
        training_args,
        model_args.model_name_or_path,
        script_args.dataset_name,
        script_args.eval_fraction,
        resume=script_args.resume,
        overwrite=script_args.overwrite,
    )
    record.update(output_dir=str(output), eval=results)
    return finish_run(record, output, push_token, training_args)
