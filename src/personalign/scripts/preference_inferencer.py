"""`personalign train preference-inferencer`: a learned preference inferencer, a preference head on PersonaEncoder
embeddings of history items, trained on the per-item gold vectors of AlignX rows (the AlignX paper's preference
inference, §5 and Appendix D.5, without an LLM call per dimension; see `personalign.inference.learned`).

Script arguments: `PreferenceInferencerScriptArguments` (the method-neutral ones, the split that calibrates the
thresholds, how a plain backbone becomes an encoder, whether the encoder is copied into the folder); config:
`PreferenceInferencerConfig` (`LearnedInferenceConfig`'s training settings, with their help, plus where the folder
goes and the Hub push); model: `trl.ModelConfig` (`model_name_or_path`: the encoder, a PersonaEncoder, a
sentence-transformers model such as all-MiniLM-L6-v2, or a plain backbone).

The head trains in one pass over cached embeddings (minutes), so there are no checkpoints and no `resume`. The output
folder (`LearnedPreferenceInferencer.save_pretrained`: `preference_head/`, `encoder/`,
`learned_inference_config.json`) and its run record are written together, staged and renamed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trl import ModelConfig, TrlParser

from ..data.alignx import check_alignx_rows
from ..data.loading import load_source
from ..encoder.modeling_persona_encoder import PersonaEncoder
from ..errors import InputError
from ..hub.models import push_model
from ..hub.run_record import to_jsonable, write_run_record
from ..inference.learned import LearnedInferenceConfig, LearnedPreferenceInferencer
from ..io import atomic_output, ensure_writable
from .utils import ScriptArguments, check_split, start_run

METHOD = "preference-inferencer"


@dataclass
class PreferenceInferencerScriptArguments(ScriptArguments):
    """`ScriptArguments` plus the inferencer's own. The head trains on `dataset_train_split` (its first
    `max_train_samples` rows); `calibration_split` chooses the item and aggregation thresholds that maximise macro-F1
    against its gold directions (the AlignX paper, Appendix D.5); `dataset_test_split` is scored at the end
    (`direction_report`, the AlignX paper's Table 12).

    Args:
        calibration_split (`str`, *optional*): The split that calibrates the thresholds; without it they keep their
            defaults (item 0.5, upper 0.6, lower 0.4).
        pooling (`str`, *optional*): Pooling of a new encoder around a plain backbone.
        projection_dim (`int`, *optional*): Projection size of a new encoder around a plain backbone.
        save_encoder (`bool`, *optional*, defaults to `True`): Copy the encoder into the folder (`encoder/`); `False`
            refers to `model_name_or_path` instead (a Hub id or a folder that must stay where it is).

    Raises:
        `InputError`: With `resume` (nothing to resume: the head trains in one pass, without checkpoints).
    """

    calibration_split: str | None = field(
        default=None, metadata={"help": "Split whose gold directions calibrate the thresholds (optional)."}
    )
    pooling: str | None = field(default=None, metadata={"help": "Pooling of a new encoder around a plain backbone."})
    projection_dim: int | None = field(
        default=None, metadata={"help": "Projection size of a new encoder around a plain backbone."}
    )
    save_encoder: bool = field(
        default=True, metadata={"help": "Copy the encoder into the folder (false: refer to model_name_or_path)."}
    )

    def __post_init__(self) -> None:
        if self.resume:
            raise InputError(
                f"`train {METHOD}` trains its head in one pass and writes no checkpoints, so there is nothing to "
                "resume; run it again (--overwrite true replaces the folder)."
            )


@dataclass
class PreferenceInferencerConfig(LearnedInferenceConfig):
    """`LearnedInferenceConfig` (the training settings, each with its help) and where the result goes.

    Args:
        output_dir (`str`, *optional*): The inferencer's folder (required).
        push_to_hub (`bool`, *optional*, defaults to `False`): Push the folder with its card when training ends.
        hub_model_id (`str`, *optional*): The Hub repo to push to (default: the folder's name).
        hub_token (`str`, *optional*): The token to push with (default: `HF_TOKEN` or the saved login); never saved.
    """

    output_dir: str | None = field(default=None, metadata={"help": "The inferencer's folder."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the folder with its card when training ends."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repo to push to (default: folder name)."})
    hub_token: str | None = field(default=None, metadata={"help": "Token to push with (never saved)."})

    def learned_config(self) -> LearnedInferenceConfig:
        """The training settings alone (what `fit` takes and `save_pretrained` records; no path, no token)."""
        names = [spec.name for spec in dataclasses.fields(LearnedInferenceConfig)]
        return LearnedInferenceConfig(**{name: getattr(self, name) for name in names})


def make_parser() -> TrlParser:
    """The parser of `personalign train preference-inferencer` (a bad value raises `argparse.ArgumentError` instead of
    exiting)."""
    return TrlParser(
        (PreferenceInferencerScriptArguments, PreferenceInferencerConfig, ModelConfig), exit_on_error=False
    )


def alignx_row_check(rows: Any, names: Any, training_args: Any) -> None:
    """The row check of every split read (`scripts.utils.RowCheck`): AlignX rows, validated as `build-dataset alignx`
    validates them."""
    check_alignx_rows(rows, names)


def main(
    script_args: PreferenceInferencerScriptArguments,
    training_args: PreferenceInferencerConfig,
    model_args: ModelConfig,
) -> dict[str, Any]:
    """Train a learned preference inferencer (calibrated on `calibration_split`, scored on `dataset_test_split`) and
    write its folder with the run record, staged and renamed; push it with `push_to_hub`.

    Returns:
        `dict`: The run record, with `fit` (examples, class counts, losses), `calibration` and `direction_report`
        (with those splits).

    Raises:
        `InputError`: If `output_dir` is unset or exists (without `overwrite`), or a split is missing or bad.
    """
    if not training_args.output_dir:
        raise InputError(f"`personalign train {METHOD}`: set output_dir (in the YAML file or --output_dir).")
    output = ensure_writable(training_args.output_dir, script_args.overwrite)  # before loading models and data
    record, push_token = start_run(METHOD, script_args, training_args, model_args)
    source = load_source(script_args.dataset_name, script_args.dataset_config)
    train_split = script_args.dataset_train_split
    train = source.split(train_split)
    limit = script_args.max_train_samples
    if limit is not None:
        train = train.select(range(min(limit, len(train))))
    check_split(source, train_split, alignx_row_check, training_args, limit)
    others = {"calibration": script_args.calibration_split, "test": script_args.dataset_test_split}
    splits = {}
    for purpose, split in others.items():
        if split:
            splits[purpose] = source.split(split)
            check_split(source, split, alignx_row_check, training_args)
    encoder = PersonaEncoder.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        pooling=script_args.pooling,
        projection_dim=script_args.projection_dim,
    )
    inferencer = LearnedPreferenceInferencer(encoder)
    fit = inferencer.fit(train, training_args.learned_config(), where=source.where(train_split))
    record.update(output_dir=str(output), fit={key: value for key, value in fit.items() if key != "epoch_losses"})
    record["fit"]["final_loss"] = fit["epoch_losses"][-1]
    if "calibration" in splits:
        where = source.where(script_args.calibration_split)
        calibration = inferencer.calibrate(splits["calibration"], where=where)
        record["calibration"] = {key: calibration[key] for key in ("item_threshold", "upper", "lower", "macro_f1")}
    if "test" in splits:
        record["direction_report"] = inferencer.evaluate(
            splits["test"], where=source.where(script_args.dataset_test_split)
        )
    record["thresholds"] = {
        "item_threshold": inferencer.item_threshold,
        "upper": inferencer.upper,
        "lower": inferencer.lower,
    }
    record = to_jsonable(record)
    reference = None if script_args.save_encoder else model_args.model_name_or_path
    with atomic_output(output, script_args.overwrite) as staging:
        inferencer.save_pretrained(staging, encoder_name_or_path=reference)
        write_run_record(staging, record)  # in the staged folder: the folder appears with its record
    if push_token is not None:
        record["hub_url"] = push_model(output, training_args.hub_model_id or output.name, token=push_token)
    return record
