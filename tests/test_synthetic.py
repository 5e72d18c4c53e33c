import itertools
import time
from collections import defaultdict

import pytest
from datasets import Dataset, load_dataset

from personalign import Persona
from personalign.data.synthetic import (
    ALIGNX_FEATURES,
    ALIGNX_METADATA_FEATURES,
    EXPRESSED_DIMENSIONS,
    MULTIFACETED_DIMENSIONS,
    MULTIFACETED_FEATURES,
    alignx_dataset,
    alignx_rows,
    multifaceted_dataset,
    multifaceted_rows,
)
from personalign.io import OutputExistsError, write_rows

RELEASE_COLUMNS = [
    "prompt",
    "chosen",
    "rejected",
    "Preference Direction",
    "Demographic Information",
    "User-Generated Content",
    "Pair-wise Comparative Feedback",
]


def test_rows_have_the_release_columns_exactly(alignx_space):
    for row in alignx_rows(12, seed=0):
        assert list(row) == RELEASE_COLUMNS
        alignx_space.validate(row["Preference Direction"])
        assert alignx_space.active(row["Preference Direction"])  # the target pair always has a direction
        for item in row["User-Generated Content"]:
            assert sorted(item) == ["Preference Direction", "comment", "prompt"]
            alignx_space.validate(item["Preference Direction"])
        for item in row["Pair-wise Comparative Feedback"]:
            assert sorted(item) == ["Preference Direction", "chosen", "prompt", "rejected"]
            assert item["chosen"] != item["rejected"]


def test_features_are_stable_through_from_list_and_from_generator():
    rows = list(alignx_rows(12, seed=0))
    from_list = Dataset.from_list(rows, features=ALIGNX_FEATURES)
    from_generator = alignx_dataset(12, seed=0, keep_in_memory=True)
    assert from_list.features == from_generator.features == ALIGNX_FEATURES
    assert from_generator.to_list() == from_list.to_list() == rows
    # The inferred schema (no features given) is the same as the declared one.
    assert Dataset.from_list(rows).features == ALIGNX_FEATURES
    with_metadata = alignx_dataset(4, seed=0, with_metadata=True, keep_in_memory=True)
    assert with_metadata.features == ALIGNX_METADATA_FEATURES


def test_generation_is_deterministic_and_seeded():
    assert list(alignx_rows(10, seed=5)) == list(alignx_rows(10, seed=5))
    assert list(alignx_rows(10, seed=5)) != list(alignx_rows(10, seed=6))
    # A prefix of a longer stream is the shorter stream: rows depend on (seed, index) only.
    assert list(alignx_rows(20, seed=5))[:10] == list(alignx_rows(10, seed=5))


def test_generation_streams_without_materialising():
    start = time.perf_counter()
    first = list(itertools.islice(alignx_rows(10_000_000, seed=0), 4))
    assert len(first) == 4
    assert time.perf_counter() - start < 30  # generous: a materialised 10M-row list would never get here


def test_counterfactual_by_construction(alignx_space):
    rows = list(alignx_rows(400, seed=1, with_metadata=True))
    groups = defaultdict(list)
    for row in rows:
        groups[(row["prompt"], frozenset((row["chosen"], row["rejected"])))].append(row)
    for group in groups.values():
        orientations = defaultdict(list)
        for row in group:
            orientations[row["chosen"]].append(row)
        # every (prompt, response pair) appears equally often with each response chosen ...
        assert len(orientations) == 2
        first, second = orientations.values()
        assert len(first) == len(second)
        # ... and the two orientations have opposite target directions
        for a, b in zip(first, second, strict=True):
            assert alignx_space.reverse(a["Preference Direction"]) == b["Preference Direction"]
            assert a["persona_id"] != b["persona_id"]


def test_a_persona_blind_scorer_scores_exactly_chance():
    rows = list(alignx_rows(200, seed=2))
    for scorer in (len, lambda text: sum(map(ord, text)), lambda text: text.count("e")):
        correct = sum(scorer(row["chosen"]) > scorer(row["rejected"]) for row in rows)
        ties = sum(scorer(row["chosen"]) == scorer(row["rejected"]) for row in rows)
        assert correct == (len(rows) - ties) / 2


def test_chosen_follows_the_users_direction_and_history_is_consistent(alignx_space):
    by_index = {d.index: d for d in EXPRESSED_DIMENSIONS}
    for row in alignx_rows(60, seed=3, with_metadata=True):
        direction = row["Preference Direction"]
        for index in row["target_dimensions"]:
            wanted = by_index[index].phrases(direction[index])
            unwanted = by_index[index].phrases(1 - direction[index])
            topic_free = [p.split("{topic}")[0] for p in wanted]
            assert any(prefix in row["chosen"] for prefix in topic_free)
            assert not any(p.split("{topic}")[0] in row["chosen"] for p in unwanted if p.split("{topic}")[0])
        # without item noise the persona's aggregate agrees with the target on every target dimension
        aggregate = Persona.from_alignx_row(row).preference_vector(alignx_space)
        for index in row["target_dimensions"]:
            assert aggregate[index] == direction[index]


def test_personas_are_reused_with_the_same_history():
    rows = list(alignx_rows(200, seed=4, num_personas=6, with_metadata=True))
    histories = defaultdict(set)
    for row in rows:
        histories[row["persona_id"]].add(repr(row["User-Generated Content"]) + row["Demographic Information"])
    assert len(histories) == 6
    assert all(len(h) == 1 for h in histories.values())


def test_history_size_and_noise_options(alignx_space):
    rows = list(alignx_rows(40, seed=0, history_size=(16, 16), item_noise=0.3))
    assert all(len(r["User-Generated Content"]) == 16 == len(r["Pair-wise Comparative Feedback"]) for r in rows)
    # with noise some item vectors disagree with the target direction
    disagreements = 0
    for row in rows:
        for item in row["User-Generated Content"]:
            for index in alignx_space.active(row["Preference Direction"]):
                value = item["Preference Direction"][index]
                disagreements += value not in (0.5, row["Preference Direction"][index])
    assert disagreements > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_rows": 3}, "even"),
        ({"num_rows": 4, "num_personas": 3}, "num_personas"),
        ({"num_rows": 4, "item_noise": 0.6}, "item_noise"),
        ({"num_rows": 4, "active_dimensions": (0, 2)}, "active_dimensions"),
        ({"num_rows": 4, "history_size": (5, 2)}, "history_size"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        list(alignx_rows(**kwargs))


def test_multifaceted_rows_in_the_release_schema():
    rows = list(multifaceted_rows(20, seed=0))
    assert len(rows) == 60
    assert Dataset.from_list(rows).features == MULTIFACETED_FEATURES
    assert multifaceted_dataset(20, seed=0, keep_in_memory=True).to_list() == rows
    by_prompt = defaultdict(list)
    for row in rows:
        assert list(row) == ["main_source", "original_source", "preference_set", "system", "prompt", "output"]
        assert [p["dimension"] for p in row["preference_set"]] == list(MULTIFACETED_DIMENSIONS)
        by_prompt[row["prompt"]].append(row)
    for group in by_prompt.values():
        assert len(group) % 3 == 0
        for triple in (group[i : i + 3] for i in range(0, len(group), 3)):
            assert len({r["output"] for r in triple}) == 3
            assert len({r["system"] for r in triple}) == 3
            for position in range(4):
                assert len({r["preference_set"][position]["preference"] for r in triple}) == 3


def test_write_rows_parquet_and_jsonl_round_trip(tmp_path):
    rows = list(alignx_rows(10, seed=0))
    parquet = tmp_path / "out" / "alignx.parquet"
    assert write_rows(iter(rows), parquet, ALIGNX_FEATURES, batch_size=3, progress=False) == 10
    loaded = load_dataset("parquet", data_files=str(parquet), split="train")
    assert loaded.features == ALIGNX_FEATURES
    assert loaded.to_list() == rows
    jsonl = tmp_path / "alignx.jsonl"
    write_rows(rows, jsonl, progress=False)
    assert load_dataset("json", data_files=str(jsonl), split="train").to_list() == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alignx.jsonl", "out"]  # no temporary files left


def test_write_rows_never_overwrites_silently_and_is_atomic(tmp_path):
    path = tmp_path / "data.jsonl"
    write_rows([{"a": 1}], path, progress=False)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_rows([{"a": 2}], path, progress=False)

    def failing_rows():
        yield {"a": 3}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_rows(failing_rows(), path, overwrite=True, progress=False)
    assert path.read_text() == '{"a": 1}\n'  # the previous output is intact
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]
    write_rows([{"a": 4}], path, overwrite=True, progress=False)
    assert path.read_text() == '{"a": 4}\n'
    with pytest.raises(ValueError, match="unsupported output format"):
        write_rows([], tmp_path / "x.csv", progress=False)


def test_dataset_cache_follows_the_text_banks(monkeypatch):
    # `Dataset.from_generator` caches by code and arguments; a change to the text banks must not serve stale rows.
    from personalign.data import synthetic

    original = alignx_dataset(2, seed=0).to_list()
    monkeypatch.setattr(synthetic, "TOPICS", ("the volcano tour",))
    changed = alignx_dataset(2, seed=0).to_list()
    assert "the volcano tour" in changed[0]["prompt"]
    assert changed != original


def test_pair_adjacent_epochs_keeps_counterfactual_pairs_together():
    from personalign.data.synthetic import pair_adjacent_epochs

    rows = [{"i": i} for i in range(8)]
    ordered = pair_adjacent_epochs(rows, epochs=3, seed=1)
    assert len(ordered) == 24
    for start in range(0, 24, 2):
        first, second = ordered[start]["i"], ordered[start + 1]["i"]
        assert first % 2 == 0 and second == first + 1
    passes = [sorted(r["i"] for r in ordered[k * 8 : (k + 1) * 8]) for k in range(3)]
    assert passes == [list(range(8))] * 3 and ordered[:8] != ordered[8:16]
    assert pair_adjacent_epochs(rows, epochs=3, seed=1) == ordered
    with pytest.raises(ValueError, match="odd number of rows"):
        pair_adjacent_epochs(rows[:3], epochs=1)


def test_write_rows_to_an_existing_folder_says_so(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match=rf"{folder} already exists"):
        write_rows([{"a": 1}], folder, progress=False)
    with pytest.raises(ValueError, match=rf"^{folder} is a folder, and a folder cannot be replaced by a file"):
        write_rows([{"a": 1}], folder, overwrite=True, progress=False)
    assert (folder / "keep.txt").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
