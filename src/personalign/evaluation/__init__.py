"""Evaluation: alignment accuracy and flip rate (pure functions), reversed-persona rows, log-prob scoring, the
`evaluate` metric over them, LLM judges (persona tailoring, pairwise win rate, Multifaceted rubrics), the
`personalign eval policy` run (persona-size robustness, per-dimension accuracy, plots, model-card results), and the
judged evaluation: `personalign generate` (`generate`, `responses`) and `personalign judge` (`protocols`).

The metric functions and the reversal helpers need only numpy; the scoring functions (torch, transformers, TRL) and the
judges are imported on first use. The judges generate through `personalign.inference.generation` backends.
"""

from __future__ import annotations

import importlib
from importlib import resources
from typing import TYPE_CHECKING, Any

from .metrics import LOGPS_COLUMNS, REVERSED_LOGPS_COLUMNS, compute_alignment_metrics
from .reversal import MultifacetReversal, multifacet_counterparts, reverse_alignx_row, reverse_multifacet

_LAZY = {
    "AlignmentEvalConfig": "personalign.evaluation.runner",
    "DEFAULT_PERSONA_SIZES": "personalign.evaluation.robustness",
    "alignx_dimension_labels": "personalign.evaluation.robustness",
    "evaluate_alignment": "personalign.evaluation.runner",
    "load_eval_rows": "personalign.evaluation.rows",
    "multifacet_preference_example": "personalign.evaluation.rows",
    "plot_per_dimension": "personalign.evaluation.plots",
    "plot_persona_size": "personalign.evaluation.plots",
    "subset_alignx_history": "personalign.evaluation.robustness",
    "subset_multifacet_history": "personalign.evaluation.robustness",
    "update_model_card": "personalign.evaluation.runner",
    "write_alignment_results": "personalign.evaluation.runner",
    "PairwiseJudge": "personalign.evaluation.judges",
    "PairwiseReport": "personalign.evaluation.judges",
    "PersonaTailoringJudge": "personalign.evaluation.judges",
    "RubricJudge": "personalign.evaluation.judges",
    "ScoreReport": "personalign.evaluation.judges",
    "parse_pairwise_verdict": "personalign.evaluation.judges",
    "parse_score": "personalign.evaluation.judges",
    "score_pairs": "personalign.evaluation.scoring",
    "score_policy_and_reference": "personalign.evaluation.scoring",
    "tokenize_preference_example": "personalign.evaluation.scoring",
    "GenerationEvalConfig": "personalign.evaluation.generate",
    "generate_responses": "personalign.evaluation.generate",
    "ResponseRecord": "personalign.evaluation.responses",
    "read_responses": "personalign.evaluation.responses",
    "write_responses": "personalign.evaluation.responses",
    "JudgeSettings": "personalign.evaluation.protocols",
    "get_protocol": "personalign.evaluation.protocols",
    "judge_responses": "personalign.evaluation.protocols",
    "load_judge_inputs": "personalign.evaluation.protocols",
    "write_judge_outputs": "personalign.evaluation.protocols",
}

__all__ = [
    "LOGPS_COLUMNS",
    "METRIC_PATH",
    "REVERSED_LOGPS_COLUMNS",
    "MultifacetReversal",
    "compute_alignment_metrics",
    "load_metric",
    "multifacet_counterparts",
    "reverse_alignx_row",
    "reverse_multifacet",
    *_LAZY,
]

METRIC_PATH = "personalign.metrics.alignment_accuracy"
"""The package holding the `evaluate` module `alignment_accuracy.py` and its metric card."""

if TYPE_CHECKING:
    import evaluate

    from .generate import GenerationEvalConfig, generate_responses  # noqa: F401
    from .judges import (  # noqa: F401
        PairwiseJudge,
        PairwiseReport,
        PersonaTailoringJudge,
        RubricJudge,
        ScoreReport,
        parse_pairwise_verdict,
        parse_score,
    )
    from .plots import plot_per_dimension, plot_persona_size  # noqa: F401
    from .protocols import (  # noqa: F401
        JudgeSettings,
        get_protocol,
        judge_responses,
        load_judge_inputs,
        write_judge_outputs,
    )
    from .responses import ResponseRecord, read_responses, write_responses  # noqa: F401
    from .robustness import (  # noqa: F401
        DEFAULT_PERSONA_SIZES,
        alignx_dimension_labels,
        subset_alignx_history,
        subset_multifacet_history,
    )
    from .rows import load_eval_rows, multifacet_preference_example  # noqa: F401
    from .runner import (  # noqa: F401
        AlignmentEvalConfig,
        evaluate_alignment,
        update_model_card,
        write_alignment_results,
    )
    from .scoring import score_pairs, score_policy_and_reference, tokenize_preference_example  # noqa: F401


def load_metric(config_name: str | None = None, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load the `alignment_accuracy` metric with `evaluate.load`, from the copy shipped inside this package (no
    network access).

    The same as `evaluate.load("<site-packages>/personalign/metrics/alignment_accuracy")`.

    Args:
        config_name (`str`, *optional*): `"default"` (the four log-prob inputs; reversed inputs and groups may be
            passed to `compute`) or `"flip"` (the eight inputs are all features, so `add_batch` accumulates the
            reversed ones too).
        **kwargs: Passed to `evaluate.load` (e.g. `keep_in_memory=True`, `cache_dir`, `experiment_id`).

    Returns:
        `evaluate.EvaluationModule`: Its `compute` returns the dict of `compute_alignment_metrics`.

    Example:

    ```python
    >>> import personalign
    >>> metric = personalign.load_metric()
    >>> metric.compute(
    ...     policy_chosen_logps=[-1.0], policy_rejected_logps=[-3.0],
    ...     reference_chosen_logps=[-2.0], reference_rejected_logps=[-2.0], beta=0.1,
    ... )["alignment_accuracy"]
    1.0
    ```
    """
    import evaluate

    script = resources.files(METRIC_PATH).joinpath("alignment_accuracy.py")
    # A real file for regular installs; extracted to a temporary one for zipped ones (evaluate copies it anyway).
    with resources.as_file(script) as path:
        return evaluate.load(str(path), config_name=config_name, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'personalign.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
