"""Persona-size robustness (AlignX Figure 3) and per-dimension breakdowns (AlignX Table 8): pure functions on rows.

- **Persona size.** A row's history (AlignX: comments and pairwise feedback together; MultiFacet: the feedback pairs)
  is put in a random order drawn from `personalign.data.alignx.history_rng(seed, row index)`, the per-row stream the
  AlignX builder and trainers use; the persona of size `n` keeps the first `n` items of that order, each kind in its
  original order. The sizes are therefore exact, the same for every call with the same seed, and nested (the items of
  size 2 are among those of size 4, ...), so a curve over sizes measures the history and not the draw. (The training
  sampler, `Persona.sample_history`, draws a random count of 0 to `max_history_items` items per kind: it cannot hold
  the size fixed, which this experiment needs.)
- **Dimensions.** An AlignX pair counts in every non-neutral dimension of its gold `"Preference Direction"`; a
  MultiFacet row in its `dimension`. The labels go to `compute_alignment_metrics(groups=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..data.alignx import history_rng
from ..errors import InputError
from ..personas.persona import ALIGNX_COLUMN_ALIASES, DIRECTION_COLUMN, PAIRS_COLUMN, UGC_COLUMN, alignx_column
from ..personas.space import PreferenceSpace
from ..row_names import RowNames

DEFAULT_PERSONA_SIZES = (2, 4, 8, 16)
"""History sizes of AlignX's robustness experiment (Figure 3: 2 to 16 interaction examples)."""

HISTORY_TEXT_COLUMN = "history_text"


def parse_persona_sizes(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """Persona sizes from `"2,4,8,16"` (or a sequence of ints) as a sorted tuple without duplicates; `None`, `""` and
    `"none"` give `()` (no robustness run).

    Raises:
        `InputError`: If an entry is not an integer >= 1.
    """
    if text is None:
        return ()
    if isinstance(text, str):
        if text.strip().lower() in ("", "none"):
            return ()
        parts: Iterable[Any] = (part.strip() for part in text.split(","))
    else:
        parts = text
    sizes = set()
    for part in parts:
        try:
            size = int(part)
        except (TypeError, ValueError):
            size = 0
        if size < 1 or str(size) != str(part).strip():
            raise InputError(f"persona sizes must be integers >= 1 separated by commas (e.g. 2,4,8,16), got {part!r}.")
        sizes.add(size)
    return tuple(sorted(sizes))


def _alignx_key(row: Mapping[str, Any], name: str) -> str:
    return alignx_column(row, name) or ALIGNX_COLUMN_ALIASES[name][-1]


def history_length(row: Mapping[str, Any]) -> int:
    """The number of history items of a row: AlignX comments plus pairwise feedback, or a MultiFacet row's feedback
    pairs (`history`, or `history_text`)."""
    if "history" in row or HISTORY_TEXT_COLUMN in row:
        return len(row.get("history") or row.get(HISTORY_TEXT_COLUMN) or [])
    return len(row.get(_alignx_key(row, UGC_COLUMN)) or []) + len(row.get(_alignx_key(row, PAIRS_COLUMN)) or [])


def history_order(num_items: int, seed: int, index: int) -> list[int]:
    """The random order of a row's `num_items` history items: a permutation drawn from `history_rng(seed, index)`."""
    return history_rng(seed, index).sample(range(num_items), num_items)


def _check_size(size: int, available: int, index: int, names: Callable[[int], str] | None) -> None:
    if size < 1:
        raise InputError(f"a persona size must be >= 1, got {size}.")
    if size > available:
        at = (names or RowNames.of("rows"))(index)
        raise InputError(f"{at} has {available} history items, fewer than the persona size {size}.")


def subset_alignx_history(
    row: Mapping[str, Any], size: int, seed: int, index: int, names: Callable[[int], str] | None = None
) -> dict[str, Any]:
    """The AlignX row with a persona of exactly `size` history items (comments and pairs counted together): the
    first `size` of `history_order(total, seed, index)`, kept in their original order within each kind.

    Everything else (target pair, gold direction, demographics, `profile`) is copied. Release column names and
    snake_case ones are both accepted and kept.

    Args:
        row (`Mapping[str, Any]`): An AlignX row. Not modified.
        size (`int`): The persona size (>= 1).
        seed (`int`): The seed of the order.
        index (`int`): The row's position in its dataset (the order differs per row).
        names (`Callable[[int], str]`, *optional*): Names row `index` in messages: a
            `personalign.row_names.RowNames` (a JSON-lines row by its 1-based line, any other by its 0-based row)
            or any callable; by default `"rows, row <index> (0-based)"`.

    Returns:
        `dict`: The row with the subset history.

    Raises:
        `InputError`: If the row has fewer than `size` items.
    """
    ugc_key, pairs_key = _alignx_key(row, UGC_COLUMN), _alignx_key(row, PAIRS_COLUMN)
    ugc, pairs = list(row.get(ugc_key) or []), list(row.get(pairs_key) or [])
    _check_size(size, len(ugc) + len(pairs), index, names)
    keep = sorted(history_order(len(ugc) + len(pairs), seed, index)[:size])
    return {
        **row,
        ugc_key: [ugc[i] for i in keep if i < len(ugc)],
        pairs_key: [pairs[i - len(ugc)] for i in keep if i >= len(ugc)],
    }


def subset_multifacet_history(
    row: Mapping[str, Any], size: int, seed: int, index: int, names: Callable[[int], str] | None = None
) -> dict[str, Any]:
    """The counterfactual MultiFacet row with a feedback history of exactly `size` pairs, chosen as in
    `subset_alignx_history` (the same arguments); `history` (ids) and `history_text` (texts, from `attach_history`)
    are cut alike.

    Raises:
        `InputError`: If the row has fewer than `size` pairs.
    """
    available = history_length(row)
    _check_size(size, available, index, names)
    keep = sorted(history_order(available, seed, index)[:size])
    out = dict(row)
    for column in ("history", HISTORY_TEXT_COLUMN):
        if row.get(column) is not None:
            out[column] = [row[column][i] for i in keep]
    return out


def alignx_dimension_labels(
    directions: Iterable[Sequence[float] | None], space: PreferenceSpace | None = None
) -> list[list[str]]:
    """Per-dimension group labels of AlignX pairs: the names of the non-neutral dimensions of each gold
    `"Preference Direction"` (a pair counts in every dimension it lists; a missing vector gives no label).

    Args:
        directions (`Iterable[Sequence[float] | None]`): The gold direction of each pair.
        space (`PreferenceSpace`, *optional*): The space of the vectors; AlignX's by default.

    Returns:
        `list[list[str]]`: One list of dimension names per pair, for `compute_alignment_metrics(groups=...)`.
    """
    space = space or PreferenceSpace.alignx()
    return [
        [] if vector is None else [space.dimensions[i].name for i in space.active(vector)] for vector in directions
    ]


def dimension_labels(rows: Sequence[Mapping[str, Any]], space: PreferenceSpace | None = None) -> list[Any]:
    """The per-dimension group label of each row: a MultiFacet row's `dimension`, or the active dimensions of an
    AlignX row's gold direction (`alignx_dimension_labels`)."""
    if rows and "dimension" in rows[0]:
        return [row["dimension"] for row in rows]
    return alignx_dimension_labels((row.get(_alignx_key(row, DIRECTION_COLUMN)) for row in rows), space)


def alignx_row_dimension_labels(
    rows: Sequence[Mapping[str, Any]], space: PreferenceSpace | None = None
) -> tuple[list[list[str]], dict[str, int]]:
    """Per-dimension group labels of AlignX rows, with where each came from.

    A row's labels are the non-neutral dimensions of its gold `"Preference Direction"` (as `alignx_dimension_labels`);
    a row without one (benchmark rows) falls back to its `profile` text read back with `PreferenceSpace.from_text`,
    when the text is a list of the space's labels (the persona's preferences rather than the target pair's); other
    rows get no label.

    Args:
        rows (`Sequence[Mapping[str, Any]]`): AlignX rows (release or snake_case columns).
        space (`PreferenceSpace`, *optional*): The space of the vectors and labels; AlignX's by default.

    Returns:
        `tuple[list[list[str]], dict[str, int]]`: One list of dimension names per row, and the number of rows labelled
        from each source: `{"preference_direction": n, "profile": m, "none": k}`.
    """
    space = space or PreferenceSpace.alignx()
    parsed: dict[str, list[float] | None] = {}
    labels, counts = [], {"preference_direction": 0, "profile": 0, "none": 0}
    for row in rows:
        vector, source = row.get(_alignx_key(row, DIRECTION_COLUMN)), "preference_direction"
        if vector is None and isinstance(row.get("profile"), str) and row["profile"]:
            profile = row["profile"]
            if profile not in parsed:
                try:
                    parsed[profile] = space.from_text(profile)
                except ValueError:
                    parsed[profile] = None
            vector, source = parsed[profile], "profile"
        if vector is None:
            labels.append([])
            counts["none"] += 1
            continue
        labels.append([space.dimensions[i].name for i in space.active(vector)])
        counts[source] += 1
    return labels, counts


def rows_with_target_in_history(rows: Iterable[Mapping[str, Any]]) -> int:
    """The number of AlignX rows whose history (comments or pairs) holds their own target `prompt`: the target pair
    may then be shown in the persona (AlignX's benchmark files have a few)."""
    count = 0
    for row in rows:
        items = [*(row.get(_alignx_key(row, UGC_COLUMN)) or []), *(row.get(_alignx_key(row, PAIRS_COLUMN)) or [])]
        count += any(isinstance(item, Mapping) and item.get("prompt") == row.get("prompt") for item in items)
    return count
