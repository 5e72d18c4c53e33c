"""The run record (`personalign_run.json`) written beside trained weights: method, base model, datasets, the
hyperparameters that differ from their defaults, metrics. Model cards are built from it. Everything about the file
lives here: its name, what goes into it (`changed_fields`, `to_jsonable`, `whole_run_train_metrics` of a resumed
run), writing and reading it; and the run's folder bookkeeping (`set_aside_earlier_run` for `--overwrite`)."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_output
from ..methods import METHODS

logger = logging.getLogger(__name__)

RUN_RECORD = "personalign_run.json"
"""Written beside the trained weights: method, base model, datasets, hyperparameters and metrics. `push-model` builds
the model card from it (the trainer's own `training_args.bin` is a pickle and is never read)."""


def to_jsonable(value: Any) -> Any:
    """A config value as plain JSON / YAML data (enums by value, other objects by name)."""
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "__name__", None) or str(value)


# Settings that decide which other defaults `__post_init__` derives (a CPU run turns off pin memory, ...): the
# reference config below is built with them, so what they imply is not listed as a change of its own.
_DERIVING_FIELDS = ("use_cpu", "bf16", "fp16")


def _declared_default(config_field: dataclasses.Field) -> Any:
    if config_field.default is not dataclasses.MISSING:
        return config_field.default
    if config_field.default_factory is not dataclasses.MISSING:
        return config_field.default_factory()
    return dataclasses.MISSING


def _reference_config(config: Any) -> Any:
    """A config of the same class with default values, normalised by the same `__post_init__` (so that, e.g., the
    `report_to="none"` default and its normalised `[]` compare equal), or `None` when one cannot be built."""
    settings = {name: getattr(config, name) for name in ("output_dir", *_DERIVING_FIELDS) if hasattr(config, name)}
    try:
        return type(config)(**settings)
    except (TypeError, ValueError):
        # A config with required fields, or one whose checks reject the defaults: compare with the declared ones.
        return None


def changed_fields(config: Any) -> dict[str, Any]:
    """The fields of a dataclass config that differ from their defaults (what a run record and a model card list).

    A value counts as unchanged when it equals the field's declared default or the value that `__post_init__`
    derives from the defaults (transformers turns `accelerator_config=None` into an `AcceleratorConfig`, `debug=""`
    into `[]`, `report_to="none"` into `[]`, ...).
    """
    reference = _reference_config(config)
    result = {}
    for config_field in dataclasses.fields(config):
        if not config_field.init or config_field.name in {"output_dir", "logging_dir", "hub_token"}:
            continue
        value = getattr(config, config_field.name)
        if value == _declared_default(config_field):
            continue
        if (
            reference is not None
            and config_field.name not in _DERIVING_FIELDS
            and to_jsonable(value) == to_jsonable(getattr(reference, config_field.name))
        ):
            continue
        result[config_field.name] = to_jsonable(value)
    return result


def write_run_record(folder: str | Path, record: Mapping[str, Any]) -> Path:
    """Write `personalign_run.json` into a trained folder, replacing the previous one in one rename (a resumed run
    updates its record).

    Args:
        folder (`str` or `Path`): The trained folder.
        record (`Mapping`): The record (JSON-ready: pass config values through `to_jsonable`).

    Returns:
        `Path`: The record's path.
    """
    path = Path(folder) / RUN_RECORD
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_run_record(folder: str | Path) -> dict[str, Any]:
    """The `personalign_run.json` of a trained folder.

    Raises:
        `InputError`: If the folder has none, it is not valid JSON, or its `method` is not a registered one.
    """
    path = Path(folder) / RUN_RECORD
    if not path.is_file():
        raise InputError(f"{folder}: no {RUN_RECORD}; push-model publishes folders written by `personalign train`.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(record, dict) or record.get("method") not in METHODS:
        raise InputError(f"{path}: expected a run record with 'method' one of {', '.join(METHODS)}.")
    return record


def set_aside_earlier_run(folder: str | Path) -> Path | None:
    """Move the earlier run in `folder` (its checkpoints, weights, records: everything in it) to a new sibling folder
    in one rename, leaving `folder` empty, so that nothing of it can be resumed or mixed with the new run; says so in
    one warning line. The caller deletes the returned folder once the new run has finished (a failed run keeps it).

    Args:
        folder (`str` or `Path`): The output folder of a run started again (`--overwrite`).

    Returns:
        `Path` or `None`: Where the earlier run now is; `None` when `folder` was absent or empty (nothing moved).
    """
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    aside = Path(tempfile.mkdtemp(prefix=f"{folder.name}.earlier-run-", dir=folder.parent))
    os.replace(folder, aside)  # onto the empty folder made for it: one rename, nothing copied
    folder.mkdir(mode=aside.stat().st_mode & 0o777)
    logger.warning(
        f"--overwrite: moved the earlier run in {folder} to {aside}; it is deleted when this run finishes (kept if "
        "it fails)."
    )
    return aside


def whole_run_train_metrics(
    metrics: Mapping[str, Any], log_history: Sequence[Mapping[str, Any]], resumed_from: int, global_step: int
) -> dict[str, Any]:
    """The training metrics of a run as a whole, for its record. `Trainer.train` reports `train_loss` over the steps
    of its own call only, so a resumed run's comes from the resumed steps; here the steps before `resumed_from` are
    added back from the log history (each logged `loss` is the mean over the steps since the log before it, so it
    is weighted by that many steps). `num_tokens` is the last one logged (cumulative over the run when the trainer's
    count continued from the checkpoint, see `personalign.scripts.utils.train_and_save`).

    When the checkpoint's last logged step is before `resumed_from` (logging_steps does not divide the save step),
    the steps in between are unknown: `train_loss` covers the others, `train_loss_steps` says how many, and a
    warning names the gap.

    Args:
        metrics (`Mapping`): `TrainOutput.metrics` of the (resumed) `train` call.
        log_history (`Sequence[Mapping]`): `trainer.state.log_history` after training (the checkpoint's history,
            then this call's logs).
        resumed_from (`int`): The global step the run resumed from (0: not resumed).
        global_step (`int`): The global step at the end.

    Returns:
        `dict`: `metrics` with `train_loss` over the whole run and `num_tokens` when the history has it.
    """
    result = dict(metrics)
    tokens = logged_before(log_history, "num_tokens", global_step)
    if tokens is not None:
        result["num_tokens"] = tokens
    if resumed_from <= 0 or "train_loss" not in metrics:
        return result
    total, covered = 0.0, 0
    for entry in log_history:
        if "loss" in entry and entry.get("step", 0) <= resumed_from:
            total += entry["loss"] * (entry["step"] - covered)
            covered = entry["step"]
    resumed_steps = global_step - resumed_from
    total += metrics["train_loss"] * resumed_steps
    result["train_loss"] = total / max(covered + resumed_steps, 1)
    if covered < resumed_from:
        result["train_loss_steps"] = covered + resumed_steps
        logger.warning(
            f"the run resumed from step {resumed_from}, but the checkpoint's last logged loss is at step {covered}: "
            f"train_loss covers {covered + resumed_steps} of {global_step} steps (a logging_steps that divides "
            "save_steps logs every checkpoint's step)."
        )
    return result


def logged_before(log_history: Sequence[Mapping[str, Any]], key: str, step: int) -> Any:
    """The last value of `key` logged at or before `step` (e.g. the cumulative `num_tokens` at a checkpoint), or
    `None`."""
    values = [entry[key] for entry in log_history if key in entry and entry.get("step", 0) <= step]
    return values[-1] if values else None
