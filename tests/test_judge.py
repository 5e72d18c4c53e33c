"""`personalign judge`: the four protocols on scripted verdicts whose outcome is counted by hand here (ties,
unparsable outputs, the shown order undone), bootstrap intervals, the files written (judgments, summary, plots,
model card), refused inputs, and the command end to end against a local OpenAI-compatible server. No model is
loaded; the responses folders are written here in the C2 format with `json.dumps`."""

import json
import logging
import re
import sys

import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

from loopback_openai import LoopbackOpenAI, Reply
from personalign.cli import app, run
from personalign.errors import InputError
from personalign.evaluation.metrics import bootstrap_interval
from personalign.evaluation.protocols import (
    JudgeSettings,
    System,
    get_protocol,
    judge_card_results,
    judge_responses,
    load_judge_inputs,
    preference_rubric,
    update_model_card_with_judgments,
    write_judge_outputs,
)
from personalign.inference.generation import GenerationBackend
from personalign.io import OutputExistsError

FAST = JudgeSettings(seed=0, num_resamples=200)


class ScriptedBackend(GenerationBackend):
    """Answers each prompt with `script(last message text)` and records every prompt."""

    name = "scripted"

    def __init__(self, script):
        self.script = script
        self.prompts = []

    def _generate(self, prompts, max_new_tokens, temperature, top_p, seed):
        self.prompts.extend(prompts)
        return [self.script(messages[-1]["content"]) for messages in prompts]


def write_folder(folder, records, **meta):
    """A responses folder exactly as C2 specifies it (`personalign generate`'s output)."""
    folder.mkdir(parents=True)
    lines = []
    for index, record in enumerate(records):
        full = {
            "id": f"rows.jsonl:{index}",
            "row": index,
            "prompt": f"question {index}",
            "messages": [{"role": "user", "content": f"question {index}"}],
            "persona": {},
            "reference": None,
            "rubric": None,
            "reference_answer": None,
            **record,
        }
        lines.append(json.dumps(full))
    (folder / "responses.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    generation = {
        "model": "org/model",
        "backend": "transformers:org/model",
        "dataset": "rows.jsonl",
        "split": "test",
        "data_format": "alignx",
        "persona_format": "ica",
        "no_history": False,
        "preferences": None,
        "generation": {"max_new_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0},
        "num_rows": len(records),
        "personalign_version": "test",
        "calls": {"requested": len(records), "cached": 0, "called": len(records)},
        **meta,
    }
    (folder / "generation.json").write_text(json.dumps(generation), encoding="utf-8")
    return folder


def shown(prompt):
    """The two responses as the pairwise prompt shows them: (A, B)."""
    match = re.search(r"### Response A\n(.*?)\n\n### Response B\n(.*?)\n\n", prompt, re.S)
    return match.group(1), match.group(2)


# The planned verdict for "mine-i" per row: 4 wins, 1 tie, 2 losses, 1 unparsable -> Win / (Win + Lose) = 4 / 6.
PLAN = ["win", "win", "lose", "win", "tie", "lose", "win", "unparsable"]


def pairwise_judge(prompt):
    a, _ = shown(prompt)
    row = int(a.split("-")[1])
    plan = PLAN[row]
    if plan == "tie":
        return '{"choice": "Tie"}'
    if plan == "unparsable":
        return "Both responses have merits and flaws."
    mine_is_a = a.startswith("mine")
    return '{"choice": "Response ' + ("A" if mine_is_a == (plan == "win") else "B") + '"}'


@pytest.fixture
def pairwise_folders(tmp_path):
    personas = [
        {"history": f"history of user {i}", "dimension": "style" if i < 4 else "informativeness"}
        for i in range(len(PLAN))
    ]
    mine = write_folder(tmp_path / "mine", [{"response": f"mine-{i}", "persona": p} for i, p in enumerate(personas)])
    theirs = [
        {"id": f"rows.jsonl:{i}", "row": i, "prompt": f"question {i}", "response": f"theirs-{i}", "persona": p}
        for i, p in enumerate(personas)
    ]
    theirs = write_folder(tmp_path / "theirs", theirs[::-1], model="org/base")  # another order: matched by id
    return mine, theirs


def test_pairwise_win_rate_matches_the_hand_count_with_ties_unparsable_and_order_undone(pairwise_folders):
    mine, theirs = pairwise_folders
    inputs = load_judge_inputs(mine, theirs)
    backend = ScriptedBackend(pairwise_judge)
    result = judge_responses(inputs, backend, get_protocol("pairwise-win"), FAST, judge_spec="openai:judge")
    results = result.summary["results"]
    assert (results["wins"], results["ties"], results["losses"], results["unparsable"]) == (4, 1, 2, 1)
    assert results["win_rate"] == pytest.approx(4 / 6)
    assert results["win_rate_with_ties"] == pytest.approx((4 + 0.5) / 7)
    # Rows 0-3 (style): win, win, lose, win; rows 4-7 (informativeness): tie, lose, win, unparsable.
    assert results["per_dimension"]["style"]["win_rate"] == pytest.approx(3 / 4)
    assert results["per_dimension"]["informativeness"]["win_rate"] == pytest.approx(1 / 2)
    assert results["per_dimension"]["informativeness"]["ties"] == 1
    assert len(backend.prompts) == len(PLAN)
    # The order really is randomised, and what the judgments say was shown is what the judge saw.
    orders = []
    for item, messages in zip(result.judgments, backend.prompts, strict=True):
        a, _ = shown(messages[-1]["content"])
        call = item["calls"][0]
        assert call["shown_order"][0] == ("responses" if a.startswith("mine") else "against")
        assert a.endswith(item["id"].split(":")[1])  # each row judged with its own pair (theirs matched by id)
        orders.append(tuple(call["shown_order"]))
        expected = None if PLAN[item["row"]] == "unparsable" else PLAN[item["row"]]
        assert item["outcome"] == expected and item["unparsable"] == (expected is None)
    assert len(set(orders)) == 2, "seed 0 should show both orders among 8 rows"
    swapped_wins = [
        item
        for item in result.judgments
        if item["outcome"] == "win" and item["calls"][0]["shown_order"][0] == "against"
    ]
    assert swapped_wins and all(item["calls"][0]["verdict"] == "B" for item in swapped_wins)  # B mapped back to win
    # Seeded: the same seed shows the same orders, another seed other ones; the counts never change.
    again = judge_responses(inputs, ScriptedBackend(pairwise_judge), get_protocol("pairwise-win"), FAST)
    assert [i["calls"][0]["shown_order"] for i in again.judgments] == [list(o) for o in orders]
    other = judge_responses(
        inputs, ScriptedBackend(pairwise_judge), get_protocol("pairwise-win"), JudgeSettings(seed=3, num_resamples=50)
    )
    assert [tuple(i["calls"][0]["shown_order"]) for i in other.judgments] != orders
    assert other.summary["results"]["win_rate"] == pytest.approx(4 / 6)
    ci = results["win_rate_ci"]
    assert ci["low"] <= results["win_rate"] <= ci["high"] and ci["confidence"] == 0.95


def test_pairwise_swap_judges_both_orders_and_combines_them(pairwise_folders):
    inputs = load_judge_inputs(*pairwise_folders)
    backend = ScriptedBackend(pairwise_judge)
    result = judge_responses(inputs, backend, get_protocol("pairwise-win", swap=True), FAST)
    assert len(backend.prompts) == 2 * len(PLAN)
    results = result.summary["results"]
    assert (results["wins"], results["ties"], results["losses"], results["unparsable"]) == (4, 1, 2, 1)
    assert results["order_agreement"] == 1.0
    # A judge that always picks the first response: every row wins once and loses once, so every row is a tie.
    biased = judge_responses(
        inputs, ScriptedBackend(lambda _: '{"choice": "Response A"}'), get_protocol("pairwise-win", swap=True), FAST
    ).summary["results"]
    assert (biased["wins"], biased["ties"], biased["losses"]) == (0, 8, 0)
    assert biased["win_rate"] is None and biased["order_agreement"] == 0.0 and biased["first_position_rate"] == 1.0


def rubric_item(criteria):
    return {"criteria": criteria, "score_descriptions": {str(k): f"level {k}" for k in range(1, 6)}}


def rubric_judge(prompt):
    """Scores from the response and the criteria shown: `"<response> | <criteria>"` -> score or unparsable."""
    response = prompt.split("###Response to evaluate:\n")[1].split("\n\n###")[0]
    criteria = prompt.split("###Score Rubrics:\n[")[1].split("]\n")[0]
    table = {
        ("s-0", "Is it concise?"): 4,
        ("s-0", "Is it witty?"): 2,
        ("s-1", "derived"): 5,
        ("i-2", "derived"): 1,
        ("i-3", "derived"): None,  # unparsable: the row has no score
        ("b-0", "Is it concise?"): 3,
        ("b-0", "Is it witty?"): 3,
        ("b-1", "derived"): 2,
        ("b-2", "derived"): 2,
        ("b-3", "derived"): 4,
    }
    key = (response, criteria if criteria in ("Is it concise?", "Is it witty?") else "derived")
    score = table[key]
    return "Feedback: hard to say." if score is None else f"Feedback: fine. [RESULT] {score}"


@pytest.fixture
def rubric_folders(tmp_path):
    rows = [
        {
            "persona": {"dimension": "style", "preference": "short"},
            "rubric": [rubric_item("Is it concise?"), rubric_item("Is it witty?")],
        },
        {
            "persona": {"dimension": "style", "preference": "playful tone"},
            "reference": {"chosen": "gold 1", "rejected": "x"},
        },
        {"persona": {"dimension": "informativeness", "preference": "many numbers"}},
        {"persona": {"dimension": "informativeness", "preference": "sources cited"}, "reference_answer": "ref 3"},
    ]
    prefixes = ["s", "s", "i", "i"]
    mine = write_folder(
        tmp_path / "mine", [{**r, "response": f"{p}-{i}"} for i, (r, p) in enumerate(zip(rows, prefixes, strict=True))]
    )
    base = write_folder(tmp_path / "base", [{**r, "response": f"b-{i}"} for i, r in enumerate(rows)], model="org/base")
    return mine, base


def test_rubric_scores_per_dimension_match_a_hand_computation(rubric_folders):
    inputs = load_judge_inputs(*rubric_folders)
    backend = ScriptedBackend(rubric_judge)
    result = judge_responses(inputs, backend, get_protocol("multifacet-rubric"), FAST)
    results = result.summary["results"]
    # mine: row 0 (4 + 2) / 2 = 3, row 1 5, row 2 1, row 3 unparsable; base: 3, 2, 2, 4.
    assert [item["scores"]["responses"] for item in result.judgments] == [3.0, 5.0, 1.0, None]
    assert results["per_dimension"]["style"]["responses"]["mean"] == pytest.approx(4.0)
    assert results["per_dimension"]["informativeness"]["responses"]["mean"] == pytest.approx(1.0)
    assert results["per_dimension"]["informativeness"]["responses"]["num_unscored"] == 1
    assert results["overall"]["responses"]["mean"] == pytest.approx(9 / 3)
    assert results["overall"]["responses"]["std"] == pytest.approx(np.std([3, 5, 1], ddof=1))
    assert results["overall"]["against"]["mean"] == pytest.approx(11 / 4)
    assert results["per_dimension"]["style"]["difference"]["value"] == pytest.approx(4.0 - 2.5)
    assert results["overall"]["responses"]["histogram"] == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 1}
    assert results["num_rubrics_derived"] == 3 and results["rubric_sources"] == {"record": 1, "derived": 3}
    assert results["reference_answer_sources"] == {"none": 2, "reference.chosen": 1, "reference_answer": 1}
    # 5 rubric items per system, one call each; the reference answers reach the prompt.
    assert len(backend.prompts) == 10
    texts = [m[-1]["content"] for m in backend.prompts]
    assert sum("###Reference Answer (Score 5):\ngold 1" in t for t in texts) == 2
    assert sum("Does the response align with the user's informativeness preference: many numbers?" in t for t in texts)
    assert [i["rubric_source"] for i in result.judgments] == ["record", "derived", "derived", "derived"]
    # Refusing to derive names the first row without a rubric.
    with pytest.raises(InputError, match=r"responses.jsonl, line 2 \(id 'rows.jsonl:1'\): no rubric"):
        judge_responses(inputs, backend, get_protocol("multifacet-rubric", derive_rubrics=False), FAST)


def test_preference_rubric_is_the_documented_template():
    (item,) = preference_rubric(" concise answers ", "background_knowledge")
    assert (
        item["criteria"] == "Does the response align with the user's background knowledge preference: concise answers?"
    )
    assert sorted(item["score_descriptions"]) == ["1", "2", "3", "4", "5"]


def test_style_score_relative_change_matches_table_2s_definition(tmp_path):
    rows = [
        {"persona": {"dimension": "style", "preference": "terse"}},
        {"persona": {"dimension": "style", "preference": "formal"}},
        {"persona": {"dimension": "harmlessness", "preference": "safe"}},
        {"persona": {"dimension": "style", "preference": "emoji"}},
    ]
    scores = {"w-0": 4, "w-1": 5, "w-3": 3, "o-0": 3, "o-1": 3, "o-3": None}
    with_history = write_folder(tmp_path / "with", [{**r, "response": f"w-{i}"} for i, r in enumerate(rows)])
    without = write_folder(
        tmp_path / "without", [{**r, "response": f"o-{i}"} for i, r in enumerate(rows)], no_history=True
    )

    def judge(prompt):
        response = prompt.split("###Response to evaluate:\n")[1].split("\n\n###")[0]
        return "no idea" if scores[response] is None else f"[RESULT] {scores[response]}"

    backend = ScriptedBackend(judge)
    result = judge_responses(load_judge_inputs(with_history, without), backend, get_protocol("style-score"), FAST)
    results = result.summary["results"]
    assert len(backend.prompts) == 6  # the harmlessness row is left out
    assert results["with_history"]["mean"] == pytest.approx(4.0) and results["without_history"]["mean"] == 3.0
    assert results["relative_change"] == pytest.approx((4.0 - 3.0) / 3.0)
    assert results["num_rows_left_out"] == 1 and results["rows_left_out_by_dimension"] == {"harmlessness": 1}
    ci = results["relative_change_ci"]
    assert ci["low"] <= results["relative_change"] <= ci["high"]
    # The paper's own numbers: GPT-4o 3.264 without, 3.497 with -> +7.14%.
    from personalign.evaluation.protocols import relative_change

    assert round(100 * relative_change(3.497, 3.264), 2) == 7.14
    # Another dimension on request; with and without must be the right way round.
    other = judge_responses(
        load_judge_inputs(with_history, without),
        ScriptedBackend(lambda _: "[RESULT] 2"),
        get_protocol("style-score", dimension="harmlessness"),
        FAST,
    )
    assert other.summary["results"]["num_rows_left_out"] == 3 and other.summary["results"]["relative_change"] == 0.0
    with pytest.raises(InputError, match="generated without the history"):
        judge_responses(load_judge_inputs(without, with_history), backend, get_protocol("style-score"), FAST)
    with pytest.raises(InputError, match="'humour' dimension"):
        judge_responses(
            load_judge_inputs(with_history, without), backend, get_protocol("style-score", dimension="humour"), FAST
        )


def test_style_score_folds_dimension_names_says_plainly_when_rows_have_none_and_names_itself(tmp_path, caplog):
    rows = [{"persona": {"dimension": d, "preference": "p"}} for d in ("style", "background_knowledge", "style")]
    with_history = write_folder(tmp_path / "with", [{**r, "response": f"w-{i}"} for i, r in enumerate(rows)])
    without = write_folder(
        tmp_path / "without", [{**r, "response": f"o-{i}"} for i, r in enumerate(rows)], no_history=True
    )
    inputs = load_judge_inputs(with_history, without)
    # DESIGN §5: dimension names match after folding case, spaces, hyphens and underscores.
    for name in ("Background-Knowledge", " background knowledge ", "BACKGROUND_knowledge"):
        backend = ScriptedBackend(lambda _: "[RESULT] 4")
        results = judge_responses(inputs, backend, get_protocol("style-score", dimension=name), FAST).summary
        assert results["results"]["dimension"] == "background_knowledge" and len(backend.prompts) == 2
        assert results["results"]["rows_left_out_by_dimension"] == {"style": 2}
    # Rows without any dimension (AlignX) are refused in plain words, not with a Python `None`.
    alignx = [{"persona": {"history": "liked: short answers"}, "response": "a"}]
    plain = load_judge_inputs(
        write_folder(tmp_path / "ax", alignx), write_folder(tmp_path / "ax0", alignx, no_history=True)
    )
    with pytest.raises(InputError, match="style-score needs rows with a MultiFacet dimension") as refused:
        get_protocol("style-score").check(plain)
    assert "None" not in str(refused.value) and "have none" in str(refused.value)
    # Unparsable answers are reported under the protocol's name as typed, not the judge's internal one.
    caplog.clear()
    judge_responses(inputs, ScriptedBackend(lambda _: "no idea"), get_protocol("style-score"), FAST)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning == "style-score: 4 of 4 judge answers could not be parsed; they are counted, not scored."


def test_persona_tailoring_fills_profile_and_personality_and_names_a_row_without_persona(tmp_path):
    rows = [
        {"persona": {"profile": "a gardener", "personality": "warm"}, "response": "r-0"},
        {"persona": {"preference": "cites sources"}, "response": "r-1"},
        {"persona": {"history": "liked: long answers"}, "response": "r-2"},
    ]
    folder = write_folder(tmp_path / "mine", rows)
    scores = {"r-0": "5", "r-1": "Score: 3", "r-2": "cannot say", "b-0": "2", "b-1": "2", "b-2": "4"}
    backend = ScriptedBackend(lambda p: scores[p.split("response: ")[1].split("\n")[0]])
    result = judge_responses(load_judge_inputs(folder), backend, get_protocol("persona-tailoring"), FAST)
    texts = [m[-1]["content"] for m in backend.prompts]
    assert "profile: a gardener" in texts[0] and "personalities: warm" in texts[0]
    assert "profile: cites sources" in texts[1] and "personalities: not given" in texts[1]
    assert "profile: liked: long answers" in texts[2]
    results = result.summary["results"]
    assert results["overall"]["responses"]["mean"] == 4.0 and results["overall"]["responses"]["num_unscored"] == 1
    assert results["persona_fields"]["profile"] == {"profile": 1, "preference": 1, "history": 1}
    assert "against" not in results["overall"]
    # With --against: both systems (same profile per row) and the difference of their means, 4 - 8 / 3.
    base = write_folder(tmp_path / "base", [{**r, "response": f"b-{i}"} for i, r in enumerate(rows)])
    both = judge_responses(load_judge_inputs(folder, base), backend, get_protocol("persona-tailoring"), FAST)
    assert len(backend.prompts) == 3 + 6 and "profile: cites sources" in backend.prompts[-2][-1]["content"]
    overall = both.summary["results"]["overall"]
    assert overall["against"]["mean"] == pytest.approx(8 / 3)
    assert overall["difference"]["value"] == pytest.approx(4 - 8 / 3)
    assert [item["scores"] for item in both.judgments][2] == {"responses": None, "against": 4.0}
    bad = write_folder(tmp_path / "bad", [rows[0], {"persona": {"dimension": "style"}, "response": "r-1"}])
    with pytest.raises(InputError, match=r"line 2 \(id 'rows.jsonl:1'\): its persona has none of profile"):
        judge_responses(load_judge_inputs(bad), backend, get_protocol("persona-tailoring"), FAST)


def test_bootstrap_interval_is_seeded_contains_the_estimate_and_narrows_with_more_items():
    rng = np.random.default_rng(7)
    small = rng.integers(1, 6, size=30).astype(float)
    large = np.tile(small, 8)  # the same distribution, 8 times the items

    def width(values, seed=0):
        ci = bootstrap_interval(lambda rows: values[rows].mean(axis=1), len(values), 1000, 0.95, seed)
        assert ci.low <= values.mean() <= ci.high
        return ci, ci.high - ci.low

    (first, w_small), (again, _) = width(small), width(small)
    assert first == again and width(small, seed=1)[0] != first
    assert width(large)[1] < 0.6 * w_small  # ~1/sqrt(8) of the width
    assert bootstrap_interval(lambda rows: np.full(len(rows), np.nan), 5, 10).low is None
    with pytest.raises(InputError, match="resamples"):
        bootstrap_interval(lambda rows: rows.mean(axis=1), 5, 0)


def test_outputs_and_model_card(pairwise_folders, tmp_path):
    inputs = load_judge_inputs(*pairwise_folders)
    result = judge_responses(
        inputs,
        ScriptedBackend(pairwise_judge),
        get_protocol("pairwise-win"),
        FAST,
        "openai:https://me:sk-secret@h/v1@j",
    )
    output = tmp_path / "judged"
    written = write_judge_outputs(result, output)
    assert [p.name for p in written] == ["judgments.jsonl", "summary.json", "pairwise_win.png"]
    lines = [json.loads(line) for line in (output / "judgments.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and {"id", "protocol", "systems", "calls", "outcome", "unparsable"} <= set(lines[0])
    assert lines[0]["calls"][0]["output"] and lines[0]["systems"] == {"responses": "org/model", "against": "org/base"}
    summary = json.loads((output / "summary.json").read_text())
    assert summary["protocol"] == "pairwise-win" and summary["results"]["win_rate"] == pytest.approx(4 / 6)
    assert summary["systems"]["against"]["generation"]["model"] == "org/base"
    assert "sk-secret" not in (output / "summary.json").read_text() and summary["judge"]["spec"].startswith("openai:")
    assert Image.open(output / "pairwise_win.png").size[0] > 100
    with pytest.raises(OutputExistsError):
        write_judge_outputs(result, output)
    card = tmp_path / "README.md"
    update_model_card_with_judgments(card, result)
    (evaluated,) = ModelCard.load(card).data.eval_results
    assert (evaluated.metric_type, evaluated.metric_value) == ("win_rate", round(4 / 6, 4))
    assert evaluated.dataset_name == "rows.jsonl" and evaluated.dataset_split == "test"
    assert evaluated.metric_args["against"] == "org/base" and evaluated.metric_args["protocol"] == "pairwise-win"
    update_model_card_with_judgments(card, result)  # the same run again replaces its value
    assert len(ModelCard.load(card).data.eval_results) == 1
    assert judge_card_results(result)[0].metric_args["judge"] == summary["judge"]["spec"]
    # Nothing parsed, nothing to add: the card is left alone.
    blank = judge_responses(inputs, ScriptedBackend(lambda _: "?"), get_protocol("pairwise-win"), FAST)
    before = card.read_text()
    assert update_model_card_with_judgments(card, blank) is None and card.read_text() == before
    # Systems are named by their model: a Hub id as it is, a local path by its last part.
    assert (
        System("responses", "f", {"model": "/runs/ckpt/tiny-pba", "no_history": True}).label == "tiny-pba (no history)"
    )
    assert System("responses", "f", {"model": "org/model"}).label == "org/model"


def test_mismatched_folders_are_refused_in_one_line(tmp_path):
    mine = write_folder(tmp_path / "mine", [{"response": "a"}, {"response": "b"}])
    fewer = write_folder(tmp_path / "fewer", [{"response": "a"}])
    with pytest.raises(InputError, match=r"1 \('rows.jsonl:1'\) ids of --responses are not in it"):
        load_judge_inputs(mine, fewer)
    reworded = write_folder(tmp_path / "reworded", [{"response": "a"}, {"response": "b", "prompt": "another"}])
    with pytest.raises(InputError, match=r"line 2 \(id 'rows.jsonl:1'\): its prompt differs \('question 1' in"):
        load_judge_inputs(mine, reworded)
    twice = write_folder(tmp_path / "twice", [{"response": "a", "id": "x"}, {"response": "b", "id": "x"}])
    with pytest.raises(InputError, match="'x'"):
        load_judge_inputs(twice)
    with pytest.raises(InputError, match="pass --against"):
        judge_responses(load_judge_inputs(mine), ScriptedBackend(str), get_protocol("pairwise-win"), FAST)


def test_folders_are_matched_by_their_rows_not_by_how_they_name_the_dataset(tmp_path, monkeypatch):
    pair = {"reference": {"chosen": "good", "rejected": "bad"}}
    mine = write_folder(tmp_path / "mine", [{"response": "a", **pair}, {"response": "b", **pair}])
    # The same rows, generated from `./rows.jsonl`, an absolute path, a copy elsewhere, another split name: judged.
    for name, meta in [
        ("dotted", {"dataset": "./rows.jsonl"}),
        ("absolute", {"dataset": "/home/someone/rows.jsonl"}),
        ("copy", {"dataset": "data/copy/rows.jsonl", "split": "train"}),
    ]:
        other = write_folder(tmp_path / name, [{"response": "c", **pair}, {"response": "d", **pair}], **meta)
        inputs = load_judge_inputs(mine, other)
        assert [r.response for r in inputs.against] == ["c", "d"]
        (note,) = inputs.notes
        assert repr(meta["dataset"]) in note and "their 2 rows agree" in note
    assert load_judge_inputs(mine, write_folder(tmp_path / "same", [{"response": "e", **pair}] * 2)).notes == []
    # Rows that differ are refused, naming the first differing id and what differs (the names of the datasets too).
    swapped = {"reference": {"chosen": "bad", "rejected": "good"}}
    other = write_folder(tmp_path / "other", [{"response": "c", **pair}, {"response": "d", **swapped}], dataset="o")
    with pytest.raises(
        InputError,
        match=r"line 2 \(id 'rows.jsonl:1'\): the chosen response of its reference pair differs \('good' in "
        r"--responses, 'bad' in --against\);.*answer different rows \(generated from dataset 'rows.jsonl' and 'o'",
    ):
        load_judge_inputs(mine, other)
    # --against the --responses folder itself, however it is written, is refused before anything is read.
    monkeypatch.chdir(tmp_path)
    for against in [mine, "mine", "./mine/", tmp_path / "other" / ".." / "mine"]:
        with pytest.raises(InputError, match="is the --responses folder itself"):
            load_judge_inputs("mine", against)


# ------------------------------------------------------------------------------------------------ the command line
@pytest.fixture
def judge_server():
    """The loopback OpenAI-compatible server answering as `pairwise_judge` (the real HTTP client talks to it)."""
    with LoopbackOpenAI(answer=lambda request: pairwise_judge(request.prompt)) as server:
        yield server


def run_judge(monkeypatch, capsys, *args):
    """`personalign judge ...` in this process, through the console entry point's error handling."""
    monkeypatch.setattr(sys, "argv", ["personalign", "judge", *map(str, args)])
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    capsys.readouterr()
    try:
        run(app)
        code = 0
    except SystemExit as done:
        code = done.code or 0
    return code, capsys.readouterr().err


def test_command_end_to_end_with_dry_run_cache_card_and_refusals(
    pairwise_folders, judge_server, tmp_path, monkeypatch, capsys
):
    mine, theirs = pairwise_folders
    output, card = tmp_path / "out", tmp_path / "README.md"
    # Credentials in the server's URL (a proxy's): used, never written (summary, judgments, cache, card).
    spec = f"openai:{judge_server.base_url.replace('://', '://proxyuser:Pr0xyPassw0rd@')}@judge"
    common = ["--responses", mine, "--against", theirs, "--protocol", "pairwise-win", "--judge", spec]
    common += ["--cache-dir", tmp_path / "calls", "--bootstrap", "200"]
    code, err = run_judge(monkeypatch, capsys, *common, "--output", output, "--dry-run", "--swap")
    assert code == 0 and "16 calls to openai:judge, 0 answered from the cache" in err, err
    assert not output.exists() and judge_server.num_requests == 0
    code, err = run_judge(monkeypatch, capsys, *common, "--output", output, "--model-card", card)
    assert code == 0, err
    assert judge_server.num_requests == 8 and "win rate of org/model vs org/base: 0.667" in err
    assert "4 win, 1 tie, 2 lose, 1 unparsable of 8 rows" in err
    summary = json.loads((output / "summary.json").read_text())
    assert summary["results"]["wins"] == 4 and summary["calls"] == {"requested": 8, "cached": 0, "called": 8}
    assert ModelCard.load(card).data.eval_results[0].metric_value == round(4 / 6, 4)
    # A rerun pays for nothing: every verdict comes from the cache, the same judgments come out.
    code, err = run_judge(monkeypatch, capsys, *common, "--output", tmp_path / "again")
    assert code == 0, err
    assert judge_server.num_requests == 8
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["calls"] == {
        "requested": 8,
        "cached": 8,
        "called": 0,
    }
    assert (tmp_path / "again" / "judgments.jsonl").read_text() == (output / "judgments.jsonl").read_text()
    code, err = run_judge(monkeypatch, capsys, *common, "--output", output, "--dry-run", "--swap")
    assert "16 calls to openai:judge, 8 answered from the cache" in err, err
    # An existing output, a protocol option of another protocol, an unknown protocol: one line each, nothing sent.
    for extra, message in [
        (["--output", output], "already exists"),
        (["--output", tmp_path / "o2", "--dimension", "style"], "--dimension applies to --protocol style-score"),
        (["--output", tmp_path / "o3", "--protocol", "best-of"], "unknown judge protocol 'best-of'"),
    ]:
        code, err = run_judge(monkeypatch, capsys, *common, *extra)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert judge_server.num_requests == 8
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written and not any(b"Pr0xyPassw0rd" in path.read_bytes() for path in written)
    assert (
        json.loads((output / "summary.json").read_text())["judge"]["spec"] == f"openai:{judge_server.base_url}@judge"
    )


def test_command_never_writes_over_its_inputs_and_takes_the_api_options(
    pairwise_folders, tmp_path, monkeypatch, capsys
):
    mine, theirs = pairwise_folders
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    common = ["--responses", mine, "--against", theirs, "--protocol", "pairwise-win"]
    for output in (mine, theirs, tmp_path):  # each input folder, and the folder holding both
        code, err = run_judge(monkeypatch, capsys, *common, "--judge", "openai:m", "--output", output, "--overwrite")
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert re.search(rf"error: {re.escape(str(output))}: (is|holds) the input .*: choose another output", err)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    # --max-retries 0: one request to a failing server, not four; the rate limit and the timeout are taken.
    with LoopbackOpenAI(failures=[Reply.error(500, "down")] * 8) as server:
        options = ["--max-retries", 0, "--request-timeout", 5, "--max-requests-per-minute", 6000, "--num-workers", 1]
        code, err = run_judge(
            monkeypatch, capsys, *common, "--judge", f"openai:{server.base_url}@judge", *options,
            "--output", tmp_path / "out", "--cache-dir", tmp_path / "calls",
        )  # fmt: skip
        assert code == 1 and "HTTP 500" in err and server.num_requests == 1, err


def test_every_option_is_checked_before_anything_is_read_or_sent(judge_server, tmp_path, monkeypatch, capsys):
    """`--seed -1` used to pass the dry run and crash after the paid calls (numpy's bootstrap refuses negative seeds)."""
    spec = f"openai:{judge_server.base_url}@judge"
    common = ["--responses", tmp_path / "absent", "--against", tmp_path / "absent2", "--protocol", "pairwise-win"]
    common += ["--judge", spec, "--output", tmp_path / "out", "--cache-dir", tmp_path / "calls"]
    for extra, message in [
        (["--seed", "-1"], "the seed (--seed) must be an integer from 0 to 2**63 - 1, got -1."),
        (["--seed", str(2**63)], f"got {2**63}"),
        (["--bootstrap", "0"], "--bootstrap (resamples of the confidence intervals) must be an integer from 1 to"),
        (["--bootstrap", "100001"], "got 100001"),
        (["--confidence", "nan"], "--confidence (coverage of the confidence intervals) must be a number in (0, 1)"),
        (["--top-p", "nan"], "--top-p must be a number in (0, 1], got nan."),
        (["--temperature", "inf"], "--temperature must be a finite number >= 0, got inf."),
        (["--max-new-tokens", "0"], "--max-new-tokens must be an integer >= 1, got 0."),
        (["--retry-unparsable", "--no-cache"], "--retry-unparsable asks cached calls again"),
    ]:
        for dry in ([], ["--dry-run"]):
            code, err = run_judge(monkeypatch, capsys, *common, *extra, *dry)
            assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (extra, dry, err)
    assert judge_server.num_requests == 0
    with pytest.raises(InputError, match="got True"):
        JudgeSettings(seed=True)
    with pytest.raises(InputError, match="--max-new-tokens"):
        JudgeSettings(max_new_tokens=2.5)


def test_the_largest_seed_reaches_every_consumer(pairwise_folders):
    """2**63 - 1 is taken by the pairwise order (`random`), the bootstrap (numpy) and sent as the API's seed."""
    from personalign.evaluation.protocols import MAX_SEED

    inputs = load_judge_inputs(*pairwise_folders)
    backend = ScriptedBackend(pairwise_judge)
    result = judge_responses(inputs, backend, get_protocol("pairwise-win"), JudgeSettings(seed=MAX_SEED))
    assert result.summary["results"]["win_rate"] == pytest.approx(4 / 6)
    assert (
        result.summary["results"]["win_rate_ci"]["low"] is not None and result.summary["bootstrap"]["seed"] == MAX_SEED
    )


def test_unparsable_answers_are_named_by_protocol_counted_from_the_cache_and_asked_again(
    pairwise_folders, tmp_path, monkeypatch, capsys, caplog
):
    mine, theirs = pairwise_folders
    broken = {"on": True}  # the judge answers garbage until it is fixed

    def answer(request):
        return "I cannot decide." if broken["on"] else pairwise_judge(request.prompt)

    with LoopbackOpenAI(answer=answer) as server:
        common = ["--responses", mine, "--against", theirs, "--protocol", "pairwise-win", "--bootstrap", "50"]
        common += ["--judge", f"openai:{server.base_url}@judge", "--cache-dir", tmp_path / "calls"]

        def judged(output, *extra):
            caplog.clear()
            code, err = run_judge(monkeypatch, capsys, *common, "--output", tmp_path / output, *extra)
            assert code == 0, err
            return err, " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)

        err, warned = judged("first")
        assert server.num_requests == 8 and "Judging (pairwise-win)" in err and "8/8" in err  # one bar over the calls
        assert warned == "pairwise-win: 8 of 8 judge answers could not be parsed; they are counted, not scored."
        broken["on"] = False
        # The fixed judge is not asked: the cached garbage is replayed, and the warning says so.
        err, warned = judged("second")
        assert server.num_requests == 8 and "8 unparsable of 8 rows" in err
        assert "8 of them came from the call cache" in warned and "--retry-unparsable" in warned
        summary = json.loads((tmp_path / "second" / "summary.json").read_text())
        assert (summary["num_unparsable_outputs"], summary["num_unparsable_from_cache"]) == (8, 8)
        # A dry run counts them as calls to send, and says the real run would refuse the existing output.
        err, _ = judged("first", "--dry-run", "--retry-unparsable")
        assert "8 calls to openai:judge, 0 answered from the cache" in err and "8 to send" in err
        assert "note: the real run would stop here:" in err and "first already exists" in err
        assert server.num_requests == 8
        err, warned = judged("third", "--retry-unparsable")
        assert server.num_requests == 16 and "win rate of org/model vs org/base: 0.667" in err
        assert warned == "pairwise-win: 1 of 8 judge answers could not be parsed; they are counted, not scored."
        # The new answers were cached: a plain rerun sends nothing; only the one still unparsable is asked again.
        err, warned = judged("fourth")
        assert server.num_requests == 16 and "1 of them came from the call cache" in warned
        judged("fifth", "--retry-unparsable")
        assert server.num_requests == 17
        assert "mine-7" in server.requests[-1].prompt  # row 7's, the planned unparsable one
