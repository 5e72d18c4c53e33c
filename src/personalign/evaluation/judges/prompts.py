"""The judges' prompts: the papers' judge instructions, verbatim, and the functions that fill them.

- `PERSONA_TAILORING_PROMPT`: the DPORE paper's persona-tailoring instruction (Appendix A, Figure 3).
- `PAIRWISE_JUDGE_PROMPT`: the AlignX paper's GPT-4 judgment prompt (Appendix A.3).
- `PROMETHEUS_SYSTEM_PROMPT`, `PROMETHEUS_ABSOLUTE_PROMPT` (and `..._NO_REFERENCE`): Prometheus' absolute grading,
  which Multifaceted-Bench's rubric evaluation uses.

The templates are the papers' text byte for byte (`tests/test_judges.py` pins their SHA-256); `fill_template` fills
their `{name}` fields without touching other braces (the AlignX prompt ends with a JSON answer format).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import InputError
from ...personas.persona import Messages, Persona
from ...personas.prompts import render_history

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

    Args:
        template (`str`): A template with `{name}` fields.
        **fields (`str`): The value of each field.

    Returns:
        `str`: The filled template.

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

    Returns:
        `str`: The rubric text for the `{rubric}` field of Prometheus' prompt.

    Raises:
        `InputError`: If the criteria or a score description is missing.
    """
    if not isinstance(item, Mapping) or not item.get("criteria"):
        raise InputError(f"A rubric item needs 'criteria' and 'score_descriptions'; got {item!r:.120}")
    descriptions = item.get("score_descriptions") or {}
    lines = [f"[{item['criteria']}]"]
    for score in range(low, high + 1):
        text = descriptions.get(str(score), descriptions.get(score, item.get(f"score{score}_description")))
        if text is None:
            raise InputError(f"Rubric item {item['criteria']!r:.80} has no description for score {score}.")
        lines.append(f"Score {score}: {text}")
    return "\n".join(lines)


def persona_tailoring_messages(response: str, message: str, profile: str, personalities: str) -> Messages:
    """The DPORE persona-tailoring judge prompt (`PERSONA_TAILORING_PROMPT`) as one user message.

    Args:
        response (`str`): The model response to judge.
        message (`str`): The user message it answers.
        profile (`str`): The user's profile.
        personalities (`str`): The user's personalities.

    Returns:
        `Messages`: `[{"role": "user", "content": ...}]`.
    """
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

    Returns:
        `Messages`: `[{"role": "user", "content": ...}]`.
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
    """Prometheus' absolute-grading prompt for one rubric item (with the reference answer when there is one).

    Args:
        instruction (`str`): The instruction the response answers.
        response (`str`): The response to grade.
        rubric_item (`Mapping`): One rubric item (see `format_rubric`).
        reference_answer (`str`, *optional*): The answer that scores 5; without it the prompt omits that section
            (`PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE`).
        system_prompt (`str`, *optional*, defaults to `PROMETHEUS_SYSTEM_PROMPT`): `None` sends no system message.

    Returns:
        `Messages`: The system message (when given), then the user message.

    Raises:
        `InputError`: If the rubric item lacks its criteria or a score description.
    """
    fields = {"instruction": instruction, "response": response, "rubric": format_rubric(rubric_item)}
    if reference_answer:
        content = fill_template(PROMETHEUS_ABSOLUTE_PROMPT, reference_answer=reference_answer, **fields)
    else:
        content = fill_template(PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE, **fields)
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": content}]
