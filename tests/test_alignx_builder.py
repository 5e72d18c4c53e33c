import json
import random
from collections import defaultdict

import pytest
from datasets import Dataset, Json

from personalign import Persona, ica_messages, pba_messages
from personalign.data.alignx import (
    CHAT_FEATURES,
    RAW_FEATURES,
    RELEASE_FORMAT_FEATURES,
    AlignXBuildConfig,
    build_alignx,
    check_alignx_rows,
    numeric_vectors,
    read_alignx,
)
from personalign.data.loading import data_files, load_source
from personalign.data.synthetic import ALIGNX_FEATURES, alignx_rows
from personalign.errors import InputError
from personalign.io import write_rows

BENCHMARK_ROWS = [
    {
        "prompt": "Reword this sentence.",
        "chosen": "Short, witty version!",
        "rejected": "A plain version.",
        "ground_truth_persona": "Generate a response that is friendly, witty, funny, and humorous.",
        "profile": "High Extraversion, Likes humor",
        "Pair-wise Comparative Feedback": [
            {"prompt": "Classify: calm", "chosen": "Calm, like a cat!", "rejected": "Adjective."},
            {"prompt": "Combine two sentences.", "chosen": "Hermit crab joke.", "rejected": "Plain."},
        ],
    }
] * 3


@pytest.fixture(scope="module")
def release_folder(tmp_path_factory):
    """A local copy of the release layout: train parquet shards (release schema) and a benchmark json file."""
    folder = tmp_path_factory.mktemp("alignx_release")
    rows = list(alignx_rows(120, seed=11))
    write_rows(rows[:60], folder / "train-00000-of-00002.parquet", ALIGNX_FEATURES, progress=False)
    write_rows(rows[60:], folder / "train-00001-of-00002.parquet", ALIGNX_FEATURES, progress=False)
    (folder / "test.json").write_text(json.dumps(BENCHMARK_ROWS))
    return folder, rows


def test_data_files_follow_the_datasets_split_rules(release_folder):
    folder, _ = release_folder
    files = data_files(folder)
    assert sorted(files) == ["test", "train"]
    assert [p.name for p in files["train"]] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]


def test_raw_config_normalises_and_keeps_every_value(release_folder):
    folder, rows = release_folder
    raw = read_alignx(folder)
    assert raw["train"].features == RAW_FEATURES and raw["test"].features == RAW_FEATURES
    assert len(raw["train"]) == 120 and len(raw["test"]) == 3
    first = raw["train"][0]
    assert first["prompt"] == rows[0]["prompt"]
    assert first["preference_direction"] == rows[0]["Preference Direction"]
    assert first["demographic_information"] == rows[0]["Demographic Information"]
    assert first["user_generated_content"][0]["comment"] == rows[0]["User-Generated Content"][0]["comment"]
    pair = rows[0]["Pair-wise Comparative Feedback"][-1]
    assert first["pairwise_comparative_feedback"][-1] == {
        "prompt": pair["prompt"],
        "chosen": pair["chosen"],
        "rejected": pair["rejected"],
        "preference_direction": pair["Preference Direction"],
    }
    assert raw["train"][119]["prompt"] == rows[119]["prompt"]  # shards concatenated in order
    bench = raw["test"][0]
    assert bench["profile"] == "High Extraversion, Likes humor"
    assert bench["ground_truth_persona"].startswith("Generate a response")
    assert bench["preference_direction"] is None
    assert bench["pairwise_comparative_feedback"][0]["preference_direction"] is None


def test_pba_config_renders_the_sampled_history_profile(release_folder, alignx_space):
    folder, rows = release_folder
    pba = build_alignx(folder, "pba", AlignXBuildConfig(seed=3))
    assert pba["train"].features == CHAT_FEATURES
    for index in (0, 7, 61):
        persona = Persona.from_alignx_row(rows[index]).sample_history(random.Random(f"3:{index}"))
        expected = alignx_space.to_text(alignx_space.aggregate(persona.item_directions()))
        row = pba["train"][index]
        assert row["profile"] == expected
        assert row["prompt"] == pba_messages(rows[index]["prompt"], expected)
        assert row["chosen"] == [{"role": "assistant", "content": rows[index]["chosen"]}]
    # benchmark rows carry their own profile text
    assert pba["test"][0]["profile"] == "High Extraversion, Likes humor"


def test_ica_config_and_sampling_are_deterministic(release_folder):
    folder, rows = release_folder
    first = build_alignx(folder, "ica", AlignXBuildConfig(seed=5))["train"]
    again = build_alignx(folder, "ica", AlignXBuildConfig(seed=5))["train"]
    other = build_alignx(folder, "ica", AlignXBuildConfig(seed=6))["train"]
    assert first.to_list() == again.to_list()
    assert first["prompt"] != other["prompt"]
    persona = Persona.from_alignx_row(rows[4]).sample_history(random.Random("5:4"))
    assert first[4]["prompt"] == ica_messages(rows[4]["prompt"], persona)


def test_parallel_build_equals_serial(release_folder):
    folder, _ = release_folder
    serial = build_alignx(folder, "pba", AlignXBuildConfig(seed=1), batch_size=16)
    parallel = build_alignx(folder, "pba", AlignXBuildConfig(seed=1), num_proc=2, batch_size=16)
    assert serial["train"].to_list() == parallel["train"].to_list()


def test_full_history_and_release_format(release_folder):
    folder, rows = release_folder
    full = build_alignx(folder, "ica", AlignXBuildConfig(keep_full_history=True))["train"]
    assert full[0]["prompt"] == ica_messages(rows[0]["prompt"], Persona.from_alignx_row(rows[0]))
    release = build_alignx(folder, "pba", AlignXBuildConfig(prompt_format="alignx_release"))["train"]
    assert release.features == RELEASE_FORMAT_FEATURES
    assert release[0]["prompt"].startswith("<|start_header_id|>system<|end_header_id|>")
    assert release[0]["chosen"] == rows[0]["chosen"]


def test_counterfactual_property_survives_the_build(release_folder, alignx_space):
    folder, _ = release_folder
    pba = build_alignx(folder, "pba", AlignXBuildConfig(keep_full_history=True))["train"]
    groups = defaultdict(list)
    for row in pba:
        task = row["prompt"][1]["content"].split("***User Preferences***")[0]
        groups[(task, frozenset((row["chosen"][0]["content"], row["rejected"][0]["content"])))].append(row)
    assert len(groups) == 60
    for members in groups.values():
        a, b = members
        assert a["chosen"] == b["rejected"]
        assert alignx_space.reverse(a["preference_direction"]) == b["preference_direction"]
        # the two users' profiles disagree on every target dimension
        va, vb = alignx_space.from_text(a["profile"]), alignx_space.from_text(b["profile"])
        for index in alignx_space.active(a["preference_direction"]):
            assert va[index] == a["preference_direction"][index] and vb[index] == b["preference_direction"][index]


def test_errors_name_file_row_and_column(tmp_path, alignx_space):
    rows = list(alignx_rows(4, seed=0))
    rows[2]["Pair-wise Comparative Feedback"][1]["Preference Direction"] = [0.5] * 89
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        ValueError,
        match=r"train\.jsonl, line 3, column 'Pair-wise Comparative Feedback' item 1 "
        r"'Preference Direction': preference vector has length 89",
    ):
        read_alignx(bad)
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "train.jsonl").write_text(json.dumps({"prompt": "a", "rejected": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl: missing column\(s\) 'chosen'"):
        read_alignx(missing)
    wrong_type = tmp_path / "wrong"
    wrong_type.mkdir()
    (wrong_type / "train.jsonl").write_text(json.dumps({"prompt": "a", "chosen": 3, "rejected": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl, line 1, column 'chosen': expected text, got int"):
        read_alignx(wrong_type)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no \.parquet, \.jsonl, \.json files found"):
        read_alignx(empty)
    with pytest.raises(ValueError, match="unknown AlignX config 'dpo'"):
        build_alignx(bad, "dpo")


def test_datasets_builder_class(release_folder, tmp_path):
    from personalign.data.alignx import AlignX

    folder, _ = release_folder
    builder = AlignX(config_name="pba", source=str(folder), seed=3, cache_dir=str(tmp_path))
    builder.download_and_prepare()
    built = builder.as_dataset()
    expected = build_alignx(folder, "pba", AlignXBuildConfig(seed=3))
    assert sorted(built) == ["test", "train"]
    assert built["train"].features == CHAT_FEATURES
    assert built["train"].to_list() == expected["train"].to_list()
    other = AlignX(config_name="pba", source=str(folder), seed=4, cache_dir=str(tmp_path))
    assert other.config_id != builder.config_id  # settings are part of the cache key
    raw = AlignX(config_name="raw", source=str(folder), cache_dir=str(tmp_path))
    raw.download_and_prepare()
    assert raw.as_dataset(split="test").features == RAW_FEATURES


def test_an_empty_persona_is_named_by_file_and_line(tmp_path):
    """A persona PBA cannot turn into a preference text (no profile, no annotated item, no gold direction) is named
    by its file and line when the pba config is built; the raw and ica configs take it as it is."""
    rows = list(alignx_rows(4, seed=0))
    rows[2].update({"User-Generated Content": [], "Pair-wise Comparative Feedback": [], "Preference Direction": None})
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError) as error:
        build_alignx(folder, "pba")
    assert str(error.value).startswith(f"{folder / 'train.jsonl'}, line 3: the persona is empty: no 'profile', ")
    assert len(build_alignx(folder, "ica")["train"]) == 4
    # a parquet row is named by its 0-based position, and a missing text by what it is
    parquet = tmp_path / "rows.parquet"
    rows[2]["chosen"] = None
    write_rows(rows, parquet, ALIGNX_FEATURES, progress=False)
    with pytest.raises(InputError, match=rf"^{parquet}, row 2 \(0-based\), column 'chosen': expected text, got null"):
        read_alignx(parquet)


def test_build_options_are_named_as_typed_on_the_command_line():
    with pytest.raises(InputError, match=r"\(CLI: --prompt-format\)"):
        AlignXBuildConfig(prompt_format="llama")
    with pytest.raises(InputError, match=r"\(CLI: --arithmetic\)"):
        AlignXBuildConfig(arithmetic="float16")
    with pytest.raises(InputError, match=r"got 3 \(CLI: --rows\)"):
        list(alignx_rows(3))


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_string_in_a_vector_is_refused_although_datasets_reads_it_as_a_number(tmp_path):
    """A vector mixing numbers and `"1"` becomes a `datasets.Json` column, whose encoding reads `"1"` back as the
    number 1 (`datasets.utils.json.json_encode_field`, internal): the file's own rows are checked instead, in
    `read_alignx` (build-dataset) and `check_alignx_rows` (the trainers) alike."""
    rows = list(alignx_rows(4, seed=0))
    rows[3]["Preference Direction"][7] = "1"
    path = _jsonl(tmp_path / "str.jsonl", rows)
    source = load_source(path)
    data = source.split("train")
    assert data.features["Preference Direction"].feature == Json()  # the internal this works around
    assert data[3]["Preference Direction"][7] == 1  # ... and its loss: the string reads back as a number
    message = r"str\.jsonl, line 4, column 'Preference Direction': index 7 holds '1' \(a string\); expected one of 0"
    with pytest.raises(InputError, match=message):
        read_alignx(path)
    with pytest.raises(InputError, match=message):
        check_alignx_rows(data, source.part_row_names(str(path)))
    rows = list(alignx_rows(4, seed=0))
    rows[1]["User-Generated Content"][0]["Preference Direction"] = [True] * 90
    with pytest.raises(
        InputError,
        match=r"line 2, column 'User-Generated Content' item 0 'Preference Direction': index 0 holds True \(a boolean\)",
    ):
        read_alignx(_jsonl(tmp_path / "bool.jsonl", rows))


def test_history_texts_and_demographics_must_be_text(tmp_path):
    rows = list(alignx_rows(4, seed=0))
    rows[2]["User-Generated Content"][0]["comment"] = 5
    with pytest.raises(
        InputError, match=r"line 3, column 'User-Generated Content' item 0 'comment': expected text, got the number 5"
    ):
        read_alignx(_jsonl(tmp_path / "comment.jsonl", rows))
    rows = list(alignx_rows(4, seed=0))
    rows[1]["Demographic Information"] = 42
    with pytest.raises(
        InputError, match=r"line 2, column 'Demographic Information': expected text or null, got the number 42"
    ):
        read_alignx(_jsonl(tmp_path / "demo.jsonl", rows))
    rows = list(alignx_rows(4, seed=0))
    rows[0]["Pair-wise Comparative Feedback"][0]["chosen"] = None
    with pytest.raises(InputError, match=r"line 1, column 'Pair-wise Comparative Feedback' item 0 'chosen'"):
        read_alignx(_jsonl(tmp_path / "pair.jsonl", rows))


def test_a_mixed_type_file_that_is_valid_keeps_its_texts(tmp_path):
    """Items with different keys make a `datasets.Json` column too; a valid file of that kind builds from its own
    rows, so a comment that looks like JSON (`"5"`, `"null"`) stays the text it is."""
    rows = list(alignx_rows(4, seed=0))
    rows[0]["User-Generated Content"][0]["comment"] = "5"
    rows[1]["User-Generated Content"][0]["comment"] = "null"
    del rows[2]["User-Generated Content"][0]["Preference Direction"]  # a benchmark-style item without a vector
    rows[3]["Demographic Information"] = None
    raw = read_alignx(_jsonl(tmp_path / "mixed.jsonl", rows))["train"]
    assert raw.features == RAW_FEATURES
    assert raw[0]["user_generated_content"][0]["comment"] == "5"
    assert raw[1]["user_generated_content"][0]["comment"] == "null"
    assert raw[2]["user_generated_content"][0]["preference_direction"] is None
    assert raw[3]["demographic_information"] is None
    assert raw[3]["preference_direction"] == [float(v) for v in rows[3]["Preference Direction"]]


def test_a_boolean_vector_column_is_checked_for_booleans(tmp_path):
    """A parquet file whose vectors are booleans (`list<bool>`) is not a numeric column: the validator's type pass,
    skipped for numeric columns (`numeric_vectors`), refuses it."""
    rows = list(alignx_rows(2, seed=0))
    for row in rows:
        row["Preference Direction"] = [True] * 90
        row["User-Generated Content"] = row["Pair-wise Comparative Feedback"] = []
    path = tmp_path / "bool.parquet"
    Dataset.from_list(rows).to_parquet(str(path))
    assert not numeric_vectors(load_source(path).split("train"))
    with pytest.raises(InputError, match=r"bool\.parquet, row 0 \(0-based\), column 'Preference Direction': index 0"):
        read_alignx(path)
    assert numeric_vectors(Dataset.from_list(list(alignx_rows(2, seed=0))))
