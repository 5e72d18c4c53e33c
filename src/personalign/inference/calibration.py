"""Calibration and evaluation of inferred preference directions, shared by both inferencers.

The AlignX paper (Appendix D.5) finds that inferred directions over-predict weak preferences (high recall, low
precision for Positive / Negative). This module scores directions against gold ones (`direction_report`, the
AlignX paper's Table 12) and searches the thresholds that turn item-level evidence into a persona's direction:

- the aggregation thresholds `upper` / `lower` of AlignX's rule (`calibrate_thresholds`, both inferencers);
- the item decision threshold of the learned inferencer (`probabilities_to_vectors`), searched together with the
  aggregation thresholds by `calibrate_item_thresholds`.

Pure functions over lists and numpy arrays: no model, no torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..personas.persona import Persona
from ..personas.space import NEGATIVE, NEUTRAL, POSITIVE, PreferenceSpace

CLASS_VALUES: tuple[float, ...] = (POSITIVE, NEGATIVE, NEUTRAL)
"""The three values an item takes on a dimension, in the order of the AlignX paper's annotation options: class k of
the learned inferencer's head is answer option k + 1 of the LLM inferencer's prompt (positive, negative, cannot
tell)."""
POSITIVE_CLASS, NEGATIVE_CLASS, NEUTRAL_CLASS = range(len(CLASS_VALUES))
_VALUE_TO_CLASS = {value: index for index, value in enumerate(CLASS_VALUES)}
CATEGORIES = {"positive": POSITIVE, "negative": NEGATIVE, "neutral": NEUTRAL}
"""The categories of `direction_report`, by name."""
DEFAULT_UPPER_GRID: tuple[float, ...] = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
"""Candidate upper aggregation thresholds of `calibrate_thresholds` (lower = 1 - upper)."""
DEFAULT_ITEM_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Candidate item decision thresholds of `calibrate_item_thresholds`."""


# ------------------------------------------------------------------------------------------------------ thresholds
def check_threshold(name: str, value: float) -> None:
    """Check one aggregation threshold: a number in [0, 1] (NaN is none: it compares as neither above nor below).

    Args:
        name (`str`): How the message names it (`"upper"`, or a command-line flag such as `"--upper"`).
        value (`float`): The threshold.

    Raises:
        `InputError`: `"<name> must be a number in [0, 1], got nan."`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be a number in [0, 1], got {value}.")


def check_thresholds(upper: float, lower: float) -> None:
    """Check a pair of aggregation thresholds (`PreferenceSpace.aggregate`'s `upper` / `lower`).

    Args:
        upper (`float`): Mean at or above which a dimension is positive.
        lower (`float`): Mean at or below which a dimension is negative.

    Raises:
        `InputError`: If either is not a number in [0, 1] (NaN included: it would compare as neither above nor
            below), or `lower` is not below `upper`.
    """
    check_threshold("upper", upper)
    check_threshold("lower", lower)
    if not lower < upper:
        raise InputError(f"lower must be below upper, got lower={lower}, upper={upper}.")


def check_item_threshold(item_threshold: float) -> None:
    """Check an item decision threshold (`probabilities_to_vectors`).

    Raises:
        `InputError`: If it is outside (0, 1].
    """
    if not 0.0 < item_threshold <= 1.0:
        raise InputError(f"item_threshold must be in (0, 1], got {item_threshold}.")


# ------------------------------------------------------------------------------------------------ items to personas
def persona_direction(
    item_vectors: Sequence[Sequence[float]], space: PreferenceSpace, upper: float = 0.6, lower: float = 0.4
) -> list[float]:
    """A persona's direction from its items' vectors: AlignX's rule (`PreferenceSpace.aggregate`), all neutral for
    a persona without items (the rule needs at least one vector).

    Args:
        item_vectors (`Sequence[Sequence[float]]`): One direction vector per history item, each of length
            `len(space)`.
        space (`PreferenceSpace`): The preference space.
        upper (`float`, *optional*, defaults to `0.6`) / lower (`float`, *optional*, defaults to `0.4`): The
            aggregation thresholds.

    Returns:
        `list[float]`: The direction, values in {0, 0.5, 1}.
    """
    return space.aggregate(item_vectors, upper=upper, lower=lower) if len(item_vectors) else space.neutral()


def gold_directions(personas: Sequence[Persona], space: PreferenceSpace | None = None) -> list[list[float]]:
    """Each persona's gold direction: its annotated items' vectors aggregated with AlignX's rule (the release's
    0.6 / 0.4), or its `direction` when no item is annotated (`Persona.preference_vector`).

    Raises:
        `InputError`: If a persona has neither annotated items nor a gold direction.
    """
    space = space or PreferenceSpace.alignx()
    return [persona.preference_vector(space) for persona in personas]


def vectors_to_labels(vectors: Sequence[Sequence[float]], space: PreferenceSpace | None = None) -> np.ndarray:
    """Direction vectors as class indices (`CLASS_VALUES` order), shape `(n, num_dimensions)`, dtype int64.

    Raises:
        `InputError`: If a vector has the wrong length or a value outside 0 / 0.5 / 1 (naming the vector and index).
    """
    space = space or PreferenceSpace.alignx()
    labels = np.empty((len(vectors), len(space)), dtype=np.int64)
    for row, vector in enumerate(vectors):
        labels[row] = [_VALUE_TO_CLASS[value] for value in space.validate(vector, where=f"vector {row}")]
    return labels


def labels_to_vectors(labels: np.ndarray) -> list[list[float]]:
    """Class indices (`CLASS_VALUES` order), shape `(n, num_dimensions)`, back to direction vectors."""
    values = np.asarray(CLASS_VALUES)[np.asarray(labels)]
    return values.tolist()


def probabilities_to_vectors(probabilities: np.ndarray, item_threshold: float = 0.5) -> list[list[float]]:
    """Item direction vectors from class probabilities.

    A cell takes a pole when the probability mass on the two poles reaches `item_threshold`, and then the more
    probable pole (positive on an exact tie); otherwise it is neutral. Lower thresholds predict more preferences.

    Args:
        probabilities (`np.ndarray`): Shape `(num_items, num_dimensions, 3)`, classes in `CLASS_VALUES` order.
        item_threshold (`float`, *optional*, defaults to `0.5`): The pole mass at which a cell takes a pole, in
            (0, 1].

    Returns:
        `list[list[float]]`: One direction vector per item.

    Raises:
        `InputError`: If `item_threshold` is outside (0, 1] or the array has the wrong shape.
    """
    check_item_threshold(item_threshold)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3 or probabilities.shape[-1] != len(CLASS_VALUES):
        raise InputError(f"expected probabilities of shape (items, dimensions, 3), got {probabilities.shape}.")
    positive, negative = probabilities[..., POSITIVE_CLASS], probabilities[..., NEGATIVE_CLASS]
    labels = np.where(
        positive + negative >= item_threshold,
        np.where(positive >= negative, POSITIVE_CLASS, NEGATIVE_CLASS),
        NEUTRAL_CLASS,
    )
    return labels_to_vectors(labels)


def aggregate_directions(
    persona_probabilities: Sequence[np.ndarray],
    space: PreferenceSpace | None = None,
    item_threshold: float = 0.5,
    upper: float = 0.6,
    lower: float = 0.4,
) -> list[list[float]]:
    """Persona directions from their items' class probabilities: `probabilities_to_vectors` per item, then
    `persona_direction`.

    Args:
        persona_probabilities (list of `np.ndarray`): Per persona, `(num_items, num_dimensions, 3)` probabilities.
        space (`PreferenceSpace`, *optional*): AlignX's by default.
        item_threshold (`float`, *optional*, defaults to `0.5`): The item decision threshold.
        upper (`float`, *optional*, defaults to `0.6`) / lower (`float`, *optional*, defaults to `0.4`): The
            aggregation thresholds.

    Returns:
        `list[list[float]]`: One direction per persona.
    """
    space = space or PreferenceSpace.alignx()
    return [
        persona_direction(probabilities_to_vectors(probabilities, item_threshold), space, upper, lower)
        for probabilities in persona_probabilities
    ]


# ----------------------------------------------------------------------------------------------- scores, searches
def direction_report(predicted: Sequence[Sequence[float]], gold: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Per-category precision / recall / F1 of predicted direction vectors against gold ones, over every
    (persona, dimension) cell (the AlignX paper's Table 12), and their macro-F1.

    Args:
        predicted (`Sequence[Sequence[float]]`): One predicted direction per persona.
        gold (`Sequence[Sequence[float]]`): One gold direction per persona, in the same order.

    Returns:
        `dict`: Per category of `CATEGORIES` a dict of `precision`, `recall`, `f1` and `support` (gold cells of that
        category); `macro_f1` (mean F1 of the three categories) and `num_cells`.

    Raises:
        `InputError`: If the two lists differ in length.
    """
    if len(predicted) != len(gold):
        raise InputError(f"predicted has {len(predicted)} vectors for {len(gold)} gold vectors.")
    pairs = [(p, g) for pv, gv in zip(predicted, gold, strict=True) for p, g in zip(pv, gv, strict=True)]
    report: dict[str, Any] = {}
    for name, value in CATEGORIES.items():
        true_positive = sum(1 for p, g in pairs if p == value and g == value)
        predicted_count = sum(1 for p, _ in pairs if p == value)
        gold_count = sum(1 for _, g in pairs if g == value)
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / gold_count if gold_count else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {"precision": precision, "recall": recall, "f1": f1, "support": gold_count}
    report["macro_f1"] = sum(report[name]["f1"] for name in CATEGORIES) / len(CATEGORIES)
    report["num_cells"] = len(pairs)
    return report


def calibrate_thresholds(
    item_vectors: Sequence[Sequence[Sequence[float]]],
    gold: Sequence[Sequence[float]],
    space: PreferenceSpace | None = None,
    grid: Sequence[float] = DEFAULT_UPPER_GRID,
) -> dict[str, Any]:
    """Choose the aggregation thresholds (upper, lower = 1 - upper) that maximise macro-F1 against gold directions.

    Args:
        item_vectors (`Sequence`): Per validation persona, its items' inferred vectors (an inferencer's
            `infer_items`).
        gold (`Sequence[Sequence[float]]`): Per persona, its gold direction vector.
        space (`PreferenceSpace`, *optional*): The preference space (AlignX's by default).
        grid (`Sequence[float]`, *optional*, defaults to `DEFAULT_UPPER_GRID`): Candidate upper thresholds, each
            > 0.5 (lower = 1 - upper: symmetric around neutral); ties keep the smallest.

    Returns:
        `dict`: `upper`, `lower`, `macro_f1`, and `scores` (macro-F1 per candidate upper).
    """
    space = space or PreferenceSpace.alignx()
    scores = {}
    for upper in grid:
        lower = round(1.0 - upper, 10)
        predicted = [persona_direction(items, space, upper, lower) for items in item_vectors]
        scores[upper] = direction_report(predicted, gold)["macro_f1"]
    best = max(grid, key=lambda upper: (scores[upper], -upper))
    return {"upper": best, "lower": round(1.0 - best, 10), "macro_f1": scores[best], "scores": scores}


def calibrate_item_thresholds(
    persona_probabilities: Sequence[np.ndarray],
    gold: Sequence[Sequence[float]],
    space: PreferenceSpace | None = None,
    item_thresholds: Sequence[float] = DEFAULT_ITEM_THRESHOLDS,
    grid: Sequence[float] = DEFAULT_UPPER_GRID,
) -> dict[str, Any]:
    """Choose the item threshold and the aggregation thresholds (upper, lower = 1 - upper) that maximise macro-F1
    against gold directions: for each item threshold, `calibrate_thresholds` scans `grid`. Ties keep the smallest
    upper threshold, then the item threshold closest to 0.5.

    Args:
        persona_probabilities (list of `np.ndarray`): Per persona, its items' class probabilities
            `(num_items, num_dimensions, 3)`.
        gold (`Sequence[Sequence[float]]`): Per persona, its gold direction.
        space (`PreferenceSpace`, *optional*): AlignX's by default.
        item_thresholds (`Sequence[float]`, *optional*, defaults to `DEFAULT_ITEM_THRESHOLDS`): Candidate item
            thresholds.
        grid (`Sequence[float]`, *optional*, defaults to `DEFAULT_UPPER_GRID`): Candidate upper thresholds.

    Returns:
        `dict`: `item_threshold`, `upper`, `lower`, `macro_f1`, and `scores` (`{item_threshold: {upper: F1}}`).

    Raises:
        `InputError`: If the lists differ in length or are empty.
    """
    space = space or PreferenceSpace.alignx()
    if len(persona_probabilities) != len(gold):
        raise InputError(f"{len(persona_probabilities)} personas' probabilities for {len(gold)} gold vectors.")
    if not gold:
        raise InputError("calibration needs at least one persona.")
    results = {}
    for threshold in item_thresholds:
        item_vectors = [probabilities_to_vectors(p, threshold) for p in persona_probabilities]
        results[threshold] = calibrate_thresholds(item_vectors, gold, space, grid)
    best = max(item_thresholds, key=lambda t: (results[t]["macro_f1"], -results[t]["upper"], -abs(t - 0.5)))
    return {
        "item_threshold": best,
        "upper": results[best]["upper"],
        "lower": results[best]["lower"],
        "macro_f1": results[best]["macro_f1"],
        "scores": {t: results[t]["scores"] for t in item_thresholds},
    }
