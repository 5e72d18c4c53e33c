"""Persona-encoder data, sampler, augmentation and metrics: pure logic, no model."""

import random

import numpy as np
import pytest
from datasets import Dataset

from personalign.data.aloe import aloe_persona_id
from personalign.data.synthetic import alignx_rows
from personalign.encoder import (
    PersonaBatchSampler,
    alignx_excerpts,
    aloe_excerpts,
    contrastive_rows,
    pair_auc,
    persona_batches,
    retrieval_metrics,
    split_personas,
    table_excerpts,
    truncate_text,
)
from personalign.encoder.data import text_columns
from personalign.personas.persona import Persona
from personalign.personas.prompts import render_history


@pytest.fixture(scope="module")
def excerpts():
    return alignx_excerpts(alignx_rows(80, seed=0, num_personas=20, with_metadata=True))


def _batch_personas(rows, batch):
    """Every persona a batch shows to InfoNCE: each row's anchor persona once (anchor + positive) plus negatives."""
    shown = []
    for index in batch:
        shown.append(rows[index]["persona_id"])
        shown.extend(rows[index]["negative_persona_ids"])
    return shown


def test_alignx_excerpts_are_single_items_rendered_like_persona_history(excerpts):
    row = next(alignx_rows(2, seed=0, num_personas=20, with_metadata=True))
    persona = Persona.from_alignx_row(row)
    first_item = render_history(Persona(ugc=[persona.ugc[0]], pairs=[], demographics=""))
    mine = excerpts.filter(lambda r: r["persona_id"] == row["persona_id"])
    assert first_item in mine["text"]
    # A persona's history repeats across the rows it appears in; each excerpt is kept once.
    assert len(mine) == len(set(mine["text"])) == len(persona.ugc) + len(persona.pairs)
    assert len(set(excerpts["persona_id"])) > 10


def test_alignx_excerpts_without_persona_column_make_one_persona_per_row():
    rows = list(alignx_rows(4, seed=1))
    table = alignx_excerpts(rows, where="part.parquet")
    assert sorted(set(table["persona_id"])) == [f"part.parquet#{i}" for i in range(4)]


REJECTED = ("REJECTED-generic", "REJECTED-one", "REJECTED-two", "REJECTED-list")


def _aloe_row(profile, turns):
    return {"profile": profile, "personality": "curious", "conversations": turns}


def _turn(user, preferred, rejected, chosen="preferred"):
    return {"user": user, "assistant": {"preferred": preferred, "rejected": rejected}, "chosen": chosen}


def _message(role, content):
    return {"role": role, "content": content}


ALOE_ROWS = [
    # The release's schema: rejected as a string, then as a list of strings (`chosen` absent: "preferred").
    _aloe_row(
        "P1",
        [
            _turn("I keep bees.", "Bees, lovely!", REJECTED[0]),
            {"user": "Any hive tips?", "assistant": {"preferred": "Check monthly.", "rejected": list(REJECTED[1:3])}},
        ],
    ),
    # `chosen` given explicitly, as the release writes it.
    _aloe_row("P1", [_turn("Hi.", "Hello, beekeeper.", REJECTED[3], chosen="preferred")]),
    # Simplified rows: the assistant is one string; a last turn may have no reply.
    _aloe_row("P2", [{"user": "Short please.", "assistant": "Sure."}, {"user": "Thanks."}]),
    # role/content messages, flat or one list per turn; system messages are not the persona's.
    _aloe_row("P3", [_message("system", "Be kind."), _message("user", "Hey"), _message("assistant", "Hi!")]),
    _aloe_row("P3", [[_message("user", "Why?"), _message("assistant", "Because.")]]),
    # Arrow-loaded rows: absent keys are None.
    _aloe_row("P4", [{**_turn("Fine.", "Good.", None, chosen=None), "role": None}]),
]


def test_aloe_excerpts_hold_what_the_user_said_by_default():
    table = aloe_excerpts(ALOE_ROWS)
    assert table["text"] == [
        "I keep bees.\nAny hive tips?",
        "Hi.",
        "Short please.\nThanks.",
        "Hey",
        "Why?",
        "Fine.",
    ]
    ids = table["persona_id"]
    assert ids[0] == ids[1] == aloe_persona_id("P1", "curious") and ids[3] == ids[4] and len(set(ids)) == 4


def test_aloe_excerpts_with_preferred_replies_never_hold_a_rejected_one():
    table = aloe_excerpts(ALOE_ROWS, include_preferred_replies=True)
    assert table["text"] == [
        "User: I keep bees.\nAssistant: Bees, lovely!\nUser: Any hive tips?\nAssistant: Check monthly.",
        "User: Hi.\nAssistant: Hello, beekeeper.",
        "User: Short please.\nAssistant: Sure.\nUser: Thanks.",
        "User: Hey\nAssistant: Hi!",
        "User: Why?\nAssistant: Because.",
        "User: Fine.\nAssistant: Good.",
    ]
    for text in list(table["text"]) + list(aloe_excerpts(ALOE_ROWS)["text"]):
        assert not any(rejected in text for rejected in REJECTED), text


def test_aloe_excerpts_load_through_the_pipeline(tmp_path):
    from personalign.encoder.pipeline import load_excerpts
    from personalign.io import write_rows

    rows = [
        row for row in ALOE_ROWS if isinstance(row["conversations"][0], dict) and "user" in row["conversations"][0]
    ]
    rows = [r for r in rows if all(isinstance(t["assistant"], dict) for t in r["conversations"] if "assistant" in t)]
    path = tmp_path / "aloe.jsonl"
    write_rows(rows, path)
    table = load_excerpts(path, "aloe")
    assert table["text"] == ["I keep bees.\nAny hive tips?", "Hi.", "Fine."]
    replies = load_excerpts(path, "aloe", include_preferred_replies=True)
    assert "Assistant: Hello, beekeeper." in replies["text"][1]
    assert not any(rejected in text for text in replies["text"] for rejected in REJECTED)


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (3, "expected an ALOE turn"),
        ("Hello!", "expected an ALOE turn"),  # a bare string: whose words?
        ({"text": "hi"}, "expected an ALOE turn"),
        ({"user": ["a", "b"]}, "expected 'user' to be a string"),
        ({"user": "a", "assistant": 5}, "expected 'assistant' to be a string or a dict"),
        ({"user": "a", "assistant": {"preferred": "x", "rejected": "y"}, "chosen": "best"}, "'chosen' is 'best'"),
        ({"user": "a", "assistant": {"preferred": ["x"], "rejected": "y"}}, "must be one string, got list"),
        ({"user": "a", "assistant": {"rejected": "y"}}, "must be one string, got no 'preferred' reply"),
        ({"user": "a", "assistant": "x", "chosen": "rejected"}, "'chosen' is 'rejected', expected 'preferred'"),
        ({"assistant": "x"}, "expected 'user' to be a string, got no 'user'"),
        ({"user": None, "assistant": {"preferred": "x", "rejected": "y"}}, "got no 'user'"),
        ({"user": "a", "assistant": {"preferred": "x", "rejected": 3}}, "'rejected'] to be a string or a list of str"),
        ({"user": "a", "assistant": {"preferred": "x", "rejected": [{"t": "y"}]}}, "a string or a list of strings"),
        ({"role": "tool", "content": "x"}, "expected a message"),
        ({"role": "user", "content": None}, "expected a message"),
    ],
)
def test_a_malformed_aloe_turn_names_the_row_and_turn(turn, expected):
    rows = [_aloe_row("P", [{"user": "ok"}]), _aloe_row("P", [{"user": "ok"}, turn])]
    with pytest.raises(
        ValueError, match=r"dialogues.jsonl, row 1 \(0-based\), column 'conversations', turn 2: "
    ) as error:
        aloe_excerpts(rows, where="dialogues.jsonl")
    assert expected in str(error.value)


ALOE_WITH_REJECTED = {"user": "Hi.", "assistant": {"preferred": "PREF", "rejected": "REJECTED-text"}}


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        # the rejected text under a `chosen` that names it: the DPORE paper and the release only know "preferred"
        ({**ALOE_WITH_REJECTED, "chosen": "rejected"}, "turn 1: 'chosen' is 'rejected', expected 'preferred'"),
        (
            {
                "user": "Hi.",
                "assistant": {"preferred": "PREF", "rejected": ["REJECTED-a", "REJECTED-b"]},
                "chosen": "rejected",
            },
            "turn 1: 'chosen' is 'rejected', expected 'preferred'",
        ),
        # no user: the turn used to become "Assistant: PREF" (or vanish without replies)
        ({"assistant": ALOE_WITH_REJECTED["assistant"]}, "turn 1: expected 'user' to be a string, got no 'user'"),
        ({**ALOE_WITH_REJECTED, "user": None}, "turn 1: expected 'user' to be a string, got no 'user'"),
        ({**ALOE_WITH_REJECTED, "user": 7}, "turn 1: expected 'user' to be a string, got int"),
        # malformed rejected replies
        (
            {"user": "Hi.", "assistant": {"preferred": "PREF", "rejected": 3}},
            "turn 1: expected 'assistant'['rejected']",
        ),
        (
            {"user": "Hi.", "assistant": {"preferred": "PREF", "rejected": [{"text": "REJECTED-text"}]}},
            "turn 1: expected 'assistant'['rejected'] to be a string or a list of strings, got list",
        ),
    ],
)
@pytest.mark.parametrize("include_preferred_replies", [False, True])
def test_malformed_aloe_turns_are_refused_in_every_mode(turn, expected, include_preferred_replies):
    rows = [_aloe_row("P", [turn])]
    with pytest.raises(ValueError, match=r"ALOE rows, row 0 \(0-based\), column 'conversations', turn 1: ") as error:
        aloe_excerpts(rows, include_preferred_replies=include_preferred_replies)
    assert expected in str(error.value)


@pytest.mark.parametrize("include_preferred_replies", [False, True])
def test_rejected_text_never_enters_an_excerpt_in_any_accepted_form(include_preferred_replies):
    forms = [
        ALOE_WITH_REJECTED,
        {**ALOE_WITH_REJECTED, "chosen": "preferred"},
        {**ALOE_WITH_REJECTED, "chosen": None},  # Arrow fills an absent key with None
        {"user": "Hi.", "assistant": {"preferred": "PREF", "rejected": ["REJECTED-a", "REJECTED-b"]}},
        {"user": "Hi.", "assistant": {"preferred": "PREF", "rejected": []}},
        {"user": "Hi.", "assistant": {"preferred": "PREF", "rejected": None}},
        {"user": "Hi.", "assistant": "PREF"},
        [_message("user", "Hi."), _message("assistant", "PREF")],
    ]
    table = aloe_excerpts(
        [_aloe_row(f"P{i}", [form]) for i, form in enumerate(forms)],
        include_preferred_replies=include_preferred_replies,
    )
    expected = "User: Hi.\nAssistant: PREF" if include_preferred_replies else "Hi."
    assert table["text"] == [expected] * len(forms)
    assert not any("REJECTED" in text for text in table["text"])


def test_table_excerpts_and_aloe_column_errors():
    with pytest.raises(ValueError, match=r"row 0 \(0-based\): missing column\(s\) \['personality'\]"):
        aloe_excerpts([{"profile": "a", "conversations": []}])
    with pytest.raises(
        ValueError, match=r"row 0 \(0-based\), column 'conversations': expected a list of turns, got str"
    ):
        aloe_excerpts([_aloe_row("a", "hello")])

    plain = table_excerpts(Dataset.from_dict({"user": [1, 1, 2], "body": ["a b", "c d", "e f"]}), "user", "body")
    assert plain["persona_id"] == ["1", "1", "2"]
    with pytest.raises(ValueError, match=r"t.csv: missing column\(s\) \['body'\]"):
        table_excerpts(Dataset.from_dict({"user": [1]}), "user", "body", where="t.csv")
    with pytest.raises(ValueError, match=r"t.jsonl, row 1 \(0-based\), column 'text': expected a value"):
        table_excerpts([{"persona_id": 1, "text": "x"}, {"persona_id": 2, "text": None}], where="t.jsonl")


def test_contrastive_rows_pair_a_persona_with_itself_and_negatives_with_others(excerpts):
    rows = contrastive_rows(excerpts, num_negatives=2, seed=3)
    texts_of = {}
    for persona, text in zip(excerpts["persona_id"], excerpts["text"], strict=True):
        texts_of.setdefault(persona, set()).add(text)
    assert rows.column_names == [
        "anchor",
        "positive",
        "negative_1",
        "negative_2",
        "persona_id",
        "negative_persona_ids",
    ]
    for row in rows:
        own = texts_of[row["persona_id"]]
        assert row["anchor"] in own and row["positive"] in own and row["anchor"] != row["positive"]
        assert len(set(row["negative_persona_ids"])) == 2 and row["persona_id"] not in row["negative_persona_ids"]
        for k, other in enumerate(row["negative_persona_ids"], start=1):
            assert row[f"negative_{k}"] in texts_of[other]
    assert rows["anchor"] == contrastive_rows(excerpts, num_negatives=2, seed=3)["anchor"]
    with pytest.raises(ValueError, match="num_negatives"):
        contrastive_rows(excerpts, num_negatives=len(texts_of))


def test_sampler_never_puts_two_items_of_a_persona_in_one_batch(excerpts):
    rows = contrastive_rows(excerpts, num_negatives=3, seed=0)
    sampler = PersonaBatchSampler(rows, batch_size=4, drop_last=False, seed=5)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for batch in batches:
            shown = _batch_personas(rows, batch)
            assert len(shown) == len(set(shown)), f"a persona repeats in batch {batch}"
        flat = sorted(i for batch in batches for i in batch)
        assert flat == list(range(len(rows)))  # every row exactly once per epoch
        epochs.append(batches)
    assert epochs[0] != epochs[1]
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]  # deterministic under seed + epoch


def test_persona_batches_defers_conflicting_rows_instead_of_dropping_them():
    anchors = ["a", "a", "b", "c", "d"]
    negatives = [["b"], ["c"], ["c"], ["d"], []]
    batches = persona_batches(range(5), anchors, negatives, batch_size=2)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    # Row 1 repeats "a", row 2 shows "b" (row 0's negative): both wait; row 3 fits. Waiting rows go first next.
    assert batches == [[0, 3], [1, 4], [2]]
    for batch in batches:
        shown = [anchors[i] for i in batch] + [n for i in batch for n in negatives[i]]
        assert len(shown) == len(set(shown))


def test_sampler_keeps_a_text_two_personas_share_out_of_one_batch_and_reports_small_batches(caplog):
    """8 users, 4 of whom share "thanks, very helpful": no batch holds that text for two personas (as one anchor's
    positive and another row's negative), small batches are reported once with counts, and no batch shows fewer
    than two personas (one that would, gives no loss, is dropped and counted)."""
    shared = "thanks, very helpful"
    persona_ids, texts = [], []
    for user in range(8):
        own = [f"user {user} says thing {k} about their day" for k in range(3)] + ([shared] if user < 4 else [])
        persona_ids += [f"u{user}"] * len(own)
        texts += own
    rows = contrastive_rows(Dataset.from_dict({"persona_id": persona_ids, "text": texts}), num_negatives=1, seed=0)
    text_cols = text_columns(rows.column_names)
    sampler = PersonaBatchSampler(rows, batch_size=16, drop_last=False, seed=0)
    with caplog.at_level("WARNING", logger="personalign.encoder.sampler"):
        for epoch in range(4):
            sampler.set_epoch(epoch)
            batches = list(sampler)
            placed = {i for batch in batches for i in batch}
            assert len(placed) == sum(map(len, batches))
            for batch in batches:
                owner = {}
                for i in batch:
                    row = rows[i]
                    personas = [row["persona_id"], row["persona_id"], *row["negative_persona_ids"]]
                    for column, persona in zip(text_cols, personas, strict=True):
                        assert owner.setdefault(row[column], persona) == persona, f"{row[column]!r} in batch {batch}"
                assert len(set(_batch_personas(rows, batch))) >= 2  # every batch can give a loss
            assert not placed & sampler.self_conflicting  # a row with a false negative of its own
    reports = [r.getMessage() for r in caplog.records if r.name == "personalign.encoder.sampler"]
    assert len(reports) == 1  # once per sampler
    assert (
        "batches hold fewer than the 16 rows asked for" in reports[0] and "8 personas, 2 shown per row" in reports[0]
    )


def test_sampler_drops_a_batch_that_cannot_give_a_loss_and_refuses_data_that_never_can(caplog):
    """Persona a has three rows, b two (no explicit negatives): the third batch would hold one row of a alone, whose
    InfoNCE loss is 0; it is dropped and counted."""
    rows = Dataset.from_dict(
        {
            "anchor": ["a1", "a2", "a3", "b1", "b2"],
            "positive": ["a2", "a3", "a1", "b2", "b1"],
            "persona_id": ["a", "a", "a", "b", "b"],
        }
    )
    with caplog.at_level("WARNING", logger="personalign.encoder.sampler"):
        batches = list(PersonaBatchSampler(rows, batch_size=4, drop_last=False, seed=0))
    assert len(batches) == 2 and all({rows[i]["persona_id"] for i in batch} == {"a", "b"} for batch in batches)
    assert "1 batches (1 rows) that show one persona were dropped (no loss)" in caplog.text
    with pytest.raises(ValueError, match="no batch of 2 contrastive rows shows two personas"):
        list(PersonaBatchSampler(rows.select([0, 1]), batch_size=4, drop_last=False, seed=0))


def test_truncation_changes_inputs_and_keeps_labels(excerpts):
    from personalign.encoder import PersonaContrastiveCollator

    text = "one two  three\nfour five six seven eight"
    rng = random.Random(0)
    cuts = {truncate_text(text, rng, 0.5) for _ in range(50)}
    assert len(cuts) > 5 and text in cuts | {text}
    for cut in cuts:
        assert cut in text and len(cut.split()) >= 4  # a contiguous window of at least half of the 8 words
    assert truncate_text("single", rng) == "single"

    rows = contrastive_rows(excerpts, num_negatives=1, seed=0).select(range(16))
    features = [dict(row) for row in rows]
    collator = PersonaContrastiveCollator(preprocess_fn=None, truncation_probability=1.0, seed=1)
    augmented = collator.augment(features)
    assert [r["persona_id"] for r in augmented] == [r["persona_id"] for r in features]
    assert [r["negative_persona_ids"] for r in augmented] == [r["negative_persona_ids"] for r in features]
    changed = sum(a["anchor"] != f["anchor"] for a, f in zip(augmented, features, strict=True))
    assert changed >= 8
    assert all(a["anchor"] in f["anchor"] for a, f in zip(augmented, features, strict=True))
    untouched = PersonaContrastiveCollator(preprocess_fn=None, truncation_probability=0.0).augment(features)
    assert untouched == features


def test_collator_tokenizes_text_columns_only():
    from personalign.encoder import PersonaContrastiveCollator

    seen = []

    def preprocess(texts, prompt=None, task=None):
        seen.append(list(texts))
        return {"input_ids": [[len(t)] for t in texts]}

    collator = PersonaContrastiveCollator(preprocess_fn=preprocess)
    batch = collator([{"anchor": "a", "positive": "bb", "persona_id": "p", "negative_persona_ids": ["q"]}])
    assert sorted(batch) == ["anchor_input_ids", "positive_input_ids"]
    assert seen == [["a"], ["bb"]]


def test_retrieval_metrics_by_hand():
    ids = ["a", "a", "b", "b"]
    perfect = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    metrics = retrieval_metrics(perfect, ids, ks=(1, 2))
    assert metrics["recall@1"] == metrics["mrr"] == 1.0 and metrics["num_queries"] == 4
    assert metrics["chance_recall@1"] == pytest.approx(1 / 3)
    # Constant embeddings: every candidate ties, and ties count against the query.
    constant = retrieval_metrics(np.ones((4, 2)), ids, ks=(1, 2, 3))
    assert constant["recall@1"] == constant["recall@2"] == 0.0 and constant["recall@3"] == 1.0
    assert constant["mrr"] == pytest.approx(1 / 3)
    # Cosines: 0-1 .6, 0-2 .8, 0-3 0, 1-2 .96, 1-3 .8, 2-3 .6. Partners rank 2, 3, 3 and 2.
    mixed = np.array([[1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1]])
    m = retrieval_metrics(mixed, ids, ks=(1, 2))
    assert m["recall@1"] == 0.0 and m["recall@2"] == 0.5
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3 + 1 / 2) / 4)
    assert pair_auc(perfect, ids) == 1.0
    # Same-persona cosines 0 and 0.02 against different-persona ones ~1, 0.01, 0.01, ~1: 2 wins of 8 comparisons.
    assert pair_auc(np.array([[1, 0], [0, 1], [1, 0.01], [0.01, 1]]), ids) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="persona_ids has 3 entries for 4"):
        retrieval_metrics(perfect, ids[:3])
    with pytest.raises(ValueError, match="two excerpts"):
        retrieval_metrics(perfect, ["a", "b", "c", "d"])


def test_split_personas_holds_out_whole_personas(excerpts):
    train, test = split_personas(excerpts, 0.25, seed=0)
    assert not set(train["persona_id"]) & set(test["persona_id"])
    assert len(train) + len(test) == len(excerpts)
    assert len(set(test["persona_id"])) == round(len(set(excerpts["persona_id"])) * 0.25)
