"""`personalign train reward`: a personalized in-context reward model (the counterfactual paper, §3.3).

Script arguments: the method-neutral `ScriptArguments`; config: `PersonalizedRewardConfig`; model: `trl.ModelConfig`.

The persona of this method is a feedback history (`history_text`, or the `history` ids of a `personalign
build-dataset multifacet-cf` build). AlignX rows are refused: the reward input has no place for their comments,
pairs with 90-dimension vectors and demographics, and training on them would give a history-free model under a
"personalized" name (`check_reward_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datasets import Dataset
from trl import ModelConfig, TrlParser

from ..data.loading import RowNames, batch_rows, load_source, require_columns
from ..data.multifacet import multifacet_cf_responses
from ..errors import InputError
from ..reward.feedback import HISTORY_IDS_COLUMN, history_pairs
from ..trainers.alignx_trainer import RAW_PERSONA_COLUMNS, has_raw_personas
from ..trainers.reward_config import PersonalizedRewardConfig
from ..trainers.reward_trainer import PersonalizedRewardTrainer
from .utils import ScriptArguments, check_text_columns, data_sources, train_and_save, trainer_kwargs


def _check_histories(batch: Mapping[str, list], indices: list[int], column: str, names: RowNames) -> None:
    for row, index in zip(batch_rows(batch), indices, strict=True):
        history_pairs(row, column, names(index))


def check_reward_rows(rows: Dataset, names: RowNames, training_args: PersonalizedRewardConfig) -> None:
    """The row check of `personalign train reward` (a `utils.RowCheck`), before the model loads.

    Tokenized rows (`chosen_ids`, `rejected_ids`) pass. Rows with a feedback history (texts, or ids) need the
    config's prompt, chosen and rejected columns as text, and each history item as `{prompt, chosen, rejected}`
    texts (`personalign.reward.feedback.history_pairs`: the renderer's own check, run up front); ready TRL rows need
    `chosen` and `rejected`. AlignX persona rows without a feedback history are refused, pointing at the format
    this method reads.

    Raises:
        `InputError`: Naming `where`, the row and the column, or what the method expects.
    """
    where = names.where
    columns = set(rows.column_names)
    if {"chosen_ids", "rejected_ids"} <= columns:
        return
    rendering = training_args.rendering()
    with_history = bool({rendering.history_column, HISTORY_IDS_COLUMN} & columns)
    if has_raw_personas(columns) and not with_history:
        found = ", ".join(sorted(RAW_PERSONA_COLUMNS & columns))
        raise InputError(
            f"{where}: AlignX persona rows ({found}); `personalign train reward` reads a feedback history "
            f"({rendering.history_column!r}: [{{prompt, chosen, rejected}}], or the {HISTORY_IDS_COLUMN!r} ids of a "
            "`personalign build-dataset multifacet-cf` build) and would ignore these personas. Build its data with "
            "`personalign build-dataset multifacet-cf`, or train on AlignX personas with `personalign train "
            "pba|ica|dpore`."
        )
    if with_history:
        required = (rendering.prompt_column, rendering.chosen_column, rendering.rejected_column)
    else:
        required = tuple(c for c in ("prompt", "chosen", "rejected") if c != "prompt" or c in columns)
    require_columns(rows, required, where, "a `personalign train reward`")
    check_text_columns(rows, required, names)
    if rendering.include_history and rendering.history_column in columns:
        rows.map(
            _check_histories,
            batched=True,
            with_indices=True,
            fn_kwargs={"column": rendering.history_column, "names": names},
            desc=f"Validating the feedback histories of {where}",
        )


def build_trainer(
    script_args: ScriptArguments,
    training_args: PersonalizedRewardConfig,
    model_args: ModelConfig,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
) -> PersonalizedRewardTrainer:
    """The reward trainer; counterfactual MultiFacet rows keep their histories as ids into the dataset's
    `responses` config, which is loaded for them."""
    needs_responses = "history_text" not in train_dataset.column_names and "history" in train_dataset.column_names
    responses = multifacet_cf_responses(load_source(script_args.dataset_name)) if needs_responses else None
    kwargs = trainer_kwargs(training_args, model_args, train_dataset, eval_dataset)
    return PersonalizedRewardTrainer(responses=responses, data_sources=data_sources(script_args), **kwargs)


def make_parser() -> TrlParser:
    """The parser of `personalign train reward` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((ScriptArguments, PersonalizedRewardConfig, ModelConfig), exit_on_error=False)


def main(
    script_args: ScriptArguments, training_args: PersonalizedRewardConfig, model_args: ModelConfig
) -> dict[str, Any]:
    """Train a personalized reward model into `training_args.output_dir`.

    Returns:
        `dict`: The run record (see `utils.train_and_save`).
    """
    return train_and_save(
        "reward", script_args, training_args, model_args, build_trainer, check_rows=check_reward_rows
    )
