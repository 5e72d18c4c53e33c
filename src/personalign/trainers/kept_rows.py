"""Rows a trainer drops for `max_length`: TRL filters them out inside `_prepare_dataset` without a word (DPO: rows
whose prompt alone fills `max_length`; reward: rows longer than it). Each personalign trainer counts them there,
reports them, and refuses a dataset of which nothing is left."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import InputError

logger = logging.getLogger(__name__)

DPO_DROP_REASON = "their prompt alone fills it, and TRL drops such rows with truncation_mode='keep_start'"
"""Why `trl.DPOTrainer._prepare_dataset` drops a row."""


def data_label(data_sources: Mapping[str, str] | None, dataset_name: str) -> str:
    """A trainer's dataset for messages: its source as the caller named it (`data_sources[dataset_name]`, e.g.
    `"rows.jsonl [train]"`), else `"the <dataset_name> dataset"`."""
    return (data_sources or {}).get(dataset_name) or f"the {dataset_name} dataset"


def report_kept_rows(before: Any, after: Any, max_length: int | None, source: str, reason: str) -> None:
    """Compare a dataset before and after a trainer's length filter: log how many rows were dropped, and refuse when
    none is left (training on nothing would save the base weights as the trained model). Datasets without a length
    (streaming) are not counted.

    Args:
        before: The rows given to the filter.
        after: The rows it kept.
        max_length (`int` or `None`): The limit that dropped them, for messages.
        source (`str`): The data, for messages (see `data_label`).
        reason (`str`): Why a row longer than `max_length` is dropped, for messages.

    Raises:
        `InputError`: `"<source>: all 16 rows are longer than max_length=128 (...); nothing is left to train on..."`.
    """
    try:
        total, kept = len(before), len(after)
    except TypeError:  # an IterableDataset
        return
    if kept >= total:
        return
    if kept == 0:
        raise InputError(
            f"{source}: all {total} rows are longer than max_length={max_length} ({reason}); nothing is left to "
            "train on. Raise --max_length."
        )
    logger.warning(
        "dropped %d of %d rows longer than max_length=%s (%s): %s.", total - kept, total, max_length, source, reason
    )
