"""Alignment accuracy and flip rate from sequence log-probabilities: pure functions (numpy only, no model in sight).

Every number is defined on the implicit DPO reward of a response, `reward = beta * (logp_policy - logp_reference)`,
where each log-prob is the summed log-probability of the response tokens plus EOS given the persona-conditioned
prompt (see `personalign.evaluation.score_pairs`). The metric card, `personalign/metrics/alignment_accuracy/README.md`,
states every definition; the docstrings below repeat them.

`bootstrap_interval` is the percentile bootstrap over items that the judged evaluations (`personalign judge`) put
around their win rates and mean scores.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

LOGPS_COLUMNS = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "reference_chosen_logps",
    "reference_rejected_logps",
)
"""The four inputs of the metric, in order."""

REVERSED_SUFFIX = "_reversed"
REVERSED_LOGPS_COLUMNS = tuple(f"{name}{REVERSED_SUFFIX}" for name in LOGPS_COLUMNS)
"""The same four under the reversed persona, where "chosen" is the response the reversed persona prefers (the original
rejected one)."""


def _as_logps(name: str, values: Any, length: int | None = None) -> np.ndarray:
    """`values` as a 1-D float64 array of finite numbers, or a `ValueError` that names the argument."""
    if isinstance(values, (str, bytes, Mapping)):
        raise InputError(f"{name} must be a sequence of numbers, got {type(values).__name__}.")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a sequence of numbers: {error}") from None
    if array.ndim != 1:
        raise InputError(f"{name} must be one-dimensional (one value per pair), got shape {array.shape}.")
    if length is not None and len(array) != length:
        raise InputError(
            f"{name} has {len(array)} values, but {LOGPS_COLUMNS[0]} has {length}: every input needs one value per "
            "pair, in the same order."
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InputError(
            f"{name} holds a non-finite value ({array[bad[0]]}) at index {bad[0]} ({bad.size} in total); log-probs "
            "must be finite numbers."
        )
    return array


def _check_beta(beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not np.isfinite(beta) or beta <= 0:
        raise InputError(f"beta must be a finite number > 0, got {beta!r}.")
    return float(beta)


def _summary(
    correct: np.ndarray,
    ties: np.ndarray,
    margins: np.ndarray,
    reversed_outcomes: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    num_pairs = len(correct)
    result: dict[str, Any] = {
        "alignment_accuracy": float(correct.mean()),
        "reward_margin": float(margins.mean()),
        "num_pairs": num_pairs,
        "num_correct": int(correct.sum()),
        "num_ties": int(ties.sum()),
    }
    if reversed_outcomes is not None:
        reversed_correct, reversed_ties, reversed_margins = reversed_outcomes
        # The model's ordering of the two texts: under the original persona it prefers the original chosen text iff
        # `correct`; under the reversed one iff the reversed margin is < 0 (its "chosen" is the original rejected text).
        # The ordering flips iff neither side ties and the two preferred texts differ, i.e. iff both margins are
        # non-zero with the same sign: correct under both, or wrong under both.
        flipped = ~ties & ~reversed_ties & (correct == reversed_correct)
        strict = correct & reversed_correct
        result.update(
            reversed_alignment_accuracy=float(reversed_correct.mean()),
            reversed_reward_margin=float(reversed_margins.mean()),
            flip_rate=float(flipped.mean()),
            strict_flip_rate=float(strict.mean()),
            num_reversed_correct=int(reversed_correct.sum()),
            num_reversed_ties=int(reversed_ties.sum()),
            num_flipped=int(flipped.sum()),
            num_strict_flipped=int(strict.sum()),
        )
    return result


def _group_members(name: str, labels: Any, num_pairs: int) -> dict[Any, list[int]]:
    """Row indices per label. A label may be a scalar, a list of scalars (the row counts in each), or None / an empty
    list (the row is in no group)."""
    if isinstance(labels, (str, bytes, Mapping)) or not hasattr(labels, "__len__"):
        raise InputError(f"groups[{name!r}] must be a sequence of labels (one per pair), got {type(labels).__name__}.")
    labels = list(labels)
    if len(labels) != num_pairs:
        raise InputError(
            f"groups[{name!r}] has {len(labels)} labels, but there are {num_pairs} pairs: give one label per pair."
        )
    members: dict[Any, list[int]] = {}
    for index, label in enumerate(labels):
        if isinstance(label, np.ndarray):
            label = label.tolist()
        for value in label if isinstance(label, (list, tuple)) else [label]:
            if value is None:
                continue
            if isinstance(value, np.generic):
                value = value.item()
            if not isinstance(value, (str, numbers.Number)):
                raise InputError(
                    f"groups[{name!r}] label at index {index} is {value!r}; labels are strings or numbers (or lists "
                    "of them)."
                )
            rows = members.setdefault(value, [])
            if not rows or rows[-1] != index:  # a label repeated within one row counts once
                rows.append(index)
    return members


def _label_order(label: Any) -> tuple[int, float, str]:
    if isinstance(label, numbers.Real) and not isinstance(label, bool):
        return (0, float(label), "")
    return (1, 0.0, str(label))


def compute_alignment_metrics(
    policy_chosen_logps: Sequence[float] | np.ndarray,
    policy_rejected_logps: Sequence[float] | np.ndarray,
    reference_chosen_logps: Sequence[float] | np.ndarray,
    reference_rejected_logps: Sequence[float] | np.ndarray,
    *,
    beta: float = 0.1,
    policy_chosen_logps_reversed: Sequence[float] | np.ndarray | None = None,
    policy_rejected_logps_reversed: Sequence[float] | np.ndarray | None = None,
    reference_chosen_logps_reversed: Sequence[float] | np.ndarray | None = None,
    reference_rejected_logps_reversed: Sequence[float] | np.ndarray | None = None,
    groups: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Alignment accuracy (AlignX), and with reversed-persona inputs the flip rate (AlignX Table 5), overall and per
    group.

    For pair `i`, `reward_c = beta * (policy_chosen_logps[i] - reference_chosen_logps[i])`, `reward_r` likewise, and
    `margin = reward_c - reward_r`. The pair is *correct* iff `reward_c > reward_r` (strict: a tie is not correct), as
    TRL's `rewards/accuracies`. With the reversed inputs (the same pair under the reversed persona, whose "chosen" is
    the original rejected response), the pair is *reversed-correct* iff its reversed `reward_c > reward_r`. The
    model's ordering of the two texts *flips* iff it is strict under both personas (no tie on either side) and the
    preferred text differs between them; equivalently, iff the pair is correct under both or wrong under both.

    Args:
        policy_chosen_logps (`Sequence[float]`): Summed log-probs of the chosen responses (tokens plus EOS) under the
            policy, one per pair.
        policy_rejected_logps (`Sequence[float]`): The same for the rejected responses.
        reference_chosen_logps (`Sequence[float]`): The chosen log-probs under the reference model.
        reference_rejected_logps (`Sequence[float]`): The rejected log-probs under the reference model.
        beta (`float`, *optional*, defaults to `0.1`): The DPO temperature (TRL's default); must be > 0. It scales the
            margins but, being positive, never changes which side wins, except that values closer than the float64
            resolution may round to a tie, exactly as the scaled comparison does in TRL.
        policy_chosen_logps_reversed (`Sequence[float]`, *optional*): The four inputs under the reversed persona,
            same pairs, same order; "chosen" is the response the reversed persona prefers (the original rejected
            one). Give all four or none.
        policy_rejected_logps_reversed (`Sequence[float]`, *optional*): See above.
        reference_chosen_logps_reversed (`Sequence[float]`, *optional*): See above.
        reference_rejected_logps_reversed (`Sequence[float]`, *optional*): See above.
        groups (`dict[str, Sequence]`, *optional*): Labels for breakdowns, e.g. `{"dimension": [...],
            "history_size": [...]}`, one label per pair. A label may be a string or number, a list of them (the pair
            counts in each group it lists, e.g. every target dimension), or `None` (the pair is in no group).

    Returns:
        `dict`: `alignment_accuracy` (correct / pairs), `reward_margin` (mean margin), `num_pairs`, `num_correct`,
        `num_ties`; with reversed inputs also `reversed_alignment_accuracy`, `reversed_reward_margin`, `flip_rate`
        (flipped / pairs), `strict_flip_rate` (correct under both / pairs), `num_reversed_correct`,
        `num_reversed_ties`, `num_flipped`, `num_strict_flipped`; with `groups`, `groups[name][str(label)]` holds the
        same numbers computed on that group's pairs (labels sorted, numbers numerically).

    Raises:
        `InputError`: On an empty input, inputs of different lengths, non-numeric or non-finite values, a partial set
            of reversed inputs, `beta <= 0`, or malformed group labels; the message names the argument.

    Example:

    ```python
    >>> from personalign.evaluation import compute_alignment_metrics
    >>> compute_alignment_metrics([-1.0, -5.0], [-3.0, -4.0], [-2.0, -4.0], [-2.0, -4.0], beta=0.1)["alignment_accuracy"]
    0.5
    ```
    """
    beta = _check_beta(beta)
    policy_chosen = _as_logps("policy_chosen_logps", policy_chosen_logps)
    num_pairs = len(policy_chosen)
    if num_pairs == 0:
        raise InputError("policy_chosen_logps is empty: there is no pair to evaluate.")
    policy_rejected = _as_logps("policy_rejected_logps", policy_rejected_logps, num_pairs)
    reference_chosen = _as_logps("reference_chosen_logps", reference_chosen_logps, num_pairs)
    reference_rejected = _as_logps("reference_rejected_logps", reference_rejected_logps, num_pairs)

    chosen_rewards = beta * (policy_chosen - reference_chosen)
    rejected_rewards = beta * (policy_rejected - reference_rejected)
    correct, ties = chosen_rewards > rejected_rewards, chosen_rewards == rejected_rewards
    margins = chosen_rewards - rejected_rewards

    given = {
        "policy_chosen_logps_reversed": policy_chosen_logps_reversed,
        "policy_rejected_logps_reversed": policy_rejected_logps_reversed,
        "reference_chosen_logps_reversed": reference_chosen_logps_reversed,
        "reference_rejected_logps_reversed": reference_rejected_logps_reversed,
    }
    missing = [name for name, values in given.items() if values is None]
    reversed_outcomes = None
    if len(missing) < len(given):
        if missing:
            raise InputError(f"Reversed inputs must come as all four or none; missing {', '.join(missing)}.")
        arrays = {name: _as_logps(name, values, num_pairs) for name, values in given.items()}
        reversed_chosen_rewards = beta * (
            arrays["policy_chosen_logps_reversed"] - arrays["reference_chosen_logps_reversed"]
        )
        reversed_rejected_rewards = beta * (
            arrays["policy_rejected_logps_reversed"] - arrays["reference_rejected_logps_reversed"]
        )
        reversed_outcomes = (
            reversed_chosen_rewards > reversed_rejected_rewards,
            reversed_chosen_rewards == reversed_rejected_rewards,
            reversed_chosen_rewards - reversed_rejected_rewards,
        )

    result = _summary(correct, ties, margins, reversed_outcomes)
    if groups is not None:
        if not isinstance(groups, Mapping):
            raise InputError(f"groups must be a dict of label lists, got {type(groups).__name__}.")
        breakdown: dict[str, dict[str, dict[str, Any]]] = {}
        for name, labels in groups.items():
            members = _group_members(str(name), labels, num_pairs)
            per_label = {}
            for label in sorted(members, key=_label_order):
                rows = np.asarray(members[label])
                subset = None if reversed_outcomes is None else tuple(a[rows] for a in reversed_outcomes)
                per_label[str(label)] = _summary(correct[rows], ties[rows], margins[rows], subset)
            breakdown[str(name)] = per_label
        result["groups"] = breakdown
    return result


# ------------------------------------------------------------------------------------------------- bootstrap
@dataclass(frozen=True)
class BootstrapInterval:
    """A percentile bootstrap confidence interval (see `bootstrap_interval`).

    Attributes:
        low (`float` or `None`): The lower bound; `None` when no resample had a defined statistic.
        high (`float` or `None`): The upper bound.
        confidence (`float`): The coverage asked for, e.g. `0.95`.
        num_resamples (`int`): Resamples drawn.
        num_undefined (`int`): Resamples on which the statistic was undefined (NaN, e.g. a win rate with no decisive
            verdict among the drawn items); they are left out of the percentiles.
    """

    low: float | None
    high: float | None
    confidence: float
    num_resamples: int
    num_undefined: int

    def to_dict(self) -> dict[str, Any]:
        """`{"low", "high", "confidence", "num_resamples", "num_undefined", "method": "percentile bootstrap"}`."""
        return {
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "num_resamples": self.num_resamples,
            "num_undefined": self.num_undefined,
            "method": "percentile bootstrap over items",
        }


_BOOTSTRAP_CELLS = 1 << 20
"""Index cells drawn per chunk of resamples (chunks keep memory flat for large item counts)."""


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    num_items: int,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """The percentile bootstrap confidence interval of a statistic over items (Efron & Tibshirani, 1993, §13.3):
    draw `num_resamples` resamples of `num_items` item indices with replacement, evaluate the statistic on each, and
    take the `(1 - confidence) / 2` and `(1 + confidence) / 2` percentiles (numpy's linear interpolation) of the
    defined values.

    The statistic is vectorized: it receives a `(resamples, num_items)` integer array, one resample of item indices
    per row, and returns one value per row (NaN where the statistic is undefined on that resample). Resamples are
    drawn from `numpy.random.default_rng(seed)` in chunks of whole rows, so the same seed and item count give the
    same interval.

    Args:
        statistic (`Callable[[np.ndarray], np.ndarray]`): Index rows `(B, num_items)` -> values `(B,)`.
        num_items (`int`): How many items are resampled.
        num_resamples (`int`, *optional*, defaults to `1000`): Resamples; must be >= 1.
        confidence (`float`, *optional*, defaults to `0.95`): Coverage, in (0, 1).
        seed (`int`, *optional*, defaults to `0`): Seed of the resampling.

    Returns:
        `BootstrapInterval`: `low` and `high` are `None` when there are no items or no resample is defined.

    Raises:
        `InputError`: If `num_resamples < 1`, `confidence` is not in (0, 1), or the statistic returns another shape.

    Example:

    ```python
    >>> scores = np.array([3.0, 4.0, 5.0, 4.0])
    >>> bootstrap_interval(lambda rows: scores[rows].mean(axis=1), len(scores), seed=0).low
    3.25
    ```
    """
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, numbers.Integral) or num_resamples < 1:
        raise InputError(f"the number of bootstrap resamples must be an integer >= 1, got {num_resamples!r}.")
    if not 0 < confidence < 1:
        raise InputError(f"the confidence level must be in (0, 1), got {confidence!r}.")
    if num_items <= 0:
        return BootstrapInterval(None, None, confidence, int(num_resamples), int(num_resamples))
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // num_items)
    values = []
    for start in range(0, num_resamples, chunk):
        rows = rng.integers(0, num_items, size=(min(chunk, num_resamples - start), num_items))
        drawn = np.asarray(statistic(rows), dtype=np.float64)
        if drawn.shape != (len(rows),):
            raise InputError(f"the bootstrap statistic returned shape {drawn.shape} for {len(rows)} resamples.")
        values.append(drawn)
    samples = np.concatenate(values)
    defined = samples[~np.isnan(samples)]
    undefined = int(num_resamples - len(defined))
    if not len(defined):
        return BootstrapInterval(None, None, confidence, int(num_resamples), undefined)
    low, high = np.percentile(defined, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    return BootstrapInterval(float(low), float(high), confidence, int(num_resamples), undefined)


def nan_mean_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The mean of `values[rows[b]]` per row `b`, over the entries that are not NaN (NaN where a row has none): the
    bootstrap statistic of a mean score with unscored items left out.

    Args:
        values (`np.ndarray`): `(num_items,)` floats, NaN for an item without a value.
        rows (`np.ndarray`): `(B, n)` item indices.

    Returns:
        `np.ndarray`: `(B,)` means.
    """
    drawn = np.asarray(values, dtype=np.float64)[rows]
    present = ~np.isnan(drawn)
    counts = present.sum(axis=1)
    sums = np.where(present, drawn, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
