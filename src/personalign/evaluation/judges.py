"""LLM judges of personalized responses, with the papers' prompts, tolerant parsing and counted failures.

- `PersonaTailoringJudge`: how tailored a response is to a user's profile and personalities, 1-5 (the DPORE paper,
  Appendix A, Figure 3; the judge outputs only the score, decoded greedily).
- `PairwiseJudge`: which of two responses better matches a user's behaviour history, ties allowed, response order
  randomized under a seed (the AlignX paper, Appendix A.3 "GPT-4 Judgment Prompt"); reports Win/(Win+Lose) as AlignX
  does, with the win / tie / lose counts.
- `RubricJudge`: Multifaceted-Bench's rubric grading, Prometheus style (absolute grading, 1-5, with the reference
  answer): one call per rubric item, then the item scores averaged.

Every judge takes any `personalign.inference.generation.GenerationBackend` and returns a report holding the parsed scores or
verdicts, the raw judge outputs, and how many outputs could not be parsed (these are left out of the averages and
the win rate, never guessed).

The parsers are pure functions (`parse_score`, `parse_pairwise_verdict`), with the rules in their docstrings.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..inference.generation import GenerationBackend, Messages
from ..personas.persona import Persona
from ..personas.prompts import render_history

logger = logging.getLogger(__name__)

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "tie", "lose"]

# ------------------------------------------------------------------------------------------------------- prompts
PERSONA_TAILORING_PROMPT = """You will be given a user's profile, personalities, and a message that the user sent to a chatbot. You will also be given a response from a model. Your task is to carefully evaluate how much the response is tailored to the user's potential preferences based on the user's profile and personalities.

Here is the user's profile: {profile}

Here is the user's personalities: {personalities}

Here is the user's message: {message}

Here is the model's response: {response}

You should follow the criteria for evaluation:
1. Is the conversational style of the message tailored to the user's personalities?
2. Is the content or topic relevant to the user's profile?
3. Is response human-like, engaging, and concise?

You should give a score to the response ranging from 1-5, where 1 represents the least tailored to the user and 5 represents the most user-aligned. Please do not include any analysis about how you evaluate the responses. Only output the score from 1-5."""
"""The DPORE paper's evaluation instruction (Appendix A, Figure 3), sent as one user message. Fields: `{profile}`,
`{personalities}`, `{message}`, `{response}`."""

PAIRWISE_JUDGE_PROMPT = """The given user behavior history reflects the user's preferences. For a new query, which response better matches the user's needs and preferences, allowing for a tie between the two responses?

### User Behavior History
{history}

### Query
{query}

### Response A
{response_a}

### Response B
{response_b}

Now, please output your choice below in a JSON format by filling in the placeholders in []:

{"choice": "[Response A/Response B/Tie]"}"""
"""The AlignX paper's GPT-4 judgment prompt (Appendix A.3), sent as one user message. The paper's text keeps the
section titles but not their markup; they are rendered as `###` headings here. Fields: `{history}`, `{query}`,
`{response_a}`, `{response_b}`."""

PROMETHEUS_SYSTEM_PROMPT = (
    "You are a fair judge assistant tasked with providing clear, objective feedback based on specific criteria, "
    "ensuring each assessment reflects the absolute standards set for performance."
)
"""Prometheus' system prompt for absolute grading."""

PROMETHEUS_ABSOLUTE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Reference Answer (Score 5):
{reference_answer}

###Score Rubrics:
{rubric}

###Feedback: """
"""Prometheus' absolute-grading prompt with a reference answer (Multifaceted-Bench rows carry one). Fields:
`{instruction}`, `{response}`, `{reference_answer}`, `{rubric}` (see `format_rubric`)."""

PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE = PROMETHEUS_ABSOLUTE_PROMPT.replace(
    " a reference answer that gets a score of 5,", ""
).replace("###Reference Answer (Score 5):\n{reference_answer}\n\n", "")
"""Prometheus' absolute-grading prompt without a reference answer."""

_FIELD = re.compile(r"\{(\w+)\}")


def fill_template(template: str, **fields: str) -> str:
    """Replace the `{name}` fields of `template` in one pass: braces inside the values, and braces of the template
    that are not `{word}` fields (the JSON answer format), are left alone.

    Raises:
        `KeyError`: If the template has a field that is not given.
    """
    missing = sorted(set(_FIELD.findall(template)) - set(fields))
    if missing:
        raise KeyError(f"Template fields without a value: {missing}")
    return _FIELD.sub(lambda match: str(fields[match.group(1)]), template)


def format_rubric(item: Mapping[str, Any], low: int = 1, high: int = 5) -> str:
    """A Multifaceted-Bench rubric item as Prometheus' rubric text: `[criteria]` then `Score k: description` lines.

    Args:
        item (`Mapping`): `{"criteria": str, "score_descriptions": {"1": str, ..., "5": str}}` (keys may be ints);
            Prometheus' flat form (`criteria`, `score1_description`, ... ) is accepted too.
        low (`int`, *optional*, defaults to `1`): The lowest score.
        high (`int`, *optional*, defaults to `5`): The highest score.

    Raises:
        `ValueError`: If the criteria or a score description is missing.
    """
    if not isinstance(item, Mapping) or not item.get("criteria"):
        raise ValueError(f"A rubric item needs 'criteria' and 'score_descriptions'; got {item!r:.120}")
    descriptions = item.get("score_descriptions") or {}
    lines = [f"[{item['criteria']}]"]
    for score in range(low, high + 1):
        text = descriptions.get(str(score), descriptions.get(score, item.get(f"score{score}_description")))
        if text is None:
            raise ValueError(f"Rubric item {item['criteria']!r:.80} has no description for score {score}.")
        lines.append(f"Score {score}: {text}")
    return "\n".join(lines)


def persona_tailoring_messages(response: str, message: str, profile: str, personalities: str) -> Messages:
    """The DPORE persona-tailoring judge prompt (`PERSONA_TAILORING_PROMPT`) as one user message."""
    content = fill_template(
        PERSONA_TAILORING_PROMPT, profile=profile, personalities=personalities, message=message, response=response
    )
    return [{"role": "user", "content": content}]


def pairwise_judge_messages(history: str | Persona, query: str, response_a: str, response_b: str) -> Messages:
    """The AlignX pairwise judgment prompt (`PAIRWISE_JUDGE_PROMPT`) as one user message.

    Args:
        history (`str` or `Persona`): The user's behaviour history; a `Persona` is rendered with
            `personalign.personas.render_history` (comments, pairs, then the demographic description).
        query (`str`): The new query.
        response_a (`str`): The response shown first.
        response_b (`str`): The response shown second.
    """
    history = render_history(history) if isinstance(history, Persona) else history
    content = fill_template(
        PAIRWISE_JUDGE_PROMPT, history=history.strip(), query=query, response_a=response_a, response_b=response_b
    )
    return [{"role": "user", "content": content}]


def rubric_judge_messages(
    instruction: str,
    response: str,
    rubric_item: Mapping[str, Any],
    reference_answer: str | None = None,
    system_prompt: str | None = PROMETHEUS_SYSTEM_PROMPT,
) -> Messages:
    """Prometheus' absolute-grading prompt for one rubric item (with the reference answer when there is one)."""
    fields = {"instruction": instruction, "response": response, "rubric": format_rubric(rubric_item)}
    if reference_answer:
        content = fill_template(PROMETHEUS_ABSOLUTE_PROMPT, reference_answer=reference_answer, **fields)
    else:
        content = fill_template(PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE, **fields)
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": content}]


# ------------------------------------------------------------------------------------------------------- parsing
_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
# A number (digits or a word), not glued to a word and not the start of a range ("1-5", "1 to 5").
_NUM = r"(\d+(?:\.\d+)?|(?:" + "|".join(_NUMBER_WORDS) + r"))(?!\w)(?!\s*(?:-|–|to)\s*\d)"
_MARKUP = r"[\s*_`\"'“”]*"
_SUBJECT = r"(?:it|this|this response|the response)"
# A score marker names the score explicitly; the number follows it. "[RESULT] 4", "Score: 4", "**Score:** 4/5",
# "score of 4", "Rating = 4", "I rate it 4", "[[4]]", "4/5", "4 out of 5". "Score 1: ..." (a rubric line echoed
# back) is no marker: a separator must come between the word and the number.
_SCORE_MARKERS = [
    re.compile(r"\[\s*RESULT\s*\]" + _MARKUP + r"[:=]?" + _MARKUP + _NUM, re.IGNORECASE),
    re.compile(r"\b(?:score|rating|grade|result)s?\b" + _MARKUP + r"(?:is|of|[:=\-])" + _MARKUP + _NUM, re.IGNORECASE),
    re.compile(
        r"\b(?:(?:rate|rated)\s+(?:" + _SUBJECT + r"\s+)?|(?:give|gave|assign|assigned)\s+" + _SUBJECT + r"\s+)"
        r"(?:an?\s+|as\s+)?(?:score\s+of\s+)?" + _NUM,
        re.IGNORECASE,
    ),
    re.compile(r"\[\[\s*" + _NUM + r"\s*\]\]"),
]
_FRACTION = re.compile(r"(?<![\w.])" + _NUM + r"\s*(?:/|out of)\s*(\d+)(?!\w)", re.IGNORECASE)
_RANGE = re.compile(r"\d+\s*(?:-|–|to)\s*\d+")
_ANY_FRACTION = re.compile(r"\d+(?:\.\d+)?\s*(?:/|out of)\s*\d+")
_ENUMERATION = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
_STANDALONE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w]|\.\d)")
_BARE_STRIP = " \t\r\n*_`\"'“”.!#:[]()"


def _as_score(token: str, low: int, high: int) -> int | None:
    token = token.lower()
    if token in _NUMBER_WORDS:
        value = float(_NUMBER_WORDS[token])
    else:
        try:
            value = float(token)
        except ValueError:
            return None
    if not value.is_integer() or not low <= value <= high:
        return None
    return int(value)


def parse_score(text: str | None, low: int = 1, high: int = 5) -> int | None:
    """Read an integer score in `[low, high]` from a judge's output, or `None` when there is none.

    Rules, in order (the first that yields a score decides):

    1. **Markers**: the *last* marked score in range: `[RESULT] n` (Prometheus), `Score: n` / `Rating: n` /
       `score of n` / `score is n` (markdown around the word or the number is ignored), `rate it n`, `[[n]]`,
       `n/high` and `n out of high` (a fraction with another denominator, such as `8/10` on a 1-5 scale, is
       skipped). `Score 1: ...` (a rubric line echoed back) and `score of 1-5` (a range) are not markers.
    2. **Bare answer**: the output is a single number once markup is stripped (`"4"`, `"**4**."`).
    3. **Last number**: the last standalone integer in range, not counting list numbering at a line start (`1.`,
       `2)`), ranges (`1-5`, `1 to 5`) and decimals.

    Non-integers (`4.5`) and numbers out of range are never scores; number words (`four`) count after a marker.

    Args:
        text (`str`): The judge output.
        low (`int`, *optional*, defaults to `1`): Lowest valid score.
        high (`int`, *optional*, defaults to `5`): Highest valid score.

    Returns:
        `int` or `None`
    """
    if not text:
        return None
    best: tuple[int, int] | None = None  # (end position, score) of the last marked score
    marked = [(match, match.group(1)) for pattern in _SCORE_MARKERS for match in pattern.finditer(text)]
    # An "n/d" or "n out of d" fraction is a marker only on the judge's own scale.
    marked += [(m, m.group(1)) for m in _FRACTION.finditer(text) if int(m.group(2)) == high]
    for match, token in marked:
        score = _as_score(token, low, high)
        if score is not None and (best is None or match.end() > best[0]):
            best = (match.end(), score)
    if best is not None:
        return best[1]
    bare = text.strip(_BARE_STRIP)
    if re.fullmatch(r"\d+(?:\.\d+)?", bare):
        return _as_score(bare, low, high)
    cleaned = _ENUMERATION.sub(" ", _ANY_FRACTION.sub(" ", _RANGE.sub(" ", text)))
    candidates = [_as_score(match.group(1), low, high) for match in _STANDALONE.finditer(cleaned)]
    candidates = [score for score in candidates if score is not None]
    return candidates[-1] if candidates else None


_QUOTE = "\"'“”‘’"
_JSON_CHOICE = re.compile(
    r"[" + _QUOTE + r"]?choice[" + _QUOTE + r"]?\s*:\s*[" + _QUOTE + r"]([^" + _QUOTE + r"\n]*)[" + _QUOTE + r"]",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"\[\[\s*(?:response\s+)?(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_VERDICT_PHRASES = [
    # "Choice: B", "Final verdict: **Response A**", "The answer is Tie", "Winner - B". Bare letters must be upper
    # case here ("answer is a bit long" is no verdict); after "Response" any case goes.
    re.compile(
        r"\b(?i:choice|verdict|answer|winner|decision|preference|preferred response|better response|output)\b"
        r"[\s*_`\"'“”]*(?i:is|:|=|-)?[\s*_`\"'“”]*(?:(?i:response)\s+(?P<r>[aAbB])|(?P<l>[AB])|(?P<t>(?i:tie)))\b"
    ),
    # "Response A is better", "response b is preferred", "Response B better matches"
    re.compile(
        r"\bresponse\s+(?P<r>[ab])\b[\s*_]*(?:is|was)?\s*(?:clearly\s+|slightly\s+|much\s+)?"
        r"(?:better|preferred|superior|more aligned|more suitable|the better)",
        re.IGNORECASE,
    ),
    # "I prefer Response B", "I choose response a"
    re.compile(r"\b(?:prefer|choose|chose|pick|select)s?\s+(?:the\s+)?response\s+(?P<r>[ab])\b", re.IGNORECASE),
    # "It's a tie", "This is a tie", "Tie." on a line of its own
    re.compile(r"(?:\b(?:a|is)\s+(?P<t>tie)\b|^[\s*_#`\"']*(?P<t2>tie)[\s*_`\"'.!]*$)", re.IGNORECASE | re.MULTILINE),
]
_BOLD = re.compile(r"\*\*\s*(?:response\s+)?(A|B|tie)\s*\*\*", re.IGNORECASE)
_MENTIONS = {
    "A": re.compile(r"\bresponse\s+a\b", re.I),
    "B": re.compile(r"\bresponse\s+b\b", re.I),
    "tie": re.compile(r"\btie\b", re.I),
}


def _normalize_verdict(value: str) -> Verdict | None:
    value = re.sub(r"[\s*_`\[\]().!:]+", " ", value).strip().lower()
    if "/" in value:  # the template's placeholder echoed back: "Response A/Response B/Tie"
        return None
    value = re.sub(r"^(?:response|output|assistant)\s*", "", value)
    if value in ("a", "b"):
        return value.upper()  # type: ignore[return-value]
    if value in ("tie", "c", "draw", "equal", "both", "neither"):
        return "tie"
    return None


def parse_pairwise_verdict(text: str | None) -> Verdict | None:
    """Read a pairwise verdict (`"A"`, `"B"` or `"tie"`) from a judge's output, or `None` when there is none.

    Rules, in order (the first level that yields a verdict decides; within a level, the *last* match wins, since
    judges reason first and conclude last):

    1. **JSON**: `"choice": "Response A" | "Response B" | "Tie"` (the AlignX format; any quote style, any case; also
       `"A"`, `"B"`). The placeholder echoed back (`"[Response A/Response B/Tie]"`) is no verdict.
    2. **Brackets**: `[[A]]`, `[[B]]`, `[[Tie]]`, `[[C]]` (MT-Bench's tie).
    3. **Verdict phrases**: `Choice: B`, `Final verdict: **Response A**`, `The answer is Tie`, `Response B is
       better`, `I prefer Response A`, `It's a tie`, or `Tie` alone on a line. A bare letter must be upper case
       (the article "a" is no verdict); after "Response" any case goes.
    4. **Bold**: `**A**`, `**Response B**`, `**Tie**`, only when all bold verdicts agree.
    5. **Bare answer**: the whole output, markup stripped, is `A`, `B`, `Response A`, `Response B` or `Tie`.
    6. **Single mention**: exactly one of "Response A", "Response B", "tie" is mentioned.

    Args:
        text (`str`): The judge output.

    Returns:
        `"A"`, `"B"`, `"tie"` or `None`.
    """
    if not text:
        return None
    for pattern in (_JSON_CHOICE, _BRACKETED):
        verdicts = [_normalize_verdict(m.group(1)) for m in pattern.finditer(text)]
        verdicts = [v for v in verdicts if v is not None]
        if verdicts:
            return verdicts[-1]
    found: list[tuple[int, Verdict]] = []
    for pattern in _VERDICT_PHRASES:
        for match in pattern.finditer(text):
            value = next(v for v in match.groupdict().values() if v is not None)
            verdict = _normalize_verdict(value)
            if verdict is not None:
                found.append((match.end(), verdict))
    if found:
        return max(found)[1]
    bold = {_normalize_verdict(m.group(1)) for m in _BOLD.finditer(text)} - {None}
    if len(bold) == 1:
        return bold.pop()
    bare = _normalize_verdict(re.sub(r"[\s*_`\"'“”#]+", " ", text))
    if bare is not None:
        return bare
    mentioned = [verdict for verdict, pattern in _MENTIONS.items() if pattern.search(text)]
    return mentioned[0] if len(mentioned) == 1 else None  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------- reports
def _mean(values: Iterable[float]) -> float | None:
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
        return _mean(score for score in self.scores if score is not None)

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


# -------------------------------------------------------------------------------------------------------- judges
def _same_length(**columns: Sequence[Any]) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"The inputs differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _broadcast(value: Any, n: int, name: str) -> list[Any]:
    if isinstance(value, (str, Persona)) or value is None:
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} responses.")
    return values


def _warn_unparsable(judge: str, unparsable: int, total: int) -> None:
    if unparsable:
        logger.warning(
            "%s: %d of %d judge outputs could not be parsed; they are counted, not scored.", judge, unparsable, total
        )


@dataclass
class _Judge:
    backend: GenerationBackend
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    generation_kwargs: dict[str, Any] = field(default_factory=dict)

    def _generate(self, prompts: list[Messages]) -> list[str]:
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


@dataclass
class PersonaTailoringJudge(_Judge):
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
        outputs = self._generate(prompts)
        scores = [parse_score(output) for output in outputs]
        report = ScoreReport(
            judge=self.name,
            backend=self.backend.name,
            scores=[None if s is None else float(s) for s in scores],
            outputs=[[output] for output in outputs],
            item_scores=[[score] for score in scores],
        )
        _warn_unparsable(self.name, report.num_unparsable, report.num_judgments)
        return report


@dataclass
class PairwiseJudge(_Judge):
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
        outputs = self._generate(prompts)
        verdicts = [parse_pairwise_verdict(output) for output in outputs]
        outcomes: list[Outcome | None] = []
        for verdict, swap in zip(verdicts, swapped, strict=True):
            if verdict is None or verdict == "tie":
                outcomes.append(verdict)  # type: ignore[arg-type]
            else:
                model_position = "B" if swap else "A"
                outcomes.append("win" if verdict == model_position else "lose")
        report = PairwiseReport(self.name, self.backend.name, outcomes, verdicts, swapped, outputs)
        _warn_unparsable(self.name, report.num_unparsable, report.num_examples)
        return report


def _rubric_items(rubric: Any) -> list[Mapping[str, Any]]:
    items = [rubric] if isinstance(rubric, Mapping) else list(rubric or [])
    if not items:
        raise ValueError("Every response needs at least one rubric item.")
    return items


@dataclass
class RubricJudge(_Judge):
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
        outputs = self._generate(prompts)
        per_response_outputs: list[list[str]] = [[] for _ in range(n)]
        item_scores: list[list[int | None]] = [[] for _ in range(n)]
        for owner, output in zip(owners, outputs, strict=True):
            per_response_outputs[owner].append(output)
            item_scores[owner].append(parse_score(output))
        scores = [_mean(s for s in items if s is not None) for items in item_scores]
        report = ScoreReport(self.name, self.backend.name, scores, per_response_outputs, item_scores)
        _warn_unparsable(self.name, report.num_unparsable, report.num_judgments)
        return report

    def judge_rows(self, rows: Iterable[Mapping[str, Any]], responses: Sequence[str]) -> ScoreReport:
        """Grade responses to Multifaceted-Bench rows (`prompt`, `reference_answer`, `rubric` or `rubrics`).

        Args:
            rows (`Iterable[Mapping]`): The benchmark rows, e.g. a `datasets.Dataset`.
            responses (`Sequence[str]`): One response per row, in order.
        """
        rows = list(rows)
        rubrics = []
        for index, row in enumerate(rows):
            rubric = row.get("rubric", row.get("rubrics"))
            if rubric is None:
                raise ValueError(f"Row {index} has no 'rubric' (or 'rubrics') column.")
            rubrics.append(rubric)
        return self.judge(
            [row["prompt"] for row in rows],
            responses,
            rubrics,
            [row.get("reference_answer") for row in rows],
        )
