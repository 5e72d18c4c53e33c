"""`personalign eval` on AlignX's benchmark schema (P-Soups, UF-P-4, PRISM: a JSON list of rows with a ready `profile`,
a `ground_truth_persona` and feedback pairs without vectors), on folders of several benchmark files, and on the
ready-rendered `pba` / `ica` configs of a `personalign build-dataset alignx` folder. The rows are written here."""

import json
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from personalign import PreferenceSpace
from personalign.cli import app, run
from personalign.data.alignx import AlignXBuildConfig, normalize_row, render_row
from personalign.evaluation import compute_alignment_metrics, reverse_alignx_row, score_policy_and_reference
from personalign.row_names import file_row, row_name

runner = CliRunner()
PERSONAS = (
    "Someone who wants short, plain answers and no small talk.",
    "Someone who enjoys long, playful answers full of examples.",
)
TOPICS = ("tea", "rivers", "chess", "bread", "moths", "glass", "kites", "salt", "owls", "maps", "clay", "bells")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policy_path(perturbed_tiny_lm):
    return perturbed_tiny_lm(1)


def profiles():
    """Two opposite preference texts in `PreferenceSpace.to_text` form (the PBA "User Preferences" of each persona)."""
    space = PreferenceSpace.alignx()
    vector = space.neutral()
    vector[0], vector[5], vector[17] = 1.0, 0.0, 1.0
    return space.to_text(vector), space.to_text(space.reverse(vector))


def benchmark_rows(num_rows=12, prefix=""):
    """Rows in the released benchmark schema: two alternating personas, 4 feedback pairs without vectors (items
    repeat across rows), and row 3 holds its own target prompt in its history."""
    texts = profiles()
    rows = []
    for index in range(num_rows):
        persona = index % 2
        topic = TOPICS[index % len(TOPICS)]
        history = [
            {
                "prompt": f"{prefix}Tell me about {TOPICS[(index + k) % 5]}.",
                "chosen": f"{'Briefly' if persona == 0 else 'Oh, what fun'}: {TOPICS[(index + k) % 5]} facts.",
                "rejected": f"{'Oh, what fun' if persona == 0 else 'Briefly'}: nothing on {TOPICS[k]}.",
            }
            for k in range(4)
        ]
        target = f"{prefix}What should I know about {topic}?"
        if index == 3:
            history[0] = {"prompt": target, "chosen": "Yes.", "rejected": "No."}
        short, long = f"{topic.capitalize()} is old.", f"Well, {topic} has a long story with many odd turns!"
        rows.append(
            {
                "prompt": target,
                "chosen": short if persona == 0 else long,
                "rejected": long if persona == 0 else short,
                "ground_truth_persona": prefix + PERSONAS[persona],
                "profile": texts[persona],
                "Pair-wise Comparative Feedback": history,
            }
        )
    return rows


def write_json_list(path, rows):
    path.write_text(json.dumps(rows, indent=1))
    return path


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory):
    return write_json_list(tmp_path_factory.mktemp("bench") / "p_soups.json", benchmark_rows())


def invoke(*args):
    result = runner.invoke(app, ["eval", "policy", *map(str, args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def read_results(output):
    results = json.loads((output / "results.json").read_text())
    (model,) = results["models"].values()
    return results, model


def run_in_process(monkeypatch, capsys, *args):
    """The console entry point's error handling (`run`), in this process: `(exit code, stderr lines)`."""
    monkeypatch.setattr(sys, "argv", ["personalign", *map(str, args)])
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def fail(monkeypatch, capsys, *args):
    """Run `personalign eval *args` through the console entry point, expect exit code 1 and return its one `error:`
    line (the last line, no traceback; progress bars may come before it)."""
    code, lines = run_in_process(monkeypatch, capsys, "eval", "policy", *args)
    errors = [line for line in lines if line.startswith("error:")]
    assert code == 1 and errors == [lines[-1]] and "Traceback" not in "\n".join(lines), lines
    return errors[0]


def test_benchmark_json_list_file_scores_directly_with_per_persona_and_skips_sizes(
    policy_path, tiny_lm_path, benchmark_file, tmp_path
):
    output = tmp_path / "eval"
    args = ["--model", policy_path, "--reference", tiny_lm_path, "--dataset", benchmark_file, "--flip"]
    result = invoke(*args, "--output", output)
    results, model = read_results(output)
    data = results["dataset"]
    assert data["format"] == "alignx" and data["num_rows"] == 12 and data["num_rows_target_in_history"] == 1
    assert sorted(p.name for p in output.iterdir()) == [
        "per_dimension.png",
        "per_persona.png",
        "results.json",
    ]

    # Persona sizes cannot change a PBA prompt that is a ready profile: skipped, said once, recorded, not scored. Only
    # the sizes that would have run are named: the rows have 4 history items, so not 8 and 16.
    assert data["persona_sizes"] == [] and "persona_size" not in model
    assert data["persona_sizes_not_applicable"]["sizes"] == [2, 4]
    assert any(n.startswith("persona sizes 2, 4 skipped: every row's PBA prompt") for n in data["notices"])
    assert "notice: persona sizes 2, 4 skipped: every row's PBA prompt" in result.output
    assert "main 12 pairs, main_reversed 12 pairs" in result.output and "sizes" not in result.output.split("\n")[0]

    # The same numbers, computed directly: PBA prompts with the profile, the reversed profile under --flip.
    raw = [normalize_row(row, f"row {i}") for i, row in enumerate(benchmark_rows())]
    policy, reference = (AutoModelForCausalLM.from_pretrained(p) for p in (policy_path, tiny_lm_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    build = AlignXBuildConfig(keep_full_history=True)

    def score(rows, suffix=""):
        rendered = [render_row(row, i, "pba", build) for i, row in enumerate(rows)]
        assert all(r["profile"] == row["profile"] for r, row in zip(rendered, rows, strict=True))
        pairs = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rendered]
        return score_policy_and_reference(policy, reference, tokenizer, pairs, suffix=suffix)

    reversed_rows = [reverse_alignx_row(row) for row in raw]
    assert reversed_rows[0]["profile"] == profiles()[1]  # the profile text itself is reversed
    expected = compute_alignment_metrics(
        **score(raw),
        **score(reversed_rows, "_reversed"),
        groups={"persona": [row["ground_truth_persona"] for row in raw]},
    )
    assert 0 < expected["alignment_accuracy"] < 1  # a check that can fail
    for key in ("num_correct", "num_reversed_correct", "num_flipped", "num_strict_flipped"):
        assert model["overall"][key] == expected[key], key

    # Per persona: the two ground-truth personas, counts summing to the rows, numbers as computed directly.
    assert set(model["per_persona"]) == set(PERSONAS)
    assert sum(m["num_pairs"] for m in model["per_persona"].values()) == 12
    assert sum(m["num_correct"] for m in model["per_persona"].values()) == model["overall"]["num_correct"]
    for persona, metrics in expected["groups"]["persona"].items():
        assert model["per_persona"][persona]["num_correct"] == metrics["num_correct"]
    assert data["breakdowns"]["per_persona"] == {"column": "ground_truth_persona", "num_personas": 2, "num_rows": 12}

    # Per dimension: read back from the profile text (each persona's three dimensions), and said so.
    space = PreferenceSpace.alignx()
    assert set(model["per_dimension"]) == {space.dimensions[i].name for i in (0, 5, 17)}
    assert all(m["num_pairs"] == 12 for m in model["per_dimension"].values())
    assert data["breakdowns"]["per_dimension"]["rows_by_source"] == {
        "preference_direction": 0,
        "profile": 12,
        "none": 0,
    }
    assert "absent" in data["breakdowns"]["per_benchmark"]

    # Explicit sizes are skipped the same way (not an error); ICA renders the history, so there sizes do differ.
    output = tmp_path / "sizes"
    invoke(*args[:6], "--persona-sizes", "2,4", "--limit", 4, "--output", output)
    results, model = read_results(output)
    assert results["dataset"]["persona_sizes_not_applicable"]["sizes"] == [2, 4] and "persona_size" not in model


def test_ica_persona_sizes_differ_on_benchmark_rows(policy_path, tiny_lm_path, benchmark_file, tmp_path):
    output = tmp_path / "ica"
    args = ["--model", policy_path, "--reference", tiny_lm_path, "--dataset", benchmark_file]
    invoke(*args, "--persona-format", "ica", "--flip", "--output", output)
    results, model = read_results(output)
    data = results["dataset"]
    assert "persona_sizes_not_applicable" not in data
    assert data["notices"] == [
        "1 rows hold their own target prompt in their history (as released): their ICA prompt shows it."
    ]
    assert data["persona_sizes"] == [2, 4] and data["persona_sizes_skipped"] == [8, 16]  # 4 feedback items a row
    sizes = model["persona_size"]
    assert {size: m["num_pairs"] for size, m in sizes.items()} == {"2": 12, "4": 12}
    assert sizes["2"]["reward_margin"] != sizes["4"]["reward_margin"]  # different prompts, different scores
    assert sizes["4"]["num_correct"] == model["overall"]["num_correct"]  # size 4 is the whole history
    assert "flip_rate" in sizes["2"] and sum(m["num_pairs"] for m in model["per_persona"].values()) == 12


def test_mixed_rows_leave_profile_rows_out_of_the_size_run(policy_path, tiny_lm_path, tmp_path):
    """Rows without a profile (vectors on their items) vary with the size; rows with one are left out and counted."""
    space = PreferenceSpace.alignx()
    rows = benchmark_rows()
    vector = space.from_text(profiles()[0])
    for row in rows[:6]:
        row["profile"] = None
        for item in row["Pair-wise Comparative Feedback"]:
            item["Preference Direction"] = vector
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out"
    invoke("--model", policy_path, "--reference", tiny_lm_path, "--dataset", path, "--output", output)
    results, model = read_results(output)
    assert results["dataset"]["persona_size_rows_fixed_profile"] == 6
    assert {size: m["num_pairs"] for size, m in model["persona_size"].items()} == {"2": 6, "4": 6}
    assert any(n.startswith("6 rows with a ready 'profile' left out") for n in results["dataset"]["notices"])


def test_format_flag_overrides_detection(policy_path, tiny_lm_path, tmp_path, monkeypatch, capsys):
    # Benchmark rows carrying columns named like MultiFacet's keys: the columns alone say MultiFacet.
    rows = benchmark_rows(8)
    for index, row in enumerate(rows):
        row |= {"instruction_id": index, "dimension": "style", "chosen_id": 1, "rejected_id": 2}
    path = write_json_list(tmp_path / "uf_p_4.json", rows)
    common = ["--model", tiny_lm_path, "--reference", "none", "--output", tmp_path / "out", "--dataset"]
    assert fail(monkeypatch, capsys, *common, path) == (
        f"error: {path} [train]: the rows hold history ids but no 'history_text'; evaluate the folder written by "
        "`personalign build-dataset multifacet-cf` (it has the `responses` config the ids point into), or rows from "
        "`attach_history(..., lazy=False)`."
    )
    invoke(*common, path, "--format", "alignx")
    results, model = read_results(tmp_path / "out")
    assert results["dataset"]["format"] == "alignx" and model["overall"]["num_pairs"] == 8
    assert set(model["per_persona"]) == set(PERSONAS)

    # Forcing the other way names what the rows lack.
    clean = write_json_list(tmp_path / "prism.json", benchmark_rows(4))
    assert fail(monkeypatch, capsys, *common, clean, "--format", "multifacet", "--overwrite") == (
        f"error: {clean} [train]: missing column(s) 'instruction_id', 'dimension', 'chosen_id', 'rejected_id' of "
        "MultiFacet rows."
    )
    # Rows with no persona column at all cannot be forced into AlignX.
    bare = write_json_list(tmp_path / "bare.json", [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    error = fail(monkeypatch, capsys, *common, bare, "--format", "alignx", "--overwrite")
    assert error.startswith(f"error: {bare} [train]: no persona column in (prompt, chosen, rejected); AlignX rows")


def test_folder_of_benchmark_files_is_broken_down_by_file(tiny_lm_path, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    write_json_list(folder / "p_soups.json", benchmark_rows(12))
    write_json_list(folder / "prism.json", benchmark_rows(8, prefix="PRISM "))
    output = tmp_path / "out"
    invoke("--model", tiny_lm_path, "--reference", "none", "--dataset", folder, "--output", output)
    results, model = read_results(output)
    assert (output / "per_benchmark.png").is_file() and (output / "per_persona.png").is_file()
    assert {name: m["num_pairs"] for name, m in model["per_benchmark"].items()} == {"p_soups": 12, "prism": 8}
    assert sum(m["num_correct"] for m in model["per_benchmark"].values()) == model["overall"]["num_correct"]
    assert results["dataset"]["breakdowns"]["per_benchmark"]["num_benchmarks"] == 2
    assert len(model["per_persona"]) == 4 and sum(m["num_pairs"] for m in model["per_persona"].values()) == 20
    assert model["per_persona"][PERSONAS[0]]["num_pairs"] == 6
    assert model["per_persona"]["PRISM " + PERSONAS[1]]["num_pairs"] == 4

    # A file without an optional column: its rows are read with it null (no persona for them).
    rows = benchmark_rows(2)
    for row in rows:
        del row["ground_truth_persona"]
    write_json_list(folder / "uf_p_4.json", rows)
    invoke("--model", tiny_lm_path, "--reference", "none", "--dataset", folder, "--output", output, "--overwrite")
    results, model = read_results(output)
    assert {name: m["num_pairs"] for name, m in model["per_benchmark"].items()} == {
        "p_soups": 12,
        "prism": 8,
        "uf_p_4": 2,
    }
    assert sum(m["num_pairs"] for m in model["per_persona"].values()) == 20 and model["overall"]["num_pairs"] == 22
    assert results["dataset"]["breakdowns"]["per_persona"]["num_rows"] == 20

    # Columns of conflicting types: one line naming the files.
    rows = benchmark_rows(2)
    for row in rows:
        row["profile"] = 5
    write_json_list(folder / "zzz.json", rows)
    common = ["--model", tiny_lm_path, "--reference", "none", "--output", tmp_path / "bad", "--dataset"]
    error = fail(monkeypatch, capsys, *common, folder)
    files = ", ".join(str(folder / name) for name in ("p_soups.json", "prism.json", "uf_p_4.json", "zzz.json"))
    assert error.startswith(f"error: the files {files} cannot form one split: their columns differ in type")
    # A file that is not JSON: one line naming it.
    broken = tmp_path / "broken.json"
    broken.write_text('[{"prompt": "a",')
    assert fail(monkeypatch, capsys, *common, broken).startswith(f"error: {broken}, line 1, column 17: not valid JSON")


def test_folder_errors_name_the_file_and_its_row(tiny_lm_path, tmp_path, monkeypatch, capsys):
    """A bad row of a folder of several files is named by its file and its row in that file, not by its position in
    the split, for every row-level error: validation, --flip, scoring."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    write_json_list(folder / "a_p_soups.json", benchmark_rows(12))
    second = folder / "b_prism.json"
    common = ["--model", tiny_lm_path, "--reference", "none", "--output", tmp_path / "out", "--dataset", folder]

    rows = benchmark_rows(4)
    del rows[1]["chosen"]
    write_json_list(second, rows)
    assert fail(monkeypatch, capsys, *common) == (
        f"error: {second}, row 1 (0-based), column 'chosen': expected text, got null (no value)."
    )
    assert fail(monkeypatch, capsys, *common, "--flip") == (
        f"error: {second}, row 1 (0-based), column 'chosen': expected text, got null (no value)."
    )

    rows = benchmark_rows(4)
    rows[1]["profile"] = "Likes short answers."
    write_json_list(second, rows)
    error = fail(monkeypatch, capsys, *common, "--flip")
    assert error.startswith(
        f"error: {second}, row 1 (0-based), column 'profile': --flip reverses the PBA preference text"
    )

    rows = benchmark_rows(4)
    rows[1]["prompt"] = "Tell me about tea. " * 200
    write_json_list(second, rows)
    error = fail(monkeypatch, capsys, *common, "--max-length", 400)
    assert error.startswith(f"error: scoring the pairs: {second}, row 1 (0-based): The prompt has ")

    # A split of one file within the folder is named by its file too, and so is a single file.
    write_json_list(second, benchmark_rows(4))
    rows = benchmark_rows(3)
    rows[2]["rejected"] = 7
    test_file = write_json_list(folder / "test.json", rows)
    assert fail(monkeypatch, capsys, *common, "--split", "test") == (
        f"error: {test_file}, row 2 (0-based), column 'rejected': expected text, got int."
    )
    assert fail(monkeypatch, capsys, *common[:-1], test_file) == (
        f"error: {test_file}, row 2 (0-based), column 'rejected': expected text, got int."
    )


def test_file_row_maps_split_positions_to_files():
    files = [("f/a.json", 0), ("f/b.json", 12), ("f/c.json", 15)]
    assert [file_row(files, index) for index in (0, 11, 12, 14, 15, 20)] == [
        ("f/a.json", 0),
        ("f/a.json", 11),
        ("f/b.json", 0),
        ("f/b.json", 2),
        ("f/c.json", 0),
        ("f/c.json", 5),
    ]
    assert row_name("f [train]", files, 13) == "f/b.json, row 1 (0-based)"
    assert row_name("f [train]", None, 13) == "f [train], row 13 (0-based)"


def test_unreadable_profile(tiny_lm_path, tmp_path, monkeypatch, capsys):
    """A profile that is not a list of AlignX labels: no per-dimension results (with the reason), and --flip is
    refused for PBA (naming the row and column) but works for ICA, which reverses the feedback pairs instead."""
    rows = benchmark_rows(6)
    for row in rows:
        row["profile"] = "Likes " + row["ground_truth_persona"]
    path = write_json_list(tmp_path / "free_text.json", rows)
    common = ["--model", tiny_lm_path, "--reference", "none", "--dataset", path, "--persona-sizes", "none"]
    output = tmp_path / "out"
    invoke(*common, "--output", output)
    results, model = read_results(output)
    assert model["per_dimension"] == {} and not (output / "per_dimension.png").exists()
    assert results["dataset"]["breakdowns"]["per_dimension"]["absent"].startswith("no row has a gold")
    assert any(n.startswith("no per-dimension results: ") for n in results["dataset"]["notices"])

    error = fail(monkeypatch, capsys, *common, "--flip", "--output", tmp_path / "no")
    assert error.startswith(
        f"error: {path}, row 0 (0-based), column 'profile': --flip reverses the PBA preference text"
    )
    invoke(*common, "--flip", "--persona-format", "ica", "--output", tmp_path / "ica")
    assert "flip_rate" in read_results(tmp_path / "ica")[1]["overall"]


@pytest.fixture(scope="module")
def built_folders(benchmark_file, tmp_path_factory):
    """`personalign build-dataset alignx` output folders holding only the pba, or only the ica, config."""
    root = tmp_path_factory.mktemp("built")
    for config in ("pba", "ica"):
        result = runner.invoke(
            app,
            [
                "build-dataset",
                "alignx",
                "--source",
                str(benchmark_file),
                "--output",
                str(root / config),
                "--config",
                config,
            ],
        )
        assert result.exit_code == 0, result.output
    return root


def test_build_folder_with_only_rendered_configs(
    tiny_lm_path, policy_path, benchmark_file, built_folders, tmp_path, monkeypatch, capsys
):
    models = ["--model", policy_path, "--reference", tiny_lm_path]
    output = tmp_path / "pba"
    result = invoke(*models, "--dataset", built_folders / "pba", "--output", output)
    results, model = read_results(output)
    assert results["dataset"]["rendered"] == "pba" and results["settings"]["persona_format"] == "pba"
    assert results["dataset"]["persona_sizes_not_applicable"]["reason"].startswith("the rows hold ready-rendered")
    assert "notice: persona sizes skipped: the rows hold ready-rendered prompts" in result.output
    assert "(sizes asked: 2, 4, 8, 16)" in result.output and "persona_size" not in model
    assert "absent" in results["dataset"]["breakdowns"]["per_persona"]  # the rendered config has no persona column
    assert results["dataset"]["breakdowns"]["per_dimension"]["rows_by_source"]["profile"] == 12
    # A PBA profile prompt is the same whichever history the build sampled: the same pairs as the source file.
    direct = tmp_path / "direct"
    invoke(*models, "--dataset", benchmark_file, "--output", direct)
    assert model["overall"] == read_results(direct)[1]["overall"]

    # The rendered parquet file alone is recognised by its message-list prompts.
    (shard,) = (built_folders / "pba" / "pba").glob("*.parquet")
    invoke(*models, "--dataset", shard, "--persona-sizes", "none", "--output", tmp_path / "shard")
    results, shard_model = read_results(tmp_path / "shard")
    assert results["dataset"]["rendered"] == "rendered" and shard_model["overall"] == model["overall"]

    # The ica-only folder is read too, as ICA prompts.
    invoke(*models, "--dataset", built_folders / "ica", "--output", tmp_path / "ica")
    results, model = read_results(tmp_path / "ica")
    assert results["settings"]["persona_format"] == "ica" and model["overall"]["num_pairs"] == 12
    assert "absent" in results["dataset"]["breakdowns"]["per_dimension"]  # no profile text, no vector

    pba = built_folders / "pba"
    for extra, message in [
        (["--flip"], f"error: {pba} [train]: --flip reverses each row's persona, but these rows hold ready-rendered"),
        (["--persona-format", "ica"], f"error: dataset {pba} holds only the ready-rendered pba config"),
        (["--format", "multifacet"], f"error: {pba} [train]: --format multifacet was given"),
    ]:
        assert fail(monkeypatch, capsys, *models, "--dataset", pba, *extra, "--output", tmp_path / "x").startswith(
            message
        )
    error = fail(
        monkeypatch, capsys, *models, "--dataset", shard, "--persona-format", "ica", "--output", tmp_path / "y"
    )
    assert error.startswith(f"error: {shard} [train]: the rows hold ready-rendered prompts")
