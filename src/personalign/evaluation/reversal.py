"""Reversed-persona versions of preference rows, for the flip-rate evaluation (AlignX Table 5): the same target pair
judged by the opposite user. Pure functions on rows in the release schemas.

- AlignX rows (`reverse_alignx_row`): every preference direction reversed, history pairs and the target pair swapped.
- Counterfactual MultiFacet rows (`reverse_multifacet`): the opposite user is another row of the same dataset (same
  instruction and dimension, ids swapped), so reversal pairs rows rather than rewriting one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError
from ..personas.persona import (
    CHOSEN_COLUMN,
    DEMOGRAPHICS_COLUMN,
    DIRECTION_COLUMN,
    PAIRS_COLUMN,
    REJECTED_COLUMN,
    UGC_COLUMN,
    alignx_column,
)
from ..personas.space import PreferenceSpace
from ..row_names import RowNames

_ITEM_DIRECTION_KEYS = (DIRECTION_COLUMN, "preference_direction")


def _reverse_vector(space: PreferenceSpace, vector: Any, where: str) -> Any:
    return None if vector is None else space.reverse(space.validate(vector, where=where))


def _reverse_item(space: PreferenceSpace, item: Mapping[str, Any], where: str, swap: bool) -> dict[str, Any]:
    reversed_item = dict(item)
    for key in _ITEM_DIRECTION_KEYS:
        if key in item:
            reversed_item[key] = _reverse_vector(space, item[key], f"{where} {key!r}")
    if swap:
        reversed_item["chosen"], reversed_item["rejected"] = item["rejected"], item["chosen"]
    return reversed_item


def reverse_alignx_row(
    row: Mapping[str, Any],
    space: PreferenceSpace | None = None,
    drop_irreversible_text: bool = False,
) -> dict[str, Any]:
    """The same AlignX row under the opposite persona: every preference reversed, the target pair swapped.

    - `"Preference Direction"` (the target's gold direction) is reversed with `PreferenceSpace.reverse` (1 and 0
      swapped, neutral kept);
    - every `"User-Generated Content"` item's direction is reversed (its comment text is kept: text cannot be
      reversed);
    - every `"Pair-wise Comparative Feedback"` item has `chosen` / `rejected` swapped and its direction reversed;
    - the target `chosen` / `rejected` are swapped, so the reversed row's `chosen` is the response the reversed
      persona prefers;
    - a `profile` text (benchmark rows) written by `PreferenceSpace.to_text` is parsed, reversed and re-rendered;
    - every other column (`prompt`, metadata) is copied unchanged, and so is `"Demographic Information"`.

    Item vectors may be missing (`None`) and stay missing. Both the release column names and their snake_case forms
    are accepted, and the output keeps the input's names. With `drop_irreversible_text=False` the function is an
    involution: reversing twice gives back the original row.

    Args:
        row (`Mapping[str, Any]`): An AlignX row (see `personalign.data.synthetic.ALIGNX_FEATURES`). Not modified.
        space (`PreferenceSpace`, *optional*): The preference space of the vectors; AlignX's by default.
        drop_irreversible_text (`bool`, *optional*, defaults to `False`): Drop what text expresses and cannot be
            reversed: the UGC comments (the list is emptied), the demographic description (set to `""`) and a
            `profile` that is not a `to_text` rendering (set to `None`). Use it for ICA prompts, which would otherwise
            show the original user's comments and description to the reversed persona.

    Returns:
        `dict`: The reversed row, with the same keys as `row`.

    Raises:
        `InputError`: If a direction vector is invalid (the message names the column and item), or a `profile` cannot
            be parsed and `drop_irreversible_text` is False.
    """
    space = space or PreferenceSpace.alignx()
    reversed_row = dict(row)
    reversed_row[CHOSEN_COLUMN], reversed_row[REJECTED_COLUMN] = row[REJECTED_COLUMN], row[CHOSEN_COLUMN]

    if (key := alignx_column(row, DIRECTION_COLUMN)) is not None:
        reversed_row[key] = _reverse_vector(space, row[key], f"column {key!r}")

    if (key := alignx_column(row, UGC_COLUMN)) is not None and row[key] is not None:
        reversed_row[key] = (
            []
            if drop_irreversible_text
            else [
                _reverse_item(space, item, f"column {key!r} item {index}", swap=False)
                for index, item in enumerate(row[key])
            ]
        )

    if (key := alignx_column(row, PAIRS_COLUMN)) is not None and row[key] is not None:
        reversed_row[key] = [
            _reverse_item(space, item, f"column {key!r} item {index}", swap=True)
            for index, item in enumerate(row[key])
        ]

    if drop_irreversible_text and (key := alignx_column(row, DEMOGRAPHICS_COLUMN)) is not None:
        reversed_row[key] = ""

    profile = row.get("profile")
    if profile is not None:
        try:
            reversed_row["profile"] = space.to_text(space.reverse(space.from_text(profile)))
        except ValueError as error:
            if not drop_irreversible_text:
                raise InputError(
                    f"column 'profile' is not a preference text of the {space.name} space, so it cannot be reversed "
                    f"({error}); pass drop_irreversible_text=True to drop it."
                ) from None
            reversed_row["profile"] = None
    return reversed_row


# ---------------------------------------------------------------------------------------- counterfactual MultiFacet
MULTIFACET_KEY_COLUMNS = ("instruction_id", "dimension", "chosen_id", "rejected_id")
"""The columns that identify a counterfactual MultiFacet row's target pair: its opposite user's row has the same
instruction and dimension, with `chosen_id` and `rejected_id` swapped."""


@dataclass
class MultifacetReversal:
    """Counterfactual MultiFacet rows paired with their opposite users (see `reverse_multifacet`).

    Args:
        original (`Dataset` or `list[dict]`): The rows that have an opposite user, in the input's order.
        reversed (`Dataset` or `list[dict]`): Row `i` is the opposite user of `original[i]`: the counterpart row
            itself (its preference, preference key and history; `chosen` / `rejected` swapped relative to
            `original[i]`).
        kept (`list[int]`): Input positions of the rows in `original`.
        counterparts (`list[int]`): Input positions of the rows in `reversed`.
        dropped (`list[int]`): Input positions of the rows without an opposite user (empty unless
            `on_missing="drop"`).
    """

    original: Any
    reversed: Any
    kept: list[int]
    counterparts: list[int]
    dropped: list[int] = field(default_factory=list)

    @property
    def num_dropped(self) -> int:
        return len(self.dropped)


def _is_dataset(rows: Any) -> bool:
    """A `datasets.Dataset` (duck-typed: this module does not import `datasets`)."""
    return hasattr(rows, "column_names") and hasattr(rows, "select")


def _key_columns(rows: Any) -> dict[str, list]:
    if _is_dataset(rows):
        missing = [name for name in MULTIFACET_KEY_COLUMNS if name not in rows.column_names]
        columns = {} if missing else {name: rows[name] for name in MULTIFACET_KEY_COLUMNS}
    else:
        missing = [name for name in MULTIFACET_KEY_COLUMNS if rows and name not in rows[0]]
        columns = {} if missing else {name: [row[name] for row in rows] for name in MULTIFACET_KEY_COLUMNS}
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(repr(m) for m in missing)}: pairing opposite users needs "
            f"{', '.join(MULTIFACET_KEY_COLUMNS)} (counterfactual MultiFacet rows, see build_multifacet_cf)."
        )
    return columns


def multifacet_counterparts(rows: Any, names: Callable[[int], str] | None = None) -> list[int | None]:
    """For each counterfactual MultiFacet row, the position of its opposite user's row: the row with the same
    `instruction_id` and `dimension` and with `chosen_id` / `rejected_id` swapped, or `None` when the data has no such
    row (e.g. `"seed"` pairing, or the counterpart was dropped for a short history).

    Args:
        rows (`datasets.Dataset` or `Sequence[dict]`): Rows with the columns of `MULTIFACET_KEY_COLUMNS`.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `list[int | None]`: One entry per row.

    Raises:
        `InputError`: If a key column is missing, or two rows have the same instruction, dimension and pair (the
            opposite user would be ambiguous); the message names both rows.
    """
    names = names or RowNames.of("rows")
    columns = _key_columns(rows)
    position: dict[tuple, int] = {}
    keys = list(zip(*(columns[name] for name in MULTIFACET_KEY_COLUMNS), strict=True))
    for index, key in enumerate(keys):
        if key in position:
            raise InputError(
                f"{names(position[key])} and {names(index)} are the same target pair (instruction_id={key[0]}, "
                f"dimension={key[1]!r}, chosen_id={key[2]}, rejected_id={key[3]}): the opposite user is ambiguous."
            )
        position[key] = index
    return [
        position.get((instruction, dimension, rejected, chosen)) for instruction, dimension, chosen, rejected in keys
    ]


def reverse_multifacet(
    rows: Any, on_missing: Literal["error", "drop"] = "error", names: Callable[[int], str] | None = None
) -> MultifacetReversal:
    """The reversed-persona version of counterfactual MultiFacet rows: each row's opposite user.

    In the counterfactual benchmark (`build_multifacet_cf`, `"counterfactual"` pairing) every target pair appears
    under two users, one per orientation: the row `(instruction, dimension, chosen=a, rejected=b)` of the user who
    prefers `a`'s preference, and the row `(instruction, dimension, chosen=b, rejected=a)` of the user who prefers
    `b`'s. The reversed version of a row is that second row, whole: its preference, preference key and feedback
    history, and `chosen` / `rejected` swapped. Reversal needs the whole dataset (the counterparts), and reversing
    twice gives back the original: `reverse_multifacet(result.reversed).reversed == result.original`.

    Args:
        rows (`datasets.Dataset` or `Sequence[dict]`): Counterfactual rows (any extra columns, e.g. `history_text`
            from `attach_history`, are carried along).
        on_missing (`str`, *optional*, defaults to `"error"`): What a row without an opposite user is: `"error"`
            raises (naming the row); `"drop"` leaves it out of both sides and lists it in `dropped`.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `MultifacetReversal`: `original` and `reversed`, aligned row by row, of the input's type.

    Raises:
        `InputError`: If a key column is missing, a target pair is duplicated, or (with `on_missing="error"`) a row
            has no opposite user.
    """
    if on_missing not in ("error", "drop"):
        raise InputError(f"on_missing must be 'error' or 'drop', got {on_missing!r}.")
    names = names or RowNames.of("rows")
    counterparts = multifacet_counterparts(rows, names)
    missing = [index for index, other in enumerate(counterparts) if other is None]
    if missing and on_missing == "error":
        row = rows[missing[0]]
        raise InputError(
            f"{names(missing[0])} (instruction_id={row['instruction_id']}, dimension={row['dimension']!r}, "
            f"chosen_id={row['chosen_id']}, rejected_id={row['rejected_id']}) has no opposite-user row with the ids "
            f"swapped ({len(missing)} of {len(counterparts)} rows have none); build the rows with counterfactual "
            "pairing, or drop them (on_missing='drop', CLI: done and reported with --flip)."
        )
    kept = [index for index, other in enumerate(counterparts) if other is not None]
    partners = [counterparts[index] for index in kept]
    if _is_dataset(rows):
        original, reversed_rows = rows.select(kept), rows.select(partners)
    else:
        original = [dict(rows[index]) for index in kept]
        reversed_rows = [dict(rows[index]) for index in partners]
    return MultifacetReversal(original, reversed_rows, kept, partners, missing)
