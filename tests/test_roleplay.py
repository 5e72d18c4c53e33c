"""`personalign eval roleplay` (the DPORE paper's Table 1 protocol): what each role receives, the per-turn
aggregation, the table, resuming after an interruption, the dry run's pricing, several models, the persona sources."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from loopback_openai import LoopbackOpenAI, Reply
from personalign.cli import app, run
from personalign.errors import InputError
from personalign.evaluation.judges.prompts import PERSONA_TAILORING_PROMPT, persona_tailoring_messages
from personalign.evaluation.roleplay import (
    OPENING_MESSAGE,
    Conversation,
    RoleplayConfig,
    RoleplayPersona,
    load_personas,
    model_statistics,
    parse_user_simulator_prompt,
    roleplay_table,
    run_roleplay,
    user_simulator_messages,
)
from personalign.inference.calls import CallCache, DryRunBackend, placeholder_reply, wrap_backend

pytestmark = pytest.mark.usefixtures("one_thread")

PERSONAS = [
    {"profile": "A retired sailor in Lisbon who restores wooden boats.", "personality": "Gruff, terse, dry humour."},
    {
        "profile": "A nursing student in Osaka who loves baking.",
        "personality": "Warm, chatty, uses exclamation marks.",
    },
]
_JUDGE_HEAD = PERSONA_TAILORING_PROMPT.split("{profile}")[0]


def scripted(request) -> str:
    """The loopback server's user simulator, judge and models under test, as functions of the request."""
    body = request.body
    messages = body["messages"]
    view = parse_user_simulator_prompt(messages)
    if view is not None:  # the simulated user: its persona, turn and seed in the message
        return f"[{view.profile.split()[1]}] message {view.turn} (seed {body.get('seed')})"
    if messages[0]["content"].startswith(_JUDGE_HEAD):  # the judge: a score from the reply's length
        reply = messages[0]["content"].split("Here is the model's response: ")[1].split("\n\nYou should")[0]
        return str(len(reply) % 5 + 1)
    return f"{body['model']} answers {len(messages)} messages (seed {body.get('seed')})"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def personas_file(tmp_path):
    return write_jsonl(tmp_path / "personas.jsonl", PERSONAS)


@pytest.fixture
def cli(capsys, monkeypatch):
    """`personalign eval roleplay ARGS` in-process behind the console script's error map: (exit code, output)."""

    def invoke(*args) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["personalign", "eval", "roleplay", *map(str, args)])
        capsys.readouterr()
        try:
            run(app)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return invoke


# ------------------------------------------------------------------------------------------- the conversation
def test_each_role_receives_its_view_of_the_conversation(tmp_path, personas_file):
    """Turn 1 and turn 3 exactly: the simulator sees its persona and the conversation with roles flipped, the model
    sees the conversation alone (never the persona), the judge the Appendix A prompt of that turn."""
    with LoopbackOpenAI(scripted) as server:
        url = server.base_url
        result = run_roleplay(
            [f"openai:{url}@model-a"],
            str(personas_file),
            f"openai:{url}@simulator",
            f"openai:{url}@judge",
            RoleplayConfig(turns=3, runs=1, seed=7, num_workers=1, cache_dir=str(tmp_path / "cache"), progress=False),
        )
        sent = [request.body for request in server.requests]
    by_model = {}
    for body in sent:
        by_model.setdefault(body["model"], []).append(body)
    assert {k: len(v) for k, v in by_model.items()} == {"simulator": 6, "model-a": 6, "judge": 6}
    profile, personality = PERSONAS[0]["profile"], PERSONAS[0]["personality"]
    user = [b for b in by_model["simulator"] if profile in b["messages"][0]["content"]]
    model = [b for b in by_model["model-a"] if "[retired]" in b["messages"][0]["content"]]
    judge = [b for b in by_model["judge"] if profile in b["messages"][0]["content"]]
    u1, u2, u3 = (f"[retired] message {k} (seed 7)" for k in (1, 2, 3))
    a1, a2, a3 = (f"model-a answers {n} messages (seed 7)" for n in (1, 3, 5))
    system = user_simulator_messages(profile, personality, [])[0]
    assert system["role"] == "system" and profile in system["content"] and personality in system["content"]
    assert user[0]["messages"] == [system, {"role": "user", "content": OPENING_MESSAGE}]
    assert user[2]["messages"] == [
        system,
        {"role": "user", "content": OPENING_MESSAGE},
        {"role": "assistant", "content": u1},
        {"role": "user", "content": a1},
        {"role": "assistant", "content": u2},
        {"role": "user", "content": a2},
    ]
    assert model[0]["messages"] == [{"role": "user", "content": u1}]
    assert model[2]["messages"] == [
        {"role": "user", "content": u1},
        {"role": "assistant", "content": a1},
        {"role": "user", "content": u2},
        {"role": "assistant", "content": a2},
        {"role": "user", "content": u3},
    ]
    text = json.dumps([b["messages"] for b in by_model["model-a"]])
    assert all(part not in text for part in (profile, personality, "retired sailor", "Gruff"))
    assert judge[0]["messages"] == persona_tailoring_messages(a1, u1, profile, personality)
    assert judge[2]["messages"] == persona_tailoring_messages(a3, u3, profile, personality)
    assert all(b["temperature"] == 0 and b["seed"] == 7 for b in sent)
    conversation = result.conversations[0]
    assert conversation.messages[-2:] == [{"role": "user", "content": u3}, {"role": "assistant", "content": a3}]
    assert conversation.scores == [len(a) % 5 + 1 for a in (a1, a2, a3)]


def test_the_simulator_prompt_reads_back():
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}]
    view = parse_user_simulator_prompt(user_simulator_messages("Line one.\n\nLine two.", "Shy.", conversation))
    assert (view.profile, view.personality, view.turn, view.last_reply) == (
        "Line one.\n\nLine two.",
        "Shy.",
        2,
        "hello!",
    )
    assert parse_user_simulator_prompt([{"role": "user", "content": "hi"}]) is None
    with pytest.raises(InputError, match="ends with a user message"):
        user_simulator_messages("p", "q", conversation[:1])


# ------------------------------------------------------------------------------------------- aggregation, table
def _conversation(run: int, scores: list[int | None]) -> Conversation:
    return Conversation("m", RoleplayPersona(f"p{run}", "p", "q"), run, run, scores=scores)


def test_per_turn_statistics_match_a_hand_computation():
    # Two personas x two runs, two turns; one unparsable score at turn 2.
    conversations = [
        _conversation(0, [5, 4]),
        _conversation(0, [3, None]),
        _conversation(1, [4, 2]),
        _conversation(1, [2, 4]),
    ]
    stats = model_statistics(conversations, turns=2)
    turn1, turn2 = stats["per_turn"]
    assert turn1["mean"] == pytest.approx(3.5)  # (5 + 3 + 4 + 2) / 4
    assert turn1["std"] == pytest.approx((5 / 3) ** 0.5)  # squares 2.25 + .25 + .25 + 2.25 over 3
    assert turn1["run_means"] == [4.0, 3.0] and turn1["run_std"] == pytest.approx(0.5**0.5)
    assert turn2["mean"] == pytest.approx(10 / 3) and turn2["num_unparsable"] == 1 and turn2["num_scored"] == 3
    assert turn2["run_means"] == [4.0, 3.0]
    assert stats["average"] == pytest.approx((3.5 + 10 / 3) / 2)
    assert stats["average_run_std"] == pytest.approx(0.5**0.5)  # run averages 4.0 and 3.0
    assert stats["num_unparsable"] == 1


def test_the_table_has_the_papers_layout():
    summary = {
        "settings": {"turns": 2, "runs": 1},
        "personas": {"num_personas": 3},
        "models": {
            "DPO": {
                "per_turn": [{"mean": 4.356, "run_std": None}, {"mean": 4.5144, "run_std": None}],
                "average": 4.4352,
                "average_run_std": None,
            },
            "DPORE": {
                "per_turn": [{"mean": 4.583, "run_std": None}, {"mean": None, "run_std": None}],
                "average": 4.583,
                "average_run_std": None,
            },
        },
    }
    table = roleplay_table(summary, row_header="λ")
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows[:4] == [
        "| λ | k = 1 | k = 2 | Avg. |",
        "|---|---:|---:|---:|",
        "| DPO | 4.356 | 4.514 | 4.435 |",
        "| DPORE | 4.583 | n/a | 4.583 |",
    ]


# ------------------------------------------------------------------------------------------- the command line
def _roleplay_args(url: str, personas: Path, output: Path, cache: Path, *models: str) -> list[str]:
    args = ["--personas", personas, "--user-simulator", f"openai:{url}@simulator", "--judge", f"openai:{url}@judge"]
    for model in models:
        args += ["--model", model]
    return [*args, "--output", output, "--cache-dir", cache, "--turns", 3, "--runs", 2, "--num-workers", 1,
            "--max-new-tokens", 4, "--seed", 3]  # fmt: skip


def test_resume_after_an_interruption_sends_exactly_the_missing_calls(tmp_path, personas_file, tiny_lm_path, cli):
    """The server fails after 10 answers (the run stops); the rerun sends the 14 missing simulator / judge calls and
    the 6 missing model calls, and writes what an uninterrupted run writes. A dry run in between counts them."""
    state = {"answered": 0, "fail_after": 10}

    def answer(request):
        if state["fail_after"] is not None and state["answered"] >= state["fail_after"]:
            return Reply.error(400, "scripted interruption")
        state["answered"] += 1
        return scripted(request)

    with LoopbackOpenAI(answer) as server:
        args = _roleplay_args(server.base_url, personas_file, tmp_path / "out", tmp_path / "cache", str(tiny_lm_path))
        code, out = cli(*args)
        assert code == 1 and "scripted interruption" in out and not (tmp_path / "out").exists()
        assert state["answered"] == 10  # per turn and run: 2 simulator, 2 judge calls; the 11th failed
        state["fail_after"] = None
        before = server.num_requests
        code, out = cli(*args, "--dry-run")
        assert code == 0, out
        assert server.num_requests == before  # nothing sent
        assert re.search(r"user simulator: .*12 calls .*, 6 answered from the cache .*, 6 to send", out), out
        assert re.search(r"judge: .*12 calls .*, 4 answered from the cache .*, 8 to send", out), out
        assert re.search(r"model tiny.*: .*12 calls .*, 6 answered from the cache .*, 6 to send", out), out
        assert "total: 36 calls, 16 answered without a call of their own, 20 to send" in out
        # The tiny model's prompt tokens (free) are not added to the API models' (paid).
        assert re.search(r"prompt tokens to send to API models \(paid\); [\d,]+ prompt tokens to send to local", out)
        code, out = cli(*args)
        assert code == 0, out
        assert server.num_requests - before == 14
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        calls = summary["calls"]
        assert calls["user_simulator"] == {"requested": 12, "cached": 6, "called": 6}
        # The console says it too, per role, as summary.json has it.
        assert (
            "calls of the user simulator: 12 requested, 6 answered from the cache or by a repeated prompt, 6 sent"
            in out
        )
        assert "calls of the judge: 12 requested, 4 answered from the cache or by a repeated prompt, 8 sent" in out
        assert calls["judge"] == {"requested": 12, "cached": 4, "called": 8}
        assert next(iter(calls["models"].values())) == {"requested": 12, "cached": 6, "called": 6}
        # An uninterrupted run, in a fresh cache, writes the same transcripts and scores.
        fresh = _roleplay_args(
            server.base_url, personas_file, tmp_path / "again", tmp_path / "cache2", str(tiny_lm_path)
        )
        code, out = cli(*fresh)
        assert code == 0, out
    for name in ("transcripts.jsonl", "judgments.jsonl", "table.md"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "again" / name).read_text(), name
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["models"] == summary["models"]
    transcripts = [json.loads(line) for line in (tmp_path / "out" / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 4 and [t["seed"] for t in transcripts] == [3, 4, 3, 4]
    assert all(len(t["messages"]) == 6 and len(t["scores"]) == 3 for t in transcripts)
    # The runs differ by their seed, which the simulator's scripted answer shows.
    assert transcripts[0]["messages"][0]["content"].endswith("(seed 3)")
    assert transcripts[1]["messages"][0]["content"].endswith("(seed 4)")


def test_dry_run_prices_everything_and_sends_nothing(tmp_path, personas_file, cli):
    with LoopbackOpenAI(scripted) as server:
        url = server.base_url
        args = _roleplay_args(
            url, personas_file, tmp_path / "out", tmp_path / "cache", f"openai:{url}@a", f"openai:{url}@b"
        )
        code, out = cli(*args, "--label", "Base", "--label", "DPORE", "--dry-run")
        assert code == 0, out
        assert server.num_requests == 0 and not (tmp_path / "out").exists()
    # 3 roles x 3 turns x 2 runs x 2 personas x 2 models; the simulator's turn-1 prompts are the same for both models
    # (same persona, same seed, nothing said yet): a real run sends each once, and so the dry run counts them.
    assert "total: 72 calls, 4 answered without a call of their own, 68 to send" in out
    # Nothing was in the (empty) cache: the 4 are prompts repeated within the run, and the line says so.
    assert re.search(
        r"user simulator: .*24 calls .*, 0 answered from the cache .*, 4 repeat a prompt asked earlier in this run "
        r".*, 20 to send",
        out,
    )
    assert "local models" not in out  # only API models here
    assert re.search(r"judge: .*24 calls .*, 0 answered from the cache .*, 24 to send", out)
    assert re.search(r"model Base: .*12 calls .*, 12 to send", out) and re.search(r"model DPORE: .*12 calls", out)


def test_the_dry_run_follows_the_cache_and_prices_placeholders(tmp_path):
    cache = CallCache(tmp_path)
    real = wrap_backend(DryRunBackend("scripted:x"), cache_dir=tmp_path, dry_run=True)
    real.replay_cache, real.placeholder = True, placeholder_reply
    prompt = [{"role": "user", "content": "Hello there."}]
    assert real.generate([prompt], max_new_tokens=3) == [placeholder_reply(3)]
    from personalign.inference.calls import call_requests

    cache.put(call_requests("scripted:x", {}, [prompt], 3, 0.0, 1.0, 0)[0], "cached answer")
    real = DryRunBackend("scripted:x", CallCache(tmp_path), replay_cache=True, placeholder=placeholder_reply)
    assert real.generate([prompt, [{"role": "user", "content": "Other."}]], max_new_tokens=3) == [
        "cached answer",
        placeholder_reply(3),
    ]
    plan = real.plan()
    assert (plan.calls, plan.cached, plan.to_call) == (2, 1, 1)
    assert DryRunBackend("scripted:x", CallCache(tmp_path)).generate([prompt], max_new_tokens=3) == [""]


def test_several_models_with_labels_share_personas_simulator_and_judge(tmp_path, personas_file, cli):
    card = tmp_path / "README.md"
    with LoopbackOpenAI(scripted) as server:
        url = server.base_url
        args = _roleplay_args(
            url, personas_file, tmp_path / "out", tmp_path / "cache", f"openai:{url}@a", f"openai:{url}@bb"
        )
        code, out = cli(*args, "--label", "Base", "--label", "DPORE", "--table-header", "Method")
        assert code == 0, out
        sent = [r.body for r in server.requests]
        code, out2 = cli(*args, "--model-card", card)
        assert code == 1 and "exactly one --model" in out2
    # The simulator's prompts are the same for both models at turn 1 (same personas, same seeds): sent once each.
    openings = [b for b in sent if b["model"] == "simulator" and len(b["messages"]) == 2]
    assert len(openings) == 4  # 2 personas x 2 runs: the second model's identical turn-1 prompts came from the cache
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["models"]) == ["Base", "DPORE"]
    assert summary["models"]["Base"]["model"] == "a" and summary["personas"]["num_personas"] == 2
    rows = [line for line in (tmp_path / "out" / "table.md").read_text().splitlines() if line.startswith("| ")]
    assert rows[0] == "| Method | k = 1 | k = 2 | k = 3 | Avg. |"
    assert [row.split(" | ")[0] for row in rows[1:3]] == ["| Base", "| DPORE"]
    for label in ("Base", "DPORE"):
        per_turn = summary["models"][label]["per_turn"]
        judged = [json.loads(line) for line in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
        for entry in per_turn:
            scores = [j["score"] for j in judged if j["model"] == label and j["turn"] == entry["turn"]]
            assert len(scores) == 4 and entry["mean"] == pytest.approx(sum(scores) / 4)
    with Image.open(tmp_path / "out" / "roleplay.png") as image:
        assert image.size[0] > 300


def test_model_card_gets_the_average_and_each_turn(tmp_path, personas_file, cli):
    card = tmp_path / "README.md"
    with LoopbackOpenAI(scripted) as server:
        url = server.base_url
        args = _roleplay_args(url, personas_file, tmp_path / "out", tmp_path / "cache", f"openai:{url}@dpore")
        code, out = cli(*args, "--model-card", card)
        assert code == 0, out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    text = card.read_text()
    assert "roleplay_alignment_turn_3" in text and "roleplay_alignment" in text
    assert f"value: {round(summary['models']['dpore']['average'], 4)}" in text


# ------------------------------------------------------------------------------------------- persona sources
def test_personas_from_each_source(tmp_path):
    table = write_jsonl(tmp_path / "table.jsonl", [{**PERSONAS[0], "persona_id": "p-0"}, PERSONAS[1]])
    loaded = load_personas(table)
    assert loaded.personas[0].persona_id == "p-0" and len(loaded.personas) == 2
    turn = {"user": "hi", "assistant": {"preferred": "Hello!", "rejected": "Hi."}, "chosen": "preferred"}
    released = [{**PERSONAS[i % 2], "conversations": [turn]} for i in range(5)]  # one row per conversation
    aloe = load_personas(write_jsonl(tmp_path / "aloe.jsonl", released))
    assert [(p.profile, p.personality) for p in aloe.personas] == [(r["profile"], r["personality"]) for r in PERSONAS]
    assert aloe.num_rows == 5 and len(load_personas(tmp_path / "aloe.jsonl", num_personas=1).personas) == 1
    import datasets

    datasets.Dataset.from_list(PERSONAS).to_parquet(str(tmp_path / "personas.parquet"))
    assert len(load_personas(tmp_path / "personas.parquet").personas) == 2


def test_personas_from_a_build_folder_read_its_test_split(tmp_path):
    from datasets import Dataset, DatasetDict

    from personalign.hub.cards import DatasetCardSpec, render_dataset_card
    from personalign.hub.datasets import write_dataset_folder

    rows = [
        {"persona_id": f"id-{i}", **PERSONAS[i % 2], "profile": f"{PERSONAS[i % 2]['profile']} #{i}"} for i in range(4)
    ]
    configs = {
        "personas": DatasetDict({"train": Dataset.from_list(rows[:3]), "test": Dataset.from_list(rows[3:])}),
        "excerpts": DatasetDict({"train": Dataset.from_list([{"persona_id": "id-0", "text": "x"}])}),
    }
    spec = DatasetCardSpec("aloe", "test", "here", {"personas": "personas", "excerpts": "excerpts"})
    write_dataset_folder(configs, tmp_path / "built", render_dataset_card(configs, spec))
    loaded = load_personas(tmp_path / "built")
    assert (loaded.config, loaded.split, [p.persona_id for p in loaded.personas]) == ("personas", "test", ["id-3"])
    assert len(load_personas(tmp_path / "built", split="train").personas) == 3
    # A train-only build (--test-personas 0) has no held-out personas: refused unless the split is asked for.
    train_only = {"personas": DatasetDict({"train": Dataset.from_list(rows[:3])})}
    write_dataset_folder(train_only, tmp_path / "train_only", render_dataset_card(train_only, spec))
    with pytest.raises(InputError, match=r"no held-out 'test' split .* pass --split"):
        load_personas(tmp_path / "train_only")
    assert len(load_personas(tmp_path / "train_only", split="train").personas) == 3


# ------------------------------------------------------------------------------------------- scripted ALOE backends
@pytest.fixture(scope="module")
def aloe_folder(tmp_path_factory):
    """A `build-dataset aloe` folder of 6 synthetic personas, 2 held out for `test`."""
    from personalign.data.aloe import ALOEBuildConfig, write_aloe_folder
    from personalign.data.synthetic_aloe import aloe_rows

    folder = tmp_path_factory.mktemp("aloe")
    write_jsonl(folder / "aloe.jsonl", list(aloe_rows(6, conversations_per_persona=2, turns=2, seed=0)))
    return write_aloe_folder(folder / "aloe.jsonl", folder / "built", ALOEBuildConfig(seed=0, test_personas=2))


def test_the_scripted_aloe_backends_run_the_recipe_offline(tmp_path, aloe_folder, tiny_lm_path, cli):
    """`scripted:aloe-user` answers `simulated_user_message` of the persona it reads from the simulator prompt (the
    turn, the last reply, the run's seed), `scripted:aloe-judge` the style-agreement score of the reply it reads
    from the Appendix A prompt; the tiny model answers through its chat template."""
    from personalign.data.synthetic_aloe import persona_from_texts, simulated_user_message, style_agreement_score

    code, out = cli(
        "--model", tiny_lm_path, "--label", "Base", "--personas", aloe_folder, "--user-simulator", "scripted:aloe-user",
        "--judge", "scripted:aloe-judge", "--turns", 3, "--runs", 2, "--max-new-tokens", 8, "--seed", 5,
        "--output", tmp_path / "out", "--cache-dir", tmp_path / "cache",
    )  # fmt: skip
    assert code == 0, out
    transcripts = [json.loads(line) for line in (tmp_path / "out" / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 4  # the 2 held-out personas x 2 runs
    for record in transcripts:
        persona = persona_from_texts(record["profile"], record["personality"])
        messages = record["messages"]
        for turn in range(1, 4):
            last = messages[2 * turn - 3]["content"] if turn > 1 else None
            assert messages[2 * turn - 2]["content"] == simulated_user_message(persona, turn, last, record["seed"])
        assert record["scores"] == [style_agreement_score(persona, messages[i]["content"]) for i in (1, 3, 5)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["user_simulator"]["model"] == "scripted:aloe-user" and summary["personas"]["split"] == "test"
    scores = [s for record in transcripts for s in record["scores"]]
    assert summary["models"]["Base"]["average"] == pytest.approx(sum(scores) / len(scores))


def test_the_scripted_judge_reads_the_appendix_a_prompt():
    from personalign.data.synthetic_aloe import aloe_personas, preferred_reply
    from personalign.testing import parse_persona_tailoring_prompt, scripted_backend

    persona = aloe_personas(1)[0]
    import random

    good = preferred_reply(persona, persona.interests[0], random.Random(0))
    prompts = [
        persona_tailoring_messages(reply, "hi", persona.profile, persona.personality) for reply in (good, "Ok.")
    ]
    assert parse_persona_tailoring_prompt(prompts[0])["response"] == good
    assert scripted_backend("aloe-judge").generate(prompts) == ["5", "1"]
    with pytest.raises(InputError, match="synthetic ALOE personas only"):
        scripted_backend("aloe-judge").generate([persona_tailoring_messages("r", "m", "Someone else.", "Shy.")])
    with pytest.raises(InputError, match="scripted:aloe-user or scripted:aloe-judge"):
        scripted_backend("gpt")


def test_labels_with_a_bar_identical_lines_and_too_few_personas(tmp_path, personas_file, cli, monkeypatch):
    from personalign.evaluation.roleplay import results

    shown = []
    save = results.save_figure

    def capture(figure, path, overwrite=False):
        axes = figure.axes[0]
        legend = [text.get_text() for text in axes.get_legend().get_texts()]
        shown.append((axes.get_ylim(), [line.get_marker() for line in axes.get_lines()], legend))
        return save(figure, path, overwrite)

    monkeypatch.setattr(results, "save_figure", capture)
    with LoopbackOpenAI(scripted) as server:
        url = server.base_url
        args = _roleplay_args(
            url, personas_file, tmp_path / "out", tmp_path / "cache", f"openai:{url}@a", f"openai:{url}@b"
        )
        code, out = cli(*args, "--label", "x|y", "--label", "z", "--num-personas", "100")
    assert code == 0, out
    # Only 2 personas exist: said, not silently run with fewer.
    assert "--num-personas 100 asked for more, so all 2 are role-played" in " ".join(out.split())
    rows = [line for line in (tmp_path / "out" / "table.md").read_text().splitlines() if line.startswith("| x")]
    assert rows and all(row.startswith("| x\\|y | ") and row.count(" | ") == 4 for row in rows)  # 1 + 3 turns + Avg.
    (low, high), markers, legend = shown[0]
    assert low < 1 and high > 5  # a score of 1 or 5 is not on the frame
    # Models "a" and "b" answer equally long replies, so the judge's scores (and the lines) are identical.
    assert len(set(markers)) == 2 and legend[1].endswith("same as x|y)"), legend


def test_a_model_without_chat_template_is_refused_by_name_before_anything_loads(
    tmp_path, personas_file, tiny_lm_path, cli
):
    import shutil

    bare = tmp_path / "nochat"
    shutil.copytree(tiny_lm_path, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    with LoopbackOpenAI(scripted) as server:
        args = _roleplay_args(server.base_url, personas_file, tmp_path / "out", tmp_path / "cache", tiny_lm_path, bare)
        for extra in ((), ("--dry-run",)):
            code, out = cli(*args, *extra)
            assert code == 1 and f"model {bare}: the tokenizer has no chat template" in " ".join(out.split()), out
        assert server.num_requests == 0
    assert not (tmp_path / "cache").exists()  # nothing was asked of the first model either


def test_an_openai_spec_without_its_key_is_refused_up_front(tmp_path, personas_file, tiny_lm_path, cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    args = ["--personas", personas_file, "--user-simulator", f"{tiny_lm_path}", "--judge", "openai:gpt-4o-mini",
            "--model", tiny_lm_path, "--output", tmp_path / "out", "--cache-dir", tmp_path / "cache"]  # fmt: skip
    code, out = cli(*args)
    assert code == 1 and "needs an API key: set $OPENAI_API_KEY" in " ".join(out.split()), out
    assert not (tmp_path / "cache").exists()
    code, out = cli(*args, "--dry-run")  # sends nothing, needs no key
    assert code == 0 and "judge: Dry run" in out, out


def test_a_broken_personas_file_is_one_line_without_the_datasets_log(tmp_path):
    import logging

    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())

    logged: list[str] = []
    builder_logger = logging.getLogger(
        "datasets.packaged_modules.json.json"
    )  # where datasets logs "Failed to load JSON ..."
    handler = Keep()
    builder_logger.addHandler(handler)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"profile": "A", "personality": "B"}\nnot json\n')
    try:
        with pytest.raises(InputError, match="line 2"):
            load_personas(broken)
    finally:
        builder_logger.removeHandler(handler)
    assert not logged, logged
