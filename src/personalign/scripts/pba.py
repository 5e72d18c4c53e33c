"""`personalign train pba`: preference-bridged alignment (AlignX, §5), the persona as preference text in the prompt.

Script arguments: the method-neutral `ScriptArguments`; config: `PBAConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

from typing import Any

from trl import ModelConfig, TrlParser

from ..trainers.pba_config import PBAConfig
from ..trainers.pba_trainer import PBATrainer
from .utils import ScriptArguments, data_sources, persona_row_check, train_and_save, trainer_kwargs


def build_trainer(
    script_args: ScriptArguments,
    training_args: PBAConfig,
    model_args: ModelConfig,
    train_dataset: Any,
    eval_dataset: Any,
) -> PBATrainer:
    """The PBA trainer for the parsed arguments and the loaded splits (named in its messages by
    `data_sources`)."""
    kwargs = trainer_kwargs(training_args, model_args, train_dataset, eval_dataset)
    return PBATrainer(data_sources=data_sources(script_args), **kwargs)


def make_parser() -> TrlParser:
    """The parser of `personalign train pba` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((ScriptArguments, PBAConfig, ModelConfig), exit_on_error=False)


def main(script_args: ScriptArguments, training_args: PBAConfig, model_args: ModelConfig) -> dict[str, Any]:
    """Train a PBA policy into `training_args.output_dir`.

    Returns:
        `dict`: The run record (see `utils.train_and_save`).
    """
    return train_and_save(
        "pba", script_args, training_args, model_args, build_trainer, check_rows=persona_row_check("pba")
    )
