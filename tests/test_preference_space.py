import json
import math
import random
import re
import sys

import pytest

from personalign import PreferenceSpace
from personalign.cli import app, run
from personalign.errors import InputError
from personalign.personas.space import PreferenceDimension


def random_vector(rng, size, neutral_share=0.7):
    return [0.5 if rng.random() < neutral_share else float(rng.randint(0, 1)) for _ in range(size)]


def test_alignx_space_has_the_release_dimensions(alignx_space):
    assert len(alignx_space) == 90
    assert alignx_space.dimensions[0].positive_label == "Young"
    assert alignx_space.dimensions[16].positive_label == "Concise communication style"
    assert alignx_space.dimensions[40].name == "Degree of concern for the harmlessness of the statement"
    assert alignx_space.dimensions[89].negative_label == "Dislikes fashion"
    assert [d.source for d in alignx_space.dimensions].count("interest_tags") == 43


def test_packaged_space_is_the_shared_spec(alignx_space):
    from pathlib import Path

    spec_path = Path(__file__).resolve().parents[2] / "shared/spec/alignx_preference_space.json"
    if not spec_path.exists():
        pytest.skip("the team's shared/spec folder is not beside this checkout")
    spec = json.loads(spec_path.read_text())
    assert [(d.name, d.positive_label, d.negative_label) for d in alignx_space.dimensions] == [
        (d["name"], d["positive_label"], d["negative_label"]) for d in spec["dimensions"]
    ]


def test_to_text_follows_the_release_rule(alignx_space):
    vector = alignx_space.vector({2: 1, 16: 0, 73: 1})
    assert alignx_space.to_text(vector) == "High Neuroticism, Detailed communication style, Likes humor"
    assert alignx_space.to_text(alignx_space.neutral()) == ""


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_on_random_vectors(alignx_space, seed):
    rng = random.Random(seed)
    for share in (0.0, 0.5, 0.9, 1.0):
        vector = random_vector(rng, len(alignx_space), share)
        assert alignx_space.from_text(alignx_space.to_text(vector)) == vector


def test_round_trip_with_labels_containing_the_separator(alignx_space):
    # Dimension 22's labels contain ", " themselves ("(e.g., art, writing, music)").
    assert ", " in alignx_space.dimensions[22].positive_label
    for values in ({22: 1}, {21: 0, 22: 0, 23: 1}, {7: 1, 22: 1, 89: 0}):
        vector = alignx_space.vector(values)
        assert alignx_space.from_text(alignx_space.to_text(vector)) == vector


def test_from_text_rejects_unknown_or_out_of_order_labels(alignx_space):
    with pytest.raises(ValueError, match="Likes volcanoes"):
        alignx_space.from_text("Likes humor, Likes volcanoes")
    with pytest.raises(ValueError, match="Cannot read"):
        alignx_space.from_text("Likes humor, High Neuroticism")  # to_text always lists dimensions in order


def _items_with_means(space, means, count):
    """Item vectors whose per-dimension means are the given `{index: mean}` values over `count` items."""
    vectors = [space.neutral() for _ in range(count)]
    for index, mean in means.items():
        # mean = 0.5 + (ones - zeros) / (2 * count); use only ones (mean > 0.5) or only zeros (mean < 0.5)
        shift = round((mean - 0.5) * 2 * count)
        assert math.isclose(0.5 + shift / (2 * count), mean)
        for item in range(abs(shift)):
            vectors[item][index] = 1.0 if shift > 0 else 0.0
    return vectors


@pytest.mark.parametrize(
    ("mean", "count", "expected"),
    [
        (0.6, 5, 1.0),  # exactly at the upper threshold (3/5 == 0.6 in floating point): positive
        (0.4, 5, 0.0),  # exactly at the lower threshold: negative
        (0.625, 4, 1.0),
        (0.375, 4, 0.0),
        (5 / 9, 9, 0.5),  # 0.555...: neutral
        (4 / 9, 9, 0.5),  # 0.444...: neutral
        (0.5, 9, 0.5),
    ],
)
def test_aggregate_thresholds(alignx_space, mean, count, expected):
    # Dimension 5 is positive in every item, so the fallback never applies here.
    vectors = _items_with_means(alignx_space, {0: mean, 5: 1.0}, count)
    result = alignx_space.aggregate(vectors)
    assert result[0] == expected
    assert result[5] == 1.0
    assert alignx_space.active(result) == ([5] if expected == 0.5 else [0, 5])


def test_aggregate_custom_thresholds(alignx_space):
    vectors = _items_with_means(alignx_space, {0: 0.7, 1: 0.2}, 10)
    assert alignx_space.aggregate(vectors, upper=0.75, lower=0.25) == alignx_space.vector({1: 0})


def test_fallback_positive_branch(alignx_space):
    # max 0.58 (dims 3 and 7, tied) is further from 0.5 than min 0.46 (dim 9): 1 - 0.58 = 0.42 < 0.46
    vectors = _items_with_means(alignx_space, {3: 0.58, 7: 0.58, 9: 0.46}, 50)
    assert alignx_space.aggregate(vectors) == alignx_space.vector({3: 1, 7: 1})


def test_fallback_negative_branch(alignx_space):
    # min 0.42 (dims 1 and 60, tied) is further from 0.5 than max 0.54: 1 - 0.54 = 0.46 >= 0.42
    vectors = _items_with_means(alignx_space, {1: 0.42, 60: 0.42, 30: 0.54}, 50)
    assert alignx_space.aggregate(vectors) == alignx_space.vector({1: 0, 60: 0})


def test_fallback_tie_between_extremes_goes_negative(alignx_space):
    # 1 - 0.56 == 0.44: not "<", so the release sets the minimum dimension to 0.
    vectors = _items_with_means(alignx_space, {4: 0.56, 8: 0.44}, 50)
    assert alignx_space.aggregate(vectors) == alignx_space.vector({8: 0})


def test_float32_arithmetic_reproduces_the_release_at_the_lower_threshold(alignx_space):
    # The release averages in float32: 2/5 becomes 0.4000000059604645, which is not <= 0.4.
    at_lower = _items_with_means(alignx_space, {0: 0.4, 5: 1.0}, 5)
    assert alignx_space.aggregate(at_lower)[0] == 0.0
    assert alignx_space.aggregate(at_lower, arithmetic="float32")[0] == 0.5
    at_upper = _items_with_means(alignx_space, {0: 0.6, 5: 1.0}, 5)
    assert alignx_space.aggregate(at_upper, arithmetic="float32")[0] == 1.0


def test_float32_arithmetic_matches_torch_means(alignx_space):
    import numpy as np
    import torch

    rng = random.Random(0)
    for _ in range(50):
        vectors = [random_vector(rng, 90, 0.6) for _ in range(rng.randint(1, 12))]
        reference = torch.tensor(vectors).mean(dim=0).tolist()  # the release's computation
        expected = [1.0 if m >= 0.6 else 0.0 if m <= 0.4 else 0.5 for m in reference]
        if any(v != 0.5 for v in expected):
            assert alignx_space.aggregate(vectors, arithmetic="float32") == expected
        assert np.allclose(reference, np.asarray(vectors).mean(axis=0), atol=1e-6)


def test_fallback_on_all_neutral_input_is_the_release_quirk(alignx_space):
    neutral = [alignx_space.neutral()] * 3
    assert alignx_space.aggregate(neutral) == [0.0] * 90  # every mean equals the minimum 0.5
    assert alignx_space.aggregate(neutral, fallback=False) == alignx_space.neutral()


def test_no_fallback_when_a_dimension_passes_a_threshold(alignx_space):
    vectors = _items_with_means(alignx_space, {3: 0.6, 9: 0.45}, 10)
    assert alignx_space.aggregate(vectors) == alignx_space.vector({3: 1})


def test_aggregate_rejects_empty_input_and_bad_thresholds(alignx_space):
    with pytest.raises(ValueError, match="at least one"):
        alignx_space.aggregate([])
    with pytest.raises(ValueError, match="lower < upper"):
        alignx_space.aggregate([alignx_space.neutral()], upper=0.4, lower=0.6)


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([0.5] * 89, "length 89"),
        ([0.5] * 91, "length 91"),
        ([0.5] * 17 + [0.7] + [0.5] * 72, "index 17 holds 0.7"),
        ([0.5] * 3 + [float("nan")] + [0.5] * 86, "index 3 holds nan"),
        ([0.5] * 5 + ["1"] + [0.5] * 84, "index 5 holds '1'"),
        ([0.5] * 8 + [None] + [0.5] * 81, "index 8 holds None"),
        ([0.5] * 2 + [-1] + [0.5] * 87, "index 2 holds -1"),
        ("0,1", "expected a preference vector"),
    ],
)
def test_validation_names_the_offending_index(alignx_space, vector, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        alignx_space.validate(vector, where="train.parquet, row 4, column 'Preference Direction'")
    with pytest.raises(ValueError, match=r"train\.parquet, row 4"):
        alignx_space.validate(vector, where="train.parquet, row 4, column 'Preference Direction'")


def test_validation_accepts_integers_and_numpy(alignx_space):
    import numpy as np

    vector = [0] * 10 + [1] * 10 + [0.5] * 70
    assert alignx_space.validate(vector) == [float(v) for v in vector]
    assert alignx_space.validate(np.array(vector, dtype=np.float32)) == [float(v) for v in vector]


def test_user_defined_space():
    space = PreferenceSpace.from_dimensions(
        [("Expertise", "Expert", "Novice"), ("Style", "Friendly", "Unfriendly")], name="mine"
    )
    assert space.to_text([1, 0]) == "Expert, Unfriendly"
    assert space.from_text("Unfriendly") == [0.5, 0.0]
    assert space.aggregate([[1, 0.5], [1, 0.5], [0, 0.5]]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="the mine space expects 2"):
        space.validate([1, 0, 1])
    psoups = PreferenceSpace.psoups()
    assert len(psoups) == 3
    assert psoups.from_text(psoups.to_text([0, 1, 0.5])) == [0, 1, 0.5]


def test_duplicate_labels_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        PreferenceSpace([PreferenceDimension("a", "Yes", "No"), PreferenceDimension("b", "Yes", "Never")])


def test_json_round_trip(tmp_path, alignx_space):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(alignx_space.to_dict()))
    loaded = PreferenceSpace.from_json(path)
    assert loaded.dimensions == alignx_space.dimensions
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json"):
        PreferenceSpace.from_json(bad)


def test_reverse(alignx_space):
    vector = alignx_space.vector({0: 1, 5: 0})
    assert alignx_space.reverse(vector) == alignx_space.vector({0: 0, 5: 1})
    assert alignx_space.active(vector) == [0, 5]


def test_vector_builder_checks_its_entries(alignx_space):
    assert alignx_space.vector({0: 1, 89: 0})[::89] == [1.0, 0.0]
    with pytest.raises(ValueError, match="index 90 is outside"):
        alignx_space.vector({90: 1})
    with pytest.raises(ValueError, match=r"index 3 holds 0\.3"):
        alignx_space.vector({3: 0.3})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", r"bad\.json: a preference space is a JSON object, got a list; expected \{"),
        ('{"dims": []}', r"bad\.json: a preference space needs a 'dimensions' list, got no 'dimensions' field"),
        (
            '{"dimensions": {}}',
            r"bad\.json: a preference space needs a 'dimensions' list, got 'dimensions' is a object",
        ),
        ('{"dimensions": ["a"]}', r"bad\.json: 'dimensions' item 0 \(0-based\): expected an object with name, "),
        (
            '{"dimensions": [{"name": "a", "positive_label": "x"}]}',
            r"bad\.json: 'dimensions' item 0 \(0-based\): missing field\(s\) 'negative_label'",
        ),
        (
            '{"dimensions": [{"name": "a", "positive_label": 3, "negative_label": "y"}]}',
            r"bad\.json: 'dimensions' item 0 \(0-based\), field 'positive_label': expected text, got 3 \(a number\)",
        ),
        (
            '{"dimensions": [{"name": "a", "positive_label": "x", "negative_label": "y", "index": "0"}]}',
            r"bad\.json: 'dimensions' item 0 \(0-based\), field 'index': declares '0'",
        ),
        (
            '{"dimensions": [{"name": "a", "positive_label": "x", "negative_label": "x"}]}',
            r"bad\.json: Preference space 'bad', dimension 0 \('a'\): 'x' is both its positive and its negative label",
        ),
        ('{"dimensions": [\n', r"bad\.json, line 2, column 1: not valid JSON \(Expecting value\); expected a pref"),
    ],
)
def test_a_bad_space_file_is_one_line_naming_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        PreferenceSpace.from_json(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_space_command_names_a_bad_or_missing_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "space.json"
    path.write_text('{"dimensions": [{"name": "a", "positive_label": 3, "negative_label": "y"}]}')
    for name, expected in [
        (path, f"error: {path}: 'dimensions' item 0 (0-based), field 'positive_label': expected text"),
        (tmp_path / "missing.json", f"error: preference space file {tmp_path / 'missing.json'}: no such file"),
    ]:
        monkeypatch.setattr(sys, "argv", ["personalign", "space", str(name)])
        with pytest.raises(SystemExit) as exit_info:
            run(app)
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 1 and len(lines) == 1 and lines[0].startswith(expected), lines


@pytest.mark.parametrize(
    ("entry", "message"),
    [(True, "index 6 holds True (a boolean)"), (False, "index 6 holds False (a boolean)"), ("1", "'1' (a string)")],
)
def test_validation_refuses_booleans_and_text_although_they_equal_numbers(alignx_space, entry, message):
    """`True == 1` and hashes as 1, so the set check alone would let booleans through as 1.0."""
    vector = [0.5] * 6 + [entry] + [0.5] * 83
    with pytest.raises(InputError, match=re.escape(f"{message}; expected one of 0, 0.5, 1.")):
        alignx_space.validate(vector, where="rows.jsonl, line 2, column 'Preference Direction'")
    with pytest.raises(InputError, match=r"index 0 holds True \(a boolean\)"):
        alignx_space.validate([True] * 90)
