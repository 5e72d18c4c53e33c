"""The inferred-preferences folder: each row's preference direction inferred from its history, and its profile text.

`personalign infer-preferences` writes it; `personalign eval policy --preferences DIR` and `personalign generate
--preferences DIR` read it to give PBA the inferred profile of each row instead of the gold one (as the AlignX paper
evaluates PBA, §5: "at inference time, we employ an off-the-shelf LLM to independently annotate preference
directions for each example in P"). The folder holds:

- `preferences.jsonl`: one JSON object per dataset row, in dataset order: `{"id": str, "row": int, "history_sha1":
  str, "preference_direction": [90 floats in {0, 0.5, 1}], "profile": str}`. `id` is the row's stable id
  (`EvalRows.row_id`, e.g. `"p_soups.json:17"`), `history_sha1` the hash of the history the direction was inferred
  from (`history_sha1`), `profile` the direction as PBA's preference text (`PreferenceSpace.to_text`; the empty string
  for an all-neutral direction).
- `inference.json`: how it was inferred (inferencer, model, settings, counts, the direction report against gold).

Reading checks every evaluated row against the file (its id is there, and its history hashes to the same value), so
that preferences inferred for another dataset, split or file version are refused with one line naming the row and
the file's line, instead of being paired with the wrong rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ..errors import InputError
from ..io import atomic_output
from ..personas.persona import PairItem, Persona, UGCItem
from ..personas.space import PreferenceSpace, json_kind
from .base import BasePreferenceInferencer
from .calibration import direction_report, gold_directions

PREFERENCES_FILE = "preferences.jsonl"
INFERENCE_FILE = "inference.json"
RECORD_FIELDS = ("id", "row", "history_sha1", "preference_direction", "profile")
"""The keys of each line of `preferences.jsonl`."""
WRITER = "`personalign infer-preferences`"


class IdentifiedRows(Protocol):
    """The rows a preferences folder is matched against: `personalign.evaluation.rows.EvalRows` (what `eval policy`
    and `generate` load), or any object with the same three members.

    Attributes:
        data (sequence of `dict`, e.g. a `datasets.Dataset`): The split's rows (AlignX, release or snake_case column
            names), iterable in order.
    """

    data: Any

    def row_id(self, index: int) -> str:
        """The stable id of row `index` (`EvalRows.row_id`)."""

    def row_name(self, index: int) -> str:
        """Row `index` for messages (`EvalRows.row_name`)."""


# ---------------------------------------------------------------------------------------------------- histories
def history_persona(row: Mapping[str, Any] | Persona, where: str | None = None, validate: bool = False) -> Persona:
    """The part of a persona the inferencers read: its comments and pairs, texts only (no item vectors, no gold
    direction, no profile, no demographics), so that nothing gold reaches an inferred direction.

    Args:
        row (`dict` or `Persona`): An AlignX row (release or snake_case column names, see `Persona.from_alignx_row`)
            or a persona.
        where (`str`, *optional*): Names the row in error messages.
        validate (`bool`, *optional*, defaults to `False`): Check the row's texts and vectors
            (`Persona.from_alignx_row`); hashing alone does not need it.

    Raises:
        `InputError`: If a history item is not an object or lacks a field (with `validate`, also a text that is not
            text or a bad vector), naming `where`, the column and item.
    """
    persona = row if isinstance(row, Persona) else Persona.from_alignx_row(row, where=where, validate=validate)
    return Persona(
        ugc=[UGCItem(item.prompt, item.comment) for item in persona.ugc],
        pairs=[PairItem(item.prompt, item.chosen, item.rejected) for item in persona.pairs],
        demographics=None,
    )


def history_sha1(row: Mapping[str, Any] | Persona, where: str | None = None) -> str:
    """A canonical hash of a row's history: the SHA-1 of the JSON array `{"ugc": [[prompt, comment], ...], "pairs":
    [[prompt, chosen, rejected], ...]}` (compact separators, UTF-8, items in the row's order). The same history hashes
    the same whether the row spells its columns as the release does (`"User-Generated Content"`) or in snake_case
    (`user_generated_content`), and whatever vectors, profile or demographics it carries.

    Args:
        row (`dict` or `Persona`): An AlignX row or a persona.
        where (`str`, *optional*): Names the row in error messages.

    Returns:
        `str`: 40 hex digits.
    """
    persona = history_persona(row, where)
    canonical = {
        "ugc": [[item.prompt, item.comment] for item in persona.ugc],
        "pairs": [[item.prompt, item.chosen, item.rejected] for item in persona.pairs],
    }
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------------------------- records
@dataclass
class InferredPreference:
    """One line of `preferences.jsonl`.

    Args:
        id (`str`): The row's stable id (`EvalRows.row_id`).
        row (`int`): The row's 0-based position in the split.
        history_sha1 (`str`): `history_sha1` of the row.
        preference_direction (`list[float]`): The inferred direction (values in {0, 0.5, 1}).
        profile (`str`): The direction as PBA's preference text (`PreferenceSpace.to_text`).
        line (`int`, *optional*): The 1-based line it was read from (not written).
    """

    id: str
    row: int
    history_sha1: str
    preference_direction: list[float]
    profile: str
    line: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of its line (`RECORD_FIELDS`)."""
        return {key: value for key, value in asdict(self).items() if key in RECORD_FIELDS}


@dataclass
class InferredPreferences:
    """A preferences folder as read by `load_inferred_preferences`.

    Args:
        folder (`Path`): The folder.
        records (`list[InferredPreference]`): The lines of `preferences.jsonl`, in order.
        meta (`dict`): `inference.json`.
    """

    folder: Path
    records: list[InferredPreference]
    meta: dict[str, Any]

    @property
    def path(self) -> Path:
        """`preferences.jsonl` of the folder."""
        return self.folder / PREFERENCES_FILE

    def profiles_for(self, rows: IdentifiedRows, limit: int | None = None) -> list[str]:
        """The inferred profile of each of `rows` (the first `limit`), matched by id and checked by history hash.

        The file may hold more rows than asked for (preferences inferred for a whole split serve a run on its first
        rows), in any order; each asked row must be there with the same history.

        Args:
            rows (`IdentifiedRows`): The rows (`EvalRows`).
            limit (`int`, *optional*): Only the first `limit` rows.

        Returns:
            `list[str]`: One profile per row, in the rows' order.

        Raises:
            `InputError`: For a row whose id the file lacks (`"<row>: no inferred preference for id 'x.jsonl:3' in
                DIR/preferences.jsonl ..."`) or whose history differs from the one inferred from (`"DIR/
                preferences.jsonl, line 4 (id 'x.jsonl:3'): inferred from another history than <row> ..."`).
        """
        by_id = {record.id: record for record in self.records}
        profiles = []
        data = rows.data if limit is None else islice(rows.data, limit)
        for index, row in enumerate(data):
            name, row_id = rows.row_name(index), rows.row_id(index)
            record = by_id.get(row_id)
            if record is None:
                held = f"{len(self.records)} rows" + (
                    f", ids {self.records[0].id!r} to {self.records[-1].id!r}" if self.records else ""
                )
                raise InputError(
                    f"{name}: no inferred preference for id {row_id!r} in {self.path} ({held}); infer them for these "
                    f"rows with {WRITER} (the same dataset and split)."
                )
            if record.history_sha1 != history_sha1(row, name):
                raise InputError(
                    f"{self.path}, line {record.line} (id {row_id!r}): inferred from another history than {name} "
                    f"has (history_sha1 differs): the preferences belong to another dataset, split or version of "
                    f"the file; infer them again with {WRITER} for these rows."
                )
            profiles.append(record.profile)
        return profiles


# -------------------------------------------------------------------------------------------------------- writing
def write_inferred_preferences(
    records: Iterable[InferredPreference],
    meta: Mapping[str, Any],
    output: str | Path,
    overwrite: bool = False,
) -> Path:
    """Write a preferences folder (`preferences.jsonl` and `inference.json`), staged and renamed (`io.atomic_output`):
    it appears whole or not at all.

    Args:
        records (iterable of `InferredPreference`): One per dataset row, in dataset order.
        meta (`Mapping`): What goes into `inference.json` (inferencer, model, settings, counts); JSON-serialisable.
        output (`str` or `Path`): The folder.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.

    Returns:
        `Path`: `output`.

    Raises:
        `OutputExistsError`: If `output` exists and `overwrite` is False.
    """
    with atomic_output(output, overwrite) as folder:
        folder.mkdir(parents=True)
        with (folder / PREFERENCES_FILE).open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        (folder / INFERENCE_FILE).write_text(json.dumps(dict(meta), indent=2) + "\n", encoding="utf-8")
    return Path(output)


# -------------------------------------------------------------------------------------------------------- reading
def _check_type(value: Any, kind: type | tuple[type, ...], where: str, expected: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{where}: expected {expected}, got {json_kind(value)} {value!r:.60}.")


def parse_record(line: str, number: int, where: str, space: PreferenceSpace) -> InferredPreference:
    """One line of `preferences.jsonl` (`number` 1-based, `where` the file) as an `InferredPreference`.

    Raises:
        `InputError`: `"<file>, line 3: not valid JSON (...)"`, a missing field, or a field of the wrong type (a
            direction of the wrong length or with a value outside {0, 0.5, 1}), naming the file, line and field.
    """
    at = f"{where}, line {number}"
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{at}: not valid JSON ({error.msg}, column {error.colno}); the file is damaged (cut short?): write it "
            f"again with {WRITER}."
        ) from None
    if not isinstance(value, dict):
        raise InputError(f"{at}: expected a JSON object, got {json_kind(value)}.")
    missing = [key for key in RECORD_FIELDS if key not in value]
    if missing:
        raise InputError(
            f"{at}: missing {', '.join(map(repr, missing))} (each line needs {', '.join(RECORD_FIELDS)})."
        )
    for key in ("id", "history_sha1", "profile"):
        _check_type(value[key], str, f"{at}, field {key!r}", "text")
    _check_type(value["row"], int, f"{at}, field 'row'", "an integer")
    direction = space.validate(value["preference_direction"], where=f"{at}, field 'preference_direction'")
    return InferredPreference(
        value["id"], value["row"], value["history_sha1"], direction, value["profile"], line=number
    )


def load_inferred_preferences(folder: str | Path, space: PreferenceSpace | None = None) -> InferredPreferences:
    """Read a preferences folder written by `write_inferred_preferences` (`personalign infer-preferences`).

    Args:
        folder (`str` or `Path`): The folder.
        space (`PreferenceSpace`, *optional*): The space of the directions; AlignX's by default.

    Returns:
        `InferredPreferences`: Its records (each with its line) and `inference.json`.

    Raises:
        `InputError`: For a missing folder or file, a damaged `inference.json`, a bad line (see `parse_record`), or
            an id on two lines, each naming the file (and line).
    """
    folder = Path(folder)
    space = space or PreferenceSpace.alignx()
    if not folder.is_dir():
        kind = "is a file" if folder.is_file() else "no such folder"
        raise InputError(f"preferences {folder}: {kind}; expected a folder written by {WRITER}.")
    paths = [folder / PREFERENCES_FILE, folder / INFERENCE_FILE]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise InputError(
            f"preferences {folder}: no {' and no '.join(missing)}; expected a folder written by {WRITER}."
        )
    try:
        meta = json.loads(paths[1].read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{paths[1]}: not valid JSON ({error.msg}, line {error.lineno}).") from None
    if not isinstance(meta, dict):
        raise InputError(f"{paths[1]}: expected a JSON object, got {json_kind(meta)}.")
    records: list[InferredPreference] = []
    lines: dict[str, int] = {}
    with paths[0].open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = parse_record(line, number, str(paths[0]), space)
            if record.id in lines:
                raise InputError(
                    f"{paths[0]}, line {number}: id {record.id!r} is also on line {lines[record.id]}; each row once."
                )
            lines[record.id] = number
            records.append(record)
    return InferredPreferences(folder, records, meta)


def read_inferred_preferences(folder: str | Path, rows: IdentifiedRows, limit: int | None = None) -> list[str]:
    """The inferred profile of each row, from a preferences folder, checked against the rows: what `eval policy
    --preferences` and `generate --preferences` give PBA instead of the gold profile.

    Args:
        folder (`str` or `Path`): A folder written by `personalign infer-preferences`.
        rows (`IdentifiedRows`): The rows (`EvalRows`: their ids and histories are checked).
        limit (`int`, *optional*): Only the first `limit` rows.

    Returns:
        `list[str]`: One profile per row, in the rows' order (`""` for an all-neutral direction).

    Raises:
        `InputError`: For a missing or malformed folder or line (see `load_inferred_preferences`), or a row the file
            lacks or holds with another history (see `InferredPreferences.profiles_for`).

    Example:

    ```python
    >>> from personalign.evaluation.rows import load_eval_rows
    >>> rows = load_eval_rows("alignx_test.jsonl")
    >>> profiles = read_inferred_preferences("inferred/", rows)
    ```
    """
    return load_inferred_preferences(folder).profiles_for(rows, limit)


def infer_row_preferences(
    inferencer: BasePreferenceInferencer,
    rows: IdentifiedRows,
    limit: int | None = None,
    chunk_size: int = 1,
    progress: bool = True,
) -> tuple[list[InferredPreference], dict[str, Any]]:
    """Infer each row's preference direction from its history alone (`history_persona`: comments and pairs, texts
    only) with `inferencer`, as the AlignX paper evaluates PBA (§5); rows that share a history (the rows of one
    persona) are inferred once.

    Args:
        inferencer (`BasePreferenceInferencer`): The LLM or the learned inferencer.
        rows (`IdentifiedRows`): The rows (`EvalRows`), AlignX release or snake_case columns.
        limit (`int`, *optional*): Only the first `limit` rows.
        chunk_size (`int`, *optional*, defaults to `1`): Histories per `inferencer.infer_many` call (the learned
            inferencer embeds a chunk's items in one pass; the LLM one asks per history anyway).
        progress (`bool`, *optional*, defaults to `True`): A progress bar over the distinct histories.

    Returns:
        `tuple[list[InferredPreference], dict]`: One record per row, in order, and a summary: `num_rows`,
        `num_histories` (distinct), `num_empty_histories` (rows without any history item: all neutral),
        `num_empty_profiles` (rows whose inferred direction is all neutral), `num_rows_with_gold` and
        `direction_report` (`calibration.direction_report` of those rows' inferred directions against their gold
        ones, `calibration.gold_directions`; `None` when no row has one).

    Raises:
        `InputError`: On a malformed row (naming it, its column and item).
    """
    space = inferencer.space
    histories: dict[str, Persona] = {}
    ids, hashes, gold_rows, gold_personas = [], [], [], []
    num_empty = 0
    data = rows.data if limit is None else islice(rows.data, limit)
    for index, row in enumerate(data):
        persona = Persona.from_alignx_row(row, space=space, where=rows.row_name(index))
        history = history_persona(persona)
        sha1 = history_sha1(history)
        histories.setdefault(sha1, history)
        ids.append(rows.row_id(index))
        hashes.append(sha1)
        num_empty += not (history.ugc or history.pairs)
        if persona.item_directions() or persona.direction is not None:
            gold_rows.append(index)
            gold_personas.append(persona)
    keys = list(histories)
    directions: dict[str, list[float]] = {}
    with tqdm(total=len(keys), desc="Inferring preferences", unit="history", disable=not progress) as bar:
        for start in range(0, len(keys), chunk_size):
            chunk = keys[start : start + chunk_size]
            inferred = inferencer.infer_many([histories[key] for key in chunk])
            directions.update(zip(chunk, inferred, strict=True))
            bar.update(len(chunk))
    records = [
        InferredPreference(row_id, index, sha1, list(directions[sha1]), space.to_text(directions[sha1]))
        for index, (row_id, sha1) in enumerate(zip(ids, hashes, strict=True))
    ]
    report = None
    if gold_rows:
        predicted = [records[index].preference_direction for index in gold_rows]
        report = direction_report(predicted, gold_directions(gold_personas, space))
    summary = {
        "num_rows": len(records),
        "num_histories": len(keys),
        "num_empty_histories": num_empty,
        "num_empty_profiles": sum(not record.profile for record in records),
        "num_rows_with_gold": len(gold_rows),
        "direction_report": report,
    }
    return records, summary
