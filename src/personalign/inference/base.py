"""What every preference inferencer promises: item and persona directions, PBA's preference text, evaluation and
calibration against gold directions.

`BasePreferenceInferencer` is the one interface of the LLM inferencer (`PreferenceInferencer`, the AlignX paper §5)
and the learned one (`LearnedPreferenceInferencer`): a subclass implements `infer_items`, and inherits the threshold
checks, AlignX's aggregation of items into a persona's direction, `infer_many`, `profile_text`, `evaluate` and
`calibrate`, so that either can supply PBA's inference-time preference text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..personas.persona import PairItem, Persona, UGCItem
from ..personas.space import PreferenceSpace
from ..row_names import RowNames
from .calibration import (
    DEFAULT_UPPER_GRID,
    calibrate_thresholds,
    check_thresholds,
    direction_report,
    gold_directions,
    persona_direction,
)


def persona_items(persona: Persona) -> list[UGCItem | PairItem]:
    """A persona's history items in the order the inferencers read them: comments, then pairs."""
    return [*persona.ugc, *persona.pairs]


def as_personas(
    data: Iterable[Persona | Mapping[str, Any]],
    space: PreferenceSpace | None = None,
    where: str = "rows",
    names: RowNames | None = None,
) -> list[Persona]:
    """Personas from `Persona` objects or AlignX rows (validated, errors naming the row).

    Args:
        data (iterable of `Persona` or `dict`): Personas, AlignX rows (release or snake_case column names), or a mix.
        space (`PreferenceSpace`, *optional*): Validates the rows' vectors; AlignX's by default.
        where (`str`, *optional*, defaults to `"rows"`): Names the source in error messages.
        names (`RowNames`, *optional*): Names its rows in error messages (`DatasetSource.part_row_names` for a file:
            a JSON-lines row by its 1-based line); by default `RowNames.of(where)` (`"<where>, row <i> (0-based)"`).

    Raises:
        `InputError`: On an entry that is neither, or a malformed row (naming the row).
    """
    space = space or PreferenceSpace.alignx()
    names = names or RowNames.of(where)
    personas = []
    for index, entry in enumerate(data):
        if isinstance(entry, Persona):
            personas.append(entry)
        elif isinstance(entry, Mapping):
            personas.append(Persona.from_alignx_row(entry, space=space, where=names(index)))
        else:
            raise InputError(f"{names(index)}: expected a Persona or an AlignX row, got {type(entry).__name__}.")
    return personas


class BasePreferenceInferencer(ABC):
    """Infers item and persona direction vectors of a preference space; interchangeable implementations.

    A subclass implements `infer_items` (one direction vector per history item) and may override `infer_many` (to
    batch across personas) and `calibrate` (to search more thresholds than the aggregation ones).

    Args:
        space (`PreferenceSpace`, *optional*): Defaults to AlignX's 90 dimensions.
        upper (`float`, *optional*, defaults to `0.6`) / lower (`float`, *optional*, defaults to `0.4`): Aggregation
            thresholds of AlignX's rule (`PreferenceSpace.aggregate`); see `calibrate`.

    Raises:
        `InputError`: If `lower` is not below `upper`.
    """

    def __init__(self, space: PreferenceSpace | None = None, upper: float = 0.6, lower: float = 0.4) -> None:
        check_thresholds(upper, lower)
        self.space = space or PreferenceSpace.alignx()
        self.upper, self.lower = upper, lower

    @abstractmethod
    def infer_items(self, items: Sequence[UGCItem | PairItem]) -> list[list[float]]:
        """One direction vector (length `len(self.space)`, values in {0, 0.5, 1}) per history item."""

    def infer(self, persona: Persona) -> list[float]:
        """The persona's direction: its items' vectors aggregated with AlignX's rule and this inferencer's thresholds
        (all neutral for a persona without items).

        Returns:
            `list[float]` of length `len(self.space)`, values in {0, 0.5, 1}.
        """
        items = persona_items(persona)
        return persona_direction(self.infer_items(items) if items else [], self.space, self.upper, self.lower)

    def infer_many(self, personas: Sequence[Persona]) -> list[list[float]]:
        """`infer` for each persona, in order."""
        return [self.infer(persona) for persona in personas]

    def profile_text(self, persona: Persona) -> str:
        """PBA's preference text for the persona, from the inferred direction."""
        return self.space.to_text(self.infer(persona))

    def evaluate(self, data: Iterable[Persona | Mapping[str, Any]], where: str = "evaluation rows") -> dict[str, Any]:
        """`direction_report` (per-category precision / recall / F1 and macro-F1, the AlignX paper's Table 12) of the
        inferred directions of personas (or AlignX rows) against their gold directions (`gold_directions`).

        Args:
            data (iterable of `Persona` or `dict`): Personas or AlignX rows with annotated items or a gold direction.
            where (`str`, *optional*, defaults to `"evaluation rows"`): Names the data in error messages.
        """
        personas = as_personas(data, self.space, where)
        return direction_report(self.infer_many(personas), gold_directions(personas, self.space))

    def calibrate(
        self,
        data: Iterable[Persona | Mapping[str, Any]],
        *,
        grid: Sequence[float] = DEFAULT_UPPER_GRID,
        where: str = "validation rows",
    ) -> dict[str, Any]:
        """Choose the aggregation thresholds (upper, lower = 1 - upper) that maximise macro-F1 against the gold
        directions of validation personas (or AlignX rows), and set them on this inferencer. Each persona's items
        are inferred once; see `calibrate_thresholds` for the search.

        Args:
            data (iterable of `Persona` or `dict`): Validation personas or AlignX rows.
            grid (`Sequence[float]`, *optional*, defaults to `DEFAULT_UPPER_GRID`): Candidate upper thresholds.
            where (`str`, *optional*, defaults to `"validation rows"`): Names the data in error messages.

        Returns:
            `dict`: `upper`, `lower`, `macro_f1`, and `scores` (macro-F1 per candidate upper).

        Raises:
            `InputError`: If `data` holds no persona, or a persona has no gold direction.
        """
        personas = self._calibration_personas(data, where)
        item_vectors = [self.infer_items(items) if (items := persona_items(p)) else [] for p in personas]
        result = calibrate_thresholds(item_vectors, gold_directions(personas, self.space), self.space, grid)
        self.upper, self.lower = result["upper"], result["lower"]
        return result

    def _calibration_personas(self, data: Iterable[Persona | Mapping[str, Any]], where: str) -> list[Persona]:
        """The personas of `calibrate`'s data; at least one."""
        personas = as_personas(data, self.space, where)
        if not personas:
            raise InputError(f"{where}: calibration needs at least one persona.")
        return personas
