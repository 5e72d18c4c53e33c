"""`personalign eval nominal` (lm-evaluation-harness) offline on a tiny multiple-choice task written here: the numbers
it reports are the harness's, recomputed independently from the model's log-likelihoods of each choice; the outputs
(nominal.json, raw results, samples, plot), the model card, the merge into `eval policy` results, and the one-line
message when the extra is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer

from personalign.cli import app, run
from personalign.evaluation.nominal import INSTALL_HINT, harness_version, merge_nominal_into_results, raw_names
from personalign.evaluation.runner import write_alignment_results

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.usefixtures("one_thread")

TASK = "tiny_mc_nominal"
QUESTIONS = [
    ("What color is the sky on a clear day?", ["blue", "green", "red"], 0),
    ("How many legs does a cat have?", ["two", "four", "six", "eight"], 1),
    ("What is two plus two?", ["three", "five", "four"], 2),
    ("Which animal barks?", ["dog", "fish"], 0),
    ("What do bees make?", ["milk", "honey", "silk"], 1),
    ("Which season is the coldest?", ["summer", "spring", "winter"], 2),
    ("What is frozen water called?", ["ice", "steam", "sand", "glass"], 0),
    ("Which planet do we live on?", ["Mars", "Earth", "Venus"], 1),
    ("What does a cow drink?", ["water", "oil", "ink"], 0),
    ("Where do fish live?", ["trees", "water", "clouds"], 1),
]


def cli(*args: object) -> int:
    """The console script in-process (the same `run` and error map as `python -m personalign`)."""
    saved = sys.argv
    sys.argv = ["personalign", *map(str, args)]
    try:
        run(app)
        return 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = saved


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    """A multiple-choice task in the harness's YAML format and its JSON-lines data, scored by log-likelihood."""
    folder = tmp_path_factory.mktemp("nominal_task")
    rows = [{"question": q, "choices": c, "answer": a} for q, c, a in QUESTIONS]
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = {
        "task": TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(folder / "data.jsonl")}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }
    (folder / "tiny_mc.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return folder


def choice_loglikelihoods(model_path: str | Path, question: str, choices: list[str]) -> list[float]:
    """log P(" choice" | prompt) summed over the choice's tokens, with a plain transformers forward pass: the prompt
    and prompt + choice are each tokenized as the tokenizer does by default and the choice's tokens are the tail."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    context = f"Question: {question}\nAnswer:"
    context_ids = tokenizer(context)["input_ids"]
    values = []
    for choice in choices:
        ids = tokenizer(context + " " + choice)["input_ids"]
        assert ids[: len(context_ids)] == context_ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        logps = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(ids[1:])
        token_logps = logps[torch.arange(len(targets)), targets]
        values.append(float(token_logps[len(context_ids) - 1 :].sum()))
    return values


@pytest.fixture(scope="module")
def two_models(tiny_lm_path, perturbed_tiny_lm):
    return [str(tiny_lm_path), str(perturbed_tiny_lm(3))]


@pytest.fixture(scope="module")
def full_run(two_models, task_folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("nominal_runs") / "full"
    code = cli(
        "eval", "nominal", "--model", two_models[0], "--model", two_models[1], "--tasks", TASK,
        "--include-path", task_folder, "--device", "cpu", "--batch-size", "4", "--log-samples", "--output", output,
    )  # fmt: skip
    assert code == 0
    return output


def test_reports_exactly_what_the_harness_computed(full_run, two_models):
    results = json.loads((full_run / "nominal.json").read_text())
    assert results["harness"] == {**results["harness"], "name": "lm-evaluation-harness", "version": harness_version()}
    assert results["settings"]["tasks"] == [TASK] and results["settings"]["device"] == "cpu"
    assert list(results["models"]) == two_models
    accuracies = []
    for model in two_models:
        lls = [np.array(choice_loglikelihoods(model, q, c)) for q, c, _ in QUESTIONS]
        gold = [a for _, _, a in QUESTIONS]
        correct = np.array([float(np.argmax(ll) == a) for ll, a in zip(lls, gold, strict=True)])
        # acc_norm: the harness divides by the choice's length in characters
        lengths = [np.array([len(choice) for choice in c], dtype=float) for _, c, _ in QUESTIONS]
        correct_norm = np.array([float(np.argmax(ll / n) == a) for ll, n, a in zip(lls, lengths, gold, strict=True)])
        scores = results["models"][model]["tasks"][TASK]
        assert scores["num_samples"] == len(QUESTIONS) and scores["num_fewshot"] == 0 and not scores["group"]
        assert scores["metrics"]["acc"]["value"] == pytest.approx(correct.mean(), abs=1e-12)
        assert scores["metrics"]["acc_norm"]["value"] == pytest.approx(correct_norm.mean(), abs=1e-12)
        # the harness's standard error of a mean: the sample standard deviation over sqrt(n)
        expected_stderr = correct.std(ddof=1) / np.sqrt(len(correct))
        assert scores["metrics"]["acc"]["stderr"] == pytest.approx(expected_stderr, rel=1e-9)
        # each document's log-likelihoods as the harness logged them (--log-samples)
        name = raw_names(two_models)[model]
        samples = [json.loads(line) for line in (full_run / "raw" / name / f"samples_{TASK}.jsonl").open()]
        assert len(samples) == len(QUESTIONS)
        for sample in samples:
            logged = [response[0] for response in sample["filtered_resps"]]
            assert logged == pytest.approx(lls[sample["doc_id"]].tolist(), abs=1e-3)
        accuracies.append(correct.mean())
        raw = json.loads((full_run / results["models"][model]["raw_file"]).read_text())
        assert raw["results"][TASK]["acc,none"] == scores["metrics"]["acc"]["value"]
    # the plot: one bar group per task, one bar per model
    with Image.open(full_run / "nominal.png") as image:
        assert image.size[0] > 300 and image.size[1] > 200


def test_limit_model_card_and_merge_into_policy_results(tiny_lm_path, task_folder, tmp_path):
    policy = tmp_path / "policy_eval"
    policy_results = {
        "settings": {"models": ["p"], "beta": 0.1},
        "dataset": {"source": "alignx"},
        "models": {"p": {"overall": {"alignment_accuracy": 0.75, "num_pairs": 4}}},
    }
    write_alignment_results(policy_results, policy)
    card = tmp_path / "README.md"
    code = cli(
        "eval", "nominal", "--model", tiny_lm_path, "--tasks", TASK, "--include-path", task_folder, "--limit", "3",
        "--device", "cpu", "--output", tmp_path / "out", "--model-card", card, "--merge-into", policy,
    )  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "out" / "nominal.json").read_text())
    scores = results["models"][str(tiny_lm_path)]["tasks"][TASK]
    assert scores["num_samples"] == 3 and results["settings"]["limit"] == 3
    # the first three documents, recomputed
    correct = [np.argmax(choice_loglikelihoods(tiny_lm_path, q, c)) == a for q, c, a in QUESTIONS[:3]]
    assert scores["metrics"]["acc"]["value"] == pytest.approx(np.mean(correct), abs=1e-12)

    card_results = {(r.dataset_name, r.metric_type): r for r in ModelCard.load(card).data.eval_results}
    assert set(card_results) == {(TASK, "acc"), (TASK, "acc_norm")}
    acc = card_results[TASK, "acc"]
    assert acc.metric_value == round(scores["metrics"]["acc"]["value"], 4)
    assert acc.source_name == "lm-evaluation-harness" and acc.dataset_args == {"num_fewshot": 0, "limit": 3}

    merged = json.loads((policy / "results.json").read_text())
    assert merged["models"] == policy_results["models"] and merged["settings"] == policy_results["settings"]
    assert merged["nominal"]["models"][str(tiny_lm_path)]["tasks"][TASK]["metrics"] == scores["metrics"]
    # merged again (the same run twice): one entry per model and task, the other results kept
    merge_nominal_into_results(policy, results)
    again = json.loads((policy / "results.json").read_text())
    assert again["nominal"] == merged["nominal"] and again["models"] == merged["models"]


def test_without_the_extra_it_names_the_pip_command(tiny_lm_path, task_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now raises ImportError
    code = cli("eval", "nominal", "--model", tiny_lm_path, "--tasks", TASK, "--output", tmp_path / "out")
    out = capsys.readouterr()
    errors = [line for line in (out.out + out.err).splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in out.err
    assert INSTALL_HINT in errors[0] and "lm-evaluation-harness" in errors[0]
    assert not (tmp_path / "out").exists()


def test_the_harness_stays_out_of_the_cli_start_up():
    code = (
        "import sys; from personalign.cli import app; import personalign.cli.eval; "
        "print(sorted(m for m in ('lm_eval', 'torch', 'transformers') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"


def test_the_shipped_example_task_runs(tiny_lm_path, tmp_path, monkeypatch):
    """examples/nominal, as the docs' recipe runs it from the repository root (its data file is relative)."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    output = tmp_path / "out"
    code = cli(
        "eval", "nominal", "--model", tiny_lm_path, "--tasks", "personalign_tiny_qa", "--include-path",
        "examples/nominal", "--device", "cpu", "--output", output,
    )  # fmt: skip
    assert code == 0
    scores = json.loads((output / "nominal.json").read_text())["models"][str(tiny_lm_path)]["tasks"]
    assert scores["personalign_tiny_qa"]["num_samples"] == 8


def test_a_glob_over_two_include_paths_runs_every_match_and_the_limit_is_said_beside_each_score(
    tiny_lm_path, task_folder, tmp_path, capsys
):
    """`--tasks "tiny_mc_*"` is expanded as `lm-eval --tasks` expands it (`TaskManager.match_tasks`) over both
    `--include-path` folders; under `--limit` every score line and nominal.json say it is a smoke test."""
    other = tmp_path / "other_tasks"
    other.mkdir()
    task = {**yaml.safe_load((task_folder / "tiny_mc.yaml").read_text()), "task": "tiny_mc_other"}
    (other / "other.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    code = cli(
        "eval", "nominal", "--model", tiny_lm_path, "--tasks", "tiny_mc_*", "--include-path", task_folder,
        "--include-path", other, "--limit", "3", "--device", "cpu", "--output", tmp_path / "out",
    )  # fmt: skip
    shown = capsys.readouterr().err  # the CLI's console is stderr
    assert code == 0
    results = json.loads((tmp_path / "out" / "nominal.json").read_text())
    assert results["settings"]["tasks"] == [TASK, "tiny_mc_other"]
    assert results["settings"]["task_patterns"] == ["tiny_mc_*"]
    assert results["settings"]["include_path"] == [str(task_folder), str(other)]
    scores = results["models"][str(tiny_lm_path)]["tasks"]
    assert set(scores) == {TASK, "tiny_mc_other"}
    assert scores[TASK]["metrics"] == scores["tiny_mc_other"]["metrics"]  # the same documents in both
    assert scores[TASK]["num_samples"] == 3
    assert "first 3 documents of each task only" in results["note"] and "smoke test" in results["note"]
    lines = [line for line in shown.splitlines() if ": acc " in line]
    assert len(lines) == 2 and all("--limit 3: scores on the first 3 documents only" in line for line in lines)


def test_a_persona_encoder_folder_is_refused_in_one_line_before_the_harness_runs(
    tiny_encoder_path, task_folder, tmp_path
):
    """A PersonaEncoder folder (sentence-transformers' modules.json, config.json of type `persona_encoder`) in a
    fresh process, as a user runs it: `personalign.encoder` is not imported there, so transformers does not know
    the type, and the check must refuse it anyway (the harness would fail with an internal error)."""
    from personalign.encoder import PersonaEncoder

    encoder = tmp_path / "encoder"
    PersonaEncoder.from_pretrained(str(tiny_encoder_path)).save_pretrained(str(encoder))
    done = subprocess.run(
        [sys.executable, "-m", "personalign", "eval", "nominal", "--model", str(encoder), "--tasks", TASK,
         "--include-path", str(task_folder), "--output", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stdout + done.stderr
    assert "sentence-transformers model" in errors[0] and "not a causal (generative) language model" in errors[0]
    assert "internal error" not in errors[0] and "lm-evaluation-harness 0" not in done.stdout
    assert not (tmp_path / "out").exists()


def test_the_help_shows_the_extra_by_its_name(capsys):
    assert cli("eval", "nominal", "--help") == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "personalign[nominal]" in shown and "repeat for several" in shown


def test_a_group_and_its_own_task_together_is_one_line_not_a_bug(tiny_lm_path, task_folder, tmp_path, capsys):
    """`--tasks "tiny*"` matching a group and a task of that group: the harness refuses the duplicate task when it
    builds its task dict; the command says which and what to do (it was an internal error)."""
    group = tmp_path / "group_tasks"
    group.mkdir()
    (group / "tiny_group.yaml").write_text(yaml.safe_dump({"group": "tiny_group", "task": [TASK]}))
    code = cli(
        "eval", "nominal", "--model", tiny_lm_path, "--tasks", f"tiny_group,{TASK}", "--include-path", task_folder,
        "--include-path", group, "--limit", "2", "--device", "cpu", "--output", tmp_path / "out",
    )  # fmt: skip
    shown = capsys.readouterr().err
    assert code == 1 and "internal error" not in shown
    assert "Duplicate task" in shown and "list either the group or its tasks" in shown
    assert not (tmp_path / "out").exists()
