"""The personas of a role-play evaluation: read from a `personalign build-dataset aloe` folder (its `personas` config),
any table with `profile` and `personality` columns, or released ALOE records (one per conversation: the personas are
de-duplicated), through the one loader (`personalign.data.loading.load_source`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...data.aloe import aloe_persona_id
from ...data.loading import dataset_configs, load_source, value_kind
from ...errors import InputError

PERSONAS_CONFIG = "personas"
"""The config of a `personalign build-dataset aloe` folder holding one row per persona."""
PERSONA_COLUMNS = ("profile", "personality")
"""The columns every persona row needs (ALOE's persona texts)."""


@dataclass(frozen=True)
class RoleplayPersona:
    """One persona of the role-play: ALOE's two texts and an id.

    Attributes:
        persona_id (`str`): The row's `persona_id` when it has one, else `persona_key(profile, personality)`.
        profile (`str`): ALOE's profile (who the user is).
        personality (`str`): ALOE's personality (how the user talks and behaves).
    """

    persona_id: str
    profile: str
    personality: str


def persona_key(profile: str, personality: str) -> str:
    """A stable id of a persona's texts: `personalign.data.aloe.aloe_persona_id(profile, personality)`, the id
    `build-dataset aloe` gives the persona.

    Returns:
        `str`
    """
    return aloe_persona_id(profile, personality)


@dataclass
class LoadedPersonas:
    """What `load_personas` read.

    Attributes:
        personas (`list[RoleplayPersona]`): The personas, in source order, de-duplicated, cut to `num_personas`.
        source (`str`): The source as given.
        config (`str` or `None`): The config read.
        split (`str`): The split read.
        num_rows (`int`): Rows read (before de-duplication).
    """

    personas: list[RoleplayPersona]
    source: str
    config: str | None
    split: str
    num_rows: int

    def describe(self) -> str:
        """One line for the command line."""
        config = f"config {self.config}, " if self.config else ""
        return f"{len(self.personas)} personas from {self.source} ({config}split {self.split}, {self.num_rows} rows)"


def _pick_split(splits: list[str], split: str | None, source: str, built: bool) -> str:
    if split is not None:
        return split
    if "test" in splits:
        return "test"
    if built:  # a build folder without held-out personas: its only split is the training personas
        raise InputError(
            f"personas {source} have no held-out 'test' split (built with --test-personas 0?): role-playing its "
            f"{', '.join(splits)} personas scores personas the models trained on; pass --split to do so on purpose."
        )
    if len(splits) == 1:
        return splits[0]
    raise InputError(f"personas {source} have splits {', '.join(splits)} and none is 'test': pass --split.")


def load_personas(source: str | Path, split: str | None = None, num_personas: int | None = None) -> LoadedPersonas:
    """The personas of a role-play evaluation.

    Args:
        source (`str` or `Path`): A `personalign build-dataset aloe` folder (its `personas` config is read), a
            parquet / jsonl / json file or folder, or a Hub id, whose rows have `profile` and `personality` text
            columns: one row per persona, or released ALOE records (one per conversation, with `conversations`).
        split (`str`, *optional*): The split; `test` when there is one (a build folder's held-out personas), else
            the only one of a file or folder of rows (a build folder without `test` is refused: its personas were
            trained on).
        num_personas (`int`, *optional*): Keep the first `num_personas` personas (the DPORE paper used 100).

    Returns:
        `LoadedPersonas`

    Raises:
        `InputError`: For a source the loader refuses, a missing split or column, or a row whose profile or
            personality is not a non-empty text (naming its file and row or line, and the column).
    """
    if num_personas is not None and not (isinstance(num_personas, int) and num_personas >= 1):
        raise InputError(f"--num-personas must be an integer >= 1, got {num_personas!r}.")
    name = str(source)
    config = PERSONAS_CONFIG if PERSONAS_CONFIG in dataset_configs(name) else None
    loaded = load_source(name, config)
    split = _pick_split(loaded.splits, split, name, built=config is not None)
    rows = loaded.split(split)
    where = loaded.where(split)
    missing = [column for column in PERSONA_COLUMNS if column not in rows.column_names]
    if missing:
        raise InputError(
            f"personas {where}: no {' or '.join(repr(c) for c in missing)} column; a persona row needs 'profile' and "
            f"'personality' (its columns: {', '.join(rows.column_names)})."
        )
    names = loaded.row_names(split)
    has_id = "persona_id" in rows.column_names
    personas: dict[tuple[str, str], RoleplayPersona] = {}
    for index, row in enumerate(rows.select_columns([*PERSONA_COLUMNS, *(["persona_id"] if has_id else [])])):
        texts = []
        for column in PERSONA_COLUMNS:
            value: Any = row[column]
            if not isinstance(value, str) or not value.strip():
                shown = "an empty text" if isinstance(value, str) else value_kind(value)
                raise InputError(f"{names(index)}, column {column!r}: expected a non-empty text, got {shown}.")
            texts.append(value)
        profile, personality = texts
        if (profile, personality) in personas:
            continue  # released ALOE records: one row per conversation, several per persona
        persona_id = row.get("persona_id") if has_id else None
        persona_id = str(persona_id) if persona_id not in (None, "") else persona_key(profile, personality)
        personas[profile, personality] = RoleplayPersona(persona_id, profile, personality)
        if num_personas is not None and len(personas) == num_personas:
            break
    if not personas:
        raise InputError(f"personas {where}: no rows.")
    return LoadedPersonas(list(personas.values()), name, loaded.config, split, len(rows))
