"""Synthetic ALOE (personas with learnable styles, the scripted judge's rule, general rows) and the ALOE builder."""

from __future__ import annotations

import json
import random
import string
from collections import Counter

import pytest
from datasets import Dataset
from typer.testing import CliRunner

from personalign.cli import app
from personalign.data.aloe import aloe_persona_id
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
