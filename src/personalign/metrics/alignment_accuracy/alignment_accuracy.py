"""Alignment accuracy and flip rate of a personalized policy against its reference, from sequence log-probs.

A thin `evaluate` module over `personalign.evaluation.compute_alignment_metrics`; the definitions are in the metric
card (README.md beside this file).
"""

import datasets
import evaluate

from personalign.evaluation.metrics import LOGPS_COLUMNS, REVERSED_LOGPS_COLUMNS, compute_alignment_metrics

_CITATION = """\
@article{li2025alignx,
  title  = {From 1,000,000 Users to Every User: Scaling Up Personalized Preference for User-level Alignment},
  author = {Li, Jia-Nan and Guan, Jian and Wu, Songhao and Wu, Wei and Yan, Rui},
  year   = {2025}
}
"""

_DESCRIPTION = """\
Alignment accuracy (AlignX): the fraction of preference pairs on which the policy's implicit DPO reward,
beta * (log pi(y|x) - log pi_ref(y|x)), is strictly higher for the chosen response than for the rejected one, each
log-prob summed over the response tokens plus EOS under the same persona-conditioned prompt. It equals TRL's
`rewards/accuracies`. Given the same pairs scored under the reversed persona, it also reports the flip rate (the
model's ordering of the two responses changes between the two personas), the accuracy under reversal and the strict
flip rate (correct under both), with counts and per-group breakdowns.
"""

_KWARGS_DESCRIPTION = """
Args:
    policy_chosen_logps (`list[float]`): Summed log-probs of each chosen response (tokens plus EOS) under the policy.
    policy_rejected_logps (`list[float]`): The same for the rejected responses.
    reference_chosen_logps (`list[float]`): The chosen log-probs under the reference model.
    reference_rejected_logps (`list[float]`): The rejected log-probs under the reference model.
    policy_chosen_logps_reversed, policy_rejected_logps_reversed, reference_chosen_logps_reversed,
    reference_rejected_logps_reversed (`list[float]`, *optional*): The same pairs under the reversed persona, where
        "chosen" is the response the reversed persona prefers (the original rejected one). All four or none. Inputs
        of the "flip" configuration; keyword arguments of `compute` in the default one.
    beta (`float`, *optional*, defaults to `0.1`): The DPO temperature, > 0.
    groups (`dict[str, list]`, *optional*): Per-pair labels for breakdowns, e.g. `{"dimension": [...]}`; a label may
        be a string or number, a list of them (the pair counts in each), or None (in no group).
Returns:
    alignment_accuracy (`float`): correct / pairs, correct meaning a strictly positive reward margin.
    reward_margin (`float`): mean reward margin.
    num_pairs, num_correct, num_ties (`int`): counts.
    With reversed inputs: reversed_alignment_accuracy, reversed_reward_margin, flip_rate, strict_flip_rate
    (`float`) and num_reversed_correct, num_reversed_ties, num_flipped, num_strict_flipped (`int`).
    With groups: groups[name][str(label)] holds the same numbers for that group's pairs.
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("path/to/alignment_accuracy")
    >>> results = metric.compute(
    ...     policy_chosen_logps=[-1.0, -5.0], policy_rejected_logps=[-3.0, -4.0],
    ...     reference_chosen_logps=[-2.0, -4.0], reference_rejected_logps=[-2.0, -4.0], beta=0.1,
    ... )
    >>> results["alignment_accuracy"], results["num_correct"]
    (0.5, 1)
"""

CONFIGURATIONS = {"default": LOGPS_COLUMNS, "flip": LOGPS_COLUMNS + REVERSED_LOGPS_COLUMNS}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AlignmentAccuracy(evaluate.Metric):
    """Alignment accuracy, flip rate and their breakdowns (see the metric card)."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIGURATIONS:
            raise ValueError(
                f"Unknown configuration {self.config_name!r} of alignment_accuracy; use one of "
                f"{', '.join(map(repr, CONFIGURATIONS))}."
            )
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({name: datasets.Value("float64") for name in CONFIGURATIONS[self.config_name]}),
            reference_urls=["https://huggingface.co/datasets/JinaLeejnl/AlignX"],
            # Python lists: the numpy format of datasets casts float64 columns to float32.
        )

    def _compute(
        self,
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        policy_chosen_logps_reversed=None,
        policy_rejected_logps_reversed=None,
        reference_chosen_logps_reversed=None,
        reference_rejected_logps_reversed=None,
        beta: float = 0.1,
        groups=None,
    ) -> dict:
        return compute_alignment_metrics(
            policy_chosen_logps,
            policy_rejected_logps,
            reference_chosen_logps,
            reference_rejected_logps,
            beta=beta,
            policy_chosen_logps_reversed=policy_chosen_logps_reversed,
            policy_rejected_logps_reversed=policy_rejected_logps_reversed,
            reference_chosen_logps_reversed=reference_chosen_logps_reversed,
            reference_rejected_logps_reversed=reference_rejected_logps_reversed,
            groups=groups,
        )
