"""Preference inference for PBA at inference time: a persona's 90-dim direction vector from its items.

The AlignX paper (§5, Appendix A.3) annotates every history item with an LLM, one question per preference dimension,
answered (1) positive, (2) negative or (3) cannot tell; the item votes are then aggregated with AlignX's rule
(`PreferenceSpace.aggregate`). Appendix D.5 finds that inferred directions over-predict weak preferences (high
recall, low precision for Positive / Negative): `PreferenceInferencer.calibrate` (from `BasePreferenceInferencer`)
moves the aggregation thresholds to maximise macro-F1 against gold vectors on a validation set, and `evaluate` gives
the per-category precision and recall of the AlignX paper's Table 12 (both in `personalign.inference.calibration`).

Pure functions (prompts, parsing, vote arithmetic) need no model; `PreferenceInferencer` drives any
`personalign.inference.generation.GenerationBackend`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..personas.persona import Messages, PairItem, UGCItem
from ..personas.space import NEUTRAL, PreferenceDimension, PreferenceSpace
from .base import BasePreferenceInferencer
from .calibration import CLASS_VALUES
from .generation import GenerationBackend

CANNOT_TELL = "Comments alone cannot reflect"
ANSWER_VALUES: dict[int, float] = {option: value for option, value in enumerate(CLASS_VALUES, start=1)}
"""Direction value of each answer option of the annotation prompt: (1) positive, (2) negative, (3) cannot tell."""

# The AlignX paper's few-shot block (Appendix A.3, "Intensity Annotation Prompt"), then the item and its question.
ANNOTATION_EXAMPLES = (
    "Example 1:\n"
    "Query:\n"
    "I’m at urgent care because I fucked up my ankle. The conversation went something like this.\n"
    "Nurse: Any surgeries in the past?\n"
    "Me: Yes, a bilateral salpingectomy in September of last year.\n"
    "And, as she’s about to leave: Any chance you’re pregnant?\n"
    "Me: No\n"
    "Me (thinking): she has no idea what a bilateral salpingectomy is. Kind of funny at urgent care just now\n"
    "Comment:\n"
    "Dr.: any chance you are pregnant?\n"
    "Me: only with a turd, anticipated birthday tomorrow.\n"
    "Task:\n"
    "What does this comment suggest about the commenter’s Neuroticism in the Big Five personality traits? "
    f"(1) High Neuroticism (2) Low Neuroticism (3) {CANNOT_TELL}\n"
    "Response:\n"
    "2\n"
    "Task:\n"
    "What does this comment suggest about the commenter’s Extraversion in the Big Five personality traits? "
    f"(1) High Extraversion (2) Low Extraversion (3) {CANNOT_TELL}\n"
    "Response:\n"
    "1\n"
    "Task:\n"
    f"Does this comment indicate that the commenter likes or dislikes “painting”? (1) Likes (2) Dislikes (3) {CANNOT_TELL}\n"
    "Response:\n"
    "3\n"
)


def dimension_question(dimension: PreferenceDimension) -> str:
    """The AlignX paper's per-dimension question. Interest tags ask "likes or dislikes"; the others ask what the
    comment suggests about the dimension (its name without a leading "Degree of ", as in the AlignX paper's
    examples)."""
    if dimension.source == "interest_tags":
        return (
            f"Does this comment indicate that the commenter likes or dislikes “{dimension.name}”? "
            f"(1) Likes (2) Dislikes (3) {CANNOT_TELL}"
        )
    name = dimension.name[len("Degree of ") :] if dimension.name.startswith("Degree of ") else dimension.name
    return (
        f"What does this comment suggest about the commenter’s {name}? "
        f"(1) {dimension.positive_label} (2) {dimension.negative_label} (3) {CANNOT_TELL}"
    )


def annotation_messages(post: str, comment: str, dimension: PreferenceDimension) -> Messages:
    """The AlignX paper's annotation prompt for one (post, comment) and one dimension, as one user message."""
    task = f"Your task:\nQuery:\n{post}\nComment:\n{comment}\nTask:\n{dimension_question(dimension)}\nResponse:\n"
    return [{"role": "user", "content": ANNOTATION_EXAMPLES + "\n" + task}]


_OPTION = re.compile(r"\(?\b([123])\b\)?")


def parse_annotation(text: str, dimension: PreferenceDimension | None = None) -> int | None:
    """Read an answer 1 / 2 / 3 from messy model output; `None` when it cannot be read.

    Rules, first match wins: a leading option number (`"2"`, `"(2) Low ..."`, `"2."`); then the option labels
    (`dimension`'s positive / negative label, "Likes" / "Dislikes", "cannot reflect" / "cannot tell") when exactly
    one kind appears; then a single distinct option number anywhere in the text.
    """
    stripped = text.strip().strip("*").strip()
    leading = re.match(r"^\(?([123])\)?(?!\d)(?!\.\d)", stripped)
    if leading:
        return int(leading.group(1))
    lowered = stripped.lower()
    found = set()
    if "cannot reflect" in lowered or "cannot tell" in lowered or "can't tell" in lowered:
        found.add(3)
    positives = ["likes"] + ([dimension.positive_label.lower()] if dimension else [])
    negatives = ["dislikes"] + ([dimension.negative_label.lower()] if dimension else [])
    if any(re.search(rf"\b{re.escape(label)}\b", lowered) for label in negatives):
        found.add(2)
    without_negatives = lowered
    for label in negatives:
        without_negatives = without_negatives.replace(label, " ")
    if any(re.search(rf"\b{re.escape(label)}\b", without_negatives) for label in positives):
        found.add(1)
    if len(found) == 1:
        return found.pop()
    numbers = {int(match) for match in _OPTION.findall(stripped)}
    return numbers.pop() if len(numbers) == 1 else None


def pair_value(chosen: float, rejected: float) -> float:
    """A pair item's value on one dimension from its two comments' values: the chosen comment's pole when the two
    differ, neutral when they agree (the pair shows no preference there)."""
    if chosen == rejected:
        return NEUTRAL
    if chosen != NEUTRAL:
        return chosen
    return 1.0 - rejected  # the chosen one is neutral, the rejected one is not: prefer its opposite


@dataclass
class InferenceReport:
    """Counts of one inference run: calls made and answers that could not be read (counted as neutral)."""

    num_items: int = 0
    num_calls: int = 0
    num_unparsable: int = 0
    unparsable_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (for `inference.json` and run records)."""
        return {
            "num_items": self.num_items,
            "num_calls": self.num_calls,
            "num_unparsable": self.num_unparsable,
            "unparsable_rate": self.num_unparsable / self.num_calls if self.num_calls else 0.0,
        }


class PreferenceInferencer(BasePreferenceInferencer):
    """Infers item and persona direction vectors with an LLM and the AlignX paper's annotation prompt.

    A [`BasePreferenceInferencer`]: `infer`, `infer_many`, `profile_text`, `evaluate` and `calibrate` work as for
    the learned inferencer.

    Args:
        backend (`GenerationBackend`): Any backend of `personalign.inference.generation` (or an object with its
            `generate(prompts, max_new_tokens=...)`).
        space (`PreferenceSpace`, *optional*): Defaults to AlignX's 90 dimensions.
        upper (`float`, *optional*, defaults to `0.6`) / lower (`float`, *optional*, defaults to `0.4`):
            Aggregation thresholds (see `calibrate`).
        max_new_tokens (`int`, *optional*, defaults to `8`): The answer is one option number.
        batch_size (`int`, *optional*, defaults to `256`): Prompts per backend call.

    Raises:
        `ValueError`: If `lower` is not below `upper`.
    """

    def __init__(
        self,
        backend: GenerationBackend,
        space: PreferenceSpace | None = None,
        upper: float = 0.6,
        lower: float = 0.4,
        max_new_tokens: int = 8,
        batch_size: int = 256,
    ) -> None:
        super().__init__(space, upper, lower)
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.report = InferenceReport()

    def _answers(self, prompts: list[Messages]) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            answers += self.backend.generate(
                prompts[start : start + self.batch_size], max_new_tokens=self.max_new_tokens
            )
        return answers

    def _comment_vectors(self, comments: Sequence[tuple[str, str]]) -> list[list[float]]:
        dimensions = self.space.dimensions
        prompts = [annotation_messages(post, text, d) for post, text in comments for d in dimensions]
        answers = self._answers(prompts)
        self.report.num_calls += len(prompts)
        vectors = []
        for index in range(len(comments)):
            vector = []
            for dimension, answer in zip(
                dimensions, answers[index * len(dimensions) : (index + 1) * len(dimensions)], strict=True
            ):
                option = parse_annotation(answer, dimension)
                if option is None:
                    self.report.num_unparsable += 1
                    if len(self.report.unparsable_examples) < 5:
                        self.report.unparsable_examples.append(answer[:200])
                vector.append(ANSWER_VALUES.get(option, NEUTRAL))
            vectors.append(vector)
        return vectors

    def infer_items(self, items: Sequence[UGCItem | PairItem]) -> list[list[float]]:
        """One direction vector per history item: a comment's answers directly; a pair's from its chosen and rejected
        comments (`pair_value`)."""
        comments: list[tuple[str, str]] = []
        for item in items:
            if isinstance(item, PairItem):
                comments += [(item.prompt, item.chosen), (item.prompt, item.rejected)]
            else:
                comments.append((item.prompt, item.comment))
        vectors = iter(self._comment_vectors(comments))
        self.report.num_items += len(items)
        result = []
        for item in items:
            if isinstance(item, PairItem):
                chosen, rejected = next(vectors), next(vectors)
                result.append([pair_value(c, r) for c, r in zip(chosen, rejected, strict=True)])
            else:
                result.append(next(vectors))
        return result
