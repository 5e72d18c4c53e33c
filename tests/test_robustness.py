"""Persona-size subsets, per-dimension labels, MultiFacet reversal (opposite users) and the plots: pure functions, no
model."""

import copy
from collections import Counter

import pytest
from PIL import Image

from personalign import PreferenceSpace
from personalign.data.multifacet import MultifacetBuildConfig, attach_history, build_multifacet_cf
from personalign.data.synthetic import alignx_rows, multifaceted_dataset
from personalign.evaluation import (
    compute_alignment_metrics,
    multifacet_counterparts,
    reverse_multifacet,
)
from personalign.evaluation.plots import _short_labels, plot_per_dimension, plot_per_group, plot_persona_size
from personalign.evaluation.robustness import (
    alignx_dimension_labels,
    alignx_row_dimension_labels,
    history_length,
    history_order,
    parse_persona_sizes,
    rows_with_target_in_history,
    subset_alignx_history,
    subset_multifacet_history,
)

UGC, PAIRS = "User-Generated Content", "Pair-wise Comparative Feedback"


def positions(subset, full):
    """Positions in `full` of the items of `subset` (the same objects: subsets copy no item)."""
    return [next(i for i, item in enumerate(full) if item is chosen) for chosen in subset]


# ------------------------------------------------------------------------------------------------- persona sizes
def test_parse_persona_sizes():
    assert parse_persona_sizes("16, 2,4,4") == (2, 4, 16)
    assert parse_persona_sizes([8, 2]) == (2, 8)
    assert parse_persona_sizes("none") == parse_persona_sizes("") == parse_persona_sizes(None) == ()
    for bad in ("2,x", "0", "2.5", "-4"):
        with pytest.raises(ValueError, match="persona sizes must be integers >= 1"):
            parse_persona_sizes(bad)


def test_alignx_subsets_have_the_asked_size_and_are_nested_and_deterministic():
    rows = list(alignx_rows(12, seed=2, history_size=(3, 9)))
    for index, row in enumerate(rows):
        original = copy.deepcopy(row)
        total = history_length(row)
        assert total == len(row[UGC]) + len(row[PAIRS]) >= 6
        previous: set[tuple[str, int]] = set()
        for size in (1, 2, 4, total):
            subset = subset_alignx_history(row, size, seed=0, index=index)
            assert history_length(subset) == size
            ugc, pairs = positions(subset[UGC], row[UGC]), positions(subset[PAIRS], row[PAIRS])
            assert ugc == sorted(ugc) and pairs == sorted(pairs)  # original order within each kind
            items = {("ugc", i) for i in ugc} | {("pair", i) for i in pairs}
            assert previous <= items  # nested: the smaller persona's items are kept
            previous = items
            assert subset == subset_alignx_history(row, size, seed=0, index=index)  # deterministic
            # Everything but the history is untouched.
            assert {k: v for k, v in subset.items() if k not in (UGC, PAIRS)} == {
                k: v for k, v in row.items() if k not in (UGC, PAIRS)
            }
        assert row == original  # input not modified
        with pytest.raises(
            ValueError, match=rf"rows, row {index} \(0-based\) has {total} history items, fewer than the persona size"
        ):
            subset_alignx_history(row, total + 1, seed=0, index=index)
    # Another seed (or another row position) draws other items.
    draws = [subset_alignx_history(rows[0], 3, seed=s, index=0) for s in range(6)]
    assert len({str(d[UGC]) + str(d[PAIRS]) for d in draws}) > 1


def test_history_order_is_a_uniform_permutation():
    firsts = Counter(history_order(4, seed=0, index=index)[0] for index in range(4000))
    assert sorted(firsts) == [0, 1, 2, 3]
    assert all(900 <= count <= 1100 for count in firsts.values()), firsts  # 1000 expected each
    assert sorted(history_order(7, seed=3, index=5)) == list(range(7))


def test_multifacet_subset_cuts_ids_and_texts_alike():
    history = [{"chosen_id": i, "rejected_id": 100 + i} for i in range(6)]
    texts = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(6)]
    row = {"instruction_id": 1, "dimension": "style", "history": history, "history_text": texts}
    subset = subset_multifacet_history(row, 3, seed=1, index=7)
    kept = [pair["chosen_id"] for pair in subset["history"]]
    assert len(kept) == 3 and kept == sorted(kept)
    assert [text["prompt"] for text in subset["history_text"]] == [f"p{i}" for i in kept]
    assert set(kept) <= {pair["chosen_id"] for pair in subset_multifacet_history(row, 5, seed=1, index=7)["history"]}
    with pytest.raises(ValueError, match=r"rows, row 7 \(0-based\) has 6 history items"):
        subset_multifacet_history(row, 7, seed=1, index=7)


# ------------------------------------------------------------------------------------------------ per dimension
def test_per_dimension_grouping_matches_a_hand_computation():
    space = PreferenceSpace.alignx()
    concise, humor = space.dimensions[16].name, space.dimensions[73].name
    directions = [space.vector({16: 1.0, 73: 0.0}), space.vector({16: 0.0}), space.neutral(), None]
    labels = alignx_dimension_labels(directions, space)
    assert labels == [[concise, humor], [concise], [], []]
    # beta = 1: rewards (chosen - rejected margin) = +1 (correct), -1 (wrong), 0 (tie), +2 (correct).
    policy_chosen, policy_rejected = [-1.0, -3.0, -2.0, 0.0], [-2.0, -2.0, -2.0, -2.0]
    zeros = [0.0] * 4
    result = compute_alignment_metrics(
        policy_chosen, policy_rejected, zeros, zeros, beta=1.0, groups={"dimension": labels}
    )
    groups = result["groups"]["dimension"]
    assert set(groups) == {concise, humor}  # pairs without an active dimension are in no group
    assert (groups[concise]["num_pairs"], groups[concise]["num_correct"]) == (2, 1)
    assert groups[concise]["alignment_accuracy"] == 0.5
    assert (groups[humor]["num_pairs"], groups[humor]["alignment_accuracy"]) == (1, 1.0)
    assert result["alignment_accuracy"] == 0.5  # 2 of 4 overall


# ------------------------------------------------------------------------------------------- MultiFacet reversal
@pytest.fixture(scope="module")
def multifacet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multifacet")
    multifaceted_dataset(12, seed=0).to_parquet(str(folder / "mf.parquet"))
    config = MultifacetBuildConfig(test_instructions=4, history_size=4, seed=0)
    configs, _ = build_multifacet_cf(str(folder / "mf.parquet"), config)
    return configs["counterfactual"]["test"], configs["responses"]["train"]


def test_multifacet_reversal_pairs_opposite_users_and_is_an_involution(multifacet):
    rows, responses = multifacet
    rows = attach_history(rows, responses, lazy=False)
    result = reverse_multifacet(rows)
    assert result.num_dropped == 0 and len(result.original) == len(result.reversed) == len(rows) > 0
    for original, opposite in zip(result.original, result.reversed, strict=True):
        assert (opposite["instruction_id"], opposite["dimension"]) == (
            original["instruction_id"],
            original["dimension"],
        )
        assert (opposite["chosen_id"], opposite["rejected_id"]) == (original["rejected_id"], original["chosen_id"])
        assert (opposite["chosen"], opposite["rejected"]) == (original["rejected"], original["chosen"])
        assert opposite["prompt"] == original["prompt"]
        # The opposite user: another preference on the same dimension, with its own history.
        assert opposite["preference_key"] != original["preference_key"]
        assert opposite["history"] != original["history"]
    twice = reverse_multifacet(result.reversed)
    assert twice.reversed.to_list() == result.original.to_list()
    # Rows in memory work the same way.
    as_list = reverse_multifacet(rows.to_list())
    assert as_list.reversed == result.reversed.to_list()
    assert reverse_multifacet(as_list.reversed).reversed == as_list.original


def test_multifacet_rows_without_an_opposite_user(multifacet):
    rows, _ = multifacet
    counterparts = multifacet_counterparts(rows)
    assert all(other is not None and counterparts[other] == index for index, other in enumerate(counterparts))
    orphan = counterparts[0]  # drop row 0: its counterpart has no opposite user left
    subset = rows.select(range(1, len(rows)))
    with pytest.raises(
        ValueError, match=rf"^rows, row {orphan - 1} \(0-based\) \(instruction_id=.*has no opposite-user row"
    ):
        reverse_multifacet(subset)
    dropped = reverse_multifacet(subset, on_missing="drop")
    assert dropped.dropped == [orphan - 1] and dropped.num_dropped == 1
    assert len(dropped.original) == len(rows) - 2
    duplicated = rows.to_list()[:3] + rows.to_list()[:1]
    with pytest.raises(
        ValueError, match=r"rows, row 0 \(0-based\) and rows, row 3 \(0-based\) are the same target pair"
    ):
        reverse_multifacet(duplicated)
    with pytest.raises(ValueError, match=r"missing column.*'chosen_id'"):
        multifacet_counterparts(rows.remove_columns("chosen_id"))


# ------------------------------------------------------------------------------------------------------- plots
def test_plots_are_pngs_that_grow_with_the_dimensions(tmp_path):
    def metrics(accuracy, pairs, flip=None):
        out = {"alignment_accuracy": accuracy, "num_pairs": pairs}
        return out if flip is None else {**out, "flip_rate": flip}

    space = PreferenceSpace.alignx()
    few = {"a": {"per_dimension": {d.name: metrics(0.5, 3) for d in space.dimensions[:4]}}}
    many = {
        "a": {"per_dimension": {d.name: metrics(i / 90, i + 1) for i, d in enumerate(space.dimensions)}},
        "b": {"per_dimension": {d.name: metrics(1 - i / 90, 2) for i, d in enumerate(space.dimensions)}},
    }
    small, large = plot_per_dimension(few, tmp_path / "few.png"), plot_per_dimension(many, tmp_path / "many.png")
    with Image.open(small) as a, Image.open(large) as b:
        assert a.format == b.format == "PNG"
        assert b.size[1] > 4 * a.size[1] and b.size[0] > a.size[0]  # 90 rows, two panels
    sizes = {"m": {"persona_size": {str(s): metrics(0.5 + s / 100, 10, flip=0.3) for s in (2, 4, 8, 16)}}}
    with Image.open(plot_persona_size(sizes, tmp_path / "sizes.png")) as image:
        assert image.format == "PNG"
    with pytest.raises(FileExistsError, match="already exists"):
        plot_persona_size(sizes, tmp_path / "sizes.png")
    with pytest.raises(ValueError, match="no persona-size results"):
        plot_persona_size({"m": {}}, tmp_path / "none.png")


# ----------------------------------------------------------------------------------------- benchmark-row breakdowns
def test_row_dimension_labels_fall_back_to_a_parseable_profile():
    space = PreferenceSpace.alignx()
    gold, persona = space.neutral(), space.neutral()
    gold[2], persona[7], persona[40] = 1.0, 0.0, 1.0
    names = [d.name for d in space.dimensions]
    rows = [
        {"Preference Direction": gold, "profile": space.to_text(persona)},  # the gold vector wins
        {"profile": space.to_text(persona)},  # benchmark row: the profile, read back
        {"preference_direction": None, "profile": space.to_text(persona)},  # `raw` column, null vector
        {"profile": "Enjoys long walks"},  # free text: no label
        {"profile": None},
    ]
    labels, counts = alignx_row_dimension_labels(rows, space)
    assert labels == [[names[2]], [names[7], names[40]], [names[7], names[40]], [], []]
    assert counts == {"preference_direction": 1, "profile": 2, "none": 2}


def test_rows_with_target_in_history():
    rows = [
        {"prompt": "q", PAIRS: [{"prompt": "q", "chosen": "a", "rejected": "b"}]},
        {"prompt": "q", "user_generated_content": [{"prompt": "q", "comment": "c"}]},
        {"prompt": "q", PAIRS: [{"prompt": "other", "chosen": "a", "rejected": "b"}]},
        {"prompt": "q"},
    ]
    assert rows_with_target_in_history(rows) == 2


def test_per_group_plot_numbers_labels_that_collide_when_cut(tmp_path):
    long = ["A persona who " + "x" * 70 + " one", "A persona who " + "x" * 70 + " two"]
    assert _short_labels(long) == [f"#1 {long[0][:59]}…", f"#2 {long[1][:59]}…"]
    assert _short_labels(["a", "b"]) == ["a", "b"]
    metrics = {"alignment_accuracy": 0.5, "num_pairs": 3}
    path = plot_per_group({"m": {"per_persona": dict.fromkeys(long, metrics)}}, tmp_path / "p.png", "per_persona")
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match="no per-benchmark results"):
        plot_per_group({"m": {"per_persona": {}}}, tmp_path / "b.png", "per_benchmark")
