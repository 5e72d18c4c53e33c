"""Log-prob scoring: agrees with TRL's DPOTrainer, shared-prompt scoring equals the naive computation, on-disk cache."""

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from personalign import Persona, pba_messages, preference_example
from personalign.data.synthetic import alignx_rows
from personalign.evaluation import (
    compute_alignment_metrics,
    score_pairs,
    score_policy_and_reference,
    tokenize_preference_example,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path):
    return AutoTokenizer.from_pretrained(tiny_lm_path)


@pytest.fixture(scope="module")
def models(tiny_lm_path):
    """The tiny model as policy and a perturbed copy as reference: margins of both signs, no ties."""
    policy = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    reference = copy.deepcopy(policy)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return policy, reference


@pytest.fixture(scope="module")
def conversational_rows():
    return [
        preference_example(
            pba_messages(row["prompt"], Persona.from_alignx_row(row).profile_text()), row["chosen"], row["rejected"]
        )
        for row in alignx_rows(24, seed=3)
    ]


@pytest.fixture(scope="module")
def text_rows(tokenizer):
    rows = [
        {"prompt": row["prompt"], "chosen": " " + row["chosen"], "rejected": " " + row["rejected"]}
        for row in alignx_rows(6, seed=4)
    ]
    # A one-token prompt leaves an empty prefix for the first pass; an explicit EOS must not be doubled.
    one_token = next(word for word in ("the", "a", "I", "Hi") if len(tokenizer(word)["input_ids"]) == 1)
    rows.append({"prompt": one_token, "chosen": " plan is fine.", "rejected": " plan" + tokenizer.eos_token})
    return rows


def dpo_trainer(policy, reference, tokenizer, rows, output_dir, max_length=None):
    args = DPOConfig(
        output_dir=str(output_dir),
        per_device_eval_batch_size=8,  # 24 rows: equal batches, so the mean of batch means is the overall mean
        max_length=max_length,
        beta=0.1,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
    )
    dataset = Dataset.from_list(rows)
    return DPOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
    )


def trl_row_logps(trainer, model):
    """Per-row log-probs as DPOTrainer computes them (its collator and fused LM head)."""
    dataset = trainer.eval_dataset
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    chosen, rejected = trainer.compute_ref_log_probs(model, batch)
    return chosen.double().numpy(), rejected.double().numpy()


@pytest.mark.parametrize("max_length", [None, "truncating"])
def test_agrees_with_dpo_trainer_evaluate(models, tokenizer, conversational_rows, tmp_path, max_length):
    policy, reference = models
    if max_length == "truncating":  # cuts most responses, never a prompt (DPOTrainer would drop that row)
        prompts = [len(tokenize_preference_example(row, tokenizer)["prompt_ids"]) for row in conversational_rows]
        max_length = max(prompts) + 4
    trainer = dpo_trainer(policy, reference, tokenizer, conversational_rows, tmp_path, max_length)

    # Same tokenization as TRL's _prepare_dataset.
    for row, prepared in zip(conversational_rows, trainer.eval_dataset, strict=True):
        ours = tokenize_preference_example(row, tokenizer, max_length)
        cut = None if max_length is None else max_length - len(prepared["prompt_ids"])
        assert ours == {
            "prompt_ids": prepared["prompt_ids"],
            "chosen_ids": prepared["chosen_ids"][:cut],
            "rejected_ids": prepared["rejected_ids"][:cut],
        }

    metrics = trainer.evaluate()
    scores = score_policy_and_reference(
        trainer.model,
        trainer.ref_model,
        tokenizer,
        Dataset.from_list(conversational_rows),
        batch_size=5,
        max_length=max_length,
    )
    for model, prefix in ((trainer.model, "policy"), (trainer.ref_model, "reference")):
        chosen, rejected = trl_row_logps(trainer, model)
        np.testing.assert_allclose(scores[f"{prefix}_chosen_logps"], chosen, rtol=0, atol=1e-4)
        np.testing.assert_allclose(scores[f"{prefix}_rejected_logps"], rejected, rtol=0, atol=1e-4)

    ours = compute_alignment_metrics(**scores, beta=0.1)
    assert 0 < ours["num_correct"] < len(conversational_rows)  # a non-trivial accuracy
    # Untruncated, policy and reference always differ. Cut to a few tokens, some responses become identical: exact
    # ties (margin 0 under both models), which TRL and the metric both count as not correct.
    assert (ours["num_ties"] == 0) if max_length is None else (ours["num_ties"] > 0)
    assert ours["alignment_accuracy"] == metrics["eval_rewards/accuracies"]
    assert ours["reward_margin"] == pytest.approx(metrics["eval_rewards/margins"], abs=1e-5)
    assert np.mean(scores["policy_chosen_logps"]) == pytest.approx(metrics["eval_logps/chosen"], abs=1e-4)
    assert np.mean(scores["policy_rejected_logps"]) == pytest.approx(metrics["eval_logps/rejected"], abs=1e-4)


def test_plain_text_rows_match_dpo_trainer_tokenization(models, tokenizer, text_rows, tmp_path):
    trainer = dpo_trainer(*models, tokenizer, text_rows, tmp_path)
    for row, prepared in zip(text_rows, trainer.eval_dataset, strict=True):
        ours = tokenize_preference_example(row, tokenizer)
        assert ours == {key: prepared[key] for key in ("prompt_ids", "chosen_ids", "rejected_ids")}
        assert ours["chosen_ids"][-1] == ours["rejected_ids"][-1] == tokenizer.eos_token_id
    assert tokenize_preference_example(text_rows[-1], tokenizer)["rejected_ids"].count(tokenizer.eos_token_id) == 1
    # Rows without a prompt column: the shared start is extracted, as TRL does.
    implicit = {
        "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
    }
    explicit = preference_example([{"role": "user", "content": "Hi"}], "Hello!", "Go away.")
    assert tokenize_preference_example(implicit, tokenizer) == tokenize_preference_example(explicit, tokenizer)


def naive_logps(model, tokenizer, rows):
    """One row at a time, prompt+response in full, log-softmax over all logits: no batching, padding or cache."""
    result = []
    with torch.no_grad():
        for row in rows:
            tokens = tokenize_preference_example(row, tokenizer)
            pair = []
            for completion in (tokens["chosen_ids"], tokens["rejected_ids"]):
                ids = torch.tensor([tokens["prompt_ids"] + completion])
                logps = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                per_token = logps.gather(-1, ids[0, 1:, None])[:, 0].double()
                pair.append(per_token[len(tokens["prompt_ids"]) - 1 :].sum().item())
            result.append(pair)
    return np.array(result)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_shared_prompt_scoring_equals_naive_scoring(models, tokenizer, conversational_rows, text_rows, batch_size):
    policy, _ = models
    for data in (conversational_rows[:10], text_rows):
        expected = naive_logps(policy, tokenizer, data)
        shared = score_pairs(policy, tokenizer, data, batch_size=batch_size)
        full = score_pairs(policy, tokenizer, data, batch_size=batch_size, reuse_prompt=False)
        for scores in (shared, full):
            got = np.column_stack([scores["chosen_logps"], scores["rejected_logps"]])
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert not policy.training


def test_training_mode_is_restored_and_bad_rows_are_named(models, tokenizer, conversational_rows):
    policy, _ = models
    policy.train()
    try:
        score_pairs(policy, tokenizer, conversational_rows[:2])
        assert policy.training
    finally:
        policy.eval()
    with pytest.raises(
        ValueError, match=r"dataset, row 1 \(0-based\): The prompt has \d+ tokens, which fills max_length=8"
    ):
        score_pairs(
            policy,
            tokenizer,
            [{"prompt": "the", "chosen": " plan", "rejected": " day"}, conversational_rows[0]],
            max_length=8,
        )
    with pytest.raises(ValueError, match=r"row 0 \(0-based\): The prompt tokenizes to no token"):
        score_pairs(policy, tokenizer, [{"prompt": "", "chosen": "b", "rejected": "c"}])
    with pytest.raises(ValueError, match=r"pairs\.jsonl, line 3: The prompt tokenizes to no token"):
        score_pairs(
            policy,
            tokenizer,
            [{"prompt": "", "chosen": "b", "rejected": "c"}],
            names=lambda i: f"pairs.jsonl, line {i + 3}",
        )
    with pytest.raises(ValueError, match="The dataset is empty"):
        score_pairs(policy, tokenizer, [])


def test_reference_cache_round_trip(models, tokenizer, conversational_rows, tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    _, reference = models
    rows = conversational_rows[:6]
    first = score_pairs(reference, tokenizer, rows, cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".safetensors"]  # one file, no partial leftovers
    stored = load_file(str(files[0]))
    np.testing.assert_array_equal(stored["chosen_logps"], first["chosen_logps"])
    assert stored["chosen_logps"].dtype == np.float64

    # A hit never runs the model, and returns the very same numbers.
    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran although the log-probs are cached")

    with monkeypatch.context() as patch:
        patch.setattr(reference, "forward", no_forward)
        assert score_pairs(reference, tokenizer, rows, cache_dir=tmp_path, batch_size=2) == first
        with pytest.raises(AssertionError, match="the model ran"):  # another dataset is another key
            score_pairs(reference, tokenizer, conversational_rows[6:8], cache_dir=tmp_path)

    # Other weights are another key: recomputed into a second file, the first left alone.
    changed = copy.deepcopy(reference)
    with torch.no_grad():
        changed.lm_head.weight[0, 0] += 1.0
    score_pairs(changed, tokenizer, rows, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    # An explicit fingerprint replaces the weight digest.
    score_pairs(reference, tokenizer, rows, cache_dir=tmp_path, model_fingerprint="org/model@abc123")
    assert len(list(tmp_path.iterdir())) == 3

    # A damaged file is recomputed and replaced, never trusted.
    for file in tmp_path.iterdir():
        file.write_bytes(b"garbage")
    assert score_pairs(reference, tokenizer, rows, cache_dir=tmp_path) == first

    # Through score_policy_and_reference, the cache serves the reference side only.
    scores = score_policy_and_reference(
        reference, reference, tokenizer, rows, reference_cache_dir=tmp_path, suffix="_reversed"
    )
    assert scores["reference_chosen_logps_reversed"] == first["chosen_logps"]
    assert scores["policy_rejected_logps_reversed"] == pytest.approx(first["rejected_logps"], abs=1e-9)


@pytest.mark.parametrize("window", [16, 512])
def test_sliding_window_models_stay_exact(tokenizer, conversational_rows, text_rows, window):
    # Prompts of ~60 tokens: a window of 16 makes the shared-prompt pass fall back to full sequences, 512 does not.
    from transformers import MistralConfig

    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=window,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    rows = conversational_rows[:6] + text_rows[-2:]
    scores = score_pairs(model, tokenizer, rows, batch_size=4)
    got = np.column_stack([scores["chosen_logps"], scores["rejected_logps"]])
    np.testing.assert_allclose(got, naive_logps(model, tokenizer, rows), rtol=0, atol=1e-5)
