import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset
from typer.testing import CliRunner

from personalign.cli import app
from personalign.data.multifacet import (
    COUNTERFACTUAL_FEATURES,
    RESPONSE_FEATURES,
    MultifacetBuildConfig,
    attach_history,
    build_multifacet_cf,
    default_test_instructions,
    fold_dimension,
    preference_key,
)
from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows
from personalign.io import write_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multifaceted")
    write_rows(multifaceted_rows(150, seed=0), folder / "train.parquet", MULTIFACETED_FEATURES, progress=False)
    return folder


@pytest.fixture(scope="module")
def built(source):
    return build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=20, seed=1))


def keys_by_response(responses, dimension, match="preference"):
    return [
        preference_key(next(i for i in row["preference_set"] if i["dimension"] == dimension), match)
        for row in responses
    ]


def test_configs_splits_features_and_report(built):
    configs, report = built
    counterfactual, responses = configs["counterfactual"], configs["responses"]["train"]
    assert counterfactual["train"].features == COUNTERFACTUAL_FEATURES
    assert responses.features == RESPONSE_FEATURES and len(responses) == 450
    assert report.instructions == {"train": 130, "test": 20}
    # test: both orientations of the 3 unordered pairs on each of 4 dimensions = 24 rows per instruction
    assert len(counterfactual["test"]) == 20 * 24
    # train (the counterfactual paper's pairing): each response chosen once
    assert len(counterfactual["train"]) == 130 * 3
    assert sum(report.rows["test"].values()) == len(counterfactual["test"])
    assert any(line.startswith("test: 20 instructions, 480 rows") for line in report.lines())
    row = counterfactual["test"][0]
    assert row["prompt"] == responses[row["chosen_id"]]["prompt"]
    assert row["chosen"] == responses[row["chosen_id"]]["output"]
    assert row["rejected"] == responses[row["rejected_id"]]["output"]
    assert sorted(row["candidate_ids"]) == sorted(
        i for i, r in enumerate(responses) if r["instruction_id"] == row["instruction_id"]
    )


def test_each_test_pair_appears_under_opposite_users(built):
    configs, _ = built
    orientations = defaultdict(list)
    for row in configs["counterfactual"]["test"]:
        pair = frozenset((row["chosen_id"], row["rejected_id"]))
        orientations[(row["dimension"], pair)].append(row)
    for rows in orientations.values():
        assert len(rows) == 2
        first, second = rows
        assert (first["chosen_id"], first["rejected_id"]) == (second["rejected_id"], second["chosen_id"])
        assert first["preference_key"] != second["preference_key"]  # opposite users
    # a persona-blind scorer (here: prefer the longer answer; ties count as wrong) gets exactly half the rest right
    rows = configs["counterfactual"]["test"]
    correct = sum(len(r["chosen"]) > len(r["rejected"]) for r in rows)
    ties = sum(len(r["chosen"]) == len(r["rejected"]) for r in rows)
    assert correct == (len(rows) - ties) / 2


def test_histories_reflect_the_users_preference_and_never_the_target(built):
    configs, _ = built
    responses = configs["responses"]["train"]
    instruction_of = responses["instruction_id"]
    test_instructions = set(configs["counterfactual"]["test"]["instruction_id"])
    keys = {
        d: keys_by_response(responses, d) for d in ("style", "background_knowledge", "informativeness", "harmlessness")
    }
    for split in ("train", "test"):
        for row in configs["counterfactual"][split]:
            assert len(row["history"]) == 10
            assert keys[row["dimension"]][row["chosen_id"]] == row["preference_key"]
            for pair in row["history"]:
                assert instruction_of[pair["chosen_id"]] == instruction_of[pair["rejected_id"]]
                assert instruction_of[pair["chosen_id"]] != row["instruction_id"]
                assert instruction_of[pair["chosen_id"]] not in test_instructions  # history comes from train only
                assert keys[row["dimension"]][pair["chosen_id"]] == row["preference_key"]
                assert keys[row["dimension"]][pair["rejected_id"]] != row["preference_key"]


def test_same_seed_same_output_and_options(source, built):
    configs, _ = built
    again, _ = build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=20, seed=1))
    assert again["counterfactual"]["test"].to_list() == configs["counterfactual"]["test"].to_list()
    assert again["counterfactual"]["train"].to_list() == configs["counterfactual"]["train"].to_list()
    other, _ = build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=20, seed=2))
    assert other["counterfactual"]["test"]["instruction_id"] != configs["counterfactual"]["test"]["instruction_id"]
    short, _ = build_multifacet_cf(
        source,
        MultifacetBuildConfig(
            test_instructions=20, history_size=3, train_pairing="counterfactual", dimensions=("style",)
        ),
    )
    assert {len(h) for h in short["counterfactual"]["train"]["history"]} == {3}
    assert set(short["counterfactual"]["train"]["dimension"]) == {"style"}
    assert len(short["counterfactual"]["train"]) == 130 * 6


def test_subdimension_matching_merges_preferences_of_one_subdimension():
    item_formal = {"dimension": "style", "subdimension": "Formality", "preference": "formal tone"}
    item_casual = {"dimension": "style", "subdimension": "formality", "preference": "Casual tone!"}
    assert preference_key(item_formal) == "formality: formal tone"
    assert preference_key(item_casual) == "formality: casual tone"
    assert preference_key(item_formal, "subdimension") == preference_key(item_casual, "subdimension") == "formality"


def test_attach_history_lazy_and_eager_agree(built):
    configs, _ = built
    test, responses = configs["counterfactual"]["test"].select(range(12)), configs["responses"]["train"]
    lazy = attach_history(test, responses)
    eager = attach_history(test, responses, lazy=False)
    assert lazy[3]["history_text"] == eager[3]["history_text"]
    first = eager[0]["history"][0]
    assert eager[0]["history_text"][0] == {
        "prompt": responses[first["chosen_id"]]["prompt"],
        "chosen": responses[first["chosen_id"]]["output"],
        "rejected": responses[first["rejected_id"]]["output"],
    }


def test_attach_history_reads_a_view_of_the_responses_as_given(built):
    """Ids address the rows of `responses` as given: a `select` / `shuffle` view (datasets' internal
    `Dataset._indices`, which `attach_history` reads) is flattened before its Arrow table is read."""
    configs, _ = built
    rows, responses = configs["counterfactual"]["test"].select(range(4)), configs["responses"]["train"]
    view = responses.select(list(reversed(range(len(responses)))))
    assert view._indices is not None  # the internal this test pins
    pair = rows[0]["history"][0]
    first = attach_history(rows, view, lazy=False)[0]["history_text"][0]
    assert first == {
        "prompt": view[pair["chosen_id"]]["prompt"],
        "chosen": view[pair["chosen_id"]]["output"],
        "rejected": view[pair["rejected_id"]]["output"],
    }
    assert first["chosen"] != responses[pair["chosen_id"]]["output"]


def test_bad_sources_are_named(tmp_path):
    rows = list(multifaceted_rows(4, seed=0))
    rows[5]["preference_set"][2] = {"dimension": "informativeness", "preference": "x"}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        ValueError, match=r"train\.jsonl, line 6, column 'preference_set' item 2: missing 'subdimension'"
    ):
        build_multifacet_cf(tmp_path / "a", MultifacetBuildConfig(test_instructions=1))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "train.jsonl").write_text(json.dumps({"prompt": "p", "preference_set": []}) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl: missing column\(s\) 'output'"):
        build_multifacet_cf(tmp_path / "b")
    write_rows(multifaceted_rows(4, seed=0), tmp_path / "b2" / "train.jsonl", progress=False)
    with pytest.raises(ValueError, match="leaves no training instruction"):
        build_multifacet_cf(tmp_path / "b2", MultifacetBuildConfig(test_instructions=4))
    with pytest.raises(ValueError, match="match must be"):
        MultifacetBuildConfig(match="words")


def test_cli_build_writes_a_loadable_folder(source, tmp_path):
    output = tmp_path / "mf"
    result = CliRunner().invoke(
        app,
        [
            "build-dataset",
            "multifacet-cf",
            "--source",
            str(source),
            "--output",
            str(output),
            "--test-instructions",
            "20",
            "--seed",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test: 20 instructions, 480 rows" in result.output
    expected, _ = build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=20, seed=1))
    loaded = load_dataset(str(output), "counterfactual")
    assert loaded["test"].to_list() == expected["counterfactual"]["test"].to_list()
    assert len(load_dataset(str(output), "responses", split="train")) == 450
    card = (output / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "In-Context Personalized Alignment with Feedback History" in card


def test_datasets_builder_class(source, built, tmp_path):
    from personalign.data.multifacet import MultifacetCF

    builder = MultifacetCF(
        config_name="counterfactual", source=str(source), seed=1, test_instructions=20, cache_dir=str(tmp_path)
    )
    builder.download_and_prepare()
    rows = builder.as_dataset()
    assert rows["test"].to_list() == built[0]["counterfactual"]["test"].to_list()
    responses = MultifacetCF(
        config_name="responses", source=str(source), test_instructions=20, cache_dir=str(tmp_path)
    )
    responses.download_and_prepare()
    assert responses.as_dataset(split="train").features == RESPONSE_FEATURES


def test_responses_without_a_dimension_make_no_user_on_it(tmp_path):
    rows = list(multifaceted_rows(30, seed=4))
    for row in rows[:6]:  # two instructions lose their harmlessness entries
        row["preference_set"] = [p for p in row["preference_set"] if p["dimension"] != "harmlessness"]
    write_rows(rows, tmp_path / "train.jsonl", progress=False)
    configs, _ = build_multifacet_cf(
        tmp_path, MultifacetBuildConfig(test_instructions=5, train_pairing="counterfactual")
    )
    for split in ("train", "test"):
        for row in configs["counterfactual"][split]:
            assert row["preference_key"] != ""
            if row["dimension"] == "harmlessness":
                assert row["chosen_id"] >= 6 and row["rejected_id"] >= 6
                assert all(pair["chosen_id"] >= 6 and pair["rejected_id"] >= 6 for pair in row["history"])


# ------------------------------------------------------------- the real schema: dimension names as released
CARD_SPELLINGS = {
    "style": "style",
    "background_knowledge": "background knowledge",
    "informativeness": "informativeness",
    "harmlessness": "harmlessness",
}


def real_schema_rows(num_instructions, spellings=CARD_SPELLINGS, extra=None):
    """Multifaceted-Collection rows as released (`main_source, original_source, preference_set: list[{dimension,
    subdimension, preference, description}], system, prompt, output`), three per instruction, the three responses
    differing on every dimension. `spellings` maps each dimension to the name written in the rows (leave one out to
    drop it); `extra` adds an entry with that dimension name to every row."""
    rows = []
    for i in range(num_instructions):
        for j in range(3):
            preference_set = []
            for k, (dimension, written) in enumerate(spellings.items()):
                option = (j + i * (k + 1)) % 3
                preference_set.append(
                    {
                        "dimension": written,
                        "subdimension": f"{dimension} aspect",
                        "preference": f"{dimension} option {option}",
                        "description": f"The user wants {dimension} option {option}.",
                    }
                )
            if extra:
                preference_set.append(
                    {"dimension": extra, "subdimension": "t", "preference": f"t{j}", "description": "x"}
                )
            rows.append(
                {
                    "main_source": "Nectar",
                    "original_source": "anthropic-hh",
                    "preference_set": preference_set,
                    "system": f"You are an assistant for user {i}-{j}.",
                    "prompt": f"Instruction number {i}?",
                    "output": f"Answer {j} to instruction {i}.",
                }
            )
    return rows


def write_jsonl(rows, folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("Background knowledge", "background_knowledge"),
        ("background-knowledge", "background_knowledge"),
        ("Background_Knowledge", "background_knowledge"),
        ("  BACKGROUND -_ knowledge ", "background_knowledge"),
        ("Style", "style"),
        ("tone", "tone"),
    ],
)
def test_fold_dimension(name, folded):
    assert fold_dimension(name) == folded


def test_default_test_instructions_is_the_papers_307_at_full_size():
    assert default_test_instructions(65_666) == 307  # the full collection: the counterfactual paper's split
    assert default_test_instructions(3_070) == 307
    assert default_test_instructions(3_069) == 306
    assert default_test_instructions(90) == 9
    assert default_test_instructions(5) == 1


def test_config_folds_dimension_names_and_refuses_unknown_ones():
    config = MultifacetBuildConfig(dimensions=("Background knowledge", "background-knowledge", "Style"))
    assert config.dimensions == ("background_knowledge", "style")
    with pytest.raises(ValueError, match=r"dimensions must be .* got 'tone'"):
        MultifacetBuildConfig(dimensions=("style", "tone"))


@pytest.mark.parametrize("written", ["Background knowledge", "background-knowledge", "Background_Knowledge"])
def test_every_spelling_of_background_knowledge_builds_its_users(tmp_path, written):
    source = write_jsonl(real_schema_rows(30, {**CARD_SPELLINGS, "background_knowledge": written}), tmp_path)
    configs, report = build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=5))
    for split in ("train", "test"):
        assert report.rows[split]["background_knowledge"] > 0
        assert "background_knowledge" in set(configs["counterfactual"][split]["dimension"])
    # the test split: 3 unordered pairs x 2 orientations x 4 dimensions per instruction
    assert len(configs["counterfactual"]["test"]) == 5 * 24
    assert not report.unknown_dimensions
    assert report.source_dimensions[written] == 90
    # asking for it in the config by another spelling selects the same users
    only, _ = build_multifacet_cf(
        source, MultifacetBuildConfig(test_instructions=5, dimensions=("Background-Knowledge",))
    )
    assert set(only["counterfactual"]["test"]["dimension"]) == {"background_knowledge"}


def test_a_requested_dimension_missing_from_the_source_fails_naming_it(tmp_path, caplog):
    spellings = {k: v for k, v in CARD_SPELLINGS.items() if k != "harmlessness"}
    spellings["background_knowledge"] = "Background knowledge"
    source = write_jsonl(real_schema_rows(30, spellings), tmp_path)
    with pytest.raises(ValueError) as caught:
        build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=5))
    message = str(caught.value)
    assert "column 'preference_set': requested dimension(s) 'harmlessness' have no user / pair" in message
    assert "'style' 90, 'Background knowledge' 90, 'informativeness' 90" in message
    assert "--allow-missing-dimensions" in message
    # explicitly allowed: a warning and a report line, and the other dimensions are built
    with caplog.at_level("WARNING", logger="personalign.data.multifacet"):
        configs, report = build_multifacet_cf(
            source, MultifacetBuildConfig(test_instructions=5, allow_missing_dimensions=True)
        )
    assert any("'harmlessness' have no user / pair" in r.getMessage() for r in caplog.records)
    assert set(configs["counterfactual"]["test"]["dimension"]) == {"style", "background_knowledge", "informativeness"}
    assert any(line.startswith("no row on dimension 'harmlessness'") for line in report.lines())
    # not requested: no error
    build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=5, dimensions=("style",)))


def test_a_dimension_with_entries_but_no_pair_fails_too(tmp_path):
    rows = real_schema_rows(20)
    for row in rows:  # every response of every instruction has the same harmlessness preference
        row["preference_set"][3]["preference"] = "always the same"
    source = write_jsonl(rows, tmp_path)
    with pytest.raises(ValueError, match=r"'harmlessness': no two responses of an instruction differ on it"):
        build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=4))


def test_unknown_dimension_values_are_counted_in_the_report(tmp_path):
    source = write_jsonl(real_schema_rows(20, extra="tone"), tmp_path)
    configs, report = build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=4))
    assert report.unknown_dimensions == {"tone": 60}
    assert "preference_set entries on an unknown dimension (ignored): 'tone' 60" in "\n".join(report.lines())
    assert "tone" not in set(configs["counterfactual"]["train"]["dimension"])
    rows = real_schema_rows(3)
    rows[4]["preference_set"][1]["dimension"] = None
    with pytest.raises(ValueError, match=r"line 5, column 'preference_set' item 1: expected a dimension name"):
        build_multifacet_cf(write_jsonl(rows, tmp_path / "bad"), MultifacetBuildConfig(test_instructions=1))


def test_small_source_builds_with_the_default_test_size(tmp_path):
    source = write_jsonl(real_schema_rows(90), tmp_path / "src")
    configs, report = build_multifacet_cf(source)  # the default: 307 would leave no training instruction
    assert report.instructions == {"train": 81, "test": 9}
    assert len(configs["counterfactual"]["test"]) == 9 * 24
    result = CliRunner().invoke(
        app, ["build-dataset", "multifacet-cf", "--source", str(source), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "test: 9 instructions" in result.output
    with pytest.raises(ValueError, match=r"test_instructions=307 \(CLI: --test-instructions\) leaves no training"):
        build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=307))


def run_script(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO)


def test_cli_missing_dimension_is_one_error_line(tmp_path):
    spellings = {k: v for k, v in CARD_SPELLINGS.items() if k != "harmlessness"}
    source = write_jsonl(real_schema_rows(12, spellings), tmp_path / "src")
    output = tmp_path / "out"
    result = run_script(
        "-m", "personalign", "build-dataset", "multifacet-cf", "--source", str(source), "--output", str(output)
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "'harmlessness' have no user / pair" in errors[0] and "'background knowledge' 36" in errors[0]
    assert not output.exists()


def test_dataset_script_builds_the_same_rows_as_the_builder_class(tmp_path):
    from personalign.data.multifacet import MultifacetCF

    script = REPO / "dataset_scripts" / "multifacet_cf.py"
    helped = run_script(str(script), "--help")
    assert helped.returncode == 0, helped.stderr
    for option in ("--source", "--output", "--config", "--seed", "--history-size", "--match", "--test-instructions"):
        assert option in helped.stdout, helped.stdout
    assert "--allow-missing-dimensions" in helped.stdout and "--overwrite" in helped.stdout
    # only what applies to multifacet-cf: no dataset kind argument, no AlignX options
    assert "Usage: multifacet_cf.py [OPTIONS]" in helped.stdout
    for other in (
        "build-dataset KIND",
        "KIND",
        "--prompt-format",
        "--keep-full-history",
        "--arithmetic",
        "--num-proc",
    ):
        assert other not in helped.stdout, helped.stdout
    refused = run_script(str(script), "--source", "x", "--output", str(tmp_path / "o"), "--test-instructions", "0")
    assert refused.returncode == 1 and refused.stderr.startswith("error: test_instructions must be >= 1")
    source = write_jsonl(real_schema_rows(40, extra="tone"), tmp_path / "src")
    output = tmp_path / "out"
    result = run_script(str(script), "--source", str(source), "--output", str(output), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "test: 4 instructions" in result.stderr and "'tone' 120" in result.stderr
    builder = MultifacetCF(config_name="counterfactual", source=str(source), seed=3, cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    expected = builder.as_dataset()
    loaded = load_dataset(str(output), "counterfactual")
    for split in ("train", "test"):
        assert loaded[split].to_list() == expected[split].to_list()
    assert len(load_dataset(str(output), "responses", split="train")) == 120


# ------------------------------------------------------------- builds that would write an empty split are refused
def test_no_test_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"test_instructions must be >= 1 .* got 0 \(CLI: --test-instructions\)"):
        MultifacetBuildConfig(test_instructions=0)
    source = write_jsonl(real_schema_rows(30), tmp_path / "src")
    output = tmp_path / "out"
    result = run_script(
        "-m", "personalign", "build-dataset", "multifacet-cf", "--source", str(source), "--output", str(output),
        "--test-instructions", "0",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "test_instructions must be >= 1" in errors[0] and "--test-instructions" in errors[0]
    assert not output.exists()


def test_a_train_split_without_rows_is_refused_naming_split_counts_and_options(tmp_path):
    source = write_jsonl(real_schema_rows(30), tmp_path / "src")
    with pytest.raises(ValueError) as caught:
        build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=29))
    message = str(caught.value)
    assert message.startswith("the train split of the 'counterfactual' config would have 0 rows")
    assert "(1 train and 29 test instructions; test_instructions=29" in message
    assert "all 3 of its target pairs had fewer than min_history=1 history pairs" in message
    assert "--test-instructions" in message and "--match subdimension" in message and "min_history" in message
    # the builder class refuses it the same way (no split written)
    from personalign.data.multifacet import MultifacetCF

    builder = MultifacetCF(source=str(source), test_instructions=29, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="the train split of the 'counterfactual' config would have 0 rows"):
        builder.download_and_prepare()


def test_cli_refuses_an_empty_train_split_in_one_error_line(tmp_path):
    rows = real_schema_rows(30)
    for row in rows:  # subdimensions that differ, so that --match subdimension still makes pairs
        for item in row["preference_set"]:
            item["subdimension"] = item["preference"].replace("option", "aspect")
    source = write_jsonl(rows, tmp_path / "src")
    output = tmp_path / "out"
    result = run_script(
        "-m", "personalign", "build-dataset", "multifacet-cf", "--source", str(source), "--output", str(output),
        "--test-instructions", "29", "--match", "subdimension",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "the train split of the 'counterfactual' config would have 0 rows" in errors[0]
    assert "1 train and 29 test instructions" in errors[0] and "--test-instructions" in errors[0]
    assert "train: 1 instructions, 0 rows" not in result.stderr
    assert not output.exists()


def test_a_test_split_without_rows_is_refused_and_every_build_has_rows_in_both_splits(tmp_path):
    rows = real_schema_rows(30)
    for row in rows[6:]:  # instructions 2..29: the three responses agree on every dimension (no pair)
        for item in row["preference_set"]:
            item["preference"] = item["preference"][: -len("0")] + "0"
    source = write_jsonl(rows, tmp_path / "src")
    errors = {}
    for seed in range(8):
        try:
            configs, _ = build_multifacet_cf(source, MultifacetBuildConfig(test_instructions=3, seed=seed))
        except ValueError as error:
            errors[seed] = str(error)
        else:
            assert all(len(configs["counterfactual"][split]) for split in ("train", "test"))
    test_errors = [m for m in errors.values() if m.startswith("the test split")]
    assert test_errors, errors  # most seeds hold out three instructions without a pair
    assert "(27 train and 3 test instructions; test_instructions=3" in test_errors[0]
    assert "no two responses of its instructions differ on the requested dimension(s)" in test_errors[0]
    assert "hold out more instructions (--test-instructions)" in test_errors[0]
    assert all(m.startswith(("the test split", "the train split")) for m in errors.values()), errors


def test_rows_are_named_by_line_or_0_based_row(tmp_path):
    rows = real_schema_rows(3)
    rows[4]["output"] = None
    folder = write_jsonl(rows, tmp_path / "lines")
    with pytest.raises(
        ValueError, match=r"train\.jsonl, line 5, column 'output': expected text, got null \(no value\)"
    ):
        build_multifacet_cf(folder)
    parquet = tmp_path / "rows.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    with pytest.raises(ValueError, match=rf"^{parquet}, row 4 \(0-based\), column 'output': expected text"):
        build_multifacet_cf(parquet)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(row) + "\n" for row in rows[:2]) + '{"prompt": tru}\n')
    with pytest.raises(ValueError, match=rf"^{broken}, line 3, column 12: not valid JSON"):
        build_multifacet_cf(broken)
    with pytest.raises(ValueError, match=r"got history_size=0 \(CLI: --history-size\)"):
        MultifacetBuildConfig(history_size=0)
    with pytest.raises(ValueError, match=r"\(CLI: --match\)"):
        MultifacetBuildConfig(match="exact")
