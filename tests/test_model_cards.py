"""The one card writer (`personalign.hub.cards`): every evaluation result keeps its arguments through `eval
--model-card`, reading a card back and `push-model`; a result measured again with the same arguments replaces its old
value, anything else is kept."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import EvalResult, ModelCard
from typer.testing import CliRunner

from personalign.cli import app
from personalign.data.synthetic import alignx_dataset
from personalign.errors import InputError
from personalign.evaluation.runner import CARD_METRICS
from personalign.hub.cards import (
    add_results_to_card,
    check_card_path,
    merge_results,
    model_index,
    read_card_results,
    result_identity,
    results_table,
)
from personalign.hub.models import export_model, model_card
from personalign.hub.run_record import RUN_RECORD, read_run_record, write_run_record

runner = CliRunner()


def result(persona_format="pba", beta=0.1, value=0.5, metric="alignment_accuracy", **overrides):
    fields = {
        "task_type": "text-generation",
        "task_name": "Personalized alignment",
        "dataset_type": "org/alignx",
        "dataset_name": "org/alignx",
        "dataset_split": "test",
        "dataset_args": {"format": "alignx", "persona_format": persona_format, "limit": None},
        "metric_type": metric,
        "metric_value": value,
        "metric_name": metric.replace("_", " "),
        "metric_args": {"beta": beta, "reference": "org/base"},
        **overrides,
    }
    return EvalResult(**fields)


def described(results):
    """What each result measured and its value, comparable across a write and a read."""
    return sorted((result_identity(r), r.metric_value) for r in results)


# ------------------------------------------------------------------------------------------------ unit checks
def test_merge_keys_on_every_argument():
    pba, ica = result("pba", value=0.81), result("ica", value=0.72)
    other_beta, other_config = result("pba", beta=0.5, value=0.6), result("pba", value=0.7, dataset_config="raw")
    merged = merge_results([pba, ica], [other_beta, other_config])
    assert [r.metric_value for r in merged] == [0.81, 0.72, 0.6, 0.7]
    # The same evaluation run again (None arguments left out, as the model-index leaves them out) replaces, in place.
    again = result("pba", value=0.83, dataset_args={"persona_format": "pba", "format": "alignx"})
    assert [r.metric_value for r in merge_results(merged, [again])] == [0.83, 0.72, 0.6, 0.7]


def test_model_index_keeps_dataset_args_that_differ_within_one_dataset():
    """huggingface_hub's own writer groups PBA and ICA results of one dataset under the first one's args."""
    results = [result("pba", value=0.81), result("ica", value=0.72), result("ica", beta=0.5, value=0.7)]
    text = f"---\n{yaml.safe_dump({'model-index': model_index('m', results)}, sort_keys=False)}---\n"
    read = ModelCard(text).data.eval_results
    assert described(read) == described(results)
    assert {r.dataset_args["persona_format"]: r.metric_value for r in read if r.metric_args["beta"] == 0.1} == {
        "pba": 0.81,
        "ica": 0.72,
    }


def test_a_hand_written_card_reads_back_with_its_arguments(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(
        "---\nlicense: mit\nmodel-index:\n- name: mine\n  results:\n  - task: {type: text-generation}\n"
        "    dataset: {name: org/alignx, type: org/alignx, config: pba, split: test, args: {persona_format: pba}}\n"
        "    metrics:\n    - {type: alignment_accuracy, value: 0.9, args: {beta: 0.2}}\n"
        "    - {type: flip_rate, value: 0.4}\n---\n\nHand-written.\n"
    )
    read = read_card_results(card)
    assert [(r.dataset_config, r.dataset_args, r.metric_type, r.metric_args, r.metric_value) for r in read] == [
        ("pba", {"persona_format": "pba"}, "alignment_accuracy", {"beta": 0.2}, 0.9),
        ("pba", {"persona_format": "pba"}, "flip_rate", None, 0.4),
    ]
    # Adding a result keeps the text, the other metadata, the card's model name and both old results.
    add_results_to_card(card, [result("ica", value=0.7)], "other-name")
    text = card.read_text()
    assert text.endswith("\nHand-written.\n") and "license: mit" in text
    assert ModelCard.load(card).data.model_name == "mine"
    assert described(read_card_results(card)) == described([*read, result("ica", value=0.7)])
    assert results_table(read)[0]["arguments"] == "config=pba, persona_format=pba, beta=0.2"


def test_adding_results_keeps_every_other_metadata_key_as_it_was(tmp_path):
    """A TRL-written card (`model_name:`, tags, `licence`) and keys of one's own: `eval ... --model-card` adds a
    `model-index` and changes nothing else (huggingface_hub's `ModelCardData.to_dict` would drop `model_name`)."""
    card = tmp_path / "README.md"
    metadata = {
        "library_name": "transformers",
        "model_name": "dpore_aloe",
        "tags": ["generated_from_trainer", "dpo", "trl"],
        "licence": "license",
        "base_model": "org/base",
        "custom": {"nested": [1, 2], "note": "mine"},
    }
    card.write_text(f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n\n# Model Card for dpore_aloe\n")
    add_results_to_card(card, [result("pba", value=0.6)], "other-name")
    written = yaml.safe_load(card.read_text().split("---\n")[1])
    assert {key: value for key, value in written.items() if key != "model-index"} == metadata
    assert list(written) == [*metadata, "model-index"]  # the order kept too
    assert written["model-index"][0]["name"] == "dpore_aloe"  # the card's own name, not the caller's
    # a second evaluation: still every key, both results, the name of the model-index unchanged
    add_results_to_card(card, [result("ica", value=0.7)], "other-name")
    again = yaml.safe_load(card.read_text().split("---\n")[1])
    assert {key: value for key, value in again.items() if key != "model-index"} == metadata
    assert described(read_card_results(card)) == described([result("pba", value=0.6), result("ica", value=0.7)])
    assert card.read_text().endswith("\n# Model Card for dpore_aloe\n")


def test_unreadable_card_metadata_is_one_line_naming_the_file(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("---\nmodel-index:\n- results: [{metrics: []}]\n---\n\ntext\n")
    with pytest.raises(ValueError, match=r"README\.md: its metadata could not be read") as caught:
        read_card_results(card)
    assert "\n" not in str(caught.value)
    assert card.read_text().endswith("text\n")  # untouched


def test_run_record_round_trip_and_errors(tmp_path):
    record = {"method": "pba", "base_model": "org/base", "dataset": "org/data"}
    assert write_run_record(tmp_path, record) == tmp_path / RUN_RECORD
    assert read_run_record(tmp_path) == record
    (tmp_path / RUN_RECORD).write_text(json.dumps({"method": "nope"}))
    with pytest.raises(ValueError, match="'method' one of dpore, sft, dpo, pba"):
        read_run_record(tmp_path)
    with pytest.raises(ValueError, match=r"no personalign_run\.json"):
        read_run_record(tmp_path / "missing")


# ----------------------------------------------------------------------------------- eval --model-card, export
@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("alignx") / "alignx.parquet"
    alignx_dataset(8, seed=1, history_size=(4, 4)).to_parquet(str(path))
    return path


@pytest.mark.usefixtures("one_thread")
def test_results_of_two_formats_and_two_betas_all_reach_the_published_card(
    perturbed_tiny_lm, tiny_lm_path, rows_file, tmp_path
):
    # A trained folder (weights, tokenizer, run record with the trainer's end-of-run evaluation).
    folder = tmp_path / "pba-run"
    shutil.copytree(perturbed_tiny_lm(0), folder)
    record = {"method": "pba", "base_model": "org/base", "dataset": "org/alignx", "dataset_config": "pba"}
    write_run_record(folder, {**record, "eval_metrics": {"eval_rewards/accuracies": 0.625}})
    card = folder / "README.md"

    def evaluate(persona_format, beta, name):
        args = ["eval", "policy", "--model", folder, "--reference", tiny_lm_path, "--dataset", rows_file, "--flip"]
        args += ["--persona-format", persona_format, "--beta", beta, "--persona-sizes", "none"]
        outcome = runner.invoke(app, [*map(str, args), "--output", str(tmp_path / name), "--model-card", str(card)])
        assert outcome.exit_code == 0, outcome.output + repr(outcome.exception)
        overall = json.loads((tmp_path / name / "results.json").read_text())["models"][str(folder)]["overall"]
        return {metric: round(overall[metric], 4) for metric in CARD_METRICS}

    expected = {
        (persona_format, beta): evaluate(persona_format, beta, f"{persona_format}-{beta}")
        for persona_format in ("pba", "ica")
        for beta in (0.1, 0.5)
    }
    assert (
        len({tuple(v.values()) for v in expected.values()}) > 1
    )  # the four evaluations differ: a check that can fail

    def published():
        exported = tmp_path / "exported"
        export_model(folder, exported, overwrite=True)
        text = (exported / "README.md").read_text()
        return text, ModelCard.load(exported / "README.md").data.eval_results

    text, results = published()
    evaluated = [r for r in results if r.dataset_args]
    assert len(evaluated) == 16  # 2 formats x 2 betas x 4 metrics (accuracy, flip rate, reversed, strict flip)
    assert {
        (r.dataset_args["persona_format"], r.metric_args["beta"], r.metric_type): r.metric_value for r in evaluated
    } == {(f, b, m): value for (f, b), metrics in expected.items() for m, value in metrics.items()}
    for r in evaluated:
        assert r.dataset_args["format"] == "alignx" and r.dataset_split == "train"
        assert r.metric_args["reference"] == str(tiny_lm_path) and r.dataset_name == str(rows_file)
    # ICA records whether demographics were shown; PBA has no such argument.
    assert {r.dataset_args.get("include_demographics") for r in evaluated if r.dataset_args["persona_format"] == "ica"}
    assert not any(
        "include_demographics" in r.dataset_args for r in evaluated if r.dataset_args["persona_format"] == "pba"
    )
    # The trainer's end-of-run evaluation is kept beside them, on the run's dataset config.
    (trained,) = [r for r in results if not r.dataset_args]
    assert (trained.dataset_name, trained.dataset_config, trained.metric_value) == ("org/alignx", "pba", 0.625)
    assert (
        "persona_format=ica, include_demographics=True, beta=0.5" in text
    )  # the body's results table shows the arguments too

    # The same evaluation again replaces its value instead of adding one (a hand-made change shows it is replaced).
    edited = card.read_text().replace(f"value: {expected[('pba', 0.1)]['alignment_accuracy']}\n", "value: 0.0\n", 1)
    assert edited != card.read_text()
    card.write_text(edited)
    assert evaluate("pba", 0.1, "pba-again") == expected[("pba", 0.1)]
    _, again = published()
    assert described(again) == described(results)


def test_a_model_card_path_that_cannot_take_results_is_refused_before_anything_is_written(tmp_path):
    """`--model-card runs/pba` (the run folder instead of its README.md) used to replace the whole folder by a card."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(InputError, match="is a folder; the model card is a file"):
        add_results_to_card(run, [result()], "run")
    assert (run / "model.safetensors").read_bytes() == b"weights"
    with pytest.raises(InputError, match="does not exist"):
        check_card_path(tmp_path / "missing" / "README.md")
    assert not (tmp_path / "missing").exists()
    broken = tmp_path / "README.md"
    broken.write_text("---\nmodel-index: [\n---\n# card\n")
    with pytest.raises(InputError, match="its metadata could not be read"):
        check_card_path(broken)
    # the command checks the card before it loads a model or reads data
    outcome = CliRunner().invoke(
        app,
        ["eval", "policy", "--model", "m", "--reference", "none", "--dataset", "d.json",
         "--output", str(tmp_path / "out"), "--model-card", str(run)],
    )  # fmt: skip
    assert isinstance(outcome.exception, InputError) and "is a folder; the model card is a file" in str(
        outcome.exception
    )
    assert (run / "model.safetensors").read_bytes() == b"weights" and not (tmp_path / "out").exists()


def test_a_reference_free_result_says_so_on_the_card(tmp_path):
    from personalign.evaluation.runner import update_model_card

    results = {
        "models": {"runs/pba": {"overall": {"alignment_accuracy": 0.75, "num_pairs": 8}}},
        "dataset": {"format": "alignx", "source": "rows.json"},
        "settings": {"persona_format": "pba", "beta": 0.1, "reference": None, "split": "test"},
    }
    card = update_model_card(tmp_path / "README.md", results)
    (result,) = ModelCard.load(card).data.eval_results
    assert result.metric_args == {"beta": 0.1, "reference": "none"} and result.metric_value == 0.75


def test_push_model_publishes_from_an_allow_list_and_only_files_that_load(tmp_path):
    """Pickles (optimizer, RNG states, a `pytorch_model.bin`) stay behind whatever their name; a half-written
    `model.safetensors` stops the export before anything is written."""
    import torch
    from safetensors.torch import save_file

    from personalign.hub.models import PUBLISHED_SUFFIXES

    folder = tmp_path / "run"
    (folder / "projection_head").mkdir(parents=True)
    (folder / "checkpoint-2").mkdir()
    write_run_record(folder, {"method": "pba", "base_model": "org/base", "dataset": "org/data"})
    save_file({"w": torch.zeros(4)}, str(folder / "model.safetensors"))
    save_file({"w": torch.ones(2)}, str(folder / "projection_head" / "model.safetensors"))
    for name, text in {"config.json": "{}", "tokenizer.json": "{}", "chat_template.jinja": "{{ x }}",
                       "vocab.txt": "a\nb\n", "projection_head/config.json": "{}", "checkpoint-2/model.safetensors": "x"}.items():  # fmt: skip
        (folder / name).write_text(text)
    for pickle in ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "random_states_0.pkl", "notes.npy"):
        (folder / pickle).write_bytes(b"\x80\x04pickled")
    exported = export_model(folder, tmp_path / "exported")
    published = sorted(str(path.relative_to(exported)) for path in exported.rglob("*") if path.is_file())
    assert published == [
        "README.md", "chat_template.jinja", "config.json", "model.safetensors", RUN_RECORD,
        "projection_head/config.json", "projection_head/model.safetensors", "tokenizer.json", "vocab.txt",
    ]  # fmt: skip
    assert all(Path(name).suffix in (*PUBLISHED_SUFFIXES, ".md") for name in published)
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(InputError, match=r"model\.safetensors: does not load .*nothing was published"):
        export_model(folder, tmp_path / "exported_again")
    assert not (tmp_path / "exported_again").exists()


def test_the_card_says_which_general_data_was_mixed_in(tmp_path):
    general = {"dataset": "HuggingFaceH4/ultrafeedback_binarized", "config": None, "split": "train_prefs"}
    general.update(share=0.25, rows=320, personal_rows=960)
    record = {"method": "dpo", "base_model": "org/sft", "dataset": "org/aloe", "dataset_config": "preference"}
    write_run_record(tmp_path, {**record, "general_data": general})
    card = model_card(tmp_path, "org/dpo-aloe")
    assert (
        "General preference data mixed in (no persona, so no persona regularizer): "
        "`HuggingFaceH4/ultrafeedback_binarized`, split `train_prefs`, 320 rows beside 960 personal rows "
        "(share 0.25 of the training rows)." in card
    )
    metadata = ModelCard(card).data
    assert metadata.datasets == ["org/aloe", "HuggingFaceH4/ultrafeedback_binarized"]
    write_run_record(tmp_path, record)
    assert "General preference data" not in model_card(tmp_path, "org/dpo-aloe")
