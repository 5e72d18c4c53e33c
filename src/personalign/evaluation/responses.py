"""The responses folder `personalign generate` writes and `personalign judge` reads: one generated response per dataset
row with what a judge needs about the row (the exact chat prompt, the user's persona, the reference pair, rubrics),
and the settings that produced them.

```
DIR/responses.jsonl   one JSON object per row, in dataset order (`ResponseRecord`)
DIR/generation.json   model, backend, dataset, split, formats, generation settings, row count, calls
```

`write_responses` writes both, staged and renamed (the folder appears whole or not at all); `read_responses` reads
them back, naming the file and line of the first bad record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_output
from ..personas.persona import Messages
from ..personas.space import json_kind

RESPONSES_FILE = "responses.jsonl"
GENERATION_FILE = "generation.json"
PERSONA_KEYS = ("history", "profile", "personality", "ground_truth_persona", "dimension", "preference")
"""The keys a record's `persona` may hold (each present only when the row has it):

- `history`: the user's behaviour history as text (AlignX comments and pairs through
  `personalign.personas.prompts.render_history`; MultiFacet feedback pairs through `render_feedback_history`);
- `profile`: the preference text (AlignX's PBA profile; the DPORE paper's / ALOE profile);
- `personality`: ALOE's / the DPORE paper's personality text;
- `ground_truth_persona`: AlignX benchmark rows' persona;
- `dimension`, `preference`: a counterfactual MultiFacet row's dimension and ground-truth preference text."""
REQUIRED_FIELDS = ("id", "row", "prompt", "messages", "response")
"""The fields every line of `responses.jsonl` must have; `persona`, `reference`, `rubric` and `reference_answer` are
optional on reading (empty / null when absent)."""


@dataclass
class ResponseRecord:
    """One generated response: a line of `responses.jsonl`.

    Args:
        id (`str`): The row's stable id, `EvalRows.row_id` (e.g. `"p_soups.json:17"`); `judge --against` matches the
            rows of two folders by it.
        row (`int`): The row's 0-based position in the evaluated rows.
        prompt (`str`): The user's instruction / query (the row's `prompt`; for ready-rendered rows the post of the
            AlignX task, else the last user turn's text).
        messages (`list[dict]`): The exact chat prompt sent to the model (`{"role", "content"}` messages).
        response (`str`): The generated text.
        persona (`dict[str, str]`, *optional*): What a judge needs about the user (see `PERSONA_KEYS`); a key is
            present only when the row has it.
        reference (`dict[str, str]`, *optional*): The row's pair, `{"chosen": str, "rejected": str}`.
        rubric (`list[dict]`, *optional*): Multifaceted-Bench rubric items `[{"criteria", "score_descriptions":
            {"1".."5"}}]`, when the row has them.
        reference_answer (`str`, *optional*): Multifaceted-Bench's reference answer, when the row has one.
    """

    id: str
    row: int
    prompt: str
    messages: Messages
    response: str
    persona: dict[str, str] = field(default_factory=dict)
    reference: dict[str, str] | None = None
    rubric: list[dict[str, Any]] | None = None
    reference_answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON object of its line (every field present; `null` where absent)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ResponseRecord:
        """Read and check one record.

        Args:
            data (`Any`): The parsed JSON value of a line.
            where (`str`): The file and line, for messages (e.g. `"out/responses.jsonl, line 3"`).

        Returns:
            `ResponseRecord`

        Raises:
            `InputError`: `"<where>: ..."` naming the first missing or mistyped field.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a JSON object (a response record), got {json_kind(data)}.")
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if missing:
            raise InputError(f"{where}: missing field(s) {', '.join(repr(name) for name in missing)}.")
        for name in ("id", "prompt", "response"):
            _expect(isinstance(data[name], str), where, name, "text", data[name])
        row = data["row"]
        _expect(isinstance(row, int) and not isinstance(row, bool) and row >= 0, where, "row", "an integer >= 0", row)
        messages = data["messages"]
        _expect(isinstance(messages, list) and bool(messages), where, "messages", "a non-empty list", messages)
        for number, message in enumerate(messages):
            good = isinstance(message, Mapping) and all(isinstance(message.get(k), str) for k in ("role", "content"))
            _expect(good, where, f"messages[{number}]", "an object with text 'role' and 'content'", message)
        persona = data.get("persona") or {}
        _expect(isinstance(persona, Mapping), where, "persona", "an object", persona)
        for key, value in persona.items():
            _expect(isinstance(value, str), where, f"persona.{key}", "text", value)
        reference = data.get("reference")
        if reference is not None:
            good = isinstance(reference, Mapping) and all(
                isinstance(reference.get(k), str) for k in ("chosen", "rejected")
            )
            _expect(good, where, "reference", "null or an object with text 'chosen' and 'rejected'", reference)
        rubric = data.get("rubric")
        good = rubric is None or (isinstance(rubric, list) and all(isinstance(item, Mapping) for item in rubric))
        _expect(good, where, "rubric", "null or a list of rubric items (objects)", rubric)
        answer = data.get("reference_answer")
        _expect(answer is None or isinstance(answer, str), where, "reference_answer", "null or text", answer)
        return cls(
            id=data["id"],
            row=row,
            prompt=data["prompt"],
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            response=data["response"],
            persona=dict(persona),
            reference=None if reference is None else {k: reference[k] for k in ("chosen", "rejected")},
            rubric=None if rubric is None else [dict(item) for item in rubric],
            reference_answer=answer,
        )


def _expect(ok: bool, where: str, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise InputError(f"{where}, field {name!r}: expected {expected}, got {json_kind(value)}.")


def write_responses(
    records: Iterable[ResponseRecord], meta: Mapping[str, Any], output: str | Path, overwrite: bool = False
) -> list[Path]:
    """Write a responses folder: `responses.jsonl` (one record per line, in the given order) and `generation.json`
    (`meta`), staged and renamed (`personalign.io.atomic_output`).

    Args:
        records (`Iterable[ResponseRecord]`): The responses, in dataset order; their ids must be unique.
        meta (`Mapping`): The settings (`generate_responses` builds them: model, backend, dataset, split, data and
            persona formats, `no_history`, `preferences`, `generation`, `num_rows`, `personalign_version`, `calls`).
        output (`str` or `Path`): The folder.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.

    Returns:
        `list[Path]`: The two files written.

    Raises:
        `OutputExistsError`: If `output` exists and `overwrite` is False.
        `ValueError`: If two records share an id.
    """
    records = list(records)
    seen: dict[str, int] = {}
    for number, record in enumerate(records):
        if record.id in seen:
            raise ValueError(f"records {seen[record.id]} and {number} share the id {record.id!r}.")
        seen[record.id] = number
    output = Path(output)
    with atomic_output(output, overwrite) as folder:
        folder.mkdir()
        with open(folder / RESPONSES_FILE, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        (folder / GENERATION_FILE).write_text(json.dumps(dict(meta), indent=2) + "\n", encoding="utf-8")
    return [output / RESPONSES_FILE, output / GENERATION_FILE]


def read_responses(folder: str | Path) -> tuple[list[ResponseRecord], dict[str, Any]]:
    """Read a responses folder written by `write_responses` (`personalign generate --output DIR`).

    Args:
        folder (`str` or `Path`): The folder.

    Returns:
        `tuple[list[ResponseRecord], dict]`: The records in file order, and `generation.json`.

    Raises:
        `InputError`: One line naming the folder or the file and line: a missing folder or file, a line that is not
            JSON or not a record (`ResponseRecord.from_dict`), a repeated id, no record at all, or a `num_rows` in
            `generation.json` that differs from the number of records.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file" if folder.is_file() else "no such folder"
        raise InputError(f"responses {folder}: {what}; expected the folder `personalign generate --output` writes.")
    path, meta_path = folder / RESPONSES_FILE, folder / GENERATION_FILE
    for required in (path, meta_path):
        if not required.is_file():
            raise InputError(
                f"responses {folder}: no {required.name}; expected the folder `personalign generate --output` writes "
                f"({RESPONSES_FILE} and {GENERATION_FILE})."
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{meta_path}: not JSON ({error}).") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: expected a JSON object, got {json_kind(meta)}.")
    records: list[ResponseRecord] = []
    lines: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}).") from None
    for number, line in enumerate(text.split("\n"), start=1):  # only "\n" ends a JSON line (U+2028 may sit in a text)
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not JSON ({error.msg} at column {error.colno}).") from None
        record = ResponseRecord.from_dict(data, where)
        if record.id in lines:
            raise InputError(f"{where}: id {record.id!r} repeats line {lines[record.id]}; ids must be unique.")
        lines[record.id] = number
        records.append(record)
    if not records:
        raise InputError(f"{path}: no response records.")
    expected = meta.get("num_rows")
    if isinstance(expected, int) and expected != len(records):
        raise InputError(f"{path}: {len(records)} records, but {meta_path.name} says num_rows {expected}.")
    return records, meta
