"""`personalign train reward`: a personalized in-context reward model (the counterfactual paper, §3.3).

Script arguments: the method-neutral `ScriptArguments`; config: `PersonalizedRewardConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from trl import ModelConfig, TrlParser

from ..data.loading import load_source
from ..data.multifacet import multifacet_cf_responses
from ..trainers.reward_config import PersonalizedRewardConfig
from ..trainers.reward_trainer import PersonalizedRewardTrainer
from .utils import ScriptArguments, train_and_save, trainer_kwargs


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
    return PersonalizedRewardTrainer(responses=responses, **kwargs)


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
    return train_and_save("reward", script_args, training_args, model_args, build_trainer)
