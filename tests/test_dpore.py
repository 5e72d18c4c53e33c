"""DPORETrainer: DPO equivalence at lambda = 0, the regularizer against a hand computation, refusals, checkpoints,
resume, PEFT, and learning on counterfactual data."""

import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer

from personalign import Persona, pba_messages, preference_example
from personalign.data.synthetic import alignx_rows, pair_adjacent_epochs
from personalign.trainers import DPOREConfig, DPORETrainer, PersonaProjectionHead

COMMON = dict(
    per_device_train_batch_size=4,
    per_device_eval_batch_size=16,
    learning_rate=1e-3,
    lr_scheduler_type="constant",
    beta=0.1,
    max_length=384,
    use_cpu=True,
    bf16=False,
    gradient_checkpointing=False,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
    disable_tqdm=True,
    seed=0,
)


def persona_rows(num_rows, seed, conversational=True):
    rows = []
    for row in alignx_rows(num_rows, seed):
        persona = Persona.from_alignx_row(row)
        if conversational:
            example = preference_example(
                pba_messages(row["prompt"], persona.profile_text()), row["chosen"], row["rejected"]
            )
        else:
            example = {
                "prompt": f"User preferences: {persona.profile_text()}\nPost: {row['prompt']}\nReply:",
                "chosen": " " + row["chosen"],
                "rejected": " " + row["rejected"],
            }
        example["persona_embedding"] = [value - 0.5 for value in persona.preference_vector()]
        rows.append(example)
    return rows


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path):
    return AutoTokenizer.from_pretrained(tiny_lm_path)


def _log(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry and "train_runtime" not in entry]


def _run(trainer_class, config_class, path, tokenizer, data, tmp_path, peft_config=None, **settings):
    args = config_class(output_dir=str(tmp_path / trainer_class.__name__), **{**COMMON, **settings})
    model = AutoModelForCausalLM.from_pretrained(path)
    kwargs = {"peft_config": peft_config} if peft_config is not None else {}
    trainer = trainer_class(model=model, args=args, train_dataset=data, processing_class=tokenizer, **kwargs)
    trainer.train()
    return trainer


@pytest.mark.parametrize("variant", ["plain", "conversational", "lora"])
def test_lambda_zero_equals_dpo(tiny_lm_path, tokenizer, tmp_path, variant):
    data = Dataset.from_list(persona_rows(12, seed=3, conversational=variant != "plain"))
    peft_config = None
    if variant == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    settings = dict(max_steps=3)
    dpo = _run(
        DPOTrainer,
        DPOConfig,
        tiny_lm_path,
        tokenizer,
        data.remove_columns("persona_embedding"),
        tmp_path,
        peft_config,
        **settings,
    )
    dpore = _run(
        DPORETrainer, DPOREConfig, tiny_lm_path, tokenizer, data, tmp_path, peft_config, re_lambda=0.0, **settings
    )
    assert _log(dpore, "loss") == _log(dpo, "loss") and len(_log(dpo, "loss")) == 3
    assert _log(dpore, "grad_norm") == _log(dpo, "grad_norm")
    for (name, a), (_, b) in zip(dpo.model.named_parameters(), dpore.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_rows_without_persona_embedding_are_plain_dpo(tiny_lm_path, tokenizer, tmp_path):
    rows = persona_rows(12, seed=3)
    data = Dataset.from_list([{**row, "persona_embedding": None} for row in rows])
    dpo = _run(
        DPOTrainer, DPOConfig, tiny_lm_path, tokenizer, data.remove_columns("persona_embedding"), tmp_path, max_steps=2
    )
    dpore = _run(
        DPORETrainer,
        DPOREConfig,
        tiny_lm_path,
        tokenizer,
        data,
        tmp_path,
        re_lambda=5.0,
        re_embedding_dim=90,
        max_steps=2,
    )
    assert _log(dpore, "loss") == _log(dpo, "loss")
    assert _log(dpore, "re/persona_rows") == [0.0, 0.0]
    policy = {n: p for n, p in dpore.model.named_parameters() if "dpore_projection" not in n}
    for name, parameter in dpo.model.named_parameters():
        assert torch.equal(parameter, policy[name]), name


@pytest.mark.parametrize("placement", ["margin", "additive"])
def test_regularizer_matches_the_seed_formula_by_hand(tiny_lm_path, tokenizer, tmp_path, placement):
    lam, beta = 2.0, 0.1
    data = Dataset.from_list(persona_rows(8, seed=5))
    args = DPOREConfig(output_dir=str(tmp_path), re_lambda=lam, re_placement=placement, **{**COMMON, "beta": beta})
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy away from the reference, so the DPO term is not 0
        for name, parameter in trainer.model.named_parameters():
            if "dpore_projection" not in name:
                parameter.add_(0.02 * torch.randn_like(parameter))
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch)).item()

    policy = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    policy.load_state_dict({k: v for k, v in trainer.model.state_dict().items() if "dpore_projection" not in k})
    reference = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]

    def sequence_logps(model):
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
        token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return (token_logps * completion[:, 1:]).sum(dim=1)

    with torch.no_grad():
        pol_c, pol_r = sequence_logps(policy).chunk(2)
        ref_c, ref_r = sequence_logps(reference).chunk(2)
        hidden = policy.model(input_ids=ids, attention_mask=attention).last_hidden_state
        mask = completion.unsqueeze(-1).float()
        pooled_c, pooled_r = ((hidden * mask).sum(1) / mask.sum(1)).chunk(2)
        head = trainer.projection_head
        sim_c = F.cosine_similarity(pooled_c, head(batch["persona_embedding_chosen"]), dim=-1)
        sim_r = F.cosine_similarity(pooled_r, head(batch["persona_embedding_rejected"]), dim=-1)
        dpo_logits = beta * ((pol_c - ref_c) - (pol_r - ref_r))
        if placement == "margin":  # L_total of the DPORE paper, as a loss
            expected = (-F.logsigmoid(dpo_logits + lam * (sim_c - sim_r))).mean().item()
        else:
            expected = (-F.logsigmoid(dpo_logits)).mean().item() - lam * (sim_c - sim_r).mean().item()
    assert abs(dpo_logits).max() > 1e-3 and abs(sim_c - sim_r).max() > 1e-3  # both terms are really there
    assert loss == pytest.approx(expected, abs=2e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(use_liger_kernel=True), "does not support use_liger_kernel=True"),
        (dict(sync_ref_model=True), "does not support sync_ref_model=True"),
        (dict(padding_free=True), "does not support padding_free=True"),
        (dict(loss_type=["hinge"]), "re_placement='margin' puts the regularizer inside"),
    ],
)
def test_unsupported_configurations_are_refused(tiny_lm_path, settings, message):
    args = DPOREConfig(output_dir="unused", **{**COMMON, **settings})
    with pytest.raises(ValueError, match=message):
        DPORETrainer(model=str(tiny_lm_path), args=args, train_dataset=Dataset.from_list(persona_rows(2, 0)))


def test_config_checks_and_a_missing_embedding_source(tiny_lm_path, tokenizer):
    with pytest.raises(ValueError, match="re_placement must be one of"):
        DPOREConfig(output_dir="unused", re_placement="inside", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="re_similarity must be one of"):
        DPOREConfig(output_dir="unused", re_similarity="l2", use_cpu=True, bf16=False)
    data = Dataset.from_list(persona_rows(4, 0)).remove_columns("persona_embedding")
    args = DPOREConfig(output_dir="unused", **COMMON)
    with pytest.raises(ValueError, match="DPORE needs persona embeddings"):
        DPORETrainer(model=str(tiny_lm_path), args=args, train_dataset=data, processing_class=tokenizer)


def test_checkpoints_load_as_causal_lm_and_resume_on_the_same_trajectory(tiny_lm_path, tokenizer, tmp_path):
    data = Dataset.from_list(persona_rows(16, seed=7))
    settings = dict(max_steps=4, save_strategy="steps", save_steps=2, re_lambda=5.0)
    straight = _run(DPORETrainer, DPOREConfig, tiny_lm_path, tokenizer, data, tmp_path / "a", **settings)

    class StopAtTwo(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 2

    args = DPOREConfig(output_dir=str(tmp_path / "b"), **{**COMMON, **settings})
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    interrupted = DPORETrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[StopAtTwo()]
    )
    interrupted.train()
    checkpoint = tmp_path / "b" / "checkpoint-2"
    assert (checkpoint / "dpore_projection.safetensors").is_file()
    _, info = AutoModelForCausalLM.from_pretrained(checkpoint, output_loading_info=True)
    assert not any(info.values()), info  # a plain causal LM: no missing, unexpected or mismatched keys
    card = (tmp_path / "b" / "README.md").read_text()
    assert "DPORE" in card and "| lambda (`re_lambda`) | 5.0 |" in card and "Context-Aware Alignment" in card

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    resumed = DPORETrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    head_before = {k: v.clone() for k, v in resumed.projection_head.state_dict().items()}
    resumed.train(resume_from_checkpoint=True)
    saved_head = PersonaProjectionHead.from_pretrained(checkpoint).state_dict()
    assert any(not torch.equal(head_before[k], saved_head[k]) for k in saved_head)  # the head was restored...
    assert _log(resumed, "loss")[-2:] == pytest.approx(_log(straight, "loss")[-2:], abs=1e-6)  # ...and the run
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_lora_trains_the_head_with_the_adapters_and_other_options_run(tiny_lm_path, tokenizer, tmp_path):
    from peft import LoraConfig

    data = Dataset.from_list(persona_rows(16, seed=9))
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    args = DPOREConfig(output_dir=str(tmp_path / "lora"), max_steps=2, re_lambda=5.0, **COMMON)
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert any("dpore_projection" in n for n in changed) and any("lora_" in n for n in changed)
    assert not any("lora_" not in n and "dpore_projection" not in n for n in changed)  # the base stays frozen
    trainer.save_model(str(tmp_path / "lora-final"))
    assert (tmp_path / "lora-final" / "dpore_projection.safetensors").is_file()

    # Gradient checkpointing, gradient accumulation, precomputed reference log-probs and the eval loop together.
    args = DPOREConfig(
        output_dir=str(tmp_path / "options"),
        max_steps=2,
        re_lambda=5.0,
        **{
            **COMMON,
            "gradient_checkpointing": True,
            "gradient_accumulation_steps": 2,
            "precompute_ref_log_probs": True,
        },
    )
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        eval_dataset=data,
        processing_class=tokenizer,
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert {"eval_re/sim_chosen", "eval_re/sim_rejected", "eval_re/term"} <= set(metrics)
    assert all(math.isfinite(v) for v in _log(trainer, "loss"))


def test_persona_encoder_embeds_each_row_once(tiny_lm_path, tiny_encoder_path, tokenizer, tmp_path):
    from personalign import PersonaEncoder

    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path)
    calls = []
    original = encoder.encode

    def counting_encode(texts, **kwargs):
        calls.append(len(texts))
        return original(texts, **kwargs)

    encoder.encode = counting_encode
    rows = persona_rows(8, seed=11)
    for row in rows:
        del row["persona_embedding"]
    path = tmp_path / "rows.parquet"
    Dataset.from_list(rows).to_parquet(str(path))
    data = Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache"))
    args = DPOREConfig(output_dir=str(tmp_path / "out"), max_steps=2, re_lambda=5.0, **COMMON)
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        persona_encoder=encoder,
    )
    assert sum(calls) == 16  # G(m, chosen) and G(m, rejected) for each of the 8 rows, during preparation
    assert {"persona_embedding_chosen", "persona_embedding_rejected"} <= set(trainer.train_dataset.column_names)
    trainer.train()
    assert sum(calls) == 16  # never per training step
    again = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        persona_encoder=encoder,
    )
    assert sum(calls) == 16 and len(again.train_dataset) == 8  # the cached embeddings, by fingerprint


@pytest.mark.learning
def test_dpore_learns_counterfactual_personas_and_beats_dpo(
    tiny_lm_path, tokenizer, tmp_path, learning_seed, check_learning
):
    """512 counterfactual PBA rows x 3 epochs (96 steps, batch 16, pairs kept together), 256 held-out rows; both start
    at 0.0 (ties). Measured over learning seeds 0-3 (`make margins`): DPORE (margin, lambda 1) 0.77-0.78; DPORE minus
    DPO -0.035 to +0.102 (mean +0.034). At this budget DPORE is not reliably ahead of DPO on one seed, so the test
    asserts only that it is not far behind; the seeds-averaged comparison belongs to a benchmark."""
    train = Dataset.from_list(
        pair_adjacent_epochs(persona_rows(512, seed=2 * learning_seed), epochs=3, seed=learning_seed)
    )
    held_out = Dataset.from_list(persona_rows(256, seed=2 * learning_seed + 1))
    settings = dict(
        COMMON,
        seed=learning_seed,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        num_train_epochs=1,
        train_sampling_strategy="sequential",
        max_length=512,
        logging_steps=32,
    )
    accuracies = {}
    for name, trainer_class, config_class, data, evaluation, extra in (
        (
            "dpo",
            DPOTrainer,
            DPOConfig,
            train.remove_columns("persona_embedding"),
            held_out.remove_columns("persona_embedding"),
            {},
        ),
        ("dpore", DPORETrainer, DPOREConfig, train, held_out, {"re_lambda": 1.0}),
    ):
        args = config_class(output_dir=str(tmp_path / name), **settings, **extra)
        model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
        trainer = trainer_class(
            model=model, args=args, train_dataset=data, eval_dataset=evaluation, processing_class=tokenizer
        )
        trainer.train()
        accuracies[name] = trainer.evaluate()["eval_rewards/accuracies"]
    check_learning("DPORE held-out accuracy", accuracies["dpore"], 0.7)
    check_learning("DPORE minus DPO held-out accuracy", accuracies["dpore"] - accuracies["dpo"], -0.08)


def test_similarity_functions_by_hand():
    from personalign.trainers import representation_similarities

    chosen, rejected = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
    target = torch.tensor([[3.0, 4.0]])
    cosine = representation_similarities(chosen, rejected, target, target)
    assert torch.allclose(cosine[0], torch.tensor([1.0])) and torch.allclose(cosine[1], torch.tensor([0.6]))
    dot = representation_similarities(chosen, rejected, target, target, "dot")
    assert dot[0].item() == 25.0 and dot[1].item() == 3.0
