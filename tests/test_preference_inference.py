"""PreferenceInferencer: the AlignX paper's annotation prompt, messy-answer parsing, vote arithmetic, calibration,
reports."""

import re
import subprocess
import sys

import pytest

from personalign import Persona, PreferenceSpace
from personalign.data.synthetic import alignx_rows
from personalign.inference.calibration import calibrate_thresholds, direction_report
from personalign.inference.llm import (
    PreferenceInferencer,
    annotation_messages,
    dimension_question,
    pair_value,
    parse_annotation,
)


@pytest.fixture(scope="module")
def space():
    return PreferenceSpace.alignx()


class LabelReadingBackend:
    """A scripted "LLM": answers 1 / 2 when the comment contains the dimension's positive / negative label, 3
    otherwise, in deliberately messy formats; every 97th answer is garbage."""

    name = "scripted"

    def __init__(self, space):
        self.labels = {d.positive_label: d for d in space.dimensions} | {d.negative_label: d for d in space.dimensions}
        self.calls = 0

    def generate(self, prompts, max_new_tokens=8, **kwargs):
        answers = []
        for messages in prompts:
            self.calls += 1
            text = messages[-1]["content"]
            comment = text.split("Your task:")[1].split("Comment:\n")[1].split("\nTask:")[0]
            question = text.rsplit("Task:\n", 1)[1]
            options = re.findall(r"\(1\) (.*?) \(2\) (.*?) \(3\)", question)[0]
            if self.calls % 97 == 0:
                answers.append("I am not sure what you mean.")
            elif options[0] in comment and options[0] not in ("Likes",):
                answers.append(f"(1) {options[0]}")
            elif options[1] in comment and options[1] not in ("Dislikes",):
                answers.append(" 2\n")
            else:
                answers.append("3. Comments alone cannot reflect")
        return answers


def test_annotation_prompt_golden(space):
    neuroticism = space.dimensions[2]
    assert dimension_question(neuroticism) == (
        "What does this comment suggest about the commenter’s Neuroticism in the Big Five personality traits? "
        "(1) High Neuroticism (2) Low Neuroticism (3) Comments alone cannot reflect"
    )
    travel = next(d for d in space.dimensions if d.name == "travel")
    assert dimension_question(travel) == (
        "Does this comment indicate that the commenter likes or dislikes “travel”? (1) Likes (2) Dislikes "
        "(3) Comments alone cannot reflect"
    )
    content = annotation_messages("A post?", "A comment.", travel)[0]["content"]
    assert content.startswith("Example 1:\nQuery:\nI’m at urgent care")
    assert content.endswith(
        "Your task:\nQuery:\nA post?\nComment:\nA comment.\nTask:\n" + dimension_question(travel) + "\nResponse:\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", 2),
        (" (1) High Neuroticism", 1),
        ("**3**", 3),
        ("2. Low Neuroticism", 2),
        ("The answer is (2) Low Neuroticism.", 2),
        ("Low Neuroticism", 2),
        ("High Neuroticism, clearly", 1),
        ("Comments alone cannot reflect this.", 3),
        ("I cannot tell.", 3),
        ("Between 1 and 2, hard to say", None),
        ("High Neuroticism or Low Neuroticism", None),
        ("", None),
        ("12", None),
    ],
)
def test_parse_annotation_handles_messy_output(space, text, expected):
    assert parse_annotation(text, space.dimensions[2]) == expected


def test_parse_likes_and_dislikes(space):
    travel = next(d for d in space.dimensions if d.name == "travel")
    assert parse_annotation("Dislikes", travel) == 2
    assert parse_annotation("They likes it", travel) == 1
    assert parse_annotation("Likes travel", travel) == 1


def test_pair_value_rules():
    assert pair_value(1.0, 0.0) == 1.0 and pair_value(0.0, 1.0) == 0.0
    assert pair_value(1.0, 1.0) == 0.5 and pair_value(0.5, 0.5) == 0.5
    assert pair_value(1.0, 0.5) == 1.0 and pair_value(0.5, 0.0) == 1.0 and pair_value(0.5, 1.0) == 0.0


def _synthetic_personas(count, seed):
    personas, gold = [], []
    for row in alignx_rows(count, seed=seed):
        persona = Persona.from_alignx_row(row)
        personas.append(persona)
        gold.append(persona.preference_vector())  # gold: the aggregation of the items' annotated vectors
    return personas, gold


def test_inferencer_reads_personas_counts_unparsable_and_calibration_helps(space):
    backend = LabelReadingBackend(space)
    inferencer = PreferenceInferencer(backend, space=space, batch_size=500)
    personas, gold = _synthetic_personas(12, seed=3)
    items = [inferencer.infer_items([*p.ugc, *p.pairs]) for p in personas]
    num_items = sum(len(p.ugc) + len(p.pairs) for p in personas)
    num_comments = sum(len(p.ugc) + 2 * len(p.pairs) for p in personas)
    assert inferencer.report.num_items == num_items and backend.calls == num_comments * 90
    assert inferencer.report.num_unparsable == backend.calls // 97
    assert inferencer.report.to_dict()["unparsable_rate"] == pytest.approx(1 / 97, abs=1e-3)

    default = [space.aggregate(vectors) for vectors in items]
    report = direction_report(default, gold)
    assert report["positive"]["recall"] > 0.7  # the labels are in the text: active preferences are found...
    assert report["positive"]["precision"] < report["positive"]["recall"]  # ...and over-predicted (distractors)
    calibrated = calibrate_thresholds(items, gold, space)
    assert calibrated["upper"] > 0.6 and calibrated["macro_f1"] > report["macro_f1"] + 0.02
    assert calibrated["scores"][0.6] == pytest.approx(report["macro_f1"])
    # The persona-level API agrees with the item-level one under the chosen thresholds.
    tuned = PreferenceInferencer(
        LabelReadingBackend(space), space=space, upper=calibrated["upper"], lower=calibrated["lower"]
    )
    first = tuned.infer(personas[0])
    assert first == space.aggregate(items[0], upper=calibrated["upper"], lower=calibrated["lower"])
    assert tuned.profile_text(personas[0]) == space.to_text(first)
    assert PreferenceInferencer(backend, space=space).infer(Persona()) == [0.5] * 90


def test_direction_report_by_hand():
    report = direction_report([[1.0, 0.0, 0.5, 1.0]], [[1.0, 0.5, 0.5, 0.0]])
    assert report["positive"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert report["negative"]["precision"] == 0.0 and report["negative"]["recall"] == 0.0
    assert report["neutral"]["precision"] == 1.0 and report["neutral"]["recall"] == 0.5
    with pytest.raises(ValueError, match="1 vectors for 2 gold"):
        direction_report([[1.0]], [[1.0], [0.0]])


def test_the_llm_inferencer_and_calibration_do_not_import_torch():
    """The LLM path (prompts, parsing, base, calibration, backends' module) stays light: torch loads only when a
    local backend or the learned inferencer is built."""
    code = (
        "import sys; import personalign.inference.llm, personalign.inference.calibration, "
        "personalign.inference.generation; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
