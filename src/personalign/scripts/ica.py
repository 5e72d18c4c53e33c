"""`personalign train ica`: in-context alignment (AlignX, §5), the persona's history in the prompt.

Script arguments: the method-neutral `ScriptArguments`; config: `ICAConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

from typing import Any

from trl import ModelConfig, TrlParser

from ..trainers.ica_config import ICAConfig
from ..trainers.ica_trainer import ICATrainer
from .utils import ScriptArguments, data_sources, persona_row_check, train_and_save, trainer_kwargs


def build_trainer(
    script_args: ScriptArguments,
    training_args: ICAConfig,
    model_args: ModelConfig,
    train_dataset: Any,
    eval_dataset: Any,
) -> ICATrainer:
    """The ICA trainer for the parsed arguments and the loaded splits (named in its messages by
    `data_sources`)."""
    kwargs = trainer_kwargs(training_args, model_args, train_dataset, eval_dataset)
    return ICATrainer(data_sources=data_sources(script_args), **kwargs)


def make_parser() -> TrlParser:
    """The parser of `personalign train ica` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((ScriptArguments, ICAConfig, ModelConfig), exit_on_error=False)


def main(script_args: ScriptArguments, training_args: ICAConfig, model_args: ModelConfig) -> dict[str, Any]:
    """Train an ICA policy into `training_args.output_dir`.

    Returns:
        `dict`: The run record (see `utils.train_and_save`).
    """
    return train_and_save(
        "ica", script_args, training_args, model_args, build_trainer, check_rows=persona_row_check("ica")
    )
