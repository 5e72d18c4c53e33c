"""The papers' judged evaluation protocols behind `personalign judge`, one module per protocol, one registry.

| protocol            | paper                                   | systems                          | reports                              |
|---------------------|-----------------------------------------|----------------------------------|--------------------------------------|
| `pairwise-win`      | AlignX §6.1, Appendix A.3               | `--responses` vs `--against`     | Win / (Win + Lose), counts, CI       |
| `persona-tailoring` | the DPORE paper, Appendix A             | `--responses` [, `--against`]    | mean 1-5, spread, CI, histogram      |
| `multifacet-rubric` | the counterfactual paper, Table 3       | `--responses` [, `--against`]    | mean 1-5 per dimension, CI           |
| `style-score`       | the counterfactual paper, Table 2       | with history vs `--no-history`   | both means, Δ = (with − without) / without |

- `base`: `load_judge_inputs` (one or two `personalign generate` folders, read with
  `personalign.evaluation.responses.read_responses`, matched by row id, their rows' content compared with
  `row_difference`), `JudgeSettings` (every option checked up front, `check_seed`), the `JudgeProtocol` interface,
  score summaries;
- `pairwise`, `tailoring`, `rubric`: the protocols;
- `run`: `judge_responses` (one progress bar over the judge calls, `JudgeCallLog`; unparsable answers reported with
  how many came from the call cache, `reask_unparsable` to ask them again), `write_judge_outputs`, the model-card
  results.

Every protocol asks its judge of `personalign.evaluation.judges` (the papers' prompts and parsers) through any
`GenerationBackend`, and its confidence intervals are `personalign.evaluation.metrics.bootstrap_interval`.

Example:

```python
>>> from personalign.evaluation.protocols import JudgeSettings, get_protocol, judge_responses, load_judge_inputs
>>> inputs = load_judge_inputs("runs/pba-responses", "runs/base-responses")
>>> run = judge_responses(inputs, load_backend("openai:gpt-4o"), get_protocol("pairwise-win"), JudgeSettings(seed=0))
>>> run.summary["results"]["win_rate"], run.summary["results"]["win_rate_ci"]
```
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from ...inference.generation import MAX_SEED, check_seed
from .base import (
    AGAINST,
    MAX_BOOTSTRAP_RESAMPLES,
    RESPONSES,
    CardMetric,
    JudgeInputs,
    JudgeProtocol,
    JudgeSettings,
    System,
    load_judge_inputs,
    row_difference,
)
from .pairwise import PairwiseWinProtocol
from .rubric import MultifacetRubricProtocol, StyleScoreProtocol, preference_rubric, relative_change
from .run import (
    JUDGMENTS_FILE,
    RETRY_NEEDS_CACHE,
    SUMMARY_FILE,
    JudgeCallLog,
    JudgeRun,
    answered_from_cache,
    judge_card_results,
    judge_responses,
    reask_unparsable,
    unparsable_line,
    update_model_card_with_judgments,
    write_judge_outputs,
)
from .tailoring import PersonaTailoringProtocol

PROTOCOLS: dict[str, type[JudgeProtocol]] = {
    protocol.name: protocol
    for protocol in (PairwiseWinProtocol, PersonaTailoringProtocol, MultifacetRubricProtocol, StyleScoreProtocol)
}
"""Every protocol by its name: the one list `personalign judge --protocol` reads."""


def get_protocol(name: str, **options: Any) -> JudgeProtocol:
    """The protocol registered as `name`, built with its options.

    Args:
        name (`str`): A key of `PROTOCOLS`.
        **options: The protocol's constructor arguments (`swap` for pairwise-win, `derive_rubrics` for the rubric
            protocols, `dimension` for style-score).

    Returns:
        `JudgeProtocol`

    Raises:
        `InputError`: If the name is unknown.
    """
    if name not in PROTOCOLS:
        raise InputError(f"unknown judge protocol {name!r}; use one of {', '.join(PROTOCOLS)}.")
    return PROTOCOLS[name](**options)


__all__ = [
    "AGAINST",
    "JUDGMENTS_FILE",
    "MAX_BOOTSTRAP_RESAMPLES",
    "MAX_SEED",
    "PROTOCOLS",
    "RESPONSES",
    "RETRY_NEEDS_CACHE",
    "SUMMARY_FILE",
    "CardMetric",
    "JudgeCallLog",
    "JudgeInputs",
    "JudgeProtocol",
    "JudgeRun",
    "JudgeSettings",
    "MultifacetRubricProtocol",
    "PairwiseWinProtocol",
    "PersonaTailoringProtocol",
    "StyleScoreProtocol",
    "System",
    "answered_from_cache",
    "check_seed",
    "get_protocol",
    "judge_card_results",
    "judge_responses",
    "load_judge_inputs",
    "preference_rubric",
    "reask_unparsable",
    "relative_change",
    "row_difference",
    "unparsable_line",
    "update_model_card_with_judgments",
    "write_judge_outputs",
]
