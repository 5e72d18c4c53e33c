"""`personalign eval` on tiny local models: AlignX and counterfactual MultiFacet rows, flips, persona sizes,
per-dimension breakdowns, plots, model cards, and one-line errors."""

import copy
import json
import sys

import pytest
import yaml
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from personalign import PreferenceSpace
from personalign.cli import app, run
from personalign.data.alignx import AlignXBuildConfig, render_row
from personalign.data.multifacet import MultifacetBuildConfig, build_multifacet_cf, multifacet_card
from personalign.data.synthetic import alignx_dataset, multifaceted_dataset
from personalign.evaluation import compute_alignment_metrics, reverse_alignx_row, score_policy_and_reference
from personalign.evaluation.robustness import subset_alignx_history
from personalign.hub.cards import render_dataset_card
from personalign.hub.datasets import write_dataset_folder

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policy_path(perturbed_tiny_lm):
    return perturbed_tiny_lm(0)


@pytest.fixture(scope="module")
def alignx_rows_file(tmp_path_factory):
    """16 synthetic AlignX rows, each with 8 comments and 8 pairs (16 history items)."""
    path = tmp_path_factory.mktemp("alignx") / "alignx.parquet"
    alignx_dataset(16, seed=1, history_size=(8, 8)).to_parquet(str(path))
    return path


@pytest.fixture(scope="module")
def multifacet_folder(tmp_path_factory):
    """A counterfactual MultiFacet build folder (as `personalign build-dataset multifacet-cf` writes it)."""
    folder = tmp_path_factory.mktemp("multifacet")
    multifaceted_dataset(10, seed=0).to_parquet(str(folder / "source.parquet"))
    config = MultifacetBuildConfig(test_instructions=2, history_size=4, seed=0)
    configs, report = build_multifacet_cf(str(folder / "source.parquet"), config)
    card = render_dataset_card(configs, multifacet_card("synthetic", config, report))
    write_dataset_folder(configs, folder / "built", card)
    return folder / "built"


def invoke(*args):
    result = runner.invoke(app, ["eval", "policy", *map(str, args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def run_in_process(monkeypatch, capsys, *args):
    """The console entry point's error handling (`run`), in this process: `(exit code, stderr lines)`."""
    monkeypatch.setattr(sys, "argv", ["personalign", "eval", "policy", *map(str, args)])
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_alignx_eval_matches_direct_scoring_and_writes_plots_and_card(
    policy_path, tiny_lm_path, alignx_rows_file, tmp_path
):
    output, card = tmp_path / "eval", tmp_path / "README.md"
    card.write_text("---\nlicense: apache-2.0\n---\n\n# My policy\n\nKeep this text.\n")
    args = ["--model", policy_path, "--reference", tiny_lm_path, "--dataset", alignx_rows_file, "--flip"]
    invoke(*args, "--batch-size", 8, "--output", output, "--model-card", card)
    assert sorted(p.name for p in output.iterdir()) == ["per_dimension.png", "persona_size.png", "results.json"]
    for name in ("per_dimension.png", "persona_size.png"):
        with Image.open(output / name) as image:
            assert image.format == "PNG"
    results = json.loads((output / "results.json").read_text())
    assert results["settings"]["persona_format"] == "pba" and results["settings"]["flip"] is True
    assert results["settings"]["reference"] == str(tiny_lm_path) and results["settings"]["split"] == "train"
    assert results["dataset"]["format"] == "alignx" and results["dataset"]["num_rows"] == 16
    model = results["models"][str(policy_path)]

    # The same numbers, computed directly: render, reverse, score, compute.
    raw = alignx_dataset(16, seed=1, history_size=(8, 8)).to_list()
    policy, reference = (AutoModelForCausalLM.from_pretrained(p) for p in (policy_path, tiny_lm_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    build = AlignXBuildConfig(keep_full_history=True)

    def score(rows, suffix=""):
        rendered = [render_row(row, i, "pba", build) for i, row in enumerate(rows)]
        pairs = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rendered]
        return score_policy_and_reference(policy, reference, tokenizer, pairs, batch_size=8, suffix=suffix)

    space = PreferenceSpace.alignx()
    labels = [[space.dimensions[i].name for i in space.active(row["Preference Direction"])] for row in raw]
    expected = compute_alignment_metrics(
        **score(raw), **score([reverse_alignx_row(r) for r in raw], "_reversed"), groups={"dimension": labels}
    )
    assert 0 < expected["alignment_accuracy"] < 1 and expected["num_ties"] == 0  # a check that can fail
    for key in ("alignment_accuracy", "flip_rate", "reversed_alignment_accuracy", "strict_flip_rate", "num_flipped"):
        assert model["overall"][key] == expected[key], key
    assert model["overall"]["reward_margin"] == pytest.approx(expected["reward_margin"], abs=1e-6)
    assert {name: (m["num_pairs"], m["num_correct"]) for name, m in model["per_dimension"].items()} == {
        name: (m["num_pairs"], m["num_correct"]) for name, m in expected["groups"]["dimension"].items()
    }

    # Persona sizes: every row at each size; size 4 equals scoring the 4-item subsets directly.
    assert results["dataset"]["persona_sizes"] == [2, 4, 8, 16]
    assert {size: m["num_pairs"] for size, m in model["persona_size"].items()} == {"2": 16, "4": 16, "8": 16, "16": 16}
    subsets = [subset_alignx_history(row, 4, seed=0, index=i) for i, row in enumerate(raw)]
    size_four = compute_alignment_metrics(
        **score(subsets), **score([reverse_alignx_row(r) for r in subsets], "_reversed")
    )
    for key in ("alignment_accuracy", "flip_rate", "strict_flip_rate"):
        assert model["persona_size"]["4"][key] == size_four[key], key
    # Full history: the size-16 persona is every item (in another order inside each kind: none; same rows).
    assert model["persona_size"]["16"]["alignment_accuracy"] == model["overall"]["alignment_accuracy"]

    # The model card keeps its text and metadata and gains the model-index.
    text = card.read_text()
    assert "Keep this text." in text
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["license"] == "apache-2.0"
    metrics = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics["alignment_accuracy"] == round(expected["alignment_accuracy"], 4)
    assert metrics["flip_rate"] == round(expected["flip_rate"], 4)


def test_policy_equal_to_reference_ties_everywhere(tiny_lm_path, policy_path, alignx_rows_file, tmp_path):
    output = tmp_path / "same"
    args = [
        "--model",
        tiny_lm_path,
        "--model",
        policy_path,
        "--reference",
        tiny_lm_path,
        "--dataset",
        alignx_rows_file,
    ]
    invoke(*args, "--flip", "--limit", 6, "--persona-sizes", "2,8", "--output", output)
    results = json.loads((output / "results.json").read_text())
    assert list(results["models"]) == [str(tiny_lm_path), str(policy_path)]
    assert results["models"][str(policy_path)]["overall"]["num_ties"] == 0  # the other model is scored on its own
    model = results["models"][str(tiny_lm_path)]
    overall = model["overall"]
    assert overall["alignment_accuracy"] == 0.0 and overall["num_ties"] == overall["num_pairs"] == 6
    assert overall["flip_rate"] == 0.0 and overall["num_reversed_ties"] == 6
    assert [(s, m["alignment_accuracy"], m["num_ties"]) for s, m in model["persona_size"].items()] == [
        ("2", 0.0, 6),
        ("8", 0.0, 6),
    ]
    # Reference-free: a pair is correct iff the policy gives the chosen response the higher log-prob.
    output = tmp_path / "free"
    args = ["--model", tiny_lm_path, "--reference", "none", "--dataset", alignx_rows_file, "--limit", 6]
    invoke(*args, "--persona-sizes", "none", "--output", output)
    free = json.loads((output / "results.json").read_text())
    assert free["settings"]["reference"] is None and "persona_size" not in free["models"][str(tiny_lm_path)]
    assert sorted(p.name for p in output.iterdir()) == ["per_dimension.png", "results.json"]
    raw = alignx_dataset(16, seed=1, history_size=(8, 8)).select(range(6)).to_list()
    rows = [render_row(r, i, "pba", AlignXBuildConfig(keep_full_history=True)) for i, r in enumerate(raw)]
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    scores = score_policy_and_reference(model, copy.deepcopy(model), AutoTokenizer.from_pretrained(tiny_lm_path), rows)
    correct = sum(c > r for c, r in zip(scores["policy_chosen_logps"], scores["policy_rejected_logps"], strict=True))
    assert free["models"][str(tiny_lm_path)]["overall"]["num_correct"] == correct


def test_multifacet_flip_uses_the_opposite_users(policy_path, tiny_lm_path, multifacet_folder, tmp_path):
    output = tmp_path / "mf"
    args = ["--model", policy_path, "--reference", tiny_lm_path, "--dataset", multifacet_folder, "--split", "test"]
    invoke(*args, "--flip", "--persona-sizes", "1,2", "--batch-size", 16, "--output", output)
    results = json.loads((output / "results.json").read_text())
    assert results["dataset"]["format"] == "multifacet" and results["settings"]["persona_format"] == "feedback"
    assert results["dataset"]["num_unpaired_dropped"] == 0
    model = results["models"][str(policy_path)]
    overall = model["overall"]
    assert overall["num_pairs"] == results["dataset"]["num_rows"] > 0
    assert set(model["per_dimension"]) <= {"style", "background_knowledge", "informativeness", "harmlessness"}
    assert sum(m["num_pairs"] for m in model["per_dimension"].values()) == overall["num_pairs"]
    # The reversed row of a user is their opposite user's row, so over a set closed under that pairing the reversed
    # accuracy equals the accuracy (a swap of chosen/rejected alone would give 1 - accuracy instead).
    assert overall["alignment_accuracy"] not in (0.0, 0.5, 1.0)
    assert overall["reversed_alignment_accuracy"] == overall["alignment_accuracy"]
    for size in ("1", "2"):
        per_size = model["persona_size"][size]
        assert per_size["num_pairs"] == results["dataset"]["persona_size_rows"]
        assert per_size["reversed_alignment_accuracy"] == per_size["alignment_accuracy"]


def test_errors_are_one_line(tiny_lm_path, alignx_rows_file, tmp_path, monkeypatch, capsys):
    models = ["--model", tiny_lm_path, "--reference", tiny_lm_path]
    existing = tmp_path / "exists"
    existing.mkdir()
    code, lines = run_in_process(monkeypatch, capsys, *models, "--dataset", alignx_rows_file, "--output", existing)
    assert code == 1 and lines == [f"error: {existing} already exists; pass --overwrite to replace it."]

    bad = tmp_path / "bad.parquet"
    alignx_dataset(2).select_columns(["prompt"]).rename_column("prompt", "text").to_parquet(str(bad))
    code, lines = run_in_process(monkeypatch, capsys, *models, "--dataset", bad, "--output", tmp_path / "out")
    assert code == 1 and "Traceback" not in "\n".join(lines)
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]]
    assert errors[0].startswith(f"error: {bad} [train]: cannot tell the row format from the columns (text)")

    for extra, message in [
        (["--dataset", tmp_path / "missing.parquet"], f"error: dataset {tmp_path / 'missing.parquet'}: no such file"),
        (["--dataset", alignx_rows_file, "--persona-sizes", "2,32"], "error: "),
        (["--dataset", alignx_rows_file, "--persona-format", "feedback"], "error: persona format 'feedback' is for"),
        (["--dataset", alignx_rows_file, "--split", "test"], "error: dataset "),
    ]:
        code, lines = run_in_process(monkeypatch, capsys, *models, *extra, "--output", tmp_path / "out")
        assert code == 1 and lines[-1].startswith(message), lines
        assert not (tmp_path / "out").exists()
    assert (
        "persona size 32 is larger than every row's history (at most 16 items)"
        in run_in_process(
            monkeypatch,
            capsys,
            *models,
            "--dataset",
            alignx_rows_file,
            "--persona-sizes",
            "2,32",
            "--output",
            tmp_path / "o",
        )[1][-1]
    )


def test_the_output_is_never_an_input(tiny_lm_path, alignx_rows_file, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rows = data / "rows.parquet"
    rows.write_bytes(alignx_rows_file.read_bytes())
    cache, prefs = tmp_path / "refcache", tmp_path / "prefs"
    cache.mkdir()
    prefs.mkdir()
    models = ["--model", tiny_lm_path, "--reference", tiny_lm_path, "--dataset", rows, "--overwrite"]
    for output, extra, relation in [
        (data, [], "holds"),  # the dataset's folder
        (tmp_path, [], "holds"),  # a folder above it
        (cache, ["--reference-cache", cache], "is"),  # the reference log-prob cache the run writes
        (prefs, ["--preferences", prefs], "is"),
    ]:
        code, lines = run_in_process(monkeypatch, capsys, *models, *extra, "--output", output)
        assert code == 1 and lines[-1].startswith(f"error: {output}: {relation} the input "), lines
    assert sorted(data.iterdir()) == [rows] and rows.read_bytes() == alignx_rows_file.read_bytes()
    assert cache.is_dir() and prefs.is_dir()


def test_row_messages_name_the_file_the_column_and_the_line(tiny_lm_path, tmp_path, monkeypatch, capsys):
    """A column one file of a folder lacks is named with the file (not as a null in row 0 of the joined split); an
    empty persona is named by its file and line; a malformed JSON line by its line."""
    models = ["--model", tiny_lm_path, "--reference", tiny_lm_path, "--output", tmp_path / "out"]
    rows = alignx_dataset(6, seed=0).to_list()
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(rows[:3]))
    (folder / "b.json").write_text(json.dumps([{k: v for k, v in row.items() if k != "chosen"} for row in rows[3:]]))
    code, lines = run_in_process(monkeypatch, capsys, *models, "--dataset", folder)
    assert code == 1 and lines[-1].startswith(f"error: {folder / 'b.json'}: missing column(s) 'chosen'; an AlignX row")

    empty = {
        **rows[1],
        "User-Generated Content": [],
        "Pair-wise Comparative Feedback": [],
        "Preference Direction": None,
    }
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [rows[0], empty, rows[2]]))
    code, lines = run_in_process(monkeypatch, capsys, *models, "--dataset", path)
    assert code == 1 and lines[-1].startswith(f"error: {path}, line 2: the persona is empty: no 'profile'")

    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:-1] + "\n")
    code, lines = run_in_process(monkeypatch, capsys, *models, "--dataset", path)
    assert code == 1 and lines[-1].startswith(f"error: {path}, line 2, column ")
    assert "not valid JSON" in lines[-1] and "Traceback" not in "\n".join(lines)
    assert not (tmp_path / "out").exists()


def test_a_damaged_or_pickled_model_is_one_line_naming_it(
    tiny_lm_path, alignx_rows_file, tmp_path, monkeypatch, capsys
):
    """A truncated `model.safetensors`, or a folder of pickled weights only, fails before any scoring with one line
    naming the file or folder; the pickle is never loaded."""
    import shutil

    import torch
    from safetensors.torch import load_file

    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_lm_path, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_lm_path, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    output = tmp_path / "out"
    common = ["--dataset", alignx_rows_file, "--output", output, "--limit", 2]

    code, lines = run_in_process(monkeypatch, capsys, "--model", truncated, "--reference", "none", *common)
    assert code == 1 and lines[-1].startswith(f"error: model {weights}: does not load (") and lines[-1].endswith(").")
    assert "Traceback" not in "\n".join(lines) and not output.exists()
    code, lines = run_in_process(monkeypatch, capsys, "--model", tiny_lm_path, "--reference", truncated, *common)
    assert code == 1 and lines[-1].startswith(f"error: model {weights}: does not load (")

    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("a pickle was loaded"))
    code, lines = run_in_process(monkeypatch, capsys, "--model", pickled, "--reference", "none", *common)
    assert code == 1 and lines[-1] == (
        f"error: model {pickled}: holds only pickled weights (pytorch_model.bin); personalign loads safetensors "
        "only and never unpickles. To convert them, load them once in a trusted environment and save them as "
        "safetensors, e.g. AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder, "
        "safe_serialization=True)."
    )
    assert not output.exists()


def test_eval_encoder_on_a_damaged_encoder_is_one_line(
    tiny_encoder_path, alignx_rows_file, tmp_path, monkeypatch, capsys
):
    import shutil

    from personalign.cli.eval import eval_app

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_path, encoder)
    weights = next(encoder.rglob("model.safetensors"))
    weights.write_bytes(b"\x00" * 16)
    output = tmp_path / "e.json"
    argv = [
        "personalign",
        "encoder",
        "--model",
        str(encoder),
        "--dataset",
        str(alignx_rows_file),
        "--output",
        str(output),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        run(eval_app)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and lines == [lines[-1]]
    assert lines[-1].startswith(f"error: persona encoder {weights}: does not load (") and not output.exists()


def test_model_card_says_created_or_updated(policy_path, alignx_rows_file, tmp_path):
    """`--model-card` on a missing card creates it (`update_model_card` creates a missing card, as a model folder
    without a README.md is common) and says so; on an existing card it says updated."""
    card = tmp_path / "README.md"
    args = ["--model", policy_path, "--reference", "none", "--dataset", alignx_rows_file, "--limit", 2]
    args += ["--persona-sizes", "none", "--model-card", card]
    created = invoke(*args, "--output", tmp_path / "first")
    assert f"created the model card {card}" in created.output and "updated" not in created.output
    assert card.is_file()
    updated = invoke(*args, "--output", tmp_path / "second")
    assert f"updated the model-index of {card}" in updated.output
