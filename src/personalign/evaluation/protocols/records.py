"""The responses folders `personalign judge` reads (contract C2, written by `personalign generate`).

Interim: `personalign.evaluation.responses` (`ResponseRecord`, `read_responses`) owns this format; until it is merged
this module holds the smallest reader of the same format, with the same names and signature, and the protocols import
`ResponseRecord` / `read_responses` from here only. Merging replaces the body of this module with
`from ..responses import ResponseRecord, read_responses`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import InputError

RESPONSES_FILE = "responses.jsonl"
GENERATION_FILE = "generation.json"


@dataclass
class ResponseRecord:
    """One generated response with what judges need about its row (C2).

    Attributes:
        id (`str`): The row's stable id (`EvalRows.row_id`), by which two folders are matched.
        row (`int`): The 0-based row in the evaluated rows.
        prompt (`str`): The user's instruction / query.
        messages (`list[dict]`): The chat prompt the model was sent.
        response (`str`): The generated text.
        persona (`dict[str, str]`): `history`, `profile`, `personality`, `ground_truth_persona`, `dimension`,
            `preference`, each only when the row has it.
        reference (`dict[str, str]` or `None`): The row's pair, `{"chosen", "rejected"}`.
        rubric (`list[dict]` or `None`): Multifaceted-Bench rubric items.
        reference_answer (`str` or `None`): The row's reference answer.
    """

    id: str
    row: int
    prompt: str
    messages: list[dict[str, Any]]
    response: str
    persona: dict[str, str] = field(default_factory=dict)
    reference: dict[str, str] | None = None
    rubric: list[dict[str, Any]] | None = None
    reference_answer: str | None = None


def read_responses(folder: str | Path) -> tuple[list[ResponseRecord], dict[str, Any]]:
    """Read a responses folder: its records in file order and its `generation.json`.

    Args:
        folder (`str` or `Path`): A folder written by `personalign generate`.

    Returns:
        `tuple[list[ResponseRecord], dict]`

    Raises:
        `InputError`: If the folder or a file is missing, or a line or `generation.json` is not what C2 says, naming
            the file and line.
    """
    folder = Path(folder)
    responses, generation = folder / RESPONSES_FILE, folder / GENERATION_FILE
    for path in (responses, generation):
        if not path.is_file():
            raise InputError(f"{folder}: no {path.name}; pass a folder written by `personalign generate`.")
    try:
        meta = json.loads(generation.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{generation}: not valid JSON ({error}).") from None
    if not isinstance(meta, dict):
        raise InputError(f"{generation}: expected a JSON object, got {type(meta).__name__}.")
    records = []
    with responses.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{responses}, line {number}: not valid JSON ({error}).") from None
            missing = [
                key for key in ("id", "row", "prompt", "response") if not isinstance(item, dict) or key not in item
            ]
            if missing:
                raise InputError(f"{responses}, line {number}: no {', '.join(repr(k) for k in missing)}.")
            known = {key: item[key] for key in ResponseRecord.__dataclass_fields__ if key in item}
            records.append(ResponseRecord(**{"messages": [], **known, "persona": item.get("persona") or {}}))
    return records, meta
