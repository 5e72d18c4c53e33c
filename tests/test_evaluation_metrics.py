"""Alignment accuracy / flip rate (pure functions and the `evaluate` module) and reversed AlignX rows."""

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import personalign
from personalign import Persona
from personalign.data.synthetic import alignx_rows
from personalign.evaluation import compute_alignment_metrics, reverse_alignx_row

METRIC_FOLDER = Path(personalign.__file__).parent / "metrics" / "alignment_accuracy"

# Four pairs, beta = 0.5 (a power of two: every reward below is exact). Rewards (chosen, rejected):
# (0.5, -0.5) correct; (-0.5, 0.0) wrong; (0.0, 0.0) tie; (-1.0, -1.0) tie.
BASE = {
    "policy_chosen_logps": [-1.0, -5.0, -2.0, -3.0],
    "policy_rejected_logps": [-3.0, -4.0, -2.0, -3.0],
    "reference_chosen_logps": [-2.0, -4.0, -2.0, -1.0],
    "reference_rejected_logps": [-2.0, -4.0, -2.0, -1.0],
}
# Reversed rewards ("chosen" = original rejected text): pair 0 (1.0, 0.0) correct -> correct under both: strict flip;
# pair 1 (-1.0, 0.0) wrong; pair 2 (0.5, 1.0) wrong; pair 3 (0.5, 0.5) tie.
REVERSED = {
    "policy_chosen_logps_reversed": [0.0, -2.0, -1.0, -1.0],
    "policy_rejected_logps_reversed": [-2.0, 0.0, 0.0, -1.0],
    "reference_chosen_logps_reversed": [-2.0, 0.0, -2.0, -2.0],
    "reference_rejected_logps_reversed": [-2.0, 0.0, -2.0, -2.0],
}


def test_hand_computed_accuracy_with_ties():
    result = compute_alignment_metrics(**BASE, beta=0.5)
    assert result == {
        "alignment_accuracy": 0.25,
        "reward_margin": pytest.approx((1.0 - 0.5 + 0.0 + 0.0) / 4),
        "num_pairs": 4,
        "num_correct": 1,
        "num_ties": 2,
    }
    # A policy identical to its reference ties everywhere: accuracy 0, as TRL's rewards/accuracies before training.
    same = compute_alignment_metrics([-3.0, -7.5], [-2.0, -9.0], [-3.0, -7.5], [-2.0, -9.0])
    assert same["alignment_accuracy"] == 0.0 and same["num_ties"] == 2


def test_hand_computed_flip_rate():
    result = compute_alignment_metrics(**BASE, **REVERSED, beta=0.5)
    # Text orderings (A = original chosen, B = original rejected), original / reversed persona:
    # pair 0: A / B -> flip, correct under both; pair 1: B / A (both wrong) -> flip, not strict;
    # pair 2: tie / A -> no ordering, no flip; pair 3: tie / tie -> no flip.
    assert result["num_flipped"] == 2 and result["flip_rate"] == 0.5
    assert result["num_strict_flipped"] == 1 and result["strict_flip_rate"] == 0.25
    assert result["num_reversed_correct"] == 1 and result["reversed_alignment_accuracy"] == 0.25
    assert result["num_reversed_ties"] == 1
    assert result["reversed_reward_margin"] == pytest.approx((1.0 - 1.0 - 0.5 + 0.0) / 4)

    # Correct under the original, and the same text still preferred under the reversed persona: no flip.
    stuck = compute_alignment_metrics(
        [-1.0],
        [-3.0],
        [-2.0],
        [-2.0],
        beta=0.5,
        policy_chosen_logps_reversed=[-3.0],
        policy_rejected_logps_reversed=[-1.0],
        reference_chosen_logps_reversed=[-2.0],
        reference_rejected_logps_reversed=[-2.0],
    )
    assert stuck["alignment_accuracy"] == 1.0 and stuck["flip_rate"] == 0.0 and stuck["strict_flip_rate"] == 0.0


def _by_hand(inputs, beta):
    """Row by row from the definitions (text orderings, not the implementation's boolean algebra)."""
    counts = dict.fromkeys(("correct", "ties", "rev_correct", "rev_ties", "flipped", "strict"), 0)
    for i in range(len(inputs["policy_chosen_logps"])):
        reward = {
            "A": beta * (inputs["policy_chosen_logps"][i] - inputs["reference_chosen_logps"][i]),
            "B": beta * (inputs["policy_rejected_logps"][i] - inputs["reference_rejected_logps"][i]),
        }
        reversed_reward = {  # under the reversed persona, "chosen" is text B
            "B": beta * (inputs["policy_chosen_logps_reversed"][i] - inputs["reference_chosen_logps_reversed"][i]),
            "A": beta * (inputs["policy_rejected_logps_reversed"][i] - inputs["reference_rejected_logps_reversed"][i]),
        }

        def preferred(rewards):
            if rewards["A"] == rewards["B"]:
                return None
            return "A" if rewards["A"] > rewards["B"] else "B"

        before, after = preferred(reward), preferred(reversed_reward)
        counts["correct"] += before == "A"
        counts["ties"] += before is None
        counts["rev_correct"] += after == "B"
        counts["rev_ties"] += after is None
        counts["flipped"] += before is not None and after is not None and before != after
        counts["strict"] += before == "A" and after == "B"
    return counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_match_a_row_by_row_computation(seed):
    rng = random.Random(seed)
    n = 200
    # Integers from a small range: ties are frequent; beta = 0.25 keeps every product exact.
    inputs = {name: [float(rng.randint(-4, 0)) for _ in range(n)] for name in [*BASE, *REVERSED]}
    labels = [rng.choice(["style", "humor", 7, None, ["style", "humor"]]) for _ in range(n)]
    result = compute_alignment_metrics(**inputs, beta=0.25, groups={"dimension": labels})
    expected = _by_hand(inputs, 0.25)
    assert expected["ties"] > 10 and expected["flipped"] > 10 and expected["strict"] > 5  # the draw covers all cases
    assert result["num_correct"] == expected["correct"]
    assert result["num_ties"] == expected["ties"]
    assert result["num_reversed_correct"] == expected["rev_correct"]
    assert result["num_reversed_ties"] == expected["rev_ties"]
    assert result["num_flipped"] == expected["flipped"]
    assert result["num_strict_flipped"] == expected["strict"]
    assert result["alignment_accuracy"] == expected["correct"] / n
    assert result["flip_rate"] == expected["flipped"] / n
    assert result["strict_flip_rate"] == expected["strict"] / n

    for label in ("style", "humor", 7):
        rows = [i for i, value in enumerate(labels) if value == label or (isinstance(value, list) and label in value)]
        subset = {name: [values[i] for i in rows] for name, values in inputs.items()}
        by_hand = _by_hand(subset, 0.25)
        group = result["groups"]["dimension"][str(label)]
        assert group["num_pairs"] == len(rows)
        assert group["num_correct"] == by_hand["correct"]
        assert group["num_flipped"] == by_hand["flipped"]
        assert group["num_strict_flipped"] == by_hand["strict"]
    assert set(result["groups"]["dimension"]) == {"7", "humor", "style"}


def test_group_breakdown_and_label_order():
    groups = {"history_size": [16, 2, 16, None], "dimension": [["humor", "style"], "style", "humor", []]}
    result = compute_alignment_metrics(**BASE, beta=0.5, groups=groups)
    assert list(result["groups"]["history_size"]) == ["2", "16"]  # numbers sort numerically
    assert result["groups"]["history_size"]["16"] == {
        "alignment_accuracy": 0.5,
        "reward_margin": pytest.approx((1.0 + 0.0) / 2),
        "num_pairs": 2,
        "num_correct": 1,
        "num_ties": 1,
    }
    dimension = result["groups"]["dimension"]
    assert dimension["humor"]["num_pairs"] == 2 and dimension["humor"]["num_correct"] == 1
    assert dimension["style"]["num_pairs"] == 2 and dimension["style"]["alignment_accuracy"] == 0.5
    json.dumps(result)  # plain Python numbers all the way down


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reference_rejected_logps": [-1.0, -2.0, -3.0]}, "reference_rejected_logps has 3 values"),
        ({"policy_rejected_logps": [-1.0, float("nan"), -3.0, -4.0]}, "policy_rejected_logps holds a non-finite"),
        ({"reference_chosen_logps": [-1.0, -2.0, -np.inf, -4.0]}, "reference_chosen_logps holds a non-finite"),
        ({"policy_chosen_logps": [[-1.0, -2.0], [-3.0, -4.0]]}, "policy_chosen_logps must be one-dimensional"),
        ({"policy_chosen_logps": ["a", "b", "c", "d"]}, "policy_chosen_logps must be a sequence of numbers"),
        ({"policy_chosen_logps": [], "policy_rejected_logps": []}, "policy_chosen_logps is empty"),
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"beta": -0.1}, "beta must be a finite number > 0"),
        ({"policy_chosen_logps_reversed": [-1.0] * 4}, "missing policy_rejected_logps_reversed"),
        ({**REVERSED, "reference_rejected_logps_reversed": [0.0] * 5}, "reference_rejected_logps_reversed has 5"),
        ({"groups": {"dimension": ["a", "b"]}}, "groups['dimension'] has 2 labels"),
        ({"groups": {"dimension": [{"x": 1}, "a", "b", "c"]}}, "groups['dimension'] label at index 0"),
        ({"groups": ["a", "b", "c", "d"]}, "groups must be a dict"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(change, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compute_alignment_metrics(**{**BASE, "beta": 0.5, **change})


# ------------------------------------------------------------------------------------------------ evaluate module
@pytest.fixture(scope="module")
def metric_inputs():
    rng = np.random.default_rng(0)
    inputs = {name: np.round(rng.normal(-20, 3, 64), 1).tolist() for name in [*BASE, *REVERSED]}
    groups = {
        "dimension": [["style", "humor"][i % 2] for i in range(64)],
        "history_size": [2 ** (i % 4) for i in range(64)],
    }
    return inputs, groups


def test_evaluate_load_by_path_and_load_metric_agree_with_the_pure_function(metric_inputs, tmp_path):
    import evaluate

    inputs, groups = metric_inputs
    expected = compute_alignment_metrics(**inputs, beta=0.1, groups=groups)
    assert 0 < expected["num_correct"] < 64 and expected["num_flipped"] > 0
    for metric in (
        evaluate.load(str(METRIC_FOLDER), cache_dir=str(tmp_path)),
        evaluate.load(str(METRIC_FOLDER / "alignment_accuracy.py"), cache_dir=str(tmp_path)),
        personalign.load_metric(cache_dir=str(tmp_path)),
    ):
        assert metric.name == "alignment_accuracy"
        assert metric.compute(**inputs, beta=0.1, groups=groups) == expected

    # The "flip" configuration accumulates all eight inputs batch by batch.
    metric = personalign.load_metric("flip", cache_dir=str(tmp_path))
    for start in range(0, 64, 24):
        metric.add_batch(**{name: values[start : start + 24] for name, values in inputs.items()})
    assert metric.compute(beta=0.1, groups=groups) == expected

    base_only = {name: inputs[name] for name in BASE}
    assert personalign.load_metric(cache_dir=str(tmp_path)).compute(**base_only) == compute_alignment_metrics(
        **base_only
    )
    with pytest.raises(ValueError, match="Unknown configuration 'nope'"):
        personalign.load_metric("nope")


def test_metric_ships_its_card():
    card = (METRIC_FOLDER / "README.md").read_text()
    for key in ("alignment_accuracy", "flip_rate", "strict_flip_rate", "reversed_alignment_accuracy", "num_ties"):
        assert f"`{key}`" in card


LOAD_WITHOUT_NETWORK = """
import socket, sys

attempts = []

def refuse(*args, **kwargs):
    attempts.append(args)  # recorded: a library may swallow the error
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import evaluate
metric = evaluate.load(sys.argv[1])
print(metric.compute(policy_chosen_logps=[-1.0], policy_rejected_logps=[-3.0], reference_chosen_logps=[-2.0],
                     reference_rejected_logps=[-2.0])["alignment_accuracy"])
print("network attempts:", len(attempts))
"""


def test_evaluate_load_by_path_needs_no_network(tmp_path):
    # A fresh process without any offline flag, with every socket refused: loading by path must not reach out.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf")
    output = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_NETWORK, str(METRIC_FOLDER)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert output.returncode == 0, output.stderr[-2000:]
    assert output.stdout.strip().splitlines()[-2:] == ["1.0", "network attempts: 0"]


# -------------------------------------------------------------------------------------------------------- reversal
def test_reversal_twice_gives_back_the_original(alignx_space):
    for row in alignx_rows(6, seed=3, with_metadata=True):
        original = copy.deepcopy(row)
        reversed_row = reverse_alignx_row(row, alignx_space)
        assert row == original  # input untouched
        assert reversed_row != row
        assert reverse_alignx_row(reversed_row, alignx_space) == row


def test_reversal_flips_every_preference(alignx_space):
    row = next(alignx_rows(2, seed=5))
    reversed_row = reverse_alignx_row(row)
    assert (reversed_row["chosen"], reversed_row["rejected"]) == (row["rejected"], row["chosen"])
    assert reversed_row["prompt"] == row["prompt"]
    assert reversed_row["Demographic Information"] == row["Demographic Information"]
    assert reversed_row["Preference Direction"] == alignx_space.reverse(row["Preference Direction"])
    assert alignx_space.active(row["Preference Direction"])  # something to flip
    for before, after in zip(row["User-Generated Content"], reversed_row["User-Generated Content"], strict=True):
        assert after["comment"] == before["comment"]
        assert after["Preference Direction"] == alignx_space.reverse(before["Preference Direction"])
    for before, after in zip(
        row["Pair-wise Comparative Feedback"], reversed_row["Pair-wise Comparative Feedback"], strict=True
    ):
        assert (after["chosen"], after["rejected"]) == (before["rejected"], before["chosen"])
        assert after["Preference Direction"] == alignx_space.reverse(before["Preference Direction"])
    # The persona read from the reversed row prefers the opposite of every dimension.
    persona, opposite = Persona.from_alignx_row(row), Persona.from_alignx_row(reversed_row)
    assert opposite.preference_vector() == alignx_space.reverse(persona.preference_vector())


def test_reversed_target_matches_the_synthetic_mirror_row():
    # alignx_rows emits each target pair under a user and under their mirror (every preference reversed).
    user_row, mirror_row = list(alignx_rows(2, seed=7))
    reversed_row = reverse_alignx_row(user_row)
    for column in ("prompt", "chosen", "rejected", "Preference Direction"):
        assert reversed_row[column] == mirror_row[column]


def test_reversal_options_and_errors(alignx_space):
    vector = alignx_space.vector({16: 1.0, 73: 0.0})
    row = {
        "prompt": "Any advice?",
        "chosen": "Short.",
        "rejected": "Long.",
        "preference_direction": vector,
        "demographic_information": "A 30-year-old nurse who laughs at every joke.",
        "user_generated_content": [{"prompt": "Post", "comment": "Ha!", "preference_direction": None}],
        "pairwise_comparative_feedback": [{"prompt": "Post", "chosen": "a", "rejected": "b"}],
        "profile": alignx_space.to_text(vector),
    }
    reversed_row = reverse_alignx_row(row, alignx_space)
    assert set(reversed_row) == set(row)  # snake_case names kept
    assert reversed_row["preference_direction"] == alignx_space.reverse(vector)
    assert reversed_row["user_generated_content"][0]["preference_direction"] is None
    assert reversed_row["pairwise_comparative_feedback"] == [{"prompt": "Post", "chosen": "b", "rejected": "a"}]
    assert alignx_space.from_text(reversed_row["profile"]) == alignx_space.reverse(vector)
    assert reverse_alignx_row(reversed_row, alignx_space) == row

    dropped = reverse_alignx_row(row, alignx_space, drop_irreversible_text=True)
    assert dropped["user_generated_content"] == [] and dropped["demographic_information"] == ""
    assert dropped["pairwise_comparative_feedback"] == reversed_row["pairwise_comparative_feedback"]

    free_text = {**row, "profile": "Likes long walks on the beach."}
    with pytest.raises(ValueError, match="column 'profile' is not a preference text"):
        reverse_alignx_row(free_text, alignx_space)
    assert reverse_alignx_row(free_text, alignx_space, drop_irreversible_text=True)["profile"] is None
    with pytest.raises(ValueError, match=r"column .preference_direction.*index 0 holds 0\.3"):
        reverse_alignx_row({**row, "preference_direction": [0.3] * len(alignx_space)}, alignx_space)
