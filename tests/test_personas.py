import random
from collections import Counter

import pytest

from personalign import (
    PairItem,
    Persona,
    UGCItem,
    feedback_generation_messages,
    feedback_judge_messages,
    ica_messages,
    pba_messages,
    to_alignx_release_prompt,
)


@pytest.fixture
def persona(alignx_space):
    return Persona(
        ugc=[UGCItem("Post about dogs?", "Dogs rule.", alignx_space.vector({59: 1}))],
        pairs=[PairItem("Trip ideas?", "Go abroad.", "Stay home.", alignx_space.vector({60: 1, 16: 1}))],
        demographics="A 30-year-old nurse who loves pets.",
    )


ICA_BODY = (
    "***Task***\n\n**Post:**\nHow should I spend Sunday?\n\n"
    "***Historical Behavior and User Preferences***\n\n"
    "**This person has commented on some posts:**\n\n"
    "1. *Post:*\nPost about dogs?\n\n*Comment:*\nDogs rule.\n\n"
    "**This person has chosen or rejected comments on some posts:**\n\n"
    "1. *Post:*\nTrip ideas?\n\n*Chosen:*\nGo abroad.\n\n*Rejected:*\nStay home.\n\n"
    "A 30-year-old nurse who loves pets."
)


def test_ica_golden(persona):
    assert ica_messages("How should I spend Sunday?", persona) == [
        {
            "role": "system",
            "content": "Generate a task-specific response based on user historical behavior and preferences.",
        },
        {"role": "user", "content": ICA_BODY},
    ]


def test_ica_without_demographics_and_history():
    messages = ica_messages("Hi?", Persona(demographics="Secret."), include_demographics=False)
    assert (
        messages[1]["content"] == "***Task***\n\n**Post:**\nHi?\n\n***Historical Behavior and User Preferences***\n\n"
    )


def test_pba_golden(persona, alignx_space):
    profile = persona.profile_text(alignx_space)
    # means: dim 16 = 0.75, dim 59 = 0.75, dim 60 = 0.75 -> all positive, in dimension order
    assert profile == "Concise communication style, Likes pets, Likes travel"
    assert pba_messages("How should I spend Sunday?", profile) == [
        {"role": "system", "content": "Generate a task-specific response based on user preferences."},
        {
            "role": "user",
            "content": "***Task***\n\n**Post:**\nHow should I spend Sunday?\n\n***User Preferences***\n\n"
            "Concise communication style, Likes pets, Likes travel",
        },
    ]


def test_alignx_release_strings_are_exact(persona):
    pba = to_alignx_release_prompt(pba_messages("Q?", "Likes pets"))
    assert pba == (
        "<|start_header_id|>system<|end_header_id|>\n\nGenerate a task-specific response based on user preferences.\n"
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n***Task***\n\n**Post:**\nQ?\n\n"
        "***User Preferences***\n\nLikes pets\n\n***Response:***\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
    )
    ica = to_alignx_release_prompt(ica_messages("How should I spend Sunday?", persona))
    assert ica == (
        "<|start_header_id|>system<|end_header_id|>\n\nGenerate a task-specific response based on user historical "
        "behavior and preferences.\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        + ICA_BODY
        + "\n\n***Response:***\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
    )
    # Without demographics the release leaves the pairs' trailing blank line before the response marker.
    bare = to_alignx_release_prompt(ica_messages("Q?", Persona(pairs=persona.pairs)))
    assert bare.endswith(
        "*Rejected:*\nStay home.\n\n\n\n***Response:***\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
    )
    with pytest.raises(ValueError, match="one system and one user"):
        to_alignx_release_prompt([{"role": "user", "content": "x"}])


def test_chat_template_rendering_golden(persona, tiny_lm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    text = tokenizer.apply_chat_template(pba_messages("Q?", "Likes pets"), tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|begin|><|system|>\nGenerate a task-specific response based on user preferences.<|end|>"
        "<|user|>\n***Task***\n\n**Post:**\nQ?\n\n***User Preferences***\n\nLikes pets<|end|><|assistant|>\n"
    )


FEEDBACK_HISTORY = (
    "Example 1:\n### Instruction\nTrip ideas?\n### Response liked by the user\nGo abroad.\n"
    "### Response NOT liked by the user\nStay home.\n\n"
    "Example 2:\n### Instruction\nLunch?\n### Response liked by the user\nSalad.\n"
    "### Response NOT liked by the user\nBurger."
)


def test_feedback_history_golden():
    history = [PairItem("Trip ideas?", "Go abroad.", "Stay home."), PairItem("Lunch?", "Salad.", "Burger.")]
    generation = feedback_generation_messages(history, "Dinner?")
    assert generation == [
        {
            "role": "user",
            "content": "# Goal\nYour goal is to generate responses that adhere to preferences of the user. Here are "
            "some examples of responses that are liked and disliked by the user. Infer the preference of the user, "
            "and respond to the new instruction from the user.\n\n# START OF EXAMPLES\n"
            + FEEDBACK_HISTORY
            + "\n# END OF EXAMPLES\n\nNow, here is the new instruction from the user.\n\n# Instruction\nDinner?",
        }
    ]
    judge = feedback_judge_messages(history, "Dinner?", "Soup.", "Steak.")[0]["content"]
    assert judge.startswith("###Task Description:\nIn each of the examples below")
    assert (
        "# START OF EXAMPLES\n" + FEEDBACK_HISTORY + "\n# END OF EXAMPLES\n\n###The instruction to evaluate:\nDinner?"
        in judge
    )
    assert "###Response A:\nSoup.\n\n###End of Response A\n###Response B:\nSteak.\n\n###End of Response B\n\n" in judge
    assert judge.endswith('"[[B]]" if response B is more likely preferred. Let\'s think step by step.')


def _many_items_persona(n_ugc, n_pairs):
    return Persona(
        ugc=[UGCItem(f"p{i}", f"c{i}") for i in range(n_ugc)],
        pairs=[PairItem(f"q{i}", f"a{i}", f"b{i}") for i in range(n_pairs)],
    )


def test_history_sampling_is_deterministic_under_a_seed():
    persona = _many_items_persona(16, 16)
    first = [persona.sample_history(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(7)
    draws = [persona.sample_history(rng) for _ in range(200)]
    assert len({(tuple(i.prompt for i in d.ugc), tuple(i.prompt for i in d.pairs)) for d in draws}) > 150


def test_history_sampling_follows_the_alignx_rule():
    persona = _many_items_persona(16, 2)
    rng = random.Random(0)
    counts = Counter()
    for _ in range(3000):
        sample = persona.sample_history(rng)
        n_ugc, n_pairs = len(sample.ugc), len(sample.pairs)
        assert 0 <= n_ugc <= 4 and 0 <= n_pairs <= 2
        assert (n_ugc, n_pairs) != (0, 0)
        assert len({i.prompt for i in sample.ugc}) == n_ugc  # without replacement
        counts[(n_ugc, n_pairs)] += 1
    # randint(0, 4) for both: (0, 0) has probability 1/25 and is replaced by (min(4, 16), min(4, 2)) = (4, 2)
    assert counts[(4, 2)] > counts[(3, 2)]
    # n_pairs = min(randint(0, 4), 2): P(2) = 3/5
    pairs_two = sum(v for (_, p), v in counts.items() if p == 2)
    assert 0.55 < pairs_two / 3000 < 0.70
    empty = Persona()
    assert empty.sample_history(random.Random(0)) == empty


def test_from_alignx_row_reads_release_and_snake_case_columns(alignx_space):
    from personalign.data.synthetic import alignx_rows

    row = next(alignx_rows(2, seed=3))
    persona = Persona.from_alignx_row(row)
    assert len(persona.ugc) == len(row["User-Generated Content"])
    assert persona.pairs[0].chosen == row["Pair-wise Comparative Feedback"][0]["chosen"]
    assert persona.direction == row["Preference Direction"]
    snake = {
        "prompt": row["prompt"],
        "preference_direction": row["Preference Direction"],
        "demographic_information": row["Demographic Information"],
        "user_generated_content": [
            {"prompt": i["prompt"], "comment": i["comment"], "preference_direction": i["Preference Direction"]}
            for i in row["User-Generated Content"]
        ],
        "pairwise_comparative_feedback": [],
    }
    other = Persona.from_alignx_row(snake)
    assert other.ugc == persona.ugc and other.demographics == persona.demographics and other.pairs == []


def test_benchmark_rows_without_item_vectors_use_their_profile():
    row = {
        "prompt": "Q?",
        "profile": "Likes travel",
        "Pair-wise Comparative Feedback": [{"prompt": "a", "chosen": "b", "rejected": "c"}],
    }
    persona = Persona.from_alignx_row(row)
    assert persona.pairs[0].direction is None
    assert persona.profile_text() == "Likes travel"
    with pytest.raises(ValueError, match="no annotated item and no gold direction"):
        Persona(pairs=persona.pairs).preference_vector()


def test_bad_rows_name_the_place_and_column(alignx_space):
    bad_vector = alignx_space.neutral()
    bad_vector[12] = 2
    row = {"User-Generated Content": [{"prompt": "a", "comment": "b", "Preference Direction": bad_vector}]}
    with pytest.raises(
        ValueError,
        match=r"train.jsonl, row 9, column 'User-Generated Content' item 0 'Preference Direction': index 12 holds 2",
    ):
        Persona.from_alignx_row(row, where="train.jsonl, row 9")
    with pytest.raises(ValueError, match=r"row 3, column 'Pair-wise Comparative Feedback' item 1: missing 'rejected'"):
        Persona.from_alignx_row(
            {
                "Pair-wise Comparative Feedback": [
                    {"prompt": "a", "chosen": "b", "rejected": "c"},
                    {"prompt": "a", "chosen": "b"},
                ]
            },
            where="row 3",
        )
    with pytest.raises(ValueError, match="column 'Preference Direction': preference vector has length 3"):
        Persona.from_alignx_row({"Preference Direction": [1, 0, 1]})
