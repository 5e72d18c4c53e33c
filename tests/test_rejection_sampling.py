"""Rejection sampling by reward margin (the counterfactual paper, §4.3): the exact top-p count, deterministic tie
handling, the RS-SFT / RS-DPO datasets, and the `personalign rejection-sample` command."""

import json
import random
import sys

import pytest
import torch
from datasets import load_dataset
from typer.testing import CliRunner

from personalign.cli import app, run
from personalign.data.multifacet import MultifacetBuildConfig, attach_history, build_multifacet_cf
from personalign.data.synthetic import multifaceted_dataset
from personalign.hub.cards import render_dataset_card
from personalign.hub.datasets import write_dataset_folder
from personalign.personas.persona import PairItem
from personalign.personas.prompts import feedback_generation_messages
from personalign.reward.feedback import FeedbackRendering
from personalign.reward.modeling import load_reward_model, score_rewards
from personalign.reward.rejection_sampling import build_rs_datasets, keep_count, rejection_sample, select_top_margin
from personalign.row_names import RowNames

runner = CliRunner()


# ------------------------------------------------------------------------------------------------ pure selection
def test_keep_count_is_the_exact_floor():
    assert keep_count(5, 0.6) == 3
    assert keep_count(10, 0.6) == 6
    assert keep_count(100, 0.29) == 29  # 0.29 * 100 == 28.999999999999996 in floating point
    assert keep_count(3, 0.5) == 1
    assert keep_count(7, 1.0) == 7 and keep_count(0, 0.6) == 0
    for bad in (0, 0.0, -0.1, 1.01, float("nan"), True, "0.6"):
        with pytest.raises(ValueError, match="keep must be a fraction in"):
            keep_count(10, bad)


def brute_force(margins, keep):
    """The definition, spelled out: sort by (-margin, index), take the first floor(keep * n)."""
    count = keep_count(len(margins), keep)
    return sorted(sorted(range(len(margins)), key=lambda i: (-margins[i], i))[:count])


@pytest.mark.parametrize("keep", [0.1, 0.29, 0.5, 0.6, 0.75, 1.0])
def test_select_keeps_exactly_the_top_share_by_margin(keep):
    rng = random.Random(7)
    margins = [rng.gauss(0, 1) for _ in range(101)]
    kept = select_top_margin(margins, keep)
    assert len(kept) == keep_count(101, keep) and kept == sorted(kept)
    dropped = set(range(101)) - set(kept)
    if dropped and kept:
        assert min(margins[i] for i in kept) >= max(margins[i] for i in dropped)
    assert kept == brute_force(margins, keep)


def test_ties_are_broken_by_source_order_every_time():
    margins = [1.0, 0.5, 1.0, 2.0, 0.5, 1.0, 0.5, 1.0]
    # floor(0.6 * 8) = 4: the 2.0, then the first three of the four 1.0s (rows 0, 2, 5; row 7 loses the tie)
    assert select_top_margin(margins, 0.6) == [0, 2, 3, 5]
    assert all(select_top_margin(list(margins), 0.6) == [0, 2, 3, 5] for _ in range(5))
    # all equal: the first rows win
    assert select_top_margin([0.0] * 10, 0.3) == [0, 1, 2]
    # the same scores in another container give the same choice
    assert select_top_margin(tuple(margins), 0.6) == select_top_margin(torch.tensor(margins).tolist(), 0.6)


def test_non_finite_margins_are_refused_with_the_row(tmp_path):
    with pytest.raises(ValueError, match=r"rows, row 2 \(0-based\): the reward margin is nan"):
        select_top_margin([0.1, 0.2, float("nan")], 0.6)
    rows = tmp_path / "rs.jsonl"
    rows.write_text('{"a": 1}\n{"a": 2}\n\n{"a": 3}\n')  # a JSON-lines file: named by its 1-based line
    names = RowNames.of(str(rows), [(str(rows), 0)])
    with pytest.raises(ValueError, match=r"rs\.jsonl, line 4: the reward margin is nan"):
        select_top_margin([0.1, 0.2, float("nan")], 0.6, names)


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multifacet_rs")
    multifaceted_dataset(12, seed=3).to_parquet(str(folder / "source.parquet"))
    config = MultifacetBuildConfig(test_instructions=2, history_size=3, seed=0)
    configs, report = build_multifacet_cf(str(folder / "source.parquet"), config)
    write_dataset_folder(configs, folder / "built", render_dataset_card(configs, _card(config, report)))
    rows = attach_history(configs["counterfactual"]["train"], configs["responses"]["train"], lazy=False)
    rows.to_parquet(str(folder / "rows.parquet"))
    return folder, rows


def _card(config, report):
    from personalign.data.multifacet import multifacet_card

    return multifacet_card("synthetic", config, report)


@pytest.fixture(scope="module")
def reward_model_path(tiny_lm_path, tmp_path_factory):
    """A random-init reward head on the tiny LM, saved as a folder (what `rejection-sample` loads)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny_rm")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(tiny_lm_path, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_rs_datasets_hold_the_kept_pairs_with_their_margins(built):
    _, rows = built
    margins = [float(i % 5) for i in range(len(rows))]
    kept = select_top_margin(margins, 0.6)
    sft, dpo = build_rs_datasets(rows, margins, kept, FeedbackRendering(history_size=2))
    assert len(sft) == len(dpo) == keep_count(len(rows), 0.6) == len(kept)
    for position, index in enumerate(kept[:5]):
        row = rows[index]
        history = [PairItem(**pair) for pair in row["history_text"]][-2:]  # the 2 most recent pairs
        prompt = feedback_generation_messages(history, row["prompt"])
        assert sft[position]["prompt"] == dpo[position]["prompt"] == prompt
        assert sft[position]["completion"] == [{"role": "assistant", "content": row["chosen"]}]
        assert dpo[position]["chosen"] == sft[position]["completion"]
        assert dpo[position]["rejected"] == [{"role": "assistant", "content": row["rejected"]}]
        assert sft[position]["margin"] == dpo[position]["margin"] == margins[index]
        assert sft[position]["source_row"] == index and sft[position]["dimension"] == row["dimension"]


def test_rejection_sample_scores_with_the_model_and_is_deterministic(built, reward_model_path):
    _, rows = built
    model, tokenizer, _ = load_reward_model(reward_model_path, device="cpu")
    rendering = FeedbackRendering(max_length=512)
    first = rejection_sample(model, tokenizer, rows, 0.6, rendering, batch_size=5, progress=False)
    again = rejection_sample(model, tokenizer, rows, 0.6, rendering, batch_size=16, progress=False)
    assert first.kept == again.kept and len(first.kept) == keep_count(len(rows), 0.6)
    assert first.margins == pytest.approx(again.margins, abs=1e-5)  # batch composition does not matter
    assert first.kept == select_top_margin(first.margins, 0.6)
    # each margin is r(chosen) - r(rejected) of an unbatched forward pass on the rendered input
    scores = score_rewards(model, tokenizer, rows.select(range(3)), rendering, batch_size=1, progress=False)
    for index in range(3):
        assert first.margins[index] == pytest.approx(
            scores["chosen_rewards"][index] - scores["rejected_rewards"][index], abs=1e-5
        )
    assert first.summary["num_kept"] == len(first.kept) and first.summary["margin_threshold"] == min(
        first.margins[i] for i in first.kept
    )


# -------------------------------------------------------------------------------------------------------- CLI
def run_in_process(monkeypatch, capsys, *args):
    """The console entry point with its error handling (`run`): `(exit code, stderr lines)`."""
    capsys.readouterr()  # drop what earlier commands printed
    monkeypatch.setattr(sys, "argv", ["personalign", "rejection-sample", *map(str, args)])
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_cli_writes_both_datasets_and_refuses_to_overwrite(built, reward_model_path, tmp_path, monkeypatch, capsys):
    folder, rows = built
    output = tmp_path / "rs"
    args = ["--reward-model", reward_model_path, "--dataset", folder / "rows.parquet", "--output", output]
    result = runner.invoke(app, ["rejection-sample", *map(str, args), "--keep", "0.5", "--max-length", "512"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert sorted(p.name for p in output.iterdir()) == [
        "README.md",
        "margins.png",
        "rejection_sampling.json",
        "rs_dpo",
        "rs_sft",
    ]
    sft, dpo = load_dataset(str(output), "rs_sft")["train"], load_dataset(str(output), "rs_dpo")["train"]
    assert len(sft) == len(dpo) == len(rows) // 2
    summary = json.loads((output / "rejection_sampling.json").read_text())
    assert summary["num_rows"] == len(rows) and summary["num_kept"] == len(rows) // 2 and summary["keep"] == 0.5
    assert summary["rendering"]["max_length"] == 512
    assert min(sft["margin"]) == pytest.approx(summary["margin_threshold"])

    # the build-dataset folder gives the same rows (history ids resolved through its responses config)
    from_folder = tmp_path / "rs_folder"
    args_folder = ["--reward-model", reward_model_path, "--dataset", folder / "built", "--output", from_folder]
    assert runner.invoke(app, ["rejection-sample", *map(str, args_folder), "--keep", "0.5"]).exit_code == 0
    assert load_dataset(str(from_folder), "rs_dpo")["train"]["source_row"] == dpo["source_row"]

    code, lines = run_in_process(monkeypatch, capsys, *args)
    assert code == 1 and lines == [f"error: {output} already exists; pass --overwrite to replace it."]
    assert runner.invoke(app, ["rejection-sample", *map(str, args), "--overwrite"]).exit_code == 0
    assert len(load_dataset(str(output), "rs_sft")["train"]) == keep_count(len(rows), 0.6)


def test_cli_bad_input_is_one_error_line(built, reward_model_path, tmp_path, monkeypatch, capsys):
    folder, rows = built
    no_history = tmp_path / "no_history.parquet"
    rows.remove_columns("history_text").remove_columns("history").to_parquet(str(no_history))
    base = ["--reward-model", reward_model_path, "--output", tmp_path / "out"]
    cases = [
        (["--dataset", no_history], f"error: {no_history} [train]: no 'history_text' column"),
        (["--dataset", folder / "rows.parquet", "--keep", "1.5"], "error: keep must be a fraction in (0, 1]"),
        (["--dataset", tmp_path / "missing.parquet"], "error:"),
        (["--dataset", folder / "rows.parquet", "--split", "test"], "error:"),
    ]
    for extra, message in cases:
        code, lines = run_in_process(monkeypatch, capsys, *base, *extra)
        # progress bars may precede it, but there is exactly one error line, the last one, and no traceback
        assert code == 1 and "Traceback" not in "\n".join(lines), lines
        assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
        assert lines[-1].startswith(message), lines
    assert not (tmp_path / "out").exists()


def test_a_policy_is_not_taken_for_a_reward_model(tiny_lm_path, tmp_path):
    """A causal LM would load with a fresh, random score head and score at random: it is refused by architecture."""
    from personalign.errors import InputError
    from personalign.reward.modeling import load_reward_model

    with pytest.raises(InputError, match="ForCausalLM is not a reward model"):
        load_reward_model(tiny_lm_path)
    with pytest.raises(InputError, match="no such file or folder"):
        load_reward_model(tmp_path / "missing" / "model")
