"""Reversed-persona versions of preference rows, for the flip-rate evaluation (AlignX Table 5): the same target pair
judged by the opposite user. Pure functions on rows in the release schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..personas import (
    ALIGNX_COLUMN_ALIASES,
    CHOSEN_COLUMN,
    DEMOGRAPHICS_COLUMN,
    DIRECTION_COLUMN,
    PAIRS_COLUMN,
    REJECTED_COLUMN,
    UGC_COLUMN,
)
from ..preference_space import PreferenceSpace

_ITEM_DIRECTION_KEYS = (DIRECTION_COLUMN, "preference_direction")


def _column(row: Mapping[str, Any], name: str) -> str | None:
    """The key under which `row` holds the AlignX column `name` (release name or snake_case alias), if any."""
    return next((alias for alias in ALIGNX_COLUMN_ALIASES[name] if alias in row), None)


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
        `ValueError`: If a direction vector is invalid (the message names the column and item), or a `profile` cannot
            be parsed and `drop_irreversible_text` is False.
    """
    space = space or PreferenceSpace.alignx()
    reversed_row = dict(row)
    reversed_row[CHOSEN_COLUMN], reversed_row[REJECTED_COLUMN] = row[REJECTED_COLUMN], row[CHOSEN_COLUMN]

    if (key := _column(row, DIRECTION_COLUMN)) is not None:
        reversed_row[key] = _reverse_vector(space, row[key], f"column {key!r}")

    if (key := _column(row, UGC_COLUMN)) is not None and row[key] is not None:
        reversed_row[key] = (
            []
            if drop_irreversible_text
            else [
                _reverse_item(space, item, f"column {key!r} item {index}", swap=False)
                for index, item in enumerate(row[key])
            ]
        )

    if (key := _column(row, PAIRS_COLUMN)) is not None and row[key] is not None:
        reversed_row[key] = [
            _reverse_item(space, item, f"column {key!r} item {index}", swap=True)
            for index, item in enumerate(row[key])
        ]

    if drop_irreversible_text and (key := _column(row, DEMOGRAPHICS_COLUMN)) is not None:
        reversed_row[key] = ""

    profile = row.get("profile")
    if profile is not None:
        try:
            reversed_row["profile"] = space.to_text(space.reverse(space.from_text(profile)))
        except ValueError as error:
            if not drop_irreversible_text:
                raise ValueError(
                    f"column 'profile' is not a preference text of the {space.name} space, so it cannot be reversed "
                    f"({error}); pass drop_irreversible_text=True to drop it."
                ) from None
            reversed_row["profile"] = None
    return reversed_row
