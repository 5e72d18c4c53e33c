"""LLM judges of personalized responses, with the papers' prompts, tolerant parsing and counted failures.

- `prompts`: the papers' judge instructions, verbatim, and the functions that fill them;
- `parsing`: `parse_score` and `parse_pairwise_verdict`, pure functions with the rules in their docstrings;
- `reports`: `ScoreReport` and `PairwiseReport`, what the judges return;
- `llm_judges`: `LLMJudge` (the base every judge, in-package or not, builds on), `PersonaTailoringJudge` (the DPORE
  paper), `PairwiseJudge` (the AlignX paper) and `RubricJudge` (Multifaceted-Bench).

Everything public is importable from here (`from personalign.evaluation.judges import PairwiseJudge`). No module of
this package imports torch: the judges generate through `personalign.inference.generation` backends.
"""

from .llm_judges import LLMJudge, PairwiseJudge, PersonaTailoringJudge, RubricJudge
from .parsing import Verdict, parse_pairwise_verdict, parse_score
from .prompts import (
    PAIRWISE_JUDGE_PROMPT,
    PERSONA_TAILORING_PROMPT,
    PROMETHEUS_ABSOLUTE_PROMPT,
    PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE,
    PROMETHEUS_SYSTEM_PROMPT,
    fill_template,
    format_rubric,
    pairwise_judge_messages,
    persona_tailoring_messages,
    rubric_judge_messages,
)
from .reports import Outcome, PairwiseReport, ScoreReport, mean_or_none

__all__ = [
    "PAIRWISE_JUDGE_PROMPT",
    "PERSONA_TAILORING_PROMPT",
    "PROMETHEUS_ABSOLUTE_PROMPT",
    "PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE",
    "PROMETHEUS_SYSTEM_PROMPT",
    "LLMJudge",
    "Outcome",
    "PairwiseJudge",
    "PairwiseReport",
    "PersonaTailoringJudge",
    "RubricJudge",
    "ScoreReport",
    "Verdict",
    "fill_template",
    "format_rubric",
    "mean_or_none",
    "pairwise_judge_messages",
    "parse_pairwise_verdict",
    "parse_score",
    "persona_tailoring_messages",
    "rubric_judge_messages",
]
