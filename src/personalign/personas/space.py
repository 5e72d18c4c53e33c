"""Preference spaces: named dimensions with a positive and a negative pole, and the vectors over them.

A *preference direction vector* holds one value per dimension: `1` (positive pole), `0` (negative pole) or `0.5`
(neutral). This is the representation of the AlignX release (`"Preference Direction"`, 90 dimensions); the rules
here (vector to text, aggregation over a persona's items and its fallback) reproduce the release's exactly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError

POSITIVE = 1.0
NEGATIVE = 0.0
NEUTRAL = 0.5
ALLOWED_VALUES = (NEGATIVE, NEUTRAL, POSITIVE)
_ALLOWED_SET = frozenset(ALLOWED_VALUES)
TEXT_SEPARATOR = ", "


@dataclass(frozen=True)
class PreferenceDimension:
    """One dimension of a preference space.

    Args:
        name (`str`): Human-readable name, e.g. `"Communication style in social settings: more concise or detailed"`.
        positive_label (`str`): Text for the positive pole (value `1`), e.g. `"Concise communication style"`.
        negative_label (`str`): Text for the negative pole (value `0`), e.g. `"Detailed communication style"`.
        source (`str`, *optional*): Group the dimension belongs to (AlignX: `psychological_needs`,
            `alignment_values`, `interest_tags`).
    """

    name: str
    positive_label: str
    negative_label: str
    source: str | None = None

    def label(self, value: float) -> str | None:
        """The label for a value: the positive label for `1`, the negative one for `0`, `None` for neutral."""
        if value == POSITIVE:
            return self.positive_label
        if value == NEGATIVE:
            return self.negative_label
        return None


class PreferenceSpace:
    """An ordered set of preference dimensions and the operations on direction vectors over it.

    Args:
        dimensions (`Sequence[PreferenceDimension]`): The dimensions, in vector order.
        name (`str`, *optional*, defaults to `"custom"`): Name of the space, used in error messages.

    Example:

    ```python
    >>> from personalign import PreferenceSpace
    >>> space = PreferenceSpace.alignx()
    >>> vector = [0.5] * 90
    >>> vector[16], vector[73] = 1, 0
    >>> space.to_text(vector)
    'Concise communication style, Dislikes humor'
    >>> space.from_text("Concise communication style, Dislikes humor") == vector
    True
    ```
    """

    def __init__(self, dimensions: Sequence[PreferenceDimension], name: str = "custom") -> None:
        if not dimensions:
            raise InputError(f"Preference space {name!r} needs at least one dimension.")
        seen: dict[str, int] = {}
        for index, dimension in enumerate(dimensions):
            for label in (dimension.positive_label, dimension.negative_label):
                if not label or label != label.strip():
                    raise InputError(
                        f"Preference space {name!r}, dimension {index} ({dimension.name!r}): labels must be non-empty "
                        f"and have no surrounding whitespace, got {label!r}."
                    )
                if label in seen and seen[label] == index:
                    raise InputError(
                        f"Preference space {name!r}, dimension {index} ({dimension.name!r}): {label!r} is both its "
                        "positive and its negative label; they must differ."
                    )
                if label in seen:
                    raise InputError(
                        f"Preference space {name!r}: label {label!r} is used by dimensions {seen[label]} and {index}; "
                        "labels must be unique so that text can be mapped back to a vector."
                    )
                seen[label] = index
        self.name = name
        self.dimensions: tuple[PreferenceDimension, ...] = tuple(dimensions)
        self._label_to_index = seen

    # ----------------------------------------------------------------------------------------------- construction
    @classmethod
    def alignx(cls) -> PreferenceSpace:
        """The 90-dimension AlignX space, in the order of the release's `"Preference Direction"` vectors (loaded
        once per process and shared: a space is never modified)."""
        return _alignx_space()

    @classmethod
    def psoups(cls) -> PreferenceSpace:
        """The three P-SOUPS dimensions (expertise, informativeness, style), each with its two directions."""
        return cls.from_dimensions(
            [
                ("Expertise", "Prefers answers for a PhD student", "Prefers answers for an elementary school student"),
                ("Informativeness", "Prefers informative answers", "Prefers concise answers"),
                ("Style", "Prefers a friendly style", "Prefers an unfriendly style"),
            ],
            name="psoups",
        )

    @classmethod
    def from_dimensions(
        cls, dimensions: Iterable[tuple[str, str, str] | PreferenceDimension], name: str = "custom"
    ) -> PreferenceSpace:
        """Build a space from `(name, positive_label, negative_label)` triples or `PreferenceDimension`s."""
        dims = [d if isinstance(d, PreferenceDimension) else PreferenceDimension(*d) for d in dimensions]
        return cls(dims, name=name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None, where: str | None = None) -> PreferenceSpace:
        """Build a space from `{"name": ..., "dimensions": [{"name", "positive_label", "negative_label", ...}, ...]}`.

        When the entries carry an `index`, it must equal their position: the file defines the vector order.

        Args:
            data (`Mapping[str, Any]`): The space as `to_dict` writes it.
            name (`str`, *optional*): The space's name; `data["name"]`, else `"custom"`, by default.
            where (`str`, *optional*): Where `data` comes from (a file), for messages.

        Raises:
            `InputError`: Naming `where` and the field: `data` is not an object, `dimensions` is not a non-empty
                list of objects, a dimension lacks `name` / `positive_label` / `negative_label` or holds a non-text
                value there (or in `source`), or declares an `index` other than its position.
        """
        origin = f"{where}: " if where else ""
        expected = 'expected {"dimensions": [{"name": ..., "positive_label": ..., "negative_label": ...}, ...]}'
        if not isinstance(data, Mapping):
            raise InputError(f"{origin}a preference space is a JSON object, got a {json_kind(data)}; {expected}.")
        entries = data.get("dimensions")
        if not isinstance(entries, list):
            got = "no 'dimensions' field" if entries is None else f"'dimensions' is a {json_kind(entries)}"
            raise InputError(f"{origin}a preference space needs a 'dimensions' list, got {got}; {expected}.")
        dims = []
        for position, entry in enumerate(entries):
            at = f"{origin}'dimensions' item {position} (0-based)"
            if not isinstance(entry, Mapping):
                raise InputError(
                    f"{at}: expected an object with name, positive_label, negative_label, got a {json_kind(entry)}."
                )
            missing = [key for key in ("name", "positive_label", "negative_label") if key not in entry]
            if missing:
                raise InputError(f"{at}: missing field(s) {', '.join(repr(key) for key in missing)}; {expected}.")
            for key in ("name", "positive_label", "negative_label", "source"):
                value = entry.get(key)
                if not isinstance(value, str) and not (key == "source" and value is None):
                    raise InputError(f"{at}, field {key!r}: expected text, got {value!r} (a {json_kind(value)}).")
            if "index" in entry and entry["index"] != position:
                raise InputError(
                    f"{at}, field 'index': declares {entry['index']!r}, but the file's order defines the vector order; "
                    f"expected {position} (or no 'index')."
                )
            dims.append(
                PreferenceDimension(
                    name=entry["name"],
                    positive_label=entry["positive_label"],
                    negative_label=entry["negative_label"],
                    source=entry.get("source"),
                )
            )
        space_name = data.get("name", "custom") if name is None else name
        try:
            return cls(dims, name=space_name)
        except InputError as error:
            if not where:
                raise
            raise InputError(f"{origin}{error}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> PreferenceSpace:
        """Load a space from a JSON file in the format of `from_dict`; its name is the file's stem.

        Raises:
            `InputError`: Naming the file: not readable as UTF-8 JSON (with the line and column), or not a space
                (see `from_dict`, naming the field).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError as error:
            raise InputError(
                f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); expected a "
                "preference space (a JSON object with a 'dimensions' list)."
            ) from None
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text ({error.reason}); expected a JSON preference space.") from None
        return cls.from_dict(data, name=path.stem, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The space as a JSON-serialisable dict (the inverse of `from_dict`)."""
        return {
            "name": self.name,
            "dimensions": [
                {
                    "index": index,
                    "name": d.name,
                    "source": d.source,
                    "positive_label": d.positive_label,
                    "negative_label": d.negative_label,
                }
                for index, d in enumerate(self.dimensions)
            ],
        }

    # --------------------------------------------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.dimensions)

    def __repr__(self) -> str:
        return f"PreferenceSpace(name={self.name!r}, dimensions={len(self)})"

    @property
    def names(self) -> list[str]:
        """Dimension names in vector order."""
        return [d.name for d in self.dimensions]

    def neutral(self) -> list[float]:
        """The all-neutral vector."""
        return [NEUTRAL] * len(self)

    def vector(self, values: Mapping[int, float]) -> list[float]:
        """A vector that is neutral except at the given `{index: value}` entries."""
        vector = self.neutral()
        for index, value in values.items():
            if not 0 <= index < len(self):
                raise InputError(f"index {index} is outside the {self.name} space (0..{len(self) - 1}).")
            # Checked per entry, not with `validate`: this sits on the synthetic data's hot path.
            if value not in ALLOWED_VALUES:
                raise InputError(f"index {index} holds {value!r}; expected one of 0, 0.5, 1.")
            vector[index] = float(value)
        return vector

    # ----------------------------------------------------------------------------------------------- validation
    def validate(self, vector: Sequence[Any], *, where: str | None = None, numeric: bool = False) -> list[float]:
        """Check a direction vector and return it as a list of floats.

        Args:
            vector (`Sequence`): The vector to check.
            where (`str`, *optional*): Where the vector comes from (file, row, column); prefixed to error messages.
            numeric (`bool`, *optional*, defaults to `False`): The caller knows every entry is a number (read from a
                numeric Arrow column): skip the pass over the entries' types that refuses booleans (`True == 1`),
                about a fifth of the cost of checking a row of the release.

        Raises:
            `InputError`: If the length differs from the space's, or an entry is not one of 0, 0.5, 1 (NaN included).
                The message names the offending index and value.
        """
        prefix = f"{where}: " if where else ""
        if isinstance(vector, (str, bytes, Mapping)) or not hasattr(vector, "__len__"):
            raise InputError(f"{prefix}expected a preference vector (a list of {len(self)} numbers), got {vector!r}.")
        values = list(vector)
        if len(values) != len(self):
            raise InputError(
                f"{prefix}preference vector has length {len(values)}; the {self.name} space expects {len(self)}."
            )
        try:
            # One C-level set comparison (1 == 1.0 and numpy scalars hash as floats; "1", None and NaN are not in
            # the set): this runs for every item of every row of a 1.3M-row release. True == 1 and hashes as 1, so
            # booleans pass it: one more C-level pass over the entries' types refuses them, unless they are numbers.
            valid = set(values) <= _ALLOWED_SET and (numeric or bool not in set(map(type, values)))
        except TypeError:  # an unhashable entry
            valid = False
        if valid:
            return list(map(float, values))
        for index, value in enumerate(values):
            try:
                allowed = value in _ALLOWED_SET and not isinstance(value, bool)
            except TypeError:
                allowed = False
            if not allowed:
                raise InputError(f"{prefix}index {index} holds {_entry(value)}; expected one of 0, 0.5, 1.")
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------------------------------------------- text
    def to_text(self, vector: Sequence[Any], *, where: str | None = None) -> str:
        """Render a vector as the release does: the positive label for 1, the negative one for 0, nothing for 0.5,
        in dimension order, joined with `", "`. The all-neutral vector renders as the empty string."""
        values = self.validate(vector, where=where)
        labels = [d.label(v) for d, v in zip(self.dimensions, values, strict=True)]
        return TEXT_SEPARATOR.join(label for label in labels if label is not None)

    def from_text(self, text: str) -> list[float]:
        """Parse the output of `to_text` back into the vector (its exact inverse).

        Labels may themselves contain `", "` (for example AlignX's "... (e.g., art, writing, music)"), so the text
        is parsed label by label in dimension order rather than split on commas.

        Raises:
            `InputError`: If the text is not a dimension-ordered, comma-separated list of this space's labels; the
                message quotes the part that could not be read.
        """
        vector = self.neutral()
        if text == "":
            return vector
        assignment = self._parse_labels(text, 0, 0)
        if assignment is None:
            raise InputError(f"Cannot read {text!r} as a {self.name} preference text: {self._first_unknown(text)!r}.")
        for index, value in assignment:
            vector[index] = value
        return vector

    def _parse_labels(self, text: str, position: int, next_index: int) -> list[tuple[int, float]] | None:
        # Depth-first over the labels that can start at `position`, in dimension order (to_text's order): a label
        # must be followed by the separator or the end of the text.
        for index in range(next_index, len(self)):
            dimension = self.dimensions[index]
            for label, value in ((dimension.positive_label, POSITIVE), (dimension.negative_label, NEGATIVE)):
                if not text.startswith(label, position):
                    continue
                end = position + len(label)
                if end == len(text):
                    return [(index, value)]
                if text.startswith(TEXT_SEPARATOR, end):
                    rest = self._parse_labels(text, end + len(TEXT_SEPARATOR), index + 1)
                    if rest is not None:
                        return [(index, value), *rest]
        return None

    def _first_unknown(self, text: str) -> str:
        for part in text.split(TEXT_SEPARATOR):
            if not any(label.startswith(part) or part in label for label in self._label_to_index):
                return part
        return text

    # ---------------------------------------------------------------------------------------------- aggregation
    def aggregate(
        self,
        vectors: Iterable[Sequence[Any]],
        upper: float = 0.6,
        lower: float = 0.4,
        fallback: bool = True,
        arithmetic: Literal["exact", "float32"] = "exact",
    ) -> list[float]:
        """Aggregate the direction vectors of a persona's items into one vector, as AlignX does.

        Per dimension, the mean `m` of the item values gives `1` if `m >= upper`, `0` if `m <= lower`, else `0.5`.
        If that leaves no non-neutral dimension and `fallback` is set (the release's behaviour): with `mx`, `mn` the
        largest and smallest means, if `1 - mx < mn` every dimension whose mean equals `mx` becomes `1`, otherwise
        every dimension whose mean equals `mn` becomes `0`; the rest stay neutral.

        Two release behaviours worth knowing:

        - The fallback turns an all-neutral input into an all-negative vector (every mean equals `mn = 0.5`); pass
          `fallback=False` to keep such a persona neutral.
        - The release computes means in float32, where a mean of exactly 0.4 (say 2 of 5) rounds to
          0.4000000059604645 and is *not* `<= 0.4`, so it stays neutral, and ties in the fallback can break either
          way. `arithmetic="exact"` (the default) applies the rule as written, in rational arithmetic;
          `arithmetic="float32"` reproduces the release's numbers bit for bit.

        Args:
            vectors (`Iterable[Sequence]`): One direction vector per item; at least one.
            upper (`float`, *optional*, defaults to `0.6`): Mean at or above which a dimension is positive.
            lower (`float`, *optional*, defaults to `0.4`): Mean at or below which a dimension is negative.
            fallback (`bool`, *optional*, defaults to `True`): Apply the release's fallback rule.
            arithmetic (`str`, *optional*, defaults to `"exact"`): `"exact"` or `"float32"` (see above).

        Returns:
            `list[float]`: The aggregated vector, values in {0, 0.5, 1}.
        """
        if not lower < upper:
            raise InputError(f"aggregate needs lower < upper, got lower={lower}, upper={upper}.")
        rows = [self.validate(vector, where=f"item {index}") for index, vector in enumerate(vectors)]
        if not rows:
            raise InputError("aggregate needs at least one direction vector.")
        if arithmetic == "exact":
            # Values are multiples of 1/2, so each mean is an integer `total` over `2 * count`; thresholds are read
            # as the decimals they were written as (0.6 -> 3/5), so "exactly at the threshold" means exactly, and
            # every comparison is between integers.
            denominator = 2 * len(rows)
            means: list[Any] = [round(2 * sum(column)) for column in zip(*rows, strict=True)]
            high_num, high_den = Fraction(repr(float(upper))).as_integer_ratio()
            low_num, low_den = Fraction(repr(float(lower))).as_integer_ratio()
            result = [
                POSITIVE
                if total * high_den >= high_num * denominator
                else NEGATIVE
                if total * low_den <= low_num * denominator
                else NEUTRAL
                for total in means
            ]
            one: Any = denominator
        elif arithmetic == "float32":
            import numpy as np

            # float32 means, compared as Python floats, as the release does (`tensor.mean(...).tolist()`); 1 - mx is
            # exact in either precision for the means the fallback sees (all within (lower, upper)).
            means = np.asarray(rows, dtype=np.float32).mean(axis=0).tolist()
            result = [POSITIVE if m >= upper else NEGATIVE if m <= lower else NEUTRAL for m in means]
            one = 1.0
        else:
            raise InputError(f"arithmetic must be 'exact' or 'float32', got {arithmetic!r}.")
        if fallback and all(value == NEUTRAL for value in result):
            highest, lowest = max(means), min(means)
            if one - highest < lowest:
                result = [POSITIVE if m == highest else NEUTRAL for m in means]
            else:
                result = [NEGATIVE if m == lowest else NEUTRAL for m in means]
        return result

    def reverse(self, vector: Sequence[Any]) -> list[float]:
        """The opposite persona: 1 and 0 swapped, neutral kept."""
        return [1.0 - value if value != NEUTRAL else NEUTRAL for value in self.validate(vector)]

    def active(self, vector: Sequence[Any]) -> list[int]:
        """Indices of the non-neutral dimensions of a vector."""
        return [index for index, value in enumerate(self.validate(vector)) if value != NEUTRAL]


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words, for messages (`"object"`, `"list"`, `"string"`, `"number"`,
    `"boolean"`, `"null"`)."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "list" if isinstance(value, list) else "null" if value is None else type(value).__name__


def _entry(value: Any) -> str:
    """A vector entry for messages: a number as it is (`nan`, `0.3`), anything else with its JSON kind (`'1' (a
    string)`, `True (a boolean)`, `None (null)`), since `'1'` and `True` are not numbers although `True == 1`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    kind = json_kind(value)
    return f"{value!r} ({kind if kind == 'null' else f'a {kind}'})"


@functools.cache
def _alignx_space() -> PreferenceSpace:
    text = resources.files("personalign").joinpath("spec/alignx_preference_space.json").read_text("utf-8")
    return PreferenceSpace.from_dict(json.loads(text), name="alignx")
