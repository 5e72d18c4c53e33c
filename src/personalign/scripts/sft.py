"""`personalign train sft`: Preferred-SFT, the DPORE paper's baseline (§4.1, Appendix B Table 5): TRL's `SFTTrainer`
on the preferred replies of the preference rows, as prompt-completion rows (the loss on the completion only), with
general preference data's preferred replies mixed in (`general_dataset_name`, as the paper mixes UltraFeedback in).

Script arguments: the method-neutral `ScriptArguments`; config: `trl.SFTConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from datasets import Dataset
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser

from ..data.loading import require_columns
from ..row_names import RowNames
from .utils import ScriptArguments, check_text_columns, train_and_save, trainer_kwargs

SFT_COLUMNS = ("prompt", "chosen")
"""The columns Preferred-SFT reads from a preference row (`rejected` is not needed)."""

logger = logging.getLogger(__name__)


def check_sft_rows(rows: Dataset, names: RowNames, training_args: Any = None) -> None:
    """Preference rows for Preferred-SFT: `prompt` and `chosen` present, text or chat messages, in every row.

    Args:
        rows (`Dataset`): The rows of one file (or Hub split).
        names (`RowNames`): Names them for messages.
        training_args (*optional*): Unused (the `RowCheck` signature).

    Raises:
        `InputError`: Naming the file, the missing column, or the first bad row and its column.
    """
    require_columns(rows, SFT_COLUMNS, names.where, "a `personalign train sft` (preference: prompt, chosen)")
    check_text_columns(rows, SFT_COLUMNS, names)


def unique_preferred(dataset: Dataset) -> Dataset:
    """Preference rows with one row per (prompt, preferred reply): rows that differ only in their rejected reply
    (ALOE's `build-dataset aloe --rejected all` makes one row per rejected reply) are one Preferred-SFT example, as
    the DPORE paper trains on each preferred reply once. The first of each group is kept, in order.

    Args:
        dataset (`Dataset`): Rows with `prompt` and `chosen` (standard or conversational).

    Returns:
        `Dataset`: `dataset` itself when no row repeats, else the kept rows.
    """
    seen: set[str] = set()
    keep = []
    pairs = dataset.select_columns(list(SFT_COLUMNS))
    for index, row in enumerate(pairs):
        key = json.dumps([row["prompt"], row["chosen"]], sort_keys=True)
        if key not in seen:
            seen.add(key)
            keep.append(index)
    if len(keep) == len(dataset):
        return dataset
    logger.info(
        "Preferred-SFT: %d of %d rows repeat a (prompt, preferred reply); each is trained once.",
        len(dataset) - len(keep),
        len(dataset),
    )
    return dataset.select(keep)


def preferred_completions(dataset: Dataset) -> Dataset:
    """Preference rows as TRL prompt-completion rows: `prompt` as it is, `chosen` as the `completion`; every other
    column dropped (`SFTTrainer` computes the loss on the completion only for such rows).

    Args:
        dataset (`Dataset`): Rows with `prompt` and `chosen` (standard or conversational).

    Returns:
        `Dataset`: `prompt` and `completion` columns.
    """
    return dataset.select_columns(list(SFT_COLUMNS)).rename_column("chosen", "completion")


def build_trainer(
    script_args: ScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
) -> SFTTrainer:
    """TRL's `SFTTrainer` on the preferred completions of the (mixed) training rows and of the evaluation rows."""
    train_dataset = preferred_completions(train_dataset)
    if eval_dataset is not None:
        eval_dataset = preferred_completions(eval_dataset)
    return SFTTrainer(**trainer_kwargs(training_args, model_args, train_dataset, eval_dataset))


def make_parser() -> TrlParser:
    """The parser of `personalign train sft` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((ScriptArguments, SFTConfig, ModelConfig), exit_on_error=False)


def main(script_args: ScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> dict[str, Any]:
    """Train a Preferred-SFT policy into `training_args.output_dir`.

    Returns:
        `dict`: The run record (see `utils.train_and_save`), with `general_data` when general data was mixed in.
    """
    return train_and_save(
        "sft",
        script_args,
        training_args,
        model_args,
        build_trainer,
        check_rows=check_sft_rows,
        mixes_general=True,
        prepare_rows=unique_preferred,
    )
