"""Synthetic ALOE (personas with learnable styles, the scripted judge's rule, general rows) and the ALOE builder."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter

import pytest
from datasets import Dataset
from typer.testing import CliRunner

from personalign.cli import app
from personalign.data.aloe import (
    ALOE_CONFIGS,
    ALOE_TURN,
    RELEASED_TURN,
    ALOEBuildConfig,
    ALOEBuildReport,
    aloe_persona_id,
    build_aloe,
    default_test_personas,
)
from personalign.data.loading import load_source
from personalign.data.synthetic_aloe import (
    ALOE_FEATURES,
    ALOE_STYLES,
    GENERAL_FEATURES,
    aloe_personas,
    aloe_rows,
    general_preference_rows,
    persona_from_texts,
    simulated_user_message,
    style_agreement_score,
)
from personalign.encoder import aloe_excerpts
from personalign.encoder.pipeline import load_excerpts
from personalign.errors import InputError
from personalign.evaluation.roleplay import persona_key
from personalign.io import write_rows

runner = CliRunner()


# ------------------------------------------------------------------------------------------------ synthetic ALOE
def test_personas_are_distinct_balanced_and_deterministic():
    personas = aloe_personas(60, seed=3)
    assert len({p.persona_id for p in personas}) == 60
    assert Counter(p.style for p in personas) == {style: 12 for style in ALOE_STYLES}
    assert all(2 <= len(p.interests) <= 3 and len(set(p.interests)) == len(p.interests) for p in personas)
    assert all(p.persona_id == aloe_persona_id(p.profile, p.personality) for p in personas)
    assert aloe_personas(60, seed=3) == personas and aloe_personas(10, seed=3) == personas[:10]
    assert aloe_personas(10, seed=4) != personas[:10]


def test_persona_round_trips_through_its_texts_and_other_text_is_none():
    for persona in aloe_personas(40, seed=1):
        assert persona_from_texts(persona.profile, persona.personality) == persona
    persona = aloe_personas(1)[0]
    assert persona_from_texts("A retired beekeeper who loves gardening.", persona.personality) is None
    assert persona_from_texts(persona.profile, "curious, patient, detail-oriented") is None
    assert persona_from_texts(persona.profile.replace(persona.interests[0], "knitting"), persona.personality) is None
    other_name = persona.profile.split()[0]
    assert persona_from_texts(persona.profile, persona.personality.replace(other_name, "Zed", 1)) is None
    assert persona_from_texts("", "") is None


def test_rows_follow_the_release_schema_and_replies_score_as_designed():
    rows = list(aloe_rows(15, conversations_per_persona=3, turns=6, seed=2))
    assert len(rows) == 45
    ALOE_FEATURES.encode_example(rows[0])  # the features hold every record
    scores = Counter()
    for row in rows:
        persona = persona_from_texts(row["profile"], row["personality"])
        assert persona is not None and len(row["conversations"]) == 6
        for turn in row["conversations"]:
            assert set(turn) == {"user", "assistant", "chosen"} and turn["chosen"] == "preferred"
            preferred, rejected = turn["assistant"]["preferred"], turn["assistant"]["rejected"]
            assert isinstance(rejected, list) and len(rejected) == 2
            assert 8 <= len(preferred.split()) <= 30
            # The user names one of the persona's interests; the preferred reply answers about it.
            asked = [i for i in persona.interests if i in turn["user"].split("?")[0].split(". ")[-1]]
            assert asked and asked[0] in preferred
            scores["preferred", style_agreement_score(persona, preferred)] += 1
            scores["generic", style_agreement_score(persona, rejected[0])] += 1
            scores["off-style", style_agreement_score(persona, rejected[1])] += 1
    assert scores == {("preferred", 5): 270, ("generic", 1): 270, ("off-style", 2): 270}
    assert list(aloe_rows(15, 3, 6, seed=2)) == rows and list(aloe_rows(15, 3, 6, seed=5)) != rows


def test_judge_rule_on_handmade_replies_and_gibberish():
    persona = next(p for p in aloe_personas(10) if p.style == "formal")
    interest = persona.interests[0]
    assert style_agreement_score(persona, f"Certainly. For {interest}, practise daily. Kind regards.") == 5
    assert style_agreement_score(persona, f"Certainly. For {interest}, practise daily.") == 4
    assert style_agreement_score(persona, "Certainly. Practise daily. Kind regards.") == 4
    assert style_agreement_score(persona, f"Certainly. For {interest}, practise daily. Haha!") == 3
    assert style_agreement_score(persona, f"Wow! For {interest}, practise daily. So fantastic!") == 2
    # Marker phrases count as whole words only: "certainlyx" or "kindness" are no markers.
    assert style_agreement_score(persona, "certainlyx kindness regardsy") == 1
    rng = random.Random(0)
    for _ in range(200):
        gibberish = "".join(rng.choice(string.ascii_letters + " .!,") for _ in range(rng.randint(0, 120)))
        assert style_agreement_score(persona, gibberish) == 1


def test_simulated_user_cues_its_style_and_reacts_to_the_last_reply():
    personas = aloe_personas(10, seed=0)
    for persona in personas:
        opening = simulated_user_message(persona, 1, None, seed=7)
        assert opening == simulated_user_message(persona, 1, None, seed=7)
        assert all(interest in opening for interest in persona.interests)
        good = f"Certainly. For {persona.interests[0]}, rest. Kind regards." if persona.style == "formal" else None
        if good:
            assert "Thanks, that helps." in simulated_user_message(persona, 2, good, seed=7)
        assert "not quite what I hoped" in simulated_user_message(persona, 2, "Here is some information.", seed=7)
    # Users of different styles sound different: no user cue of one style is said by a user of another.
    cues = {
        style: {
            simulated_user_message(p, 1, None, seed).split(" I love ")[0]
            for p in personas
            if p.style == style
            for seed in range(20)
        }
        for style in ALOE_STYLES
    }
    for style, said in cues.items():
        assert said and all(said.isdisjoint(cues[other]) for other in ALOE_STYLES if other != style)


def test_general_rows_follow_ultrafeedback_binarized():
    rows = list(general_preference_rows(40, seed=1))
    GENERAL_FEATURES.encode_example(rows[0])
    for row in rows:
        assert row["chosen"][0] == row["rejected"][0] == {"role": "user", "content": row["prompt"]}
        assert [m["role"] for m in row["chosen"]] == [m["role"] for m in row["rejected"]] == ["user", "assistant"]
        assert row["messages"] == row["chosen"] and row["chosen"] != row["rejected"]
        assert row["score_chosen"] > row["score_rejected"] and len(row["prompt_id"]) == 64
    # No style marker: mixing general rows in teaches no style.
    for persona in aloe_personas(5):
        assert {style_agreement_score(persona, r["chosen"][1]["content"]) for r in rows} == {1}
    assert list(general_preference_rows(40, seed=1)) == rows


def test_synthetic_aloe_and_general_commands(tmp_path):
    output = tmp_path / "aloe.jsonl"
    result = runner.invoke(app, ["synthetic", "aloe", "--output", str(output), "--personas", "5", "--turns", "3"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert records == list(aloe_rows(5, 4, 3, seed=0))
    result = runner.invoke(app, ["synthetic", "general", "--output", str(tmp_path / "g.parquet"), "--rows", "7"])
    assert result.exit_code == 0, result.output
    assert Dataset.from_parquet(str(tmp_path / "g.parquet")).to_list() == list(general_preference_rows(7))
    result = runner.invoke(app, ["synthetic", "aloe", "--output", str(output), "--personas", "5"])
    assert result.exit_code != 0  # exists, no --overwrite
    result = runner.invoke(app, ["synthetic", "aloe", "--output", str(tmp_path / "x.jsonl"), "--turns", "0"])
    assert result.exit_code != 0 and "--turns must be at least 1" in str(result.exception)


@pytest.mark.parametrize("seed", [0, 1])
def test_persona_ids_do_not_collide_across_many_personas(seed):
    assert len({p.persona_id for p in aloe_personas(1000, seed=seed)}) == 1000


# ------------------------------------------------------------------------------------------------ the builder
def turn(user: str, preferred: str, rejected: str | list[str]) -> dict:
    return {"user": user, "assistant": {"preferred": preferred, "rejected": rejected}, "chosen": "preferred"}


RECORDS = [
    {
        "profile": "A retired beekeeper.",
        "personality": "curious",
        "conversations": [
            turn("u1", "p1", "r1"),
            turn("u2", "p2", ["r2a", "r2b"]),
            turn("u3", "p3", ["r3"]),
        ],
    },
    {"profile": "A retired beekeeper.", "personality": "curious", "conversations": [turn("v1", "q1", "s1")]},
    {"profile": "A young chef.", "personality": "bold", "conversations": [turn("w1", "x1", ["y1", "y2"])]},
    {"profile": "A night-shift nurse.", "personality": "calm", "conversations": [turn("z1", "t1", "n1")]},
]


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def messages(*pairs: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


def test_preference_rows_are_the_conversation_so_far_one_per_rejected_reply(tmp_path):
    source = write_jsonl(tmp_path / "aloe.jsonl", RECORDS)
    config = ALOEBuildConfig(test_personas=1, seed=0)
    built = build_aloe(source, config)
    rows = [r for split in ("train", "test") for r in built["preference"][split]]
    beekeeper = aloe_persona_id("A retired beekeeper.", "curious")
    first = sorted(
        (r for r in rows if r["conversation_id"] == 0), key=lambda r: (r["turn"], r["rejected"][0]["content"])
    )
    common = {
        "persona_id": beekeeper,
        "profile": "A retired beekeeper.",
        "personality": "curious",
        "conversation_id": 0,
    }
    u1, p1, u2, p2, u3 = ("user", "u1"), ("assistant", "p1"), ("user", "u2"), ("assistant", "p2"), ("user", "u3")
    assert first == [
        {"prompt": messages(u1), "chosen": messages(p1), "rejected": messages(("assistant", "r1")), **common, "turn": 1},
        {"prompt": messages(u1, p1, u2), "chosen": messages(p2), "rejected": messages(("assistant", "r2a")), **common, "turn": 2},
        {"prompt": messages(u1, p1, u2), "chosen": messages(p2), "rejected": messages(("assistant", "r2b")), **common, "turn": 2},
        {"prompt": messages(u1, p1, u2, p2, u3), "chosen": messages(("assistant", "p3")), "rejected": messages(("assistant", "r3")), **common, "turn": 3},
    ]  # fmt: skip
    assert len(rows) == 4 + 1 + 2 + 1
    assert {r["conversation_id"] for r in rows} == {0, 1, 2, 3}
    # Split by persona: the held-out persona is in test only, every config agrees.
    split_of = {split: {r["persona_id"] for r in built["preference"][split]} for split in ("train", "test")}
    assert len(split_of["test"]) == 1 and not split_of["train"] & split_of["test"]
    assert len(split_of["train"] | split_of["test"]) == 3
    for name in ("personas", "excerpts"):
        assert {split: set(built[name][split]["persona_id"]) for split in split_of} == split_of
    personas = sorted(built["personas"]["train"].to_list() + built["personas"]["test"].to_list(), key=str)
    assert (
        len(personas) == 3
        and {"persona_id": beekeeper, "profile": "A retired beekeeper.", "personality": "curious"} in personas
    )
    excerpts = {r["text"]: r["persona_id"] for split in ("train", "test") for r in built["excerpts"][split]}
    assert excerpts == {"u1\nu2\nu3": beekeeper, "v1": beekeeper, "w1": split_of_id("A young chef.", "bold"), "z1": split_of_id("A night-shift nurse.", "calm")}  # fmt: skip


def split_of_id(profile: str, personality: str) -> str:
    return aloe_persona_id(profile, personality)


def test_rejected_first_and_persona_text_description(tmp_path):
    source = write_jsonl(tmp_path / "aloe.jsonl", RECORDS)
    built = build_aloe(source, ALOEBuildConfig(test_personas=1, rejected="first", persona_text="description"))
    rows = [r for split in ("train", "test") for r in built["preference"][split]]
    assert len(rows) == 3 + 1 + 1 + 1  # one row per turn
    assert {r["rejected"][0]["content"] for r in rows if r["conversation_id"] in (0, 2)} == {"r1", "r2a", "r3", "y1"}
    assert {r["persona_text"] for r in rows} == {
        "A retired beekeeper.\ncurious", "A young chef.\nbold", "A night-shift nurse.\ncalm"
    }  # fmt: skip
    assert (
        "persona_text" not in build_aloe(source, ALOEBuildConfig(test_personas=1))["preference"]["train"].column_names
    )


def test_default_test_split_is_a_tenth_of_a_small_source_and_the_papers_100_of_a_large_one(tmp_path):
    assert default_test_personas(50) == 5 and default_test_personas(5) == 1 and default_test_personas(3000) == 100
    source = tmp_path / "aloe.parquet"
    write_rows(aloe_rows(30, conversations_per_persona=2, turns=2), source, ALOE_FEATURES, progress=False)
    built = build_aloe(source, ALOEBuildConfig(seed=1))
    assert len(built["personas"]["test"]) == 3 and len(built["personas"]["train"]) == 27
    other = build_aloe(source, ALOEBuildConfig(seed=2))
    assert set(other["personas"]["test"]["persona_id"]) != set(built["personas"]["test"]["persona_id"])
    with pytest.raises(InputError, match="holding out 30 for the test split leaves none"):
        build_aloe(source, ALOEBuildConfig(test_personas=30))


def test_built_folder_loads_and_feeds_the_encoder_table_format(tmp_path):
    source = write_jsonl(tmp_path / "aloe.jsonl", RECORDS)
    result = runner.invoke(
        app, ["build-dataset", "aloe", "--source", source, "--output", str(tmp_path / "built"), "--test-personas", "1"]
    )
    assert result.exit_code == 0, result.output
    loaded = load_source(tmp_path / "built")
    assert loaded.config == "preference" and loaded.configs == ALOE_CONFIGS
    assert len(loaded.split("train")) + len(loaded.split("test")) == 8
    excerpts = load_excerpts(tmp_path / "built", "table", config="excerpts")
    assert sorted(excerpts["text"]) == ["u1\nu2\nu3", "v1", "w1", "z1"]  # both splits' excerpts
    assert excerpts["persona_id"].count(aloe_persona_id("A retired beekeeper.", "curious")) == 2
    card = (tmp_path / "built" / "README.md").read_text()
    assert "ALOE (personalign build)" in card and "'rejected': 'all'" in card and "'test_personas': 1" in card
    only = tmp_path / "only"
    result = runner.invoke(
        app, ["build-dataset", "aloe", "--source", source, "--output", str(only), "--config", "personas", "--test-personas", "1"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_source(only).configs == ("personas",)


def test_synthetic_records_build_the_same_from_jsonl_and_parquet(tmp_path):
    rows = list(aloe_rows(12, conversations_per_persona=2, turns=3, seed=4))
    write_rows(rows, tmp_path / "a.parquet", ALOE_FEATURES, progress=False)
    jsonl = write_jsonl(tmp_path / "a.jsonl", rows)
    config = ALOEBuildConfig(test_personas=2)
    from_parquet, from_jsonl = build_aloe(tmp_path / "a.parquet", config), build_aloe(jsonl, config)
    for name in ALOE_CONFIGS:
        for split in ("train", "test"):
            assert from_parquet[name][split].to_list() == from_jsonl[name][split].to_list()
    train = from_parquet["preference"]["train"]
    assert len(train) + len(from_parquet["preference"]["test"]) == 12 * 2 * 3 * 2


def test_a_reply_that_is_valid_json_stays_a_string(tmp_path):
    # Mixed `rejected` types make `datasets` read turns as Json, which would turn the reply "1" into the number 1.
    records = [{**RECORDS[0], "conversations": [turn("u", "1", "true"), turn("v", "p", ["2"])]}, *RECORDS[2:]]
    built = build_aloe(write_jsonl(tmp_path / "aloe.jsonl", records), ALOEBuildConfig(test_personas=1))
    rows = [r for split in ("train", "test") for r in built["preference"][split] if r["conversation_id"] == 0]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [("1", "true"), ("p", "2")]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"profile": "A retired beekeeper.", "conversations": [turn("u", "p", "r")]}, "line 2, column 'personality': expected a non-empty string, got nothing"),
        ({**RECORDS[1], "conversations": []}, "line 2, column 'conversations': expected a non-empty list of turns"),
        ({**RECORDS[1], "conversations": [{**turn("u", "p", "r"), "chosen": "rejected"}]}, "line 2, column 'conversations', turn 1: 'chosen' is 'rejected', expected 'preferred'"),
        ({**RECORDS[1], "conversations": [turn("u", "p", "r"), {"user": "u", "assistant": {"preferred": "p"}}]}, "line 2, column 'conversations', turn 2: expected 'assistant'['rejected'] to be a string or a non-empty list"),
        ({**RECORDS[1], "conversations": [turn("u", "p", [])]}, "turn 1: expected 'assistant'['rejected'] to be a string or a non-empty list of strings, got an empty list"),
        ({**RECORDS[1], "conversations": [turn("u", "p", ["r", 3])]}, "turn 1: expected 'assistant'['rejected'] to be a string or a list of strings, got list"),
        ({**RECORDS[1], "conversations": [{"assistant": {"preferred": "p", "rejected": "r"}}]}, "turn 1: expected 'user' to be a string, got no 'user'"),
        ({**RECORDS[1], "conversations": [{"user": "u", "assistant": "p"}]}, "turn 1: expected 'assistant' to be a dict of replies, got str"),
        ({**RECORDS[1], "conversations": [turn("u", 5, "r")]}, "turn 1: the chosen reply 'assistant'['preferred'] must be one string, got int"),
        ({**RECORDS[1], "profile": 7}, "line 2, column 'profile': expected a non-empty string, got 7"),
        # empty or blank texts: an empty reply would train as a real one (the same line as an empty profile)
        ({**RECORDS[1], "conversations": [turn("u", "p", "r"), turn("u", "", "r")]}, "line 2, column 'conversations', turn 2: expected 'assistant'['preferred'] to be a non-empty string, got ''"),
        ({**RECORDS[1], "conversations": [turn("u", " \n", "r")]}, "turn 1: expected 'assistant'['preferred'] to be a non-empty string, got ' \\n'"),
        ({**RECORDS[1], "conversations": [turn("u", "p", "")]}, "turn 1: expected 'assistant'['rejected'] to be a non-empty string, got ''"),
        ({**RECORDS[1], "conversations": [turn("u", "p", ["r", "  "])]}, "turn 1: expected 'assistant'['rejected'][1] to be a non-empty string, got '  '"),
        ({**RECORDS[1], "conversations": [turn("", "p", "r")]}, "turn 1: expected 'user' to be a non-empty string, got ''"),
        ({**RECORDS[1], "conversations": [turn("\t", "p", "r")]}, "turn 1: expected 'user' to be a non-empty string, got '\\t'"),
    ],
)  # fmt: skip
def test_bad_records_fail_with_one_line_naming_file_line_and_field(tmp_path, bad, message):
    source = write_jsonl(tmp_path / "aloe.jsonl", [RECORDS[0], bad, *RECORDS[2:]])
    with pytest.raises(InputError) as error:
        build_aloe(source, ALOEBuildConfig(test_personas=1))
    assert str(error.value).startswith(f"{source}, line 2") and message in str(error.value)
    assert "\n" not in str(error.value)
    # The hint is the form the builder reads: a string `assistant` (read by the encoder's excerpts) is no turn here.
    assert not re.search(r"turn \d", message) or str(error.value).endswith(f"expected {RELEASED_TURN}.")


def test_a_source_without_the_columns_is_refused(tmp_path):
    source = write_jsonl(tmp_path / "other.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    with pytest.raises(
        InputError, match=r"other.jsonl: missing column\(s\) \['profile', 'personality', 'conversations'\]"
    ):
        build_aloe(source)
    with pytest.raises(InputError, match="--rejected must be 'all' or 'first'"):
        ALOEBuildConfig(rejected="some")


def test_the_encoder_refuses_the_same_empty_texts_with_the_hint_of_what_it_reads():
    # `aloe_excerpts` shares the builder's turn checks: an empty text is refused there too, naming the 1-based turn;
    # its hint offers the string `assistant` it reads, the builder's does not.
    for bad, field in [
        (turn("", "p", "r"), "'user'"),
        (turn("u", "", "r"), "'assistant'['preferred']"),
        (turn("u", "p", ["r", ""]), "'assistant'['rejected'][1]"),
        ({"user": "u", "assistant": " "}, "'assistant'"),
    ]:
        rows = [{"profile": "P", "personality": "q", "conversations": [turn("u", "p", "r"), bad]}]
        with pytest.raises(InputError) as error:
            aloe_excerpts(rows, where="d.jsonl")
        assert f"turn 2: expected {field} to be a non-empty string" in str(error.value)
        assert str(error.value).endswith(f"expected {ALOE_TURN}.")
    simplified = [{"profile": "P", "personality": "q", "conversations": [{"user": "u", "assistant": "a"}]}]
    assert aloe_excerpts(simplified)["text"] == ["u"]


def test_persona_ids_keep_profile_and_personality_apart_everywhere(tmp_path):
    assert aloe_persona_id("a\nb", "c") != aloe_persona_id("a", "b\nc")
    records = [
        {"profile": "a\nb", "personality": "c", "conversations": [turn("u", "p", "r")]},
        {"profile": "a", "personality": "b\nc", "conversations": [turn("v", "q", "s")]},
        {"profile": "d", "personality": "e", "conversations": [turn("w", "x", "y")]},
    ]
    built = build_aloe(write_jsonl(tmp_path / "c.jsonl", records), ALOEBuildConfig(test_personas=1))
    personas = [r for split in built["personas"].values() for r in split]
    assert len({r["persona_id"] for r in personas}) == 3
    # The encoder's excerpts and the role-play personas give each persona the builder's id.
    ids = {(r["profile"], r["personality"]): r["persona_id"] for r in personas}
    assert aloe_excerpts(records)["persona_id"] == [ids["a\nb", "c"], ids["a", "b\nc"], ids["d", "e"]]
    assert {(p, q): persona_key(p, q) for p, q in ids} == ids


def test_a_one_persona_source_says_what_is_possible_and_builds_train_only_with_zero(tmp_path):
    source = write_jsonl(tmp_path / "one.jsonl", RECORDS[:2])  # two conversations of one persona
    with pytest.raises(InputError) as error:
        build_aloe(source)
    assert "needs at least 2 personas" in str(error.value) and "--test-personas 0" in str(error.value)
    assert "smaller" not in str(error.value)
    with pytest.raises(InputError, match="pass --test-personas 2 or fewer, or --test-personas 0 for a train-only"):
        build_aloe(write_jsonl(tmp_path / "three.jsonl", RECORDS), ALOEBuildConfig(test_personas=3))
    with pytest.raises(InputError, match="at least 0"):
        ALOEBuildConfig(test_personas=-1)
    result = runner.invoke(
        app, ["build-dataset", "aloe", "--source", source, "--output", str(tmp_path / "o"), "--test-personas", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "read 2 ALOE records of 1 persona; held out 0 personas for the test split (none: a train-only dataset)"
        in " ".join(result.output.split())
    )
    loaded = load_source(tmp_path / "o")
    assert list(loaded.parts) == ["train"] and len(loaded.split("train")) == 4 + 1
    assert "'test_personas': 0" in (tmp_path / "o" / "README.md").read_text()


def test_the_card_records_the_personas_held_out_by_default(tmp_path):
    source = write_jsonl(tmp_path / "aloe.jsonl", RECORDS)
    result = runner.invoke(app, ["build-dataset", "aloe", "--source", source, "--output", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "o" / "README.md").read_text()
    assert "'test_personas': 1" in card and "'test_personas': None" not in card  # the default tenth, at least one
    assert "read 4 ALOE records of 3 personas; held out 1 persona for the test split" in " ".join(
        result.output.split()
    )


def test_zero_signal_pairs_are_skipped_and_duplicates_kept_and_both_reported(tmp_path):
    records = [
        {**RECORDS[0], "conversations": [turn("u1", "p1", "p1"), turn("u2", "p2", ["p2", "r2"])]},
        RECORDS[2],
        RECORDS[2],  # verbatim twice
        RECORDS[3],
    ]
    report = ALOEBuildReport()
    built = build_aloe(write_jsonl(tmp_path / "z.jsonl", records), ALOEBuildConfig(test_personas=1), report=report)
    rows = [r for split in built["preference"].values() for r in split]
    assert all(r["chosen"] != r["rejected"] for r in rows)
    first = [r for r in rows if r["conversation_id"] == 0]
    # turn 1 has no row left; turn 2 keeps its real pair, with turn 1's preferred reply in its prompt
    assert [(r["turn"], r["rejected"][0]["content"]) for r in first] == [(2, "r2")]
    assert first[0]["prompt"] == messages(("user", "u1"), ("assistant", "p1"), ("user", "u2"))
    assert sorted(r["conversation_id"] for r in rows if r["profile"] == "A young chef.") == [1, 1, 2, 2]
    assert (report.zero_signal_pairs, report.zero_signal_turns, report.duplicate_records) == (2, 1, 1)
    assert report.lines()[1:] == [
        "skipped 2 (turn, rejected reply) pairs whose rejected reply equals the preferred one (no preference to "
        "learn; 1 turn left with no row)",
        "kept 1 verbatim repeat of an earlier record as their own conversations",
    ]
    result = runner.invoke(
        app, ["build-dataset", "aloe", "--source", str(tmp_path / "z.jsonl"), "--output", str(tmp_path / "o"), "--test-personas", "1"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "skipped 2 (turn, rejected reply) pairs" in output and "kept 1 verbatim repeat" in output
    assert "skipped 2 (turn, rejected reply) pairs" in (tmp_path / "o" / "README.md").read_text()


def test_a_built_folder_as_source_is_named_as_one(tmp_path):
    source = write_jsonl(tmp_path / "aloe.jsonl", RECORDS)
    build_aloe_folder = ["build-dataset", "aloe", "--test-personas", "1", "--source"]
    assert runner.invoke(app, [*build_aloe_folder, source, "--output", str(tmp_path / "b")]).exit_code == 0
    for config in ([], ["--config", "personas"]):
        only = tmp_path / f"only{len(config)}"
        assert runner.invoke(app, [*build_aloe_folder, source, "--output", str(only), *config]).exit_code == 0
        with pytest.raises(InputError, match=r"is already a built ALOE dataset .*--dataset_name"):
            build_aloe(only)
    result = runner.invoke(app, [*build_aloe_folder, str(tmp_path / "b"), "--output", str(tmp_path / "again")])
    assert result.exit_code == 1 and "already a built ALOE dataset" in str(result.exception)
