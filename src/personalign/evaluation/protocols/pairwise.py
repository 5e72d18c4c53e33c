"""`pairwise-win`: the AlignX paper's GPT-4 win rate (§6.1, Appendix A.3 "GPT-4 Judgment Prompt").

For each row the judge reads the user's persona, the query and the two systems' responses, and answers Response A,
Response B or Tie (`PairwiseJudge`, `PAIRWISE_JUDGE_PROMPT`). The order is drawn per row from `random.Random(seed)`
(position bias averages out, a run is reproducible) and the verdict is mapped back to the `--responses` system's win,
tie or lose. As in AlignX, the win rate is absolute: Win / (Win + Lose); ties are allowed and left out of both
numerator and denominator, and so are unparsable verdicts (counted, never guessed). `win_rate_with_ties`,
(Win + Tie / 2) / parsed, is reported beside it for comparison with other papers.

With `swap`, every row is judged in both orders instead (the position-bias control of MT-Bench): the row is a win
when both orders say win, a loss when both say lose, a tie otherwise (a tie in either order, or two verdicts that
disagree), and unparsable when either order is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...inference.generation import GenerationBackend
from ..judges import PairwiseJudge
from ..plots import plot_pairwise_outcomes
from .base import AGAINST, RESPONSES, CardMetric, JudgeInputs, JudgeProtocol, JudgeSettings, persona_text

PERSONA_FIELDS = ("history", "profile", "preference", "ground_truth_persona")
"""Where the judge's "User Behavior History" comes from, in order: the row's behaviour history (AlignX's judge reads
the persona P; MultiFacet's feedback pairs), else its profile text (PBA rows), else its ground-truth preference, else
its persona description."""

_FLIP = {"win": "lose", "lose": "win", "tie": "tie", None: None}


def combine_orders(first: str | None, second: str | None) -> str | None:
    """The outcome of a row judged in both orders (`swap`): win when both are wins, lose when both are losses, tie
    otherwise, `None` (unparsable) when either is.

    Args:
        first (`str` or `None`): The outcome with `--responses` shown first.
        second (`str` or `None`): The outcome with `--responses` shown second.

    Returns:
        `"win"`, `"tie"`, `"lose"` or `None`.
    """
    if first is None or second is None:
        return None
    return first if first == second and first != "tie" else "tie"


def win_rate_statistics(outcomes: Sequence[str | None], settings: JudgeSettings) -> dict[str, Any]:
    """AlignX's absolute win rate of a list of outcomes, with its counts and bootstrap interval.

    Args:
        outcomes (`Sequence[str | None]`): `"win"`, `"tie"`, `"lose"`, or `None` (unparsable), one per row.
        settings (`JudgeSettings`): The bootstrap settings.

    Returns:
        `dict`: `win_rate` = wins / (wins + losses) (`None` without a decisive outcome), `win_rate_ci` (rows
        resampled, ties and unparsable rows included in the population), `wins`, `ties`, `losses`, `unparsable`,
        `num_items`, `win_rate_with_ties` = (wins + ties / 2) / parsed rows.
    """
    outcomes = list(outcomes)
    is_win = np.array([o == "win" for o in outcomes])
    is_lose = np.array([o == "lose" for o in outcomes])

    def rate(rows: np.ndarray) -> np.ndarray:
        wins, losses = is_win[rows].sum(axis=1), is_lose[rows].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(wins + losses > 0, wins / np.maximum(wins + losses, 1), np.nan)

    wins, ties, losses, unparsable = (outcomes.count(o) for o in ("win", "tie", "lose", None))
    parsed = len(outcomes) - unparsable
    return {
        "win_rate": wins / (wins + losses) if wins + losses else None,
        "win_rate_ci": settings.interval(rate, len(outcomes)),
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "unparsable": unparsable,
        "num_items": len(outcomes),
        "win_rate_with_ties": (wins + 0.5 * ties) / parsed if parsed else None,
    }


class PairwiseWinProtocol(JudgeProtocol):
    """AlignX's pairwise win rate of `--responses` against `--against` (see the module docstring).

    Args:
        swap (`bool`, *optional*, defaults to `False`): Judge each row in both orders (two calls per row) instead of
            one seeded random order.
    """

    name = "pairwise-win"
    paper = "AlignX, §6.1 and Appendix A.3 (GPT-4 win rate)"
    against = "required"
    judge_class = PairwiseJudge

    def __init__(self, swap: bool = False) -> None:
        self.swap = swap

    def options(self) -> dict[str, Any]:
        return {"swap": self.swap, "persona_fields": list(PERSONA_FIELDS)}

    def personas(self, inputs: JudgeInputs) -> list[tuple[str, str]]:
        """Per record, the persona text the judge reads and the field it came from (`PERSONA_FIELDS`).

        Raises:
            `InputError`: If a record has none of them, naming it.
        """
        return [
            persona_text(record, PERSONA_FIELDS, inputs.names(index), "the user's behaviour history")
            for index, record in enumerate(inputs.responses)
        ]

    def check(self, inputs: JudgeInputs) -> None:
        """Also: every row has a persona text (`PERSONA_FIELDS`)."""
        super().check(inputs)
        self.personas(inputs)

    def judge(self, inputs: JudgeInputs, backend: GenerationBackend, settings: JudgeSettings) -> list[dict[str, Any]]:
        self.check(inputs)
        assert inputs.against is not None
        personas = self.personas(inputs)
        queries = [record.prompt for record in inputs.responses]
        mine = [record.response for record in inputs.responses]
        theirs = [record.response for record in inputs.against]
        histories = [text for text, _ in personas]
        n = len(queries)
        if self.swap:
            # Both orders in one batch: the first half shows --responses as A, the second half shows it as B (there
            # the judge's "responses" are --against's, so its outcomes are flipped back).
            judge = PairwiseJudge(backend, randomize_order=False, **settings.judge_kwargs())
            report = judge.judge(queries * 2, mine + theirs, theirs + mine, histories * 2)
            shown = [[RESPONSES, AGAINST]] * n + [[AGAINST, RESPONSES]] * n
            outcomes = report.outcomes[:n] + [_FLIP[o] for o in report.outcomes[n:]]
            per_row = [[i, i + n] for i in range(n)]
        else:
            judge = PairwiseJudge(backend, **settings.judge_kwargs())
            report = judge.judge(queries, mine, theirs, histories)
            shown = [[AGAINST, RESPONSES] if swapped else [RESPONSES, AGAINST] for swapped in report.swapped]
            outcomes = list(report.outcomes)
            per_row = [[i] for i in range(n)]
        systems = {key: system.label for key, system in inputs.systems.items()}
        judgments = []
        for index, record in enumerate(inputs.responses):
            calls = [
                {
                    "shown_order": shown[k],
                    "output": report.outputs[k],
                    "verdict": report.verdicts[k],
                    "outcome": outcomes[k],
                }
                for k in per_row[index]
            ]
            outcome = combine_orders(*[c["outcome"] for c in calls]) if self.swap else calls[0]["outcome"]
            judgments.append(
                {
                    "id": record.id,
                    "row": record.row,
                    "protocol": self.name,
                    "systems": systems,
                    "dimension": (record.persona or {}).get("dimension"),
                    "persona_field": personas[index][1],
                    "calls": calls,
                    "outcome": outcome,
                    "unparsable": outcome is None,
                }
            )
        return judgments

    def summarize(
        self, judgments: Sequence[Mapping[str, Any]], inputs: JudgeInputs, settings: JudgeSettings
    ) -> dict[str, Any]:
        """Win / (Win + Lose) with its counts and bootstrap interval, overall and (for rows with a
        `persona.dimension`) per dimension.

        Returns:
            `dict`: `win_rate` (`None` without a decisive verdict), `win_rate_ci` (percentile bootstrap over rows:
            ties and unparsable rows stay in the resampled population, so the interval reflects how often decisive
            verdicts occur), `wins`, `ties`, `losses`, `unparsable`, `num_items`, `win_rate_with_ties`,
            `first_position_rate` (share of decisive verdicts that picked the response shown first; about 0.5 without
            position bias), with `swap` `order_agreement` (share of rows whose two parsed outcomes agree),
            `per_dimension` (the counts, rate and interval per dimension, when rows have one) and `definition`.
        """
        results = win_rate_statistics([item["outcome"] for item in judgments], settings)
        verdicts = [call["verdict"] for item in judgments for call in item["calls"]]
        first, second = verdicts.count("A"), verdicts.count("B")
        results["num_judge_calls"] = len(verdicts)
        results["first_position_rate"] = first / (first + second) if first + second else None
        if self.swap:
            pairs = [[c["outcome"] for c in item["calls"]] for item in judgments]
            both = [p for p in pairs if None not in p]
            results["order_agreement"] = sum(p[0] == p[1] for p in both) / len(both) if both else None
        dimensions = list(dict.fromkeys(item["dimension"] for item in judgments if item.get("dimension")))
        if dimensions:
            results["per_dimension"] = {
                d: win_rate_statistics([i["outcome"] for i in judgments if i.get("dimension") == d], settings)
                for d in dimensions
            }
        results["definition"] = (
            "Win / (Win + Lose) of --responses against --against (AlignX); ties and unparsable verdicts are counted "
            "but left out of the rate."
        )
        return results

    def describe(self, results: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
        rate, ci = results["win_rate"], results["win_rate_ci"]
        shown = "n/a (no decisive verdict)" if rate is None else f"{rate:.3f}"
        if rate is not None and ci["low"] is not None:
            shown += f" [{ci['low']:.3f}, {ci['high']:.3f}] ({100 * ci['confidence']:.0f}% CI)"
        return [
            f"win rate of {labels[RESPONSES]} vs {labels[AGAINST]}: {shown}",
            f"{results['wins']} win, {results['ties']} tie, {results['losses']} lose, {results['unparsable']} "
            f"unparsable of {results['num_items']} rows",
        ]

    def plot(self, results: Mapping[str, Any], folder: Path, labels: Mapping[str, str]) -> list[str]:
        name = "pairwise_win.png"
        plot_pairwise_outcomes(results, folder / name, labels[RESPONSES], labels[AGAINST])
        return [name]

    def card_metrics(self, results: Mapping[str, Any]) -> list[CardMetric]:
        if results["win_rate"] is None:
            return []
        return [CardMetric("win_rate", "win rate (Win / (Win + Lose))", results["win_rate"])]
