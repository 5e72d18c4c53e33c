"""`multifacet-rubric` and `style-score`: rubric grading against the user's ground-truth preference, as the
counterfactual paper evaluates generation (§4.2, Tables 2 and 3: "a powerful LLM acts as an evaluator and reads a
scoring rubric (included in the original dataset), and judges how a response aligns with the ground truth
preferences, scoring between 1 and 5", the official LLM-as-a-judge paradigm of the Multifaceted Collection).

Both grade each response with `RubricJudge` (Prometheus' absolute grading, one call per rubric item, the response's
score the mean of its parsed items):

- **rubric**: the record's `rubric` (Multifaceted-Bench rows). The counterfactual MultiFacet rows carry none (their
  `rubric` is null), so by default a rubric is derived from the row's ground-truth `preference` and `dimension` with
  `preference_rubric` (one documented template); the summary counts the derived rubrics and every judgment says
  which it got. Without derivation (`derive_rubrics=False`, CLI `--no-derive-rubrics`) a row without a rubric is an
  error naming it. Deriving is the default because those rows are the paper's own test data and their preference
  text is exactly what a Multifaceted-Bench rubric spells out; refusing would leave the protocol unusable on them.
- **reference answer** (the Prometheus prompt's "score 5" answer): the record's `reference_answer`, else the row's
  `reference.chosen`, the response written for that very preference (which is what a Multifaceted-Bench reference
  answer is); a row with neither is graded with the no-reference prompt. The summary counts each source.

`multifacet-rubric` (Table 3) reports the mean score overall and per dimension (`persona.dimension`), for
`--responses` and, when given, `--against` and the difference. `style-score` (Table 2) keeps the rows of one
dimension (`style` by default; the others are left out and counted), grades `--responses` (with the feedback history)
and `--against` (the `--no-history` run of the same rows), and reports the relative change
Δ = (with − without) / without of the two means, as Table 2 does (e.g. 3.264 -> 3.497 is +7.14%).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...data.multifacet import fold_dimension
from ...errors import InputError
from ...inference.generation import GenerationBackend
from ..judges import RubricJudge, format_rubric
from ..metrics import nan_mean_rows
from ..plots import plot_score_histograms, plot_scores_by_group
from ..responses import ResponseRecord
from .base import (
    AGAINST,
    RESPONSES,
    CardMetric,
    JudgeInputs,
    JudgeProtocol,
    JudgeSettings,
    describe_scores,
    plot_score_results,
    score_results,
)

PREFERENCE_RUBRIC_CRITERIA = "Does the response align with the user's {dimension}preference: {preference}?"
"""The criteria of a rubric derived from a ground-truth preference (`preference_rubric`)."""
PREFERENCE_RUBRIC_SCORES = {
    "1": "The response ignores the preference or goes against it.",
    "2": "The response reflects the preference only slightly; most of it does not follow it.",
    "3": "The response partly follows the preference, with clear lapses.",
    "4": "The response follows the preference well, with minor lapses.",
    "5": "The response follows the preference fully, throughout.",
}
"""The five score descriptions of a derived rubric, from ignoring the preference (1) to following it fully (5)."""


def preference_rubric(preference: str, dimension: str | None = None) -> list[dict[str, Any]]:
    """A one-item Multifaceted-Bench rubric from a ground-truth preference: the criteria
    `PREFERENCE_RUBRIC_CRITERIA` ("Does the response align with the user's <dimension> preference: <preference>?")
    with the score descriptions `PREFERENCE_RUBRIC_SCORES`.

    Args:
        preference (`str`): The preference text (MultiFacet `preference`).
        dimension (`str`, *optional*): Its dimension (`background_knowledge` reads "background knowledge").

    Returns:
        `list[dict]`: `[{"criteria": str, "score_descriptions": {"1": str, ..., "5": str}}]`.
    """
    named = f"{dimension.replace('_', ' ')} " if dimension else ""
    criteria = PREFERENCE_RUBRIC_CRITERIA.format(dimension=named, preference=preference.strip())
    return [{"criteria": criteria, "score_descriptions": dict(PREFERENCE_RUBRIC_SCORES)}]


def _record_rubric(record: ResponseRecord, at: str) -> list[dict[str, Any]] | None:
    """The record's own rubric items (a list, one item, or either as JSON text), checked; `None` when it has none."""
    rubric = record.rubric
    if rubric is None or rubric == "" or rubric == []:
        return None
    if isinstance(rubric, str):
        try:
            rubric = json.loads(rubric)
        except json.JSONDecodeError:
            raise InputError(f"{at}: its rubric is text that is not a JSON rubric: {rubric[:80]!r}") from None
    items = [rubric] if isinstance(rubric, Mapping) else rubric
    if not isinstance(items, list) or not items:
        raise InputError(f"{at}: its rubric must be a list of {{criteria, score_descriptions}} items.")
    for item in items:
        try:
            format_rubric(item)
        except InputError as error:
            raise InputError(f"{at}: {error}") from None
    return items


class MultifacetRubricProtocol(JudgeProtocol):
    """Multifaceted-Bench rubric grading per dimension, the counterfactual paper's Table 3 (see the module
    docstring).

    Args:
        derive_rubrics (`bool`, *optional*, defaults to `True`): Derive a rubric from the row's preference when it
            has none (`preference_rubric`); `False` refuses such rows.
    """

    name = "multifacet-rubric"
    paper = "the counterfactual paper, Table 3 (Multifaceted-Bench rubrics)"
    against = "optional"
    by_dimension = True
    judge_class = RubricJudge

    def __init__(self, derive_rubrics: bool = True) -> None:
        self.derive_rubrics = derive_rubrics

    def options(self) -> dict[str, Any]:
        return {
            "derive_rubrics": self.derive_rubrics,
            "derived_rubric": preference_rubric("<preference>", "<dimension>")[0],
        }

    def selected(self, inputs: JudgeInputs) -> list[int]:
        """The positions of the records to grade (every one here)."""
        return list(range(len(inputs.responses)))

    def _grading(self, record: ResponseRecord, at: str) -> dict[str, Any]:
        """A record's rubric and reference answer, with where each came from."""
        rubric, source = _record_rubric(record, at), "record"
        if rubric is None:
            preference = (record.persona or {}).get("preference")
            if not self.derive_rubrics:
                raise InputError(f"{at}: no rubric; drop --no-derive-rubrics to derive one from its preference.")
            if not (isinstance(preference, str) and preference.strip()):
                raise InputError(f"{at}: no rubric and no ground-truth preference to derive one from.")
            rubric, source = preference_rubric(preference, record.persona.get("dimension")), "derived"
        if record.reference_answer:
            reference, reference_source = record.reference_answer, "reference_answer"
        elif (record.reference or {}).get("chosen"):
            reference, reference_source = record.reference["chosen"], "reference.chosen"
        else:
            reference, reference_source = None, "none"
        return {
            "rubric": rubric,
            "rubric_source": source,
            "reference": reference,
            "reference_source": reference_source,
        }

    def gradings(self, inputs: JudgeInputs) -> list[tuple[int, dict[str, Any]]]:
        """The records to grade (`selected`), each with its rubric and reference answer and where they came from.

        Raises:
            `InputError`: If a record's rubric is malformed, or it has none and none can or may be derived.
        """
        return [(i, self._grading(inputs.responses[i], inputs.names(i))) for i in self.selected(inputs)]

    def check(self, inputs: JudgeInputs) -> None:
        """Also: every graded row has a rubric (its own, well formed, or derivable from its preference)."""
        super().check(inputs)
        self.gradings(inputs)

    def judge(self, inputs: JudgeInputs, backend: GenerationBackend, settings: JudgeSettings) -> list[dict[str, Any]]:
        self.check(inputs)
        pairs = self.gradings(inputs)
        selected, gradings = [index for index, _ in pairs], [grading for _, grading in pairs]
        systems = {RESPONSES: inputs.responses, **({AGAINST: inputs.against} if inputs.against else {})}
        k = len(systems)
        report = RubricJudge(backend, **settings.judge_kwargs()).judge(
            [inputs.responses[i].prompt for i in selected] * k,
            [records[i].response for records in systems.values() for i in selected],
            [g["rubric"] for g in gradings] * k,
            [g["reference"] for g in gradings] * k,
        )
        labels = {key: system.label for key, system in inputs.systems.items()}
        n = len(selected)
        judgments = []
        for position, (index, grading) in enumerate(zip(selected, gradings, strict=True)):
            record = inputs.responses[index]
            slots = {system: s * n + position for s, system in enumerate(systems)}
            calls = [
                {"system": system, "criteria": item["criteria"], "output": output, "score": score}
                for system, slot in slots.items()
                for item, output, score in zip(
                    grading["rubric"], report.outputs[slot], report.item_scores[slot], strict=True
                )
            ]
            judgments.append(
                {
                    "id": record.id,
                    "row": record.row,
                    "protocol": self.name,
                    "systems": labels,
                    "dimension": (record.persona or {}).get("dimension"),
                    "rubric_source": grading["rubric_source"],
                    "reference_answer_source": grading["reference_source"],
                    "calls": calls,
                    "scores": {system: report.scores[slot] for system, slot in slots.items()},
                    "unparsable": any(call["score"] is None for call in calls),
                }
            )
        return judgments

    def summarize(
        self, judgments: Sequence[Mapping[str, Any]], inputs: JudgeInputs, settings: JudgeSettings
    ) -> dict[str, Any]:
        """Per system the mean rubric score (of each response's mean over its rubric items), spread, bootstrap interval
        and histogram, overall and per dimension; with two systems their difference; and how many rubrics were derived
        and where the reference answers came from."""
        systems = list(judgments[0]["scores"]) if judgments else [RESPONSES]
        results = score_results(judgments, systems, settings, by_dimension=self.by_dimension)
        results["rubric_sources"] = dict(Counter(item["rubric_source"] for item in judgments))
        results["num_rubrics_derived"] = results["rubric_sources"].get("derived", 0)
        results["reference_answer_sources"] = dict(Counter(item["reference_answer_source"] for item in judgments))
        return results

    def describe(self, results: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
        lines = describe_scores("rubric score", results["overall"], labels)
        for dimension, stats in results.get("per_dimension", {}).items():
            lines += describe_scores(f"  {dimension}", stats, labels)
        lines.append(
            f"rubrics: {results['num_rubrics_derived']} derived from the preference, "
            f"{results['rubric_sources'].get('record', 0)} from the rows"
        )
        return lines

    def plot(self, results: Mapping[str, Any], folder: Path, labels: Mapping[str, str]) -> list[str]:
        return plot_score_results(results, folder, labels, "per_dimension.png", "Rubric score per dimension (1-5)")

    def card_metrics(self, results: Mapping[str, Any]) -> list[CardMetric]:
        metrics = []
        for group, stats in [("overall", results["overall"]), *results.get("per_dimension", {}).items()]:
            mean = stats[RESPONSES]["mean"]
            if mean is not None:
                config = None if group == "overall" else group
                name = "rubric score (1-5)" + ("" if config is None else f", {group.replace('_', ' ')}")
                metrics.append(CardMetric("rubric_score", name, mean, config))
        return metrics


def relative_change(with_history: float | None, without_history: float | None) -> float | None:
    """Δ = (with − without) / without, the counterfactual paper's Table 2 "Δ score" (a fraction: 0.0714 is +7.14%);
    `None` when either is missing or `without` is 0."""
    if with_history is None or without_history is None or without_history == 0:
        return None
    return (with_history - without_history) / without_history


class StyleScoreProtocol(MultifacetRubricProtocol):
    """The counterfactual paper's Table 2: the rubric score on one dimension with the feedback history
    (`--responses`) and without it (`--against`, the `--no-history` run), and the relative change (see the module
    docstring).

    Args:
        dimension (`str`, *optional*, defaults to `"style"`): The dimension whose rows are graded, matched after
            folding case, spaces, hyphens and underscores (`fold_dimension`: `Background-Knowledge` is
            `background_knowledge`).
        derive_rubrics (`bool`, *optional*, defaults to `True`): As `MultifacetRubricProtocol`.
    """

    name = "style-score"
    paper = "the counterfactual paper, Table 2 (with vs without the feedback history)"
    against = "required"
    by_dimension = False

    def __init__(self, dimension: str = "style", derive_rubrics: bool = True) -> None:
        super().__init__(derive_rubrics)
        self.dimension = fold_dimension(dimension)  # `Background-Knowledge` is the rows' `background_knowledge`

    def options(self) -> dict[str, Any]:
        return {"dimension": self.dimension, **super().options()}

    def check(self, inputs: JudgeInputs) -> None:
        """Also: `--responses` must be a run with the history and `--against` one without (by their
        `generation.json`, when it says)."""
        super().check(inputs)
        for key, wanted in ((RESPONSES, False), (AGAINST, True)):
            system = inputs.systems[key]
            flag = system.generation.get("no_history")
            if flag is not None and bool(flag) != wanted:
                raise InputError(
                    f"--{key} {system.folder} was generated {'without' if flag else 'with'} the history, per its "
                    "generation.json; style-score compares --responses (with the history) against --against (the "
                    "--no-history run of the same rows)."
                )

    def on_dimension(self, record: ResponseRecord) -> bool:
        """Whether a record's `persona.dimension` is this protocol's, names folded (`fold_dimension`: case, spaces,
        hyphens and underscores)."""
        dimension = (record.persona or {}).get("dimension")
        return isinstance(dimension, str) and fold_dimension(dimension) == self.dimension

    def selected(self, inputs: JudgeInputs) -> list[int]:
        """The records on the protocol's dimension.

        Raises:
            `InputError`: If there is none: rows without any dimension (AlignX rows) said plainly, else the
                dimensions the rows have.
        """
        chosen = [i for i, record in enumerate(inputs.responses) if self.on_dimension(record)]
        if chosen:
            return chosen
        folder = inputs.systems[RESPONSES].folder
        present = sorted({d for r in inputs.responses if isinstance(d := (r.persona or {}).get("dimension"), str)})
        if not present:
            raise InputError(
                f"style-score needs rows with a MultiFacet dimension; the rows of --responses {folder} have none "
                "(AlignX rows carry no dimension): it grades counterfactual MultiFacet responses (personalign "
                "build-dataset multifacet-cf)."
            )
        raise InputError(
            f"no row of --responses {folder} is on the {self.dimension!r} dimension (its rows' dimensions: "
            f"{', '.join(present)}); pick one with --dimension."
        )

    def summarize(
        self, judgments: Sequence[Mapping[str, Any]], inputs: JudgeInputs, settings: JudgeSettings
    ) -> dict[str, Any]:
        """`with_history` and `without_history` (`score_statistics` of `--responses` and `--against`), their
        `difference`, `relative_change` Δ = (with − without) / without with a paired bootstrap interval, the rubric
        and reference-answer sources, and the rows left out per dimension."""
        results = super().summarize(judgments, inputs, settings)
        overall = results.pop("overall")
        with_scores = np.array(
            [np.nan if i["scores"][RESPONSES] is None else i["scores"][RESPONSES] for i in judgments]
        )
        without = np.array([np.nan if i["scores"][AGAINST] is None else i["scores"][AGAINST] for i in judgments])

        def change(rows: np.ndarray) -> np.ndarray:
            a, b = nan_mean_rows(with_scores, rows), nan_mean_rows(without, rows)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(b != 0, (a - b) / b, np.nan)

        left_out = dict(
            Counter(str((r.persona or {}).get("dimension")) for r in inputs.responses if not self.on_dimension(r))
        )
        return {
            "dimension": self.dimension,
            "with_history": overall[RESPONSES],
            "without_history": overall[AGAINST],
            "difference": overall["difference"],
            "relative_change": relative_change(overall[RESPONSES]["mean"], overall[AGAINST]["mean"]),
            "relative_change_ci": settings.interval(change, len(judgments)),
            "num_rows_left_out": sum(left_out.values()),
            "rows_left_out_by_dimension": left_out,
            **{key: value for key, value in results.items()},
        }

    def describe(self, results: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
        change, ci = results["relative_change"], results["relative_change_ci"]
        shown = "n/a" if change is None else f"{100 * change:+.2f}%"
        if change is not None and ci["low"] is not None:
            shown += f" [{100 * ci['low']:+.2f}%, {100 * ci['high']:+.2f}%]"
        stats = {"with history": results["with_history"], "without": results["without_history"]}
        lines = describe_scores(f"{results['dimension']} score", stats, {k: k for k in stats})
        lines.append(
            f"relative change with history: {shown}; {results['num_rows_left_out']} rows of other dimensions left out"
        )
        return lines

    def plot(self, results: Mapping[str, Any], folder: Path, labels: Mapping[str, str]) -> list[str]:
        change = results["relative_change"]
        shown = "n/a" if change is None else f"{100 * change:+.2f}%"
        plot_scores_by_group(
            {results["dimension"]: {"with history": results["with_history"], "without": results["without_history"]}},
            folder / "with_without.png",
            title=f"{results['dimension'].replace('_', ' ').capitalize()} score with vs without history (Δ {shown})",
        )
        plot_score_histograms(
            {"with history": results["with_history"]["histogram"], "without": results["without_history"]["histogram"]},
            folder / "score_histogram.png",
        )
        return ["with_without.png", "score_histogram.png"]

    def card_metrics(self, results: Mapping[str, Any]) -> list[CardMetric]:
        dimension = results["dimension"]
        label = dimension.replace("_", " ")
        values = [
            ("score_with_history", f"{label} score with history (1-5)", results["with_history"]["mean"]),
            ("score_without_history", f"{label} score without history (1-5)", results["without_history"]["mean"]),
            ("score_relative_change", f"{label} score relative change with history", results["relative_change"]),
        ]
        return [CardMetric(t, n, v, dimension) for t, n, v in values if v is not None]
