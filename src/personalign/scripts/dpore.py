"""`personalign train dpore`: DPO with a persona-representation regularizer (the DPORE paper, §3.3).

Script arguments: `DPOREScriptArguments` (the method-neutral ones plus the persona encoder and, for raw AlignX rows,
the persona format); config: `DPOREConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from trl import ModelConfig, TrlParser

from ..data.alignx import AlignXBuildConfig
from ..encoder.modeling_persona_encoder import PersonaEncoder, persona_document
from ..errors import InputError
from ..methods import PERSONA_ENCODER_FOLDER
from ..personas.persona import Persona
from ..row_names import RowNames
from ..trainers.alignx_trainer import ROW_COLUMN, has_raw_personas, render_for_training
from ..trainers.dpore_config import DPOREConfig
from ..trainers.dpore_trainer import DPORETrainer
from .utils import ScriptArguments, data_sources, persona_row_check, train_and_save, trainer_kwargs

PERSONA_FORMATS = ("pba", "ica")


@dataclass
class DPOREScriptArguments(ScriptArguments):
    """`ScriptArguments` plus DPORE's own.

    Args:
        persona_encoder (`str`, *optional*): The PersonaEncoder (Hub id or folder) that embeds each row's persona;
            saved into the output folder. Without it the rows must carry persona embedding columns.
        persona_format (`str`, *optional*, defaults to `"pba"`): On raw AlignX rows, how the persona is written into
            the prompt (`"pba"` preference text or `"ica"` history); the persona history is what the encoder embeds.

    Raises:
        `InputError`: If `persona_format` is neither `"pba"` nor `"ica"`.
    """

    persona_encoder: str | None = field(
        default=None, metadata={"help": "PersonaEncoder id or folder that embeds each row's persona."}
    )
    persona_format: str = field(
        default="pba", metadata={"help": "On raw AlignX rows: persona in the prompt as 'pba' or 'ica'."}
    )

    def __post_init__(self) -> None:
        if self.persona_format not in PERSONA_FORMATS:
            raise InputError(f"persona_format must be 'pba' or 'ica', got {self.persona_format!r}.")


def dpore_rows(dataset: Dataset, persona_format: str, names: RowNames | None = None) -> Dataset:
    """Raw AlignX rows as DPORE rows: the persona rendered into the prompt (`"pba"` / `"ica"`) and its history as
    `persona_text`, the text the persona encoder embeds. Rows without raw personas are returned as they are.

    Args:
        dataset (`Dataset`): The rows.
        persona_format (`str`): `"pba"` or `"ica"`.
        names (`RowNames`, *optional*): Names a bad row in messages; by default `"DPORE rows, row <i> (0-based)"`.

    Returns:
        `Dataset`: The DPORE rows.
    """
    if not has_raw_personas(dataset.column_names):
        return dataset
    names = names or RowNames.of("DPORE rows")
    texts = [persona_document(Persona.from_alignx_row(row, where=names(index))) for index, row in enumerate(dataset)]
    rendered = render_for_training(dataset, persona_format, AlignXBuildConfig(), dataset_name="DPORE")
    return rendered.remove_columns(ROW_COLUMN).add_column("persona_text", texts)


def build_trainer(
    script_args: DPOREScriptArguments,
    training_args: DPOREConfig,
    model_args: ModelConfig,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
) -> DPORETrainer:
    """The DPORE trainer, with the persona encoder of `script_args` and raw AlignX rows rendered by `dpore_rows`."""
    encoder = PersonaEncoder.from_pretrained(script_args.persona_encoder) if script_args.persona_encoder else None
    # The rows were checked file by file (`dpore_row_check`); what is left to name is the split.
    sources = data_sources(script_args)
    train_dataset = dpore_rows(train_dataset, script_args.persona_format, RowNames.of(sources["train"]))
    if eval_dataset is not None:
        eval_dataset = dpore_rows(eval_dataset, script_args.persona_format, RowNames.of(sources["eval"]))
    kwargs = trainer_kwargs(training_args, model_args, train_dataset, eval_dataset)
    return DPORETrainer(persona_encoder=encoder, data_sources=sources, **kwargs)


def save_persona_encoder(trainer: DPORETrainer, script_args: DPOREScriptArguments, output_dir: Path) -> dict[str, Any]:
    """Save the trainer's persona encoder beside the policy (`persona_encoder/`), naming it in the run record."""
    if trainer.persona_encoder is None:
        return {}
    trainer.persona_encoder.save_pretrained(output_dir / PERSONA_ENCODER_FOLDER)
    return {"persona_encoder": script_args.persona_encoder}


def make_parser() -> TrlParser:
    """The parser of `personalign train dpore` (a bad value raises `argparse.ArgumentError` instead of exiting)."""
    return TrlParser((DPOREScriptArguments, DPOREConfig, ModelConfig), exit_on_error=False)


def main(script_args: DPOREScriptArguments, training_args: DPOREConfig, model_args: ModelConfig) -> dict[str, Any]:
    """Train a DPORE policy into `training_args.output_dir`, with its projection head and persona encoder.

    Returns:
        `dict`: The run record (see `utils.train_and_save`), with `persona_encoder`.
    """
    return train_and_save(
        "dpore",
        script_args,
        training_args,
        model_args,
        build_trainer,
        save_persona_encoder,
        check_rows=persona_row_check("dpore"),
    )
