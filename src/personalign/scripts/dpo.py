"""`personalign train dpo`: plain DPO, the DPORE paper's baseline (§4.1, Appendix B Table 6): TRL's `DPOTrainer` on
the preference rows, with general preference data mixed in (`general_dataset_name`, as the paper mixes UltraFeedback
in). The paper starts it from the Preferred-SFT model, which is also its reference (TRL's default reference: a copy
of the starting model).

Script arguments: the method-neutral `ScriptArguments`; config: `trl.DPOConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from trl import DPOConfig, DPOTrainer, ModelConfig, TrlParser

from ..row_names import RowNames
from .utils import PREFERENCE_COLUMNS, ScriptArguments, check_preference_rows, train_and_save, trainer_kwargs


def check_dpo_rows(rows: Dataset, names: RowNames, training_args: Any = None) -> None:
    """Ready TRL preference rows (`check_preference_rows`: `prompt`, `chosen`, `rejected`, text or chat messages).

    Raises:
        `InputError`: Naming the file, the missing column, or the first bad row and its column.
    """
    check_preference_rows(rows, names, "dpo")


def preference_columns(dataset: Dataset) -> Dataset:
    """The columns `DPOTrainer` reads (`prompt`, `chosen`, `rejected`); persona and id columns are dropped."""
    return dataset.select_columns(list(PREFERENCE_COLUMNS))


def build_trainer(
    script_args: ScriptArguments,
    training_args: DPOConfig,
    model_args: ModelConfig,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
) -> DPOTrainer:
    """TRL's `DPOTrainer` on the (mixed) training rows and the evaluation rows."""
    train_dataset = preference_columns(train_dataset)
    if eval_dataset is not None:
        eval_dataset = preference_columns(eval_dataset)
    return DPOTrainer(**trainer_kwargs(training_args, model_args, train_dataset, eval_dataset))


def make_parser() -> TrlParser:
    """The parser of `personalign train dpo` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((ScriptArguments, DPOConfig, ModelConfig), exit_on_error=False)


def main(script_args: ScriptArguments, training_args: DPOConfig, model_args: ModelConfig) -> dict[str, Any]:
    """Train a DPO policy into `training_args.output_dir`.

    Returns:
        `dict`: The run record (see `utils.train_and_save`), with `general_data` when general data was mixed in.
    """
    return train_and_save(
        "dpo", script_args, training_args, model_args, build_trainer, check_rows=check_dpo_rows, mixes_general=True
    )
