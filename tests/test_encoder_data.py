"""Persona-encoder data, sampler, augmentation and metrics: pure logic, no model."""

import random

import numpy as np
import pytest
from datasets import Dataset

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
from personalign.personas import Persona, render_history


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


def test_aloe_and_table_excerpts_and_their_errors():
    dialogues = [
        {"profile": "P1", "personality": "curious", "conversations": [{"role": "user", "content": "Hi"}, "Hello!"]},
        {"profile": "P1", "personality": "curious", "conversations": [{"user": "Why?", "assistant": "Because."}]},
        {"profile": "P2", "personality": "terse", "conversations": ["Ok."]},
    ]
    table = aloe_excerpts(dialogues)
    assert table["text"] == ["User: Hi\nHello!", "User: Why?\nAssistant: Because.", "Ok."]
    assert table["persona_id"][0] == table["persona_id"][1] != table["persona_id"][2]
    with pytest.raises(ValueError, match=r"dialogues.jsonl, row 0, column 'conversations', turn 0"):
        aloe_excerpts([{"profile": "a", "personality": "b", "conversations": [3]}], where="dialogues.jsonl")
    with pytest.raises(ValueError, match=r"row 0: missing column\(s\) \['personality'\]"):
        aloe_excerpts([{"profile": "a", "conversations": []}])

    plain = table_excerpts(Dataset.from_dict({"user": [1, 1, 2], "body": ["a b", "c d", "e f"]}), "user", "body")
    assert plain["persona_id"] == ["1", "1", "2"]
    with pytest.raises(ValueError, match=r"t.csv: missing column\(s\) \['body'\]"):
        table_excerpts(Dataset.from_dict({"user": [1]}), "user", "body", where="t.csv")
    with pytest.raises(ValueError, match=r"t.jsonl, row 1, column 'text': expected a value"):
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
