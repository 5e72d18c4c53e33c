"""A persona: a user's history (comments, chosen / rejected pairs), demographic description and preference
direction, read from AlignX rows; and the release's column names.

The prompts that condition a model on a persona are in `personalign.personas.prompts`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InputError
from .space import PreferenceSpace, json_kind

Messages = list[dict[str, str]]

# Column names of the AlignX release (used verbatim, spaces included) and of our normalised (snake_case) form.
PROMPT_COLUMN = "prompt"
CHOSEN_COLUMN = "chosen"
REJECTED_COLUMN = "rejected"
DIRECTION_COLUMN = "Preference Direction"
DEMOGRAPHICS_COLUMN = "Demographic Information"
UGC_COLUMN = "User-Generated Content"
PAIRS_COLUMN = "Pair-wise Comparative Feedback"
ALIGNX_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    DIRECTION_COLUMN: (DIRECTION_COLUMN, "preference_direction"),
    DEMOGRAPHICS_COLUMN: (DEMOGRAPHICS_COLUMN, "demographic_information"),
    UGC_COLUMN: (UGC_COLUMN, "user_generated_content"),
    PAIRS_COLUMN: (PAIRS_COLUMN, "pairwise_comparative_feedback"),
}


def alignx_column(row: Mapping[str, Any], name: str) -> str | None:
    """The key under which `row` holds the AlignX column `name`: its release name (spaces included) or its
    snake_case alias (`ALIGNX_COLUMN_ALIASES`); `None` when the row has neither.

    Args:
        row (`Mapping[str, Any]`): An AlignX row, as released or normalised.
        name (`str`): A release column name, e.g. `DIRECTION_COLUMN` (`"Preference Direction"`).

    Returns:
        `str` or `None`: The key present in `row`.
    """
    return next((alias for alias in ALIGNX_COLUMN_ALIASES[name] if alias in row), None)


@dataclass
class UGCItem:
    """A post the user commented on, with the comment's preference direction when annotated."""

    prompt: str
    comment: str
    direction: list[float] | None = None


@dataclass
class PairItem:
    """A post with two responses, the one the user chose and the one they rejected."""

    prompt: str
    chosen: str
    rejected: str
    direction: list[float] | None = None


@dataclass
class Persona:
    """What is known about a user: behaviour (comments, pairwise choices) and a self-description.

    Args:
        ugc (`list[UGCItem]`): User-generated content, AlignX's P_UGC.
        pairs (`list[PairItem]`): Pairwise comparative feedback, AlignX's P_PAIR (also the counterfactual paper's
            feedback history).
        demographics (`str`, *optional*): Demographic description, AlignX's P_DEMO.
        direction (`list[float]`, *optional*): The gold direction of the row's target pair, which AlignX's persona
            construction makes consistent with the persona.
        profile (`str`, *optional*): A ready preference text (benchmark rows carry one); used by PBA as is.
    """

    ugc: list[UGCItem] = field(default_factory=list)
    pairs: list[PairItem] = field(default_factory=list)
    demographics: str | None = None
    direction: list[float] | None = None
    profile: str | None = None

    @classmethod
    def from_alignx_row(
        cls,
        row: Mapping[str, Any],
        space: PreferenceSpace | None = None,
        where: str | None = None,
        validate: bool = True,
        numeric: bool = False,
    ) -> Persona:
        """Read the persona of an AlignX row (release column names, or their snake_case forms).

        Item vectors may be missing (benchmark rows). Present vectors are validated against `space` (AlignX's by
        default), and errors name `where` (for example the file and row), the column and the item. Pass
        `validate=False` for rows already validated (e.g. the `raw` config), to skip the checks, and `numeric=True`
        for vectors read from numeric Arrow columns (see `PreferenceSpace.validate`).

        Raises:
            `InputError`: Naming `where`, the column and the item: an item that is not an object or lacks a field, a
                history text that is not text, a demographic description that is neither text nor null, or a bad
                vector (`PreferenceSpace.validate`).
        """
        space = space or PreferenceSpace.alignx()
        origin = f"{where}, " if where else ""

        def column(name: str) -> Any:
            for alias in ALIGNX_COLUMN_ALIASES[name]:
                if alias in row:
                    return row[alias]
            return None

        def vector(value: Any, location: str) -> list[float] | None:
            if value is None:
                return None
            return space.validate(value, where=f"{origin}{location}", numeric=numeric) if validate else list(value)

        def text(value: Any, location: str, nullable: bool = False) -> Any:
            # The release's texts are strings; a number or boolean would otherwise be cast to text silently.
            if validate and not isinstance(value, str) and not (nullable and value is None):
                got = "null (no value)" if value is None else f"the {json_kind(value)} {value!r}"
                raise InputError(f"{origin}{location}: expected text{' or null' if nullable else ''}, got {got}.")
            return value

        ugc = []
        for index, item in enumerate(column(UGC_COLUMN) or []):
            location = f"column {UGC_COLUMN!r} item {index}"
            _require_keys(item, ("prompt", "comment"), f"{origin}{location}")
            prompt, comment = item["prompt"], item["comment"]
            if validate and (type(prompt) is not str or type(comment) is not str):  # cheap test first: hot path
                prompt, comment = (text(item[key], f"{location} {key!r}") for key in ("prompt", "comment"))
            ugc.append(UGCItem(prompt, comment, vector(_item_direction(item), f"{location} {DIRECTION_COLUMN!r}")))
        pairs = []
        for index, item in enumerate(column(PAIRS_COLUMN) or []):
            location = f"column {PAIRS_COLUMN!r} item {index}"
            _require_keys(item, ("prompt", "chosen", "rejected"), f"{origin}{location}")
            prompt, chosen, rejected = item["prompt"], item["chosen"], item["rejected"]
            if validate and (type(prompt) is not str or type(chosen) is not str or type(rejected) is not str):
                prompt, chosen, rejected = (
                    text(item[key], f"{location} {key!r}") for key in ("prompt", "chosen", "rejected")
                )
            pairs.append(
                PairItem(prompt, chosen, rejected, vector(_item_direction(item), f"{location} {DIRECTION_COLUMN!r}"))
            )
        return cls(
            ugc=ugc,
            pairs=pairs,
            demographics=text(column(DEMOGRAPHICS_COLUMN), f"column {DEMOGRAPHICS_COLUMN!r}", nullable=True) or None,
            direction=vector(column(DIRECTION_COLUMN), f"column {DIRECTION_COLUMN!r}"),
            profile=row.get("profile") or None,
        )

    def sample_history(self, rng: random.Random, max_items: int = 4) -> Persona:
        """Draw the training-time history subset with AlignX's rule.

        `n_ugc = min(randint(0, max_items), len(ugc))` and `n_pair = min(randint(0, max_items), len(pairs))`; if
        both are 0, `min(max_items, len)` of each. Items are drawn with `rng.sample`. The release leaves the
        previous row's sample in place when a count is 0; here a count of 0 means no item of that kind.

        Args:
            rng (`random.Random`): The generator; the same seed gives the same subset.
            max_items (`int`, *optional*, defaults to `4`): Upper bound of each count.
        """
        n_ugc = min(rng.randint(0, max_items), len(self.ugc))
        n_pairs = min(rng.randint(0, max_items), len(self.pairs))
        if n_ugc == 0 and n_pairs == 0:
            n_ugc, n_pairs = min(max_items, len(self.ugc)), min(max_items, len(self.pairs))
        return replace(self, ugc=rng.sample(self.ugc, n_ugc), pairs=rng.sample(self.pairs, n_pairs))

    def item_directions(self) -> list[list[float]]:
        """The direction vectors of the annotated items (comments first, then pairs)."""
        return [item.direction for item in [*self.ugc, *self.pairs] if item.direction is not None]

    def preference_vector(self, space: PreferenceSpace | None = None, **aggregate_kwargs: Any) -> list[float]:
        """The persona's preference direction: the aggregate of its item vectors (`PreferenceSpace.aggregate`), or,
        when no item is annotated, the gold `direction`."""
        space = space or PreferenceSpace.alignx()
        vectors = self.item_directions()
        if vectors:
            return space.aggregate(vectors, **aggregate_kwargs)
        if self.direction is not None:
            return list(self.direction)
        raise InputError("This persona has no annotated item and no gold direction to derive preferences from.")

    def profile_text(self, space: PreferenceSpace | None = None, **aggregate_kwargs: Any) -> str:
        """PBA's preference text: the persona's ready `profile` if it has one, else `to_text` of
        `preference_vector`."""
        if self.profile is not None:
            return self.profile
        space = space or PreferenceSpace.alignx()
        return space.to_text(self.preference_vector(space, **aggregate_kwargs))


def _require_keys(item: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(item, Mapping):
        raise InputError(f"{where}: expected an object with {', '.join(keys)}, got {type(item).__name__}.")
    missing = [key for key in keys if key not in item]
    if missing:
        raise InputError(f"{where}: missing {', '.join(repr(key) for key in missing)}.")


def _item_direction(item: Mapping[str, Any]) -> Any:
    return item.get(DIRECTION_COLUMN, item.get("preference_direction"))
