"""`persona-tailoring`: the DPORE paper's 1-5 score of how tailored a response is to the user's profile and
personalities (Appendix A, Figure 3; `PersonaTailoringJudge`, the score alone, greedy decoding).

The prompt needs a profile and personalities. Rows of the DPORE paper's (ALOE-style) data carry both. Other rows fill
them from what their persona holds (C2's `persona`), in this order:

- profile: `profile` (AlignX PBA profile, ALOE profile), else `preference` (MultiFacet's ground-truth preference),
  else `ground_truth_persona` (AlignX benchmark persona description), else `history` (the behaviour history as text);
- personalities: `personality`, else the words `"not given"` (the prompt's field is kept, not dropped, so the
  paper's instruction is sent unchanged).

A row with none of the profile fields is an error naming it. Each judgment records which fields were used, and the
summary counts them.

With `--against`, both systems are scored (one call per response) and the summary holds both means and their
difference (`--responses` minus `--against`) with a paired bootstrap interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...inference.generation import GenerationBackend
from ..judges import PersonaTailoringJudge
from .base import (
    AGAINST,
    RESPONSES,
    CardMetric,
    JudgeInputs,
    JudgeProtocol,
    JudgeSettings,
    describe_scores,
    persona_text,
    plot_score_results,
    score_results,
)

PROFILE_FIELDS = ("profile", "preference", "ground_truth_persona", "history")
"""Where the judge's profile comes from, in order of preference."""
NO_PERSONALITY = "not given"
"""The personalities shown to the judge for a row without `personality`."""


class PersonaTailoringProtocol(JudgeProtocol):
    """The DPORE paper's persona-tailoring score (see the module docstring)."""

    name = "persona-tailoring"
    paper = "the DPORE paper, Appendix A (Figure 3)"
    against = "optional"
    judge_class = PersonaTailoringJudge

    def options(self) -> dict[str, Any]:
        return {"profile_fields": list(PROFILE_FIELDS), "missing_personality": NO_PERSONALITY}

    def profiles(self, inputs: JudgeInputs) -> list[tuple[str, str]]:
        """Per record, the profile the judge reads and the field it came from (`PROFILE_FIELDS`).

        Raises:
            `InputError`: If a record has none of them, naming it.
        """
        return [
            persona_text(record, PROFILE_FIELDS, inputs.names(index), "a profile")
            for index, record in enumerate(inputs.responses)
        ]

    def check(self, inputs: JudgeInputs) -> None:
        """Also: every row has a profile text (`PROFILE_FIELDS`)."""
        super().check(inputs)
        self.profiles(inputs)

    def judge(self, inputs: JudgeInputs, backend: GenerationBackend, settings: JudgeSettings) -> list[dict[str, Any]]:
        self.check(inputs)
        profiles = self.profiles(inputs)
        personalities = [
            (record.persona.get("personality"), "personality")
            if (record.persona.get("personality") or "").strip()
            else (NO_PERSONALITY, None)
            for record in inputs.responses
        ]
        systems = {RESPONSES: inputs.responses, **({AGAINST: inputs.against} if inputs.against else {})}
        responses = [record.response for records in systems.values() for record in records]
        k = len(systems)
        report = PersonaTailoringJudge(backend, **settings.judge_kwargs()).judge(
            responses,
            [record.prompt for record in inputs.responses] * k,
            [text for text, _ in profiles] * k,
            [text for text, _ in personalities] * k,
        )
        labels = {key: system.label for key, system in inputs.systems.items()}
        n = len(inputs.responses)
        judgments = []
        for index, record in enumerate(inputs.responses):
            positions = {system: s * n + index for s, system in enumerate(systems)}
            calls = [
                {"system": system, "output": report.outputs[p][0], "score": report.item_scores[p][0]}
                for system, p in positions.items()
            ]
            judgments.append(
                {
                    "id": record.id,
                    "row": record.row,
                    "protocol": self.name,
                    "systems": labels,
                    "dimension": (record.persona or {}).get("dimension"),
                    "persona_fields": {"profile": profiles[index][1], "personalities": personalities[index][1]},
                    "calls": calls,
                    "scores": {system: report.scores[p] for system, p in positions.items()},
                    "unparsable": any(call["score"] is None for call in calls),
                }
            )
        return judgments

    def summarize(
        self, judgments: Sequence[Mapping[str, Any]], inputs: JudgeInputs, settings: JudgeSettings
    ) -> dict[str, Any]:
        """Per system: mean, spread, bootstrap interval and histogram of the 1-5 scores (`score_statistics`), overall
        and per dimension when rows have one; with two systems their difference; and how many rows took their profile
        / personalities from which persona field (`"none"`: the personalities were not given)."""
        systems = list(judgments[0]["scores"]) if judgments else [RESPONSES]
        results = score_results(judgments, systems, settings, by_dimension=True)
        results["persona_fields"] = {
            part: dict(Counter(item["persona_fields"][part] or "none" for item in judgments))
            for part in ("profile", "personalities")
        }
        return results

    def describe(self, results: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
        return describe_scores("persona-tailoring score", results["overall"], labels)

    def plot(self, results: Mapping[str, Any], folder: Path, labels: Mapping[str, str]) -> list[str]:
        return plot_score_results(results, folder, labels, "scores.png", "Persona-tailoring score (DPORE paper judge)")

    def card_metrics(self, results: Mapping[str, Any]) -> list[CardMetric]:
        mean = results["overall"][RESPONSES]["mean"]
        return [] if mean is None else [CardMetric("persona_tailoring_score", "persona tailoring score (1-5)", mean)]
