"""Preferences inferred at inference time (AlignX's PBA protocol): the preferences folder and its checks,
`personalign train preference-inferencer`, `personalign infer-preferences` with the learned and the LLM inferencer, and
`eval policy --preferences` (gold and inferred side by side)."""

import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personalign import PreferenceSpace
from personalign.cli import app, run
from personalign.data.alignx import normalize_row
from personalign.data.synthetic import alignx_rows
from personalign.evaluation.rows import load_eval_rows
from personalign.inference.generation import GenerationBackend
from personalign.inference.llm import PreferenceInferencer
from personalign.inference.preferences_file import (
    INFERENCE_FILE,
    PREFERENCES_FILE,
    InferredPreference,
    history_persona,
    history_sha1,
    load_inferred_preferences,
    read_inferred_preferences,
    write_inferred_preferences,
)
from personalign.io import OutputExistsError

runner = CliRunner()
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "tiny" / "preference-inferencer.yaml"
pytestmark = pytest.mark.usefixtures("one_thread")
SPACE = PreferenceSpace.alignx()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """AlignX rows in the released schema (JSON lines): 24 training rows of 8 personas, 8 test rows of 4 personas (rows
    of one persona share its history)."""
    folder = tmp_path_factory.mktemp("alignx")
    write_jsonl(folder / "train.jsonl", alignx_rows(24, seed=0, num_personas=8, history_size=(2, 3)))
    write_jsonl(folder / "test.jsonl", alignx_rows(8, seed=1, num_personas=4, history_size=(1, 2)))
    return folder


def invoke(*args):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def run_in_process(monkeypatch, capsys, *args):
    """The console entry point (`run`: one-line errors), in this process: `(exit code, error lines)`; the error line
    must be the last line of stderr (progress bars of `datasets` may come before it)."""
    monkeypatch.setattr(sys, "argv", ["personalign", *map(str, args)])
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in "\n".join(lines) and errors == lines[-1:], lines
    return exit_info.value.code, errors


def same_report(report, expected):
    """Two `direction_report`s agree (floats up to rounding)."""
    assert report.keys() == expected.keys()
    for key, value in expected.items():
        assert report[key] == pytest.approx(value), key  # a category's dict, or a number
    return True


def random_records(rows, seed=0):
    """Records of `rows` (`EvalRows`) with random directions of 1-3 active dimensions (non-empty profiles)."""
    rng = random.Random(seed)
    records = []
    for index, row in enumerate(rows.data):
        values = {d: float(rng.choice((0, 1))) for d in rng.sample(range(len(SPACE)), rng.randint(1, 3))}
        direction = SPACE.vector(values)
        records.append(
            InferredPreference(rows.row_id(index), index, history_sha1(row), direction, SPACE.to_text(direction))
        )
    return records


# --------------------------------------------------------------------------------------------------- the file
def test_history_sha1_is_the_history_texts_whatever_the_column_spelling(data):
    row = json.loads((data / "test.jsonl").read_text().splitlines()[0])
    snake = normalize_row(row, "row 0")  # snake_case columns, vectors kept
    assert "user_generated_content" in snake and "User-Generated Content" not in snake
    assert history_sha1(snake) == history_sha1(row) == history_sha1(history_persona(row))
    # Vectors, profile and demographics are not the history; a comment's text is.
    changed = {**row, "Preference Direction": SPACE.neutral(), "profile": "x", "Demographic Information": "y"}
    assert history_sha1(changed) == history_sha1(row)
    ugc = [dict(item) for item in row["User-Generated Content"]]
    ugc[0]["comment"] += "!"
    assert history_sha1({**row, "User-Generated Content": ugc}) != history_sha1(row)
    assert history_persona(row).ugc[0].direction is None and history_persona(row).direction is None


def test_preferences_round_trip_and_its_one_line_errors(data, tmp_path):
    rows = load_eval_rows(data / "test.jsonl")
    records = random_records(rows)
    folder = write_inferred_preferences(records, {"inferencer": "test"}, tmp_path / "prefs")
    assert read_inferred_preferences(folder, rows) == [record.profile for record in records]
    assert read_inferred_preferences(folder, rows, limit=3) == [record.profile for record in records[:3]]
    loaded = load_inferred_preferences(folder)
    assert loaded.meta == {"inferencer": "test"} and loaded.records == records
    assert [record.line for record in loaded.records] == list(range(1, 9))
    with pytest.raises(OutputExistsError):
        write_inferred_preferences(records, {}, folder)

    # Another dataset under the same file name: the first row's history differs; the file's line and the row named.
    (tmp_path / "other").mkdir()
    other = write_jsonl(tmp_path / "other" / "test.jsonl", alignx_rows(8, seed=5, num_personas=4))
    with pytest.raises(ValueError, match=r"preferences.jsonl, line 1 \(id 'test.jsonl:0'\): inferred from another "
                       r"history than .*test.jsonl, line 1"):  # fmt: skip
        read_inferred_preferences(folder, load_eval_rows(other))
    # Fewer rows in the file than asked for: the first missing row named.
    short = write_inferred_preferences(records[:5], {}, tmp_path / "short")
    with pytest.raises(ValueError, match=r"test.jsonl, line 6: no inferred preference for id 'test.jsonl:5'"):
        read_inferred_preferences(short, rows)
    assert read_inferred_preferences(short, rows, limit=5) == [record.profile for record in records[:5]]

    def damaged(name, edit):
        copy = tmp_path / name
        write_inferred_preferences(records, {}, copy)
        path = copy / PREFERENCES_FILE
        path.write_text(edit(path.read_text()))
        return copy

    torn = damaged("torn", lambda text: text[: text.rindex('"profile"') + 12])  # cut inside the last line
    with pytest.raises(ValueError, match=r"torn/preferences.jsonl, line 8: not valid JSON .*cut short"):
        read_inferred_preferences(torn, rows)
    lines = (folder / PREFERENCES_FILE).read_text().splitlines()
    bad = json.loads(lines[2])
    bad["preference_direction"] = bad["preference_direction"][:89]
    short_vector = damaged("vector", lambda text: "\n".join([*lines[:2], json.dumps(bad), *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match=r"vector/preferences.jsonl, line 3, field 'preference_direction'"):
        read_inferred_preferences(short_vector, rows)
    twice = damaged("twice", lambda text: text + lines[0] + "\n")
    with pytest.raises(ValueError, match=r"twice/preferences.jsonl, line 9: id 'test.jsonl:0' is also on line 1"):
        read_inferred_preferences(twice, rows)
    no_id = damaged("no_id", lambda text: text.replace('"id": "test.jsonl:4", ', ""))
    with pytest.raises(ValueError, match=r"no_id/preferences.jsonl, line 5: missing 'id'"):
        read_inferred_preferences(no_id, rows)
    (torn / INFERENCE_FILE).unlink()
    with pytest.raises(ValueError, match=r"torn: no inference.json; expected a folder written by"):
        read_inferred_preferences(torn, rows)
    with pytest.raises(ValueError, match=r"preferences .*missing: no such folder"):
        read_inferred_preferences(tmp_path / "missing", rows)


# ----------------------------------------------------------------------------------------------- learned inferencer
@pytest.fixture(scope="module")
def trained(data, tiny_encoder_path, tmp_path_factory):
    """A learned inferencer trained with `personalign train preference-inferencer` (the tiny example config, flags
    pointing it at the tiny encoder and the rows above; calibrated and scored on the test rows)."""
    output = tmp_path_factory.mktemp("inferencer") / "inferencer"
    invoke(
        "train", "preference-inferencer", "--config", EXAMPLE_CONFIG,
        "--model_name_or_path", tiny_encoder_path, "--dataset_name", data, "--calibration_split", "test",
        "--output_dir", output, "--num_epochs", 3, "--show_progress_bar", "false",
    )  # fmt: skip
    return output


def test_train_preference_inferencer_writes_a_loadable_folder_with_its_record(trained, data, tmp_path):
    from personalign.inference.learned import LearnedPreferenceInferencer

    record = json.loads((trained / "personalign_run.json").read_text())
    assert record["method"] == "preference-inferencer" and record["hyperparameters"]["num_epochs"] == 3
    assert record["fit"]["num_rows"] == 24 and record["fit"]["num_examples"] > 0
    inferencer = LearnedPreferenceInferencer.from_pretrained(trained)
    # The saved thresholds are the calibrated ones, and the recorded test report is the loaded inferencer's.
    calibration = record["calibration"]
    assert (inferencer.item_threshold, inferencer.upper, inferencer.lower) == (
        calibration["item_threshold"], calibration["upper"], calibration["lower"],
    )  # fmt: skip
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    assert same_report(record["direction_report"], inferencer.evaluate(rows))
    assert inferencer.training_args.num_epochs == 3  # the training settings, without output_dir or a token
    saved = json.loads((trained / "learned_inference_config.json").read_text())["training_args"]
    assert "output_dir" not in saved and "hub_token" not in saved
    # push-model's layout (the registry's card) loads as the folder does.
    invoke("push-model", trained, "--to-dir", tmp_path / "exported")
    assert "learned preference inferencer" in (tmp_path / "exported" / "README.md").read_text()
    exported = LearnedPreferenceInferencer.from_pretrained(tmp_path / "exported")
    assert exported.profile_text(history_persona(rows[0])) == inferencer.profile_text(history_persona(rows[0]))


def test_train_preference_inferencer_help_and_refusals(monkeypatch, capsys, data, tmp_path):
    help_text = " ".join(invoke("train", "preference-inferencer", "--help").output.split())
    assert "--class_weighting Class weights of the cross-entropy" in help_text and "--calibration_split" in help_text
    assert "builtins" not in help_text
    code, lines = run_in_process(
        monkeypatch, capsys, "train", "preference-inferencer", "--model_name_or_path", "m", "--dataset_name", data,
        "--output_dir", tmp_path / "out", "--resume", "true",
    )  # fmt: skip
    assert code == 1 and len(lines) == 1 and "nothing to resume" in lines[0]


def test_infer_preferences_learned_writes_each_rows_profile_text(trained, data, tmp_path):
    from personalign.inference.learned import LearnedPreferenceInferencer

    output = tmp_path / "prefs"
    result = invoke(
        "infer-preferences", "--inferencer", "learned", "--model", trained, "--dataset", data / "test.jsonl",
        "--output", output,
    )  # fmt: skip
    assert "macro-F1" in result.output and "4 distinct histories" in result.output
    records = load_inferred_preferences(output).records
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    inferencer = LearnedPreferenceInferencer.from_pretrained(trained)
    assert [r.profile for r in records] == [inferencer.profile_text(history_persona(row)) for row in rows]
    assert [r.preference_direction for r in records] == [inferencer.infer(history_persona(row)) for row in rows]
    assert [r.id for r in records] == [f"test.jsonl:{i}" for i in range(8)]
    meta = json.loads((output / INFERENCE_FILE).read_text())
    assert meta["inferencer"] == "learned" and meta["num_histories"] == 4 and meta["num_rows_with_gold"] == 8
    assert same_report(meta["direction_report"], inferencer.evaluate(rows))
    assert meta["settings"]["upper"] == inferencer.upper
    # --limit, and thresholds given on the command line replace the saved ones.
    invoke(
        "infer-preferences", "--inferencer", "learned", "--model", trained, "--dataset", data / "test.jsonl",
        "--output", tmp_path / "limited", "--limit", 3, "--upper", 0.55, "--lower", 0.45,
    )  # fmt: skip
    inferencer.upper, inferencer.lower = 0.55, 0.45
    limited = load_inferred_preferences(tmp_path / "limited").records
    assert [r.profile for r in limited] == [inferencer.profile_text(history_persona(row)) for row in rows[:3]]


# ---------------------------------------------------------------------------------------------------- LLM inferencer
class ScriptedBackend(GenerationBackend):
    """Answers each annotation prompt from a hash of its text: mostly "3" (cannot tell), some "1" / "2", and some
    answers no parser can read; counts the prompts it receives."""

    name = "scripted"

    def __init__(self):
        self.num_prompts = 0

    def _generate(self, prompts, max_new_tokens, temperature, top_p, seed):
        self.num_prompts += len(prompts)
        answers = ("3", "3", "3", "1", "(2) Low", "3", "no idea", "2", "3", "1")
        return [answers[sum(map(ord, prompt[-1]["content"][-300:])) % len(answers)] for prompt in prompts]


def test_infer_preferences_llm_matches_the_inferencer_and_asks_once_per_history(data, tmp_path, monkeypatch):
    import personalign.cli.infer as infer_cli

    backend = ScriptedBackend()
    monkeypatch.setattr(infer_cli, "generation_backend", lambda spec, **kwargs: backend)
    output = tmp_path / "llm"
    result = invoke(
        "infer-preferences", "--inferencer", "llm", "--model", "openai:http://me:Pr0xyPassw0rd@127.0.0.1:9/v1@scripted",
        "--dataset", data / "test.jsonl", "--output", output,
    )  # fmt: skip
    assert "could not be read" in result.output
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    direct = PreferenceInferencer(ScriptedBackend())
    expected = [direct.profile_text(history_persona(row)) for row in rows]
    records = load_inferred_preferences(output).records
    assert [r.profile for r in records] == expected and any(expected)
    # Each distinct history once: 90 questions per comment, a pair's two responses each a comment.
    distinct = {history_sha1(row): history_persona(row) for row in rows}.values()
    comments = sum(len(p.ugc) + 2 * len(p.pairs) for p in distinct)
    assert (
        backend.num_prompts
        == 90 * comments
        < 90 * sum(len(history_persona(row).ugc) + 2 * len(history_persona(row).pairs) for row in rows)
    )
    meta = json.loads((output / INFERENCE_FILE).read_text())
    assert meta["backend"] == "scripted" and meta["annotation"]["num_calls"] == backend.num_prompts
    assert meta["model"] == "openai:http://127.0.0.1:9/v1@scripted"  # the URL's credentials are not written
    assert "Pr0xyPassw0rd" not in (output / INFERENCE_FILE).read_text()
    assert meta["annotation"]["num_unparsable"] > 0


def test_infer_preferences_llm_dry_run_counts_the_calls_and_a_rerun_makes_none(data, tmp_path, monkeypatch):
    import personalign.cli.infer as infer_cli

    backend = ScriptedBackend()
    real = infer_cli.generation_backend
    monkeypatch.setattr(infer_cli, "generation_backend", lambda spec, **kwargs: real(backend, **kwargs))
    base = ["infer-preferences", "--inferencer", "llm", "--model", "scripted", "--dataset", data / "test.jsonl",
            "--cache-dir", tmp_path / "cache"]  # fmt: skip
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    distinct = {history_sha1(row): history_persona(row) for row in rows}.values()
    calls = 90 * sum(len(p.ugc) + 2 * len(p.pairs) for p in distinct)
    dry = invoke(*base, "--output", tmp_path / "dry", "--dry-run")
    assert f"{calls:,} calls to scripted, 0 answered from the cache" in " ".join(dry.output.split())
    assert backend.num_prompts == 0 and not (tmp_path / "dry").exists()
    invoke(*base, "--output", tmp_path / "first")
    assert backend.num_prompts == calls
    invoke(*base, "--output", tmp_path / "again")
    assert backend.num_prompts == calls  # every answer from the cache
    meta = json.loads((tmp_path / "again" / INFERENCE_FILE).read_text())
    assert meta["calls"] == {"requested": calls, "cached": calls, "called": 0}
    assert (tmp_path / "first" / PREFERENCES_FILE).read_text() == (tmp_path / "again" / PREFERENCES_FILE).read_text()


def test_generate_with_inferred_preferences_states_them_in_the_pba_prompt(data, tmp_path, tiny_lm_path):
    from personalign.evaluation.responses import read_responses
    from personalign.personas.prompts import pba_messages

    rows = load_eval_rows(data / "test.jsonl")
    records = random_records(rows, seed=5)
    # An all-neutral inferred profile is the empty text: it must stay empty, not fall back to the gold profile.
    records[1] = InferredPreference(records[1].id, 1, records[1].history_sha1, [0.5] * len(SPACE), "")
    preferences = write_inferred_preferences(records, {"inferencer": "llm", "model": "m"}, tmp_path / "prefs")
    output = tmp_path / "generated"
    invoke("generate", "--model", tiny_lm_path, "--dataset", data / "test.jsonl", "--output", output,
           "--preferences", preferences, "--limit", 3, "--max-new-tokens", 2, "--no-cache")  # fmt: skip
    generated, meta = read_responses(output)
    assert len(generated) == 3
    assert [r.messages for r in generated] == [
        pba_messages(r.prompt, p.profile) for r, p in zip(generated, records[:3], strict=True)
    ]
    assert meta["preferences"] == str(preferences) and records[1].profile == ""


def test_infer_preferences_refusals(monkeypatch, capsys, data, tmp_path, trained):
    multifacet = write_jsonl(
        tmp_path / "multifacet.jsonl",
        [{"instruction_id": "i", "dimension": "style", "chosen_id": "a", "rejected_id": "b", "prompt": "p",
          "chosen": "c", "rejected": "r", "history_text": [{"prompt": "p", "chosen": "c", "rejected": "r"}]}],
    )  # fmt: skip
    base = ["infer-preferences", "--inferencer", "learned", "--model", trained, "--output", tmp_path / "out"]
    test = data / "test.jsonl"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "rows.jsonl").write_bytes(test.read_bytes())
    cases = {
        "multifacet rows; preferences are inferred from AlignX histories": ["--dataset", multifacet],
        "--dry-run: options of --inferencer llm": ["--dataset", test, "--dry-run"],
        "--max-retries, --request-timeout: options of --inferencer llm": [
            "--dataset", test, "--max-retries", "1", "--request-timeout", "9",
        ],
        "--inferencer must be one of llm, learned": ["--dataset", data, "--inferencer", "gpt"],
        "--upper must be a number in [0, 1], got nan.": ["--dataset", test, "--upper", "nan"],
        "--lower must be a number in [0, 1], got -0.5.": ["--dataset", test, "--lower", "-0.5"],
        # a learned inferencer's folder given to the LLM inferencer as its model: named, before any load
        f"model {trained}: a learned preference inferencer folder (learned_inference_config.json), not a model "
        "folder; infer preferences with it through `personalign infer-preferences --inferencer learned`.": [
            "--dataset", test, "--inferencer", "llm",
        ],
        f"{mine}: holds the input {mine / 'rows.jsonl'}": ["--dataset", mine / "rows.jsonl", "--output", mine,
                                                         "--overwrite"],
    }  # fmt: skip
    for expected, extra in cases.items():
        code, lines = run_in_process(monkeypatch, capsys, *base, *extra)
        assert code == 1 and len(lines) == 1 and expected in lines[0], lines
    (tmp_path / "not_an_inferencer").mkdir()
    code, lines = run_in_process(
        monkeypatch, capsys, *base[:4], tmp_path / "not_an_inferencer", "--dataset", data / "test.jsonl",
        "--output", tmp_path / "out",
    )  # fmt: skip
    assert code == 1 and len(lines) == 1 and "no learned_inference_config.json" in lines[0]
    assert not (tmp_path / "out").exists()
    assert (mine / "rows.jsonl").read_bytes() == test.read_bytes()


def test_thresholds_are_numbers_in_the_unit_interval():
    import math

    import numpy as np

    from personalign.inference.calibration import check_thresholds

    for upper, lower, message in [
        (math.nan, 0.4, "upper must be a number in [0, 1], got nan."),
        (0.6, math.nan, "lower must be a number in [0, 1], got nan."),
        (1.5, 0.2, "upper must be a number in [0, 1], got 1.5."),
        (0.6, 0.7, "lower must be below upper, got lower=0.7, upper=0.6."),
    ]:
        with pytest.raises(ValueError) as raised:
            check_thresholds(upper, lower)
        assert str(raised.value) == message
    check_thresholds(np.float32(0.6), np.float64(0.4))


def test_infer_preferences_llm_takes_the_api_options(monkeypatch, capsys, data, tmp_path):
    from loopback_openai import LoopbackOpenAI, Reply

    with LoopbackOpenAI(failures=[Reply.error(500, "down")] * 4) as server:
        code, lines = run_in_process(
            monkeypatch, capsys, "infer-preferences", "--inferencer", "llm", "--model", f"openai:{server.base_url}@a",
            "--dataset", data / "test.jsonl", "--output", tmp_path / "out", "--limit", 1, "--num-workers", 1,
            "--max-retries", 0, "--request-timeout", 5, "--max-requests-per-minute", 6000, "--no-cache",
        )  # fmt: skip
        assert code == 1 and "HTTP 500" in lines[0] and server.num_requests == 1, lines


# ------------------------------------------------------------------------------------------- eval policy --preferences
def test_eval_policy_with_inferred_preferences_equals_rows_with_the_profiles_put_in_by_hand(
    data, tmp_path, tiny_lm_path, perturbed_tiny_lm
):
    policy = perturbed_tiny_lm(0)
    rows = load_eval_rows(data / "test.jsonl")
    records = random_records(rows, seed=3)  # for all 8 rows; the runs score the first 4
    # inferred through a proxy whose URL holds credentials (recorded so by an earlier personalign): never copied on
    meta = {"inferencer": "llm", "model": "openai:http://me:Pr0xyPassw0rd@127.0.0.1:9/v1@annotator"}
    preferences = write_inferred_preferences(records, meta, tmp_path / "prefs")
    common = ["--model", policy, "--reference", tiny_lm_path, "--flip", "--persona-sizes", "none", "--limit", 4]
    card = tmp_path / "README.md"
    invoke("eval", "policy", *common, "--dataset", data / "test.jsonl", "--output", tmp_path / "both",
           "--preferences", preferences, "--model-card", card, "--card-inferred")  # fmt: skip
    results = json.loads((tmp_path / "both" / "results.json").read_text())
    side = results["models"][str(policy)]
    # The same rows with each row's inferred profile written into its `profile` column by hand, scored as gold.
    by_hand = [
        {**json.loads(line), "profile": record.profile}
        for line, record in zip((data / "test.jsonl").read_text().splitlines(), records, strict=True)
    ]
    write_jsonl(tmp_path / "by_hand.jsonl", by_hand)
    invoke("eval", "policy", *common, "--dataset", tmp_path / "by_hand.jsonl", "--output", tmp_path / "hand")
    hand = json.loads((tmp_path / "hand" / "results.json").read_text())["models"][str(policy)]
    assert side["inferred"]["overall"] == hand["overall"] and hand["overall"]["num_pairs"] == 4
    assert side["inferred"]["per_dimension"] == hand["per_dimension"]
    # The gold block is the plain run's, untouched by the inferred one.
    invoke("eval", "policy", *common, "--dataset", data / "test.jsonl", "--output", tmp_path / "gold")
    gold = json.loads((tmp_path / "gold" / "results.json").read_text())["models"][str(policy)]
    assert {key: side[key] for key in gold} == gold and side["overall"] != side["inferred"]["overall"]
    info = results["dataset"]["inferred_preferences"]
    assert info["num_rows"] == 4 and info["inferencer"] == "llm" and results["settings"]["preferences"]
    assert info["model"] == "openai:http://127.0.0.1:9/v1@annotator"
    assert "Pr0xyPassw0rd" not in (tmp_path / "both" / "results.json").read_text() + card.read_text()
    # --card-inferred: the card holds the inferred numbers, marked as such in their dataset arguments.
    text = card.read_text()
    accuracy = side["inferred"]["overall"]["alignment_accuracy"]
    assert "preferences: inferred" in text and f"value: {round(accuracy, 4)}" in text


def test_eval_policy_refuses_preferences_where_no_pba_profile_is_stated(monkeypatch, capsys, data, tmp_path):
    rows = load_eval_rows(data / "test.jsonl")
    preferences = write_inferred_preferences(random_records(rows), {}, tmp_path / "prefs")
    multifacet = write_jsonl(
        tmp_path / "multifacet.jsonl",
        [{"instruction_id": "i", "dimension": "style", "chosen_id": "a", "rejected_id": "b", "prompt": "p",
          "chosen": "c", "rejected": "r", "history_text": [{"prompt": "p", "chosen": "c", "rejected": "r"}]}],
    )  # fmt: skip
    base = ["eval", "policy", "--model", tmp_path / "no_model", "--reference", "none", "--output", tmp_path / "out",
            "--preferences", preferences]  # fmt: skip
    cases = {
        "--persona-format ica shows the history itself": ["--dataset", data / "test.jsonl", "--persona-format", "ica"],
        "these are multifacet rows (feedback-history prompts, no profile)": ["--dataset", multifacet],
        "train.jsonl, line 1: no inferred preference for id 'train.jsonl:0'": ["--dataset", data / "train.jsonl"],
    }
    for expected, extra in cases.items():  # each before any model is looked for (the --model folder is missing)
        code, lines = run_in_process(monkeypatch, capsys, *base, *extra)
        assert code == 1 and len(lines) == 1 and expected in lines[0], lines
