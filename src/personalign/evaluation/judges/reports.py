"""What the judges return: `ScoreReport` (a 1-5 judge over responses) and `PairwiseReport` (a model's responses
against a baseline's), each with the raw outputs and the count of unparsable ones, as JSON-ready summaries."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .parsing import Verdict

Outcome = Literal["win", "tie", "lose"]
"""A pairwise outcome for the evaluated model, with the presentation order undone."""


def mean_or_none(values: Iterable[float]) -> float | None:
    """The mean of `values` (`math.fsum` over their count), or `None` when there are none."""
    values = list(values)
    return math.fsum(values) / len(values) if values else None


@dataclass
class ScoreReport:
    """Scores of a 1-5 judge over a set of responses.

    Attributes:
        judge (`str`): The judge's name.
        backend (`str`): The generation backend's name.
        scores (`list[float | None]`): One per response: the parsed score (the mean of the parsed rubric item scores
            for `RubricJudge`); `None` when nothing could be parsed.
        outputs (`list[list[str]]`): The raw judge outputs, per response (one per rubric item for `RubricJudge`).
        item_scores (`list[list[int | None]]`): The parsed score of every output, per response.
    """

    judge: str
    backend: str
    scores: list[float | None]
    outputs: list[list[str]]
    item_scores: list[list[int | None]]

    @property
    def num_examples(self) -> int:
        return len(self.scores)

    @property
    def num_judgments(self) -> int:
        """Judge calls made (responses times rubric items)."""
        return sum(len(items) for items in self.item_scores)

    @property
    def num_unparsable(self) -> int:
        """Judge outputs from which no score could be read."""
        return sum(score is None for items in self.item_scores for score in items)

    @property
    def num_unscored(self) -> int:
        """Responses left without a score (every one of their outputs unparsable); excluded from `mean`."""
        return sum(score is None for score in self.scores)

    @property
    def mean(self) -> float | None:
        """The mean score over the scored responses (`None` if there is none)."""
        return mean_or_none(score for score in self.scores if score is not None)

    @property
    def distribution(self) -> dict[int, int]:
        """How many parsed judge outputs gave each score."""
        counts = Counter(score for items in self.item_scores for score in items if score is not None)
        return dict(sorted(counts.items()))

    def to_dict(self, include_outputs: bool = False) -> dict[str, Any]:
        """The summary (and optionally the per-response details) as a JSON-ready dict."""
        summary: dict[str, Any] = {
            "judge": self.judge,
            "backend": self.backend,
            "mean": self.mean,
            "num_examples": self.num_examples,
            "num_judgments": self.num_judgments,
            "num_unparsable": self.num_unparsable,
            "num_unscored": self.num_unscored,
            "distribution": {str(k): v for k, v in self.distribution.items()},
        }
        if include_outputs:
            summary.update(scores=self.scores, item_scores=self.item_scores, outputs=self.outputs)
        return summary


@dataclass
class PairwiseReport:
    """Outcomes of a pairwise judge: the evaluated responses ("model") against the baseline responses.

    Attributes:
        judge (`str`): The judge's name.
        backend (`str`): The generation backend's name.
        outcomes (`list[str | None]`): `"win"`, `"tie"` or `"lose"` for the model, per pair (order already undone);
            `None` when the output was unparsable.
        verdicts (`list[str | None]`): The parsed verdict as shown to the judge (`"A"`, `"B"`, `"tie"`).
        swapped (`list[bool]`): Whether the model's response was shown as B.
        outputs (`list[str]`): The raw judge outputs.
    """

    judge: str
    backend: str
    outcomes: list[Outcome | None]
    verdicts: list[Verdict | None]
    swapped: list[bool]
    outputs: list[str]

    @property
    def wins(self) -> int:
        return self.outcomes.count("win")

    @property
    def ties(self) -> int:
        return self.outcomes.count("tie")

    @property
    def losses(self) -> int:
        return self.outcomes.count("lose")

    @property
    def num_examples(self) -> int:
        return len(self.outcomes)

    @property
    def num_unparsable(self) -> int:
        return self.outcomes.count(None)

    @property
    def win_rate(self) -> float | None:
        """Win / (Win + Lose), the AlignX paper's absolute win rate (ties and unparsable outputs left out); `None`
        when there is no decisive verdict."""
        decided = self.wins + self.losses
        return self.wins / decided if decided else None

    @property
    def win_rate_with_ties(self) -> float | None:
        """(Win + Tie / 2) / parsed, the tie-splitting convention (for comparison with other papers)."""
        parsed = self.num_examples - self.num_unparsable
        return (self.wins + 0.5 * self.ties) / parsed if parsed else None

    @property
    def first_position_rate(self) -> float | None:
        """Share of decisive verdicts that picked the response shown first (A): about 0.5 without position bias."""
        a, b = self.verdicts.count("A"), self.verdicts.count("B")
        return a / (a + b) if a + b else None

    def to_dict(self, include_outputs: bool = False) -> dict[str, Any]:
        """The summary (and optionally the per-pair details) as a JSON-ready dict."""
        summary: dict[str, Any] = {
            "judge": self.judge,
            "backend": self.backend,
            "win_rate": self.win_rate,
            "win_rate_with_ties": self.win_rate_with_ties,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "num_examples": self.num_examples,
            "num_unparsable": self.num_unparsable,
            "first_position_rate": self.first_position_rate,
        }
        if include_outputs:
            summary.update(outcomes=self.outcomes, verdicts=self.verdicts, swapped=self.swapped, outputs=self.outputs)
        return summary
