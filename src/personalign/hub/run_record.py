"""The run record (`personalign_run.json`) written beside trained weights: method, base model, datasets, the
hyperparameters that differ from their defaults, metrics. Model cards are built from it. Everything about the file
lives here: its name, what goes into it (`changed_fields`, `to_jsonable`), writing and reading it."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_output
from ..methods import METHODS

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
