"""`personalign train dpore`: DPO with a persona-representation regularizer (the DPORE paper, §3.3).

Script arguments: `DPOREScriptArguments` (the method-neutral ones plus the persona encoder and, for raw AlignX rows,
the persona format); config: `DPOREConfig`; model: `trl.ModelConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
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
from .utils import (
    RowCheck,
    ScriptArguments,
    data_sources,
    first_null_row,
    persona_row_check,
    train_and_save,
    trainer_kwargs,
)

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
        super().__post_init__()
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


def check_persona_text(rows: Dataset, names: RowNames, column: str) -> None:
    """A persona text column (`persona_text_column`, which the persona encoder embeds) holds text or null (a row
    without a persona: no regularizer) in every row.

    Raises:
        `InputError`: `"<file>, line 3, column 'persona_text': expected text (the persona the encoder embeds) or
            null, got int64."`, naming the first row that holds a value.
    """
    values = rows.with_format("arrow")[:].column(column)
    kind = values.type
    if pa.types.is_null(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return
    first = pc.index(pc.is_valid(values), True).as_py()
    raise InputError(
        f"{names(max(first, 0))}, column {column!r}: expected text (the persona the encoder embeds) or null, got "
        f"{kind}."
    )


def check_persona_embeddings(
    rows: Dataset, names: RowNames, column: str, size: int | None, first: dict[str, Any]
) -> None:
    """A persona embedding column holds, in every row, a list of `size` finite numbers or null (a row without a
    persona: no regularizer). Vectorised over Arrow data.

    Args:
        rows (`Dataset`): The rows of one file (or Hub split).
        names (`RowNames`): Names its rows for messages.
        column (`str`): The embedding column.
        size (`int`, *optional*): The embedding size (`re_embedding_dim`); by default that of the first embedding
            seen, in this file or an earlier one (`first`).
        first (`dict`): The first embedding seen over the files of the run (`{"size": int, "at": str}`), filled on the
            first call that finds one: the trainer takes the embedding size from it.

    Raises:
        `InputError`: Naming the file, the row and the column: an embedding that is not a list of numbers, of
            another size, or that holds a null or a non-finite number.
    """
    values = rows.with_format("arrow")[:].column(column)
    kind = values.type
    if pa.types.is_null(kind):
        return
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    item = kind.value_type if is_list else None
    if item is None or not (pa.types.is_integer(item) or pa.types.is_floating(item) or pa.types.is_null(item)):
        at = names(max(pc.index(pc.is_valid(values), True).as_py(), 0))
        raise InputError(
            f"{at}, column {column!r}: expected a list of numbers (a persona embedding) or null, got {kind}."
        )
    lengths = pc.list_value_length(values)
    present = pc.index(pc.is_valid(values), True).as_py()
    if present < 0:
        return  # every row null: no persona in this file
    if size is None and not first:
        first.update(size=lengths[present].as_py(), at=names(present))
    expected = size if size is not None else first["size"]
    wrong = pc.index(pc.fill_null(pc.not_equal(lengths, expected), False), True).as_py()
    if wrong >= 0:
        like = "re_embedding_dim" if size is not None else f"as {first['at']}"
        raise InputError(
            f"{names(wrong)}, column {column!r}: expected a persona embedding of {expected} numbers ({like}), got "
            f"{lengths[wrong].as_py()}."
        )
    flat = pc.list_flatten(values)
    bad = first_null_row(flat)
    if bad is None and pa.types.is_floating(item):
        bad = first_null_row(pc.if_else(pc.is_finite(flat), flat, pa.scalar(None, flat.type)))
    if bad is not None:
        row = pc.list_parent_indices(values)[bad].as_py()
        value = flat[bad].as_py()
        raise InputError(
            f"{names(row)}, column {column!r}: the persona embedding holds {'a null' if value is None else value}; "
            "expected finite numbers (or null for the whole row: no regularizer)."
        )


def dpore_row_check(persona_format: str, embeds_text: bool = True) -> RowCheck:
    """DPORE's row check: the persona-prompt rows (`persona_row_check`, with `persona_format`), then the persona
    columns the trainer reads, named by its config: the text the encoder embeds (`persona_text_column`) and the
    embeddings (`persona_embedding_column`, `persona_embedding_chosen_column`, `persona_embedding_rejected_column`),
    one size over every file and split (`re_embedding_dim`, else the first embedding's). A null persona is allowed:
    that row trains as plain DPO (how general preference data is mixed in).

    Args:
        persona_format (`str`): `"pba"` or `"ica"` (the script argument).
        embeds_text (`bool`, *optional*, defaults to `True`): Whether a persona encoder embeds the text column (the
            run has `persona_encoder`); without one the column is not read, so not checked.

    Returns:
        `RowCheck`: A new check (it remembers the first embedding's size across the files it sees).
    """
    rows_check = persona_row_check("dpore", persona_format)
    first: dict[str, Any] = {}

    def check(rows: Dataset, names: RowNames, training_args: DPOREConfig) -> None:
        rows_check(rows, names, training_args)
        columns = rows.column_names
        if embeds_text and training_args.persona_text_column in columns:
            check_persona_text(rows, names, training_args.persona_text_column)
        for column in (
            training_args.persona_embedding_column,
            training_args.persona_embedding_chosen_column,
            training_args.persona_embedding_rejected_column,
        ):
            if column in columns:
                check_persona_embeddings(rows, names, column, training_args.re_embedding_dim, first)

    return check


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
        check_rows=dpore_row_check(script_args.persona_format, script_args.persona_encoder is not None),
        mixes_general=True,
    )
