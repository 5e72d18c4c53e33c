"""The LLM judges of personalized responses: `LLMJudge` (the base) and one judge per paper's evaluation.

- `PersonaTailoringJudge`: how tailored a response is to a user's profile and personalities, 1-5 (the DPORE paper,
  Appendix A, Figure 3; the judge outputs only the score, decoded greedily).
- `PairwiseJudge`: which of two responses better matches a user's behaviour history, ties allowed, response order
  randomized under a seed (the AlignX paper, Appendix A.3 "GPT-4 Judgment Prompt"); reports Win/(Win+Lose) as AlignX
  does, with the win / tie / lose counts.
- `RubricJudge`: Multifaceted-Bench's rubric grading, Prometheus style (absolute grading, 1-5, with the reference
  answer): one call per rubric item, then the item scores averaged.

Every judge takes any `personalign.inference.generation.GenerationBackend`, renders its prompts with
`personalign.evaluation.judges.prompts`, reads the outputs with `personalign.evaluation.judges.parsing`, and returns a
report of `personalign.evaluation.judges.reports` holding the parsed scores or verdicts, the raw judge outputs, and
how many outputs could not be parsed (these are left out of the averages and the win rate, never guessed).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...errors import InputError
from ...inference.generation import GenerationBackend, Messages
from ...personas.persona import Persona
from ...row_names import RowNames
from .parsing import parse_pairwise_verdict, parse_score
from .prompts import (
    PROMETHEUS_SYSTEM_PROMPT,
    pairwise_judge_messages,
    persona_tailoring_messages,
    rubric_judge_messages,
)
from .reports import Outcome, PairwiseReport, ScoreReport, mean_or_none

logger = logging.getLogger(__name__)


def _same_length(**columns: Sequence[Any]) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"The inputs differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _broadcast(value: Any, n: int, name: str) -> list[Any]:
    if isinstance(value, (str, Persona)) or value is None:
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise InputError(f"{name} has {len(values)} entries for {n} responses.")
    return values


@dataclass
class LLMJudge:
    """The base of every LLM judge: a generation backend and the decoding settings, shared by
    `PersonaTailoringJudge`, `PairwiseJudge`, `RubricJudge` and the counterfactual paper's `FeedbackRewardJudge`
    (`personalign.reward.evaluation`). A subclass renders its prompts, calls `generate`, parses the outputs and
    reports the unparsable ones with `warn_unparsable`.

    Args:
        backend (`GenerationBackend`): The judge model (any `personalign.inference.generation` backend).
        max_new_tokens (`int`, *optional*, defaults to `64`): Tokens per judge output.
        temperature (`float`, *optional*, defaults to `0.0`): Sampling temperature (`0.0`: greedy).
        seed (`int`, *optional*, defaults to `0`): Sampling seed (and the seed of any order randomization).
        generation_kwargs (`dict`, *optional*): More arguments of `backend.generate`.
        report_unparsable (`bool`, *optional*, defaults to `True`): Log a warning when outputs cannot be parsed
            (`warn_unparsable`); a caller that reports them itself, in its own words, turns it off (`personalign
            judge` names the protocol and says how many came from the call cache).
    """

    backend: GenerationBackend
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    generation_kwargs: dict[str, Any] = field(default_factory=dict)
    report_unparsable: bool = True
    name: ClassVar[str] = "judge"

    @staticmethod
    def parse_output(output: str) -> Any | None:
        """The verdict or score this judge reads from one raw output, `None` when it cannot be read (an unparsable
        output). Each judge reads its own format; `personalign judge --retry-unparsable` asks again the cached
        calls whose output this returns `None` for.

        Raises:
            `NotImplementedError`: On the base class.
        """
        raise NotImplementedError("a judge names the parser of its outputs (parse_output)")

    def generate(self, prompts: list[Messages]) -> list[str]:
        """One judge output per prompt, with this judge's decoding settings.

        Args:
            prompts (`list[Messages]`): Chat prompts.

        Returns:
            `list[str]`: The outputs, in prompt order.

        Raises:
            `RuntimeError`: If the backend returns another number of outputs than prompts.
        """
        outputs = self.backend.generate(
            prompts,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
            **self.generation_kwargs,
        )
        if len(outputs) != len(prompts):
            raise RuntimeError(f"{self.backend.name} returned {len(outputs)} outputs for {len(prompts)} prompts.")
        return outputs

    def warn_unparsable(self, unparsable: int, total: int) -> None:
        """Log a warning when some outputs could not be parsed (they are counted in the report, never guessed).

        Args:
            unparsable (`int`): Outputs without a score or verdict.
            total (`int`): Outputs read.
        """
        if unparsable and self.report_unparsable:
            logger.warning(
                "%s: %d of %d judge outputs could not be parsed; they are counted, not scored.",
                self.name,
                unparsable,
                total,
            )


@dataclass
class PersonaTailoringJudge(LLMJudge):
    """The DPORE paper's persona-tailoring judge: a 1-5 score of how tailored a response is to the user's profile and
    personalities (`PERSONA_TAILORING_PROMPT`, greedy decoding as in the DPORE paper).

    Args:
        backend (`GenerationBackend`): The judge model.
        max_new_tokens (`int`, *optional*, defaults to `64`): The judge is asked for the score only.
        temperature (`float`, *optional*, defaults to `0.0`): The DPORE paper sets 0.
        seed (`int`, *optional*, defaults to `0`): Sampling seed (when `temperature > 0`).
        generation_kwargs (`dict`, *optional*): More arguments of `backend.generate`.

    Example:

    ```python
    >>> judge = PersonaTailoringJudge(load_backend("openai:gpt-4o-mini"))
    >>> report = judge.judge(responses, messages=user_messages, profiles=profiles, personalities=personalities)
    >>> report.mean, report.num_unparsable
    ```
    """

    name = "persona_tailoring"
    parse_output = staticmethod(parse_score)

    def judge(
        self,
        responses: Sequence[str],
        messages: Sequence[str],
        profiles: str | Sequence[str],
        personalities: str | Sequence[str],
    ) -> ScoreReport:
        """Score each response.

        Args:
            responses (`Sequence[str]`): The model responses to judge.
            messages (`Sequence[str]`): The user message each response answers.
            profiles (`str` or `Sequence[str]`): The user's profile, per response (or one for all).
            personalities (`str` or `Sequence[str]`): The user's personalities, per response (or one for all).

        Returns:
            `ScoreReport`
        """
        n = _same_length(responses=responses, messages=messages)
        profiles, personalities = _broadcast(profiles, n, "profiles"), _broadcast(personalities, n, "personalities")
        prompts = [
            persona_tailoring_messages(response, message, profile, persona)
            for response, message, profile, persona in zip(responses, messages, profiles, personalities, strict=True)
        ]
        outputs = self.generate(prompts)
        scores = [self.parse_output(output) for output in outputs]
        report = ScoreReport(
            judge=self.name,
            backend=self.backend.name,
            scores=[None if s is None else float(s) for s in scores],
            outputs=[[output] for output in outputs],
            item_scores=[[score] for score in scores],
        )
        self.warn_unparsable(report.num_unparsable, report.num_judgments)
        return report


@dataclass
class PairwiseJudge(LLMJudge):
    """The AlignX paper's pairwise judge: given the user's behaviour history and a query, which of two responses better
    matches the user, ties allowed (`PAIRWISE_JUDGE_PROMPT`).

    Each pair is shown in a random order drawn from `random.Random(seed)` (one coin per pair, in input order), so a
    run is reproducible and position bias averages out; the verdicts are mapped back to the model's win / tie / lose.

    Args:
        backend (`GenerationBackend`): The judge model.
        max_new_tokens (`int`, *optional*, defaults to `128`): Room for the JSON answer (and some reasoning).
        temperature (`float`, *optional*, defaults to `0.0`): Greedy by default.
        seed (`int`, *optional*, defaults to `0`): Seeds the order randomization and the sampling.
        randomize_order (`bool`, *optional*, defaults to `True`): If `False`, the model's response is always A.
        generation_kwargs (`dict`, *optional*): More arguments of `backend.generate`.
    """

    max_new_tokens: int = 128
    randomize_order: bool = True
    name = "pairwise_win_rate"
    parse_output = staticmethod(parse_pairwise_verdict)

    def judge(
        self,
        queries: Sequence[str],
        responses: Sequence[str],
        baseline_responses: Sequence[str],
        histories: str | Persona | Sequence[str | Persona],
    ) -> PairwiseReport:
        """Compare each response with the baseline's response to the same query.

        Args:
            queries (`Sequence[str]`): The queries.
            responses (`Sequence[str]`): The evaluated model's responses ("win" means these are better).
            baseline_responses (`Sequence[str]`): The other model's responses.
            histories (`str`, `Persona` or a sequence of them): The user's behaviour history per query (or one for
                all); a `Persona` is rendered with `render_history`.

        Returns:
            `PairwiseReport`
        """
        n = _same_length(queries=queries, responses=responses, baseline_responses=baseline_responses)
        histories = _broadcast(histories, n, "histories")
        rng = random.Random(self.seed)
        swapped = [rng.random() < 0.5 if self.randomize_order else False for _ in range(n)]
        prompts = []
        for query, response, baseline, history, swap in zip(
            queries, responses, baseline_responses, histories, swapped, strict=True
        ):
            first, second = (baseline, response) if swap else (response, baseline)
            prompts.append(pairwise_judge_messages(history, query, first, second))
        outputs = self.generate(prompts)
        verdicts = [self.parse_output(output) for output in outputs]
        outcomes: list[Outcome | None] = []
        for verdict, swap in zip(verdicts, swapped, strict=True):
            if verdict is None or verdict == "tie":
                outcomes.append(verdict)  # type: ignore[arg-type]
            else:
                model_position = "B" if swap else "A"
                outcomes.append("win" if verdict == model_position else "lose")
        report = PairwiseReport(self.name, self.backend.name, outcomes, verdicts, swapped, outputs)
        self.warn_unparsable(report.num_unparsable, report.num_examples)
        return report


def _rubric_items(rubric: Any) -> list[Mapping[str, Any]]:
    items = [rubric] if isinstance(rubric, Mapping) else list(rubric or [])
    if not items:
        raise InputError("Every response needs at least one rubric item.")
    return items


@dataclass
class RubricJudge(LLMJudge):
    """Multifaceted-Bench's rubric judge, Prometheus style: each rubric item is graded 1-5 in its own call
    (`PROMETHEUS_ABSOLUTE_PROMPT`, with the reference answer when given), and a response's score is the mean of its
    parsed item scores. Unparsable items are counted and left out of that mean; a response with none parsed has no
    score and is left out of the report's mean.

    Args:
        backend (`GenerationBackend`): The judge model.
        max_new_tokens (`int`, *optional*, defaults to `512`): Room for the feedback before `[RESULT] n`.
        temperature (`float`, *optional*, defaults to `0.0`): Greedy by default.
        seed (`int`, *optional*, defaults to `0`): Sampling seed.
        system_prompt (`str`, *optional*, defaults to `PROMETHEUS_SYSTEM_PROMPT`): `None` sends no system message.
        generation_kwargs (`dict`, *optional*): More arguments of `backend.generate`.
    """

    max_new_tokens: int = 512
    system_prompt: str | None = PROMETHEUS_SYSTEM_PROMPT
    name = "multifaceted_rubric"
    parse_output = staticmethod(parse_score)

    def judge(
        self,
        instructions: Sequence[str],
        responses: Sequence[str],
        rubrics: Sequence[Mapping[str, Any] | Sequence[Mapping[str, Any]]],
        reference_answers: Sequence[str | None] | None = None,
    ) -> ScoreReport:
        """Grade each response on each of its rubric items.

        Args:
            instructions (`Sequence[str]`): The instructions (Multifaceted-Bench `prompt`).
            responses (`Sequence[str]`): The responses to grade.
            rubrics (`Sequence`): Per response, a rubric item or a list of them (Multifaceted-Bench `rubric`:
                `{"criteria": str, "score_descriptions": {"1".."5": str}}`).
            reference_answers (`Sequence[str]`, *optional*): Per response, the answer that scores 5.

        Returns:
            `ScoreReport`: with `item_scores` per rubric item.
        """
        n = _same_length(instructions=instructions, responses=responses, rubrics=rubrics)
        references = _broadcast(reference_answers, n, "reference_answers")
        prompts, owners = [], []
        for index, (instruction, response, rubric, reference) in enumerate(
            zip(instructions, responses, rubrics, references, strict=True)
        ):
            for item in _rubric_items(rubric):
                prompts.append(rubric_judge_messages(instruction, response, item, reference, self.system_prompt))
                owners.append(index)
        outputs = self.generate(prompts)
        per_response_outputs: list[list[str]] = [[] for _ in range(n)]
        item_scores: list[list[int | None]] = [[] for _ in range(n)]
        for owner, output in zip(owners, outputs, strict=True):
            per_response_outputs[owner].append(output)
            item_scores[owner].append(self.parse_output(output))
        scores = [mean_or_none(s for s in items if s is not None) for items in item_scores]
        report = ScoreReport(self.name, self.backend.name, scores, per_response_outputs, item_scores)
        self.warn_unparsable(report.num_unparsable, report.num_judgments)
        return report

    def judge_rows(
        self,
        rows: Iterable[Mapping[str, Any]],
        responses: Sequence[str],
        names: Callable[[int], str] | None = None,
    ) -> ScoreReport:
        """Grade responses to Multifaceted-Bench rows (`prompt`, `reference_answer`, `rubric` or `rubrics`).

        Args:
            rows (`Iterable[Mapping]`): The benchmark rows, e.g. a `datasets.Dataset`.
            responses (`Sequence[str]`): One response per row, in order.
            names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a
                `personalign.row_names.RowNames` (a JSON-lines row by its 1-based line, any other by its 0-based
                row) or any callable; by default `"rows, row <i> (0-based)"`.

        Raises:
            `InputError`: If a row has no rubric (naming it).
        """
        rows = list(rows)
        names = names or RowNames.of("rows")
        rubrics = []
        for index, row in enumerate(rows):
            rubric = row.get("rubric", row.get("rubrics"))
            if rubric is None:
                raise InputError(f"{names(index)}: no 'rubric' (or 'rubrics') column.")
            rubrics.append(rubric)
        return self.judge(
            [row["prompt"] for row in rows],
            responses,
            rubrics,
            [row.get("reference_answer") for row in rows],
        )
