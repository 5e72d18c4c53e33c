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
from personalign.models.projection_head import PersonaProjectionHead
from personalign.trainers import DPOREConfig, DPORETrainer

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
        (dict(loss_type=["hinge"], re_placement="margin"), "re_placement='margin' puts the regularizer inside"),
        (
            dict(loss_type=["sigmoid", "sft"], re_placement="margin"),
            r"loss_type=\['sigmoid', 'sft'\] \(needs \['sigmoid'\] alone\)",
        ),
        (dict(use_weighting=True, re_placement="margin"), "use_weighting=True changes"),
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
    assert (checkpoint / "projection_head" / "model.safetensors").is_file()
    _, info = AutoModelForCausalLM.from_pretrained(checkpoint, output_loading_info=True)
    assert not any(info.values()), info  # a plain causal LM: no missing, unexpected or mismatched keys
    card = (tmp_path / "b" / "README.md").read_text()
    assert "DPORE" in card and "| lambda (`re_lambda`) | 5.0 |" in card and "Context-Aware Alignment" in card

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    resumed = DPORETrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    head_before = {k: v.clone() for k, v in resumed.projection_head.state_dict().items()}
    resumed.train(resume_from_checkpoint=True)
    saved_head = PersonaProjectionHead.from_pretrained(checkpoint, subfolder="projection_head").state_dict()
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
    head_before = {n: p.clone() for n, p in trainer.projection_head.state_dict().items()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert any("lora_" in n for n in changed) and not any("lora_" not in n for n in changed)  # the base stays frozen
    assert any(not torch.equal(head_before[n], p) for n, p in trainer.projection_head.state_dict().items())
    trainer.save_model(str(tmp_path / "lora-final"))
    assert (tmp_path / "lora-final" / "projection_head" / "model.safetensors").is_file()

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


# ------------------------------------------------------------------------------- the margin loss, computed once
def perturbed_trainer(tiny_lm_path, tokenizer, tmp_path, rows=8, peft_config=None, **settings):
    """A DPORE trainer whose policy has moved away from its reference, so the DPO term is not 0."""
    args = DPOREConfig(output_dir=str(tmp_path), **{**COMMON, **settings})
    kwargs = {"peft_config": peft_config} if peft_config is not None else {}
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=Dataset.from_list(persona_rows(rows, seed=5)),
        processing_class=tokenizer,
        **kwargs,
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in trainer.model.named_parameters():
            if "dpore_projection" not in name and (peft_config is None or "lora_" in name):
                parameter.add_(0.02 * torch.randn_like(parameter))
    return trainer


def without_persona(batch):
    return {
        k: v
        for k, v in batch.items()
        if k not in ("persona_embedding_chosen", "persona_embedding_rejected", "persona_mask")
    }


def reference_margin_loss(trainer, batch, reference, beta, lam, weight):
    """The old formulation of DPORE's margin loss, from the DPORE paper's L_total (§3.3): TRL's own loss
    (`w * mean(-logsig(.))`), minus its sigmoid term, plus L_total, with the DPO logits and d computed by hand from
    full logits and a separate backbone pass. Returns `(loss, dpo_logits, d, correction)`, in float32, so the same
    code serves under bf16 autocast (tests/test_gpu.py)."""
    model = trainer.model
    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]

    def sequence_logps(lm):
        logits = lm(input_ids=ids, attention_mask=attention).logits[:, :-1]
        token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return (token_logps * completion[:, 1:]).sum(dim=1)

    trl_loss = DPOTrainer.compute_loss(trainer, model, without_persona(batch))
    pol_c, pol_r = sequence_logps(model).chunk(2)
    with torch.no_grad():
        ref_c, ref_r = sequence_logps(reference).chunk(2)
    hidden = model.model(input_ids=ids, attention_mask=attention).last_hidden_state.float()
    mask = completion.unsqueeze(-1).float()
    pooled_c, pooled_r = ((hidden * mask).sum(1) / mask.sum(1)).chunk(2)
    head = trainer.projection_head
    d = F.cosine_similarity(pooled_c, head(batch["persona_embedding_chosen"]).float(), dim=-1) - F.cosine_similarity(
        pooled_r, head(batch["persona_embedding_rejected"]).float(), dim=-1
    )
    logits = beta * ((pol_c - ref_c) - (pol_r - ref_r))
    correction = -F.logsigmoid(logits + lam * d) - -F.logsigmoid(logits)  # L_total minus TRL's sigmoid term
    return trl_loss.float() + weight * correction.mean(), logits, d, correction


@pytest.mark.parametrize(("beta", "lam", "weight"), [(0.1, 2.0, 1.0), (0.5, 5.0, 0.5), (2.0, 0.5, 3.0)])
def test_margin_loss_equals_the_subtract_and_readd_formulation_with_its_gradient(
    tiny_lm_path, tokenizer, tmp_path, beta, lam, weight
):
    """DPORE now computes L_total once from the captured log-probs; before, it took TRL's loss, subtracted its sigmoid
    term and added L_total back. The old formulation is written here from the DPORE paper's formula (§3.3), with its
    DPO logits and d computed by hand from full logits and a separate backbone pass; both give the same loss and the
    same gradient for every parameter (policy and projection head)."""
    trainer = perturbed_trainer(
        tiny_lm_path, tokenizer, tmp_path, beta=beta, re_lambda=lam, loss_weights=[weight], re_placement="margin"
    )
    model = trainer.model
    model.eval()
    batch = dict(next(iter(trainer.get_train_dataloader())))
    parameters = [p for p in model.parameters() if p.requires_grad]

    new = trainer.compute_loss(model, dict(batch))
    new_grads = torch.autograd.grad(new, parameters)

    old, logits, d, correction = reference_margin_loss(
        trainer, batch, AutoModelForCausalLM.from_pretrained(tiny_lm_path), beta, lam, weight
    )
    old_grads = torch.autograd.grad(old, parameters)

    assert abs(logits).max() > 1e-3 and abs(d).max() > 1e-3 and abs(correction).max() > 1e-4  # all terms present
    assert new.item() == pytest.approx(old.item(), abs=1e-5)
    for (name, _), a, b in zip(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad], new_grads, old_grads, strict=True
    ):
        # Float32 noise only: the old formulation reads its logits from full logits, the new from the fused head.
        assert (a - b).abs().max() <= 1e-4 * b.abs().max(), name
    assert any(g.abs().sum() > 0 for g in new_grads[-2:])  # the head learns from the margin


# ------------------------------------------------------------------------------------------------------- hooks
def hook_counts(trainer, model):
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    reference = trainer.ref_model
    return (
        len(causal_lm.base_model._forward_hooks),
        len(causal_lm._forward_hooks),
        len(reference._forward_hooks) if reference is not None else 0,
    )


class RecordHooks(TrainerCallback):
    def __init__(self, count):
        self.count, self.seen = count, []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(self.count())


@pytest.mark.parametrize(
    ("settings", "during"),
    [
        (dict(re_lambda=0.0), (0, 0, 0)),  # plain DPO: no hook at all
        (dict(re_placement="additive"), (1, 0, 0)),  # the backbone's hidden states only
        (dict(re_placement="margin"), (1, 1, 1)),  # + policy and (separate) reference log-probs
        (dict(re_placement="margin", precompute_ref_log_probs=True), (1, 1, 0)),  # reference from the batch
    ],
)
def test_only_the_hooks_a_configuration_needs_and_none_after_training(
    tiny_lm_path, tokenizer, tmp_path, settings, during
):
    data = Dataset.from_list(persona_rows(8, seed=3))
    args = DPOREConfig(output_dir=str(tmp_path), max_steps=2, **{**COMMON, **settings})
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    trainer = DPORETrainer(model=model, args=args, train_dataset=data, eval_dataset=data, processing_class=tokenizer)
    record = RecordHooks(lambda: hook_counts(trainer, model))
    trainer.add_callback(record)
    assert hook_counts(trainer, model) == (0, 0, 0)  # nothing installed at construction
    trainer.train()
    assert record.seen == [during, during]
    assert hook_counts(trainer, model) == (0, 0, 0)  # removed when training ends
    trainer.evaluate()  # evaluation after training installs them again for its duration, and removes them
    assert hook_counts(trainer, model) == (0, 0, 0)


def test_two_trainers_on_one_model_never_stack_hooks(tiny_lm_path, tokenizer, tmp_path):
    data = Dataset.from_list(persona_rows(8, seed=3))
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    first, second = (
        DPORETrainer(
            model=model,
            args=DPOREConfig(output_dir=str(tmp_path / name), max_steps=2, **COMMON),
            train_dataset=data,
            processing_class=tokenizer,
        )
        for name in ("first", "second")
    )
    backbone_and_lm = lambda: hook_counts(second, model)[:2]  # noqa: E731
    assert backbone_and_lm() == (0, 0)
    with first.representation_hooks():
        assert backbone_and_lm() == (1, 1) and first.hooks.installed
        with second.representation_hooks():  # the second trainer takes the model over: still one set
            assert backbone_and_lm() == (1, 1) and second.hooks.installed and not first.hooks.installed
        record = RecordHooks(backbone_and_lm)
        second.add_callback(record)
        second.train()
        assert record.seen == [(1, 1), (1, 1)]
    assert backbone_and_lm() == (0, 0)
    first.train()  # and the first trains on the model again, with its own hooks, removed at the end
    assert backbone_and_lm() == (0, 0)
    assert all(math.isfinite(v) for v in _log(first, "loss") + _log(second, "loss"))


def test_hooks_are_removed_when_training_fails(tiny_lm_path, tokenizer, tmp_path):
    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    trainer = DPORETrainer(
        model=model,
        args=DPOREConfig(output_dir=str(tmp_path), max_steps=2, **COMMON),
        train_dataset=Dataset.from_list(persona_rows(8, seed=3)),
        processing_class=tokenizer,
        callbacks=[Boom()],
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert hook_counts(trainer, model) == (0, 0, 0) and not trainer.hooks.installed


# ------------------------------------------------------------------- TRL internals DPORETrainer relies on (pins)
# Numbered as in DPORETrainer's docstring. Each failure message names the internal that changed.
def test_trl_internal_1_prepare_dataset_signature():
    import inspect

    parameters = list(inspect.signature(DPOTrainer._prepare_dataset).parameters)
    assert parameters == ["self", "dataset", "processing_class", "args", "dataset_name"], (
        f"TRL internal 1 changed: DPOTrainer._prepare_dataset parameters are now {parameters}"
    )


def test_trl_internal_2_signature_columns_keep_the_embeddings(tiny_lm_path, tokenizer, tmp_path):
    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "persona_embedding" in (trainer._signature_columns or []), (
        "TRL internal 2 changed: DPOTrainer._set_signature_columns_if_needed no longer sets Trainer._signature_columns"
    )
    assert batch["persona_mask"].sum() == len(batch["persona_mask"]), (
        "TRL internal 2 changed: the persona embedding column no longer reaches the collator"
    )


@pytest.mark.parametrize("reference", ["ref_model", "peft", "precomputed"])
def test_trl_internals_3_5_6_7_forward_order_and_loss(tiny_lm_path, tokenizer, tmp_path, reference):
    """With the head's output zeroed, d = 0 and DPORE's margin loss, computed from the log-probs its hooks read, is
    TRL's own sigmoid loss on the same batch, exactly: the hooks took the policy and the reference from the right
    calls (internal 3), the batch layout is [chosen; rejected] (5), TRL's loss is the sigmoid term alone (6), and
    `ref_model` is None where the reference comes from elsewhere (7). The policy is moved away from the reference
    first, so mixing the two up changes the loss."""
    settings, peft_config = dict(loss_weights=[0.7], beta=0.3), None
    if reference == "peft":
        from peft import LoraConfig

        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    if reference == "precomputed":
        settings["precompute_ref_log_probs"] = True
    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path, peft_config=peft_config, **settings)
    assert (trainer.ref_model is None) == (reference != "ref_model"), (
        f"TRL internal 7 changed: DPOTrainer.ref_model is {type(trainer.ref_model).__name__} with a {reference} reference"
    )
    with torch.no_grad():
        for parameter in trainer.projection_head.parameters():
            parameter.zero_()
    batch = dict(next(iter(trainer.get_train_dataloader())))
    assert batch["input_ids"].shape[0] == 2 * batch["persona_mask"].shape[0] and "completion_mask" in batch, (
        "TRL internal 5 changed: the batch is no longer [chosen; rejected] rows with a completion_mask"
    )
    trainer.model.train()
    dpore = trainer.compute_loss(trainer.model, dict(batch))
    trl = DPOTrainer.compute_loss(trainer, trainer.model, without_persona(batch))
    assert abs(trl.item() - 0.7 * math.log(2)) > 1e-4  # the policy really differs from the reference
    assert torch.equal(dpore, trl), (
        f"TRL internals 3/6 changed: DPORE's L_total at d = 0 ({dpore.item()}) is not TRL's sigmoid loss "
        f"({trl.item()}) with a {reference} reference: the forward order in DPOTrainer._compute_loss or its loss moved"
    )


def test_trl_internal_3_changes_fail_loudly(tiny_lm_path, tokenizer, tmp_path, monkeypatch):
    """If TRL's loss stops running the policy forward first (or at all), DPORE raises instead of training on the
    wrong tensors."""
    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path)
    batch = dict(next(iter(trainer.get_train_dataloader())))
    original = DPOTrainer._compute_loss

    def reference_first(self, model, inputs, return_outputs):
        with torch.no_grad():
            model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return original(self, model, inputs, return_outputs)

    trainer.model.train()
    monkeypatch.setattr(DPOTrainer, "_compute_loss", reference_first)
    with pytest.raises(
        RuntimeError, match="relies on a TRL internal that has changed: the policy forward is the first"
    ):
        trainer.compute_loss(trainer.model, dict(batch))
    monkeypatch.setattr(DPOTrainer, "_compute_loss", lambda self, model, inputs, return_outputs: torch.tensor(0.0))
    with pytest.raises(RuntimeError, match="relies on a TRL internal that has changed: DPOTrainer's loss runs the"):
        trainer.compute_loss(trainer.model, dict(batch))


def test_trl_internal_4_fused_lm_head(tiny_lm_path, tokenizer, tmp_path):
    from trl.trainer.utils import add_fused_lm_head  # noqa: F401  (the public helper DPOTrainer patches with)

    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    ids, completion = batch["input_ids"], batch["completion_mask"]
    seen = []
    handle = trainer.model.base_model.register_forward_hook(lambda m, a, out: seen.append(out.last_hidden_state.shape))
    try:
        labels = ids.masked_fill(completion == 0, -100)
        with torch.no_grad():
            output = trainer.model(
                input_ids=ids, attention_mask=batch["attention_mask"], labels=labels, fused_lm_head=True
            )
    finally:
        handle.remove()
    assert seen and seen[0][:2] == ids.shape, (
        "TRL internal 4 changed: the fused LM head no longer runs model.base_model"
    )
    log_probs = getattr(output, "log_probs", None)
    assert log_probs is not None and log_probs.shape == (ids.shape[0], ids.shape[1] - 1), (
        "TRL internal 4 changed: the fused LM head's output has no log_probs of shape (2B, T - 1)"
    )
    assert torch.all(log_probs[completion[:, 1:] == 0] == 0), (
        "TRL internal 4 changed: log_probs are not 0 off the completion"
    )


def test_trl_internal_6_router_loss_rule_and_its_refusal(tiny_lm_path, tokenizer, tmp_path):
    """A Mixture-of-Experts policy: TRL adds its load-balancing loss by the rule `refuse_router_aux_loss` mirrors (the
    config's coefficient unless `router_aux_loss_coef` is set; 0 disables it), so the margin placement refuses it."""
    from transformers import MixtralConfig

    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_local_experts=4,
        num_experts_per_tok=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    assert config.router_aux_loss_coef > 0
    data = Dataset.from_list(persona_rows(4, seed=3, conversational=False))

    def trainer(trainer_class, config_class, **settings):
        torch.manual_seed(0)
        model, ref_model = AutoModelForCausalLM.from_config(config), AutoModelForCausalLM.from_config(config)
        args = config_class(output_dir=str(tmp_path), **{**COMMON, **settings})
        return trainer_class(
            model=model, ref_model=ref_model, args=args, train_dataset=data, processing_class=tokenizer
        )

    def loss(built):
        batch = {k: v for k, v in next(iter(built.get_train_dataloader())).items() if k != "persona_embedding"}
        return DPOTrainer.compute_loss(built, built.model, without_persona(batch)).item()

    with_router = loss(trainer(DPOTrainer, DPOConfig))
    without_router = loss(trainer(DPOTrainer, DPOConfig, router_aux_loss_coef=0.0))
    assert with_router != without_router, "TRL internal 6 changed: TRL no longer adds the MoE router loss by default"
    with pytest.raises(ValueError, match="no MoE load-balancing term"):
        trainer(DPORETrainer, DPOREConfig, re_placement="margin")
    # accepted: TRL's loss is the sigmoid term alone
    assert trainer(DPORETrainer, DPOREConfig, router_aux_loss_coef=0.0).args.re_placement == "margin"
    # accepted: TRL's loss is kept, router term included (and "auto" chooses it for this model)
    assert trainer(DPORETrainer, DPOREConfig, re_placement="additive").args.re_placement == "additive"
    assert trainer(DPORETrainer, DPOREConfig).args.re_placement == "additive"


def test_trl_internals_8_9_10_card_fingerprint_and_saving(tiny_lm_path, tokenizer, tmp_path):
    import inspect

    from transformers import PreTrainedModel, Trainer
    from trl.trainer.utils import hash_module

    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path)
    trainer.create_model_card(model_name="dpore-test")
    card = (tmp_path / "README.md").read_text()
    assert "@misc{dpore2025" in card and "- dpore" in card, (
        "TRL internal 8 changed: create_model_card no longer reads _paper['citation'] / _tag_names"
    )
    assert isinstance(Dataset.from_list([{"a": 1}])._fingerprint, str), "internal 9 changed: Dataset._fingerprint"
    assert isinstance(hash_module(trainer.projection_head), str), (
        "TRL internal 9 changed: trl.trainer.utils.hash_module"
    )
    assert hasattr(PreTrainedModel, "_keys_to_ignore_on_save"), "internal 10 changed: _keys_to_ignore_on_save"
    assert "_internal_call" in inspect.signature(Trainer.save_model).parameters, (
        "internal 10 changed: Trainer.save_model(output_dir, _internal_call)"
    )


# --------------------------------------------------------------------------- every TRL loss (issue 16, fault 1)
TRL_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
"""Every `loss_type` TRL 1.16's DPOTrainer computes (pinned against its source below)."""

TRL_LOSS_SETTINGS = {
    **{name: dict(loss_type=[name]) for name in TRL_LOSS_TYPES},
    "exo_pair": dict(loss_type=["exo_pair"], label_smoothing=0.1),  # exo_pair takes log(label_smoothing)
    "robust": dict(loss_type=["robust"], label_smoothing=0.1),
    "multi_loss": dict(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0]),
    "wpo": dict(use_weighting=True),
    "ld": dict(ld_alpha=0.5),
    "forward_kl": dict(f_divergence_type="forward_kl"),
    "js_divergence": dict(f_divergence_type="js_divergence"),
    "alpha_divergence": dict(f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.5),
}
"""The DPOConfig loss settings a drop-in DPOTrainer must take: each loss type, a weighted mix, WPO, LD and the
f-divergences."""


def test_the_loss_matrix_covers_every_trl_loss_type():
    import inspect
    import re

    computed = set(re.findall(r'loss_type == "(\w+)"', inspect.getsource(DPOTrainer._compute_loss)))
    assert computed == set(TRL_LOSS_TYPES), f"TRL's DPO loss types changed: {sorted(computed ^ set(TRL_LOSS_TYPES))}"


def perturbed_policy(path):
    """The tiny policy moved away from its reference (seeded), so every loss term is non-trivial."""
    model = AutoModelForCausalLM.from_pretrained(path)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return model


def full_sequence_logps(model, batch):
    """Summed completion log-probs per row, from the model's full logits (not TRL's fused head)."""
    ids, completion = batch["input_ids"], batch["completion_mask"]
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion[:, 1:]).sum(dim=1)


def hand_regulariser_difference(trainer, batch):
    """d = sim(y_c, h(G_c)) - sim(y_r, h(G_r)) per row (the DPORE paper's L_reg / lambda, §3.3), from a separate
    backbone pass, mean pooling and cosine similarity."""
    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    hidden = trainer.model.model(input_ids=ids, attention_mask=attention).last_hidden_state.float()
    mask = completion.unsqueeze(-1).float()
    pooled_c, pooled_r = ((hidden * mask).sum(1) / mask.sum(1)).chunk(2)
    head = trainer.projection_head
    return F.cosine_similarity(pooled_c, head(batch["persona_embedding_chosen"]), dim=-1) - F.cosine_similarity(
        pooled_r, head(batch["persona_embedding_rejected"]), dim=-1
    )


@pytest.mark.parametrize("name", list(TRL_LOSS_SETTINGS))
def test_every_trl_loss_is_stock_at_lambda_zero_and_stock_plus_the_regulariser_above(
    tiny_lm_path, tokenizer, tmp_path, name
):
    """Each TRL loss setting is accepted with the default placement ("auto"). On one batch and one set of weights:
    at lambda = 0 DPORE's loss is stock DPOTrainer's exactly; at lambda > 0 it is stock's loss - lambda * mean(d) for
    every non-sigmoid setting ("auto" chose "additive"), and the DPORE paper's L_total for the sigmoid loss
    ("margin")."""
    lam, settings = 0.5, TRL_LOSS_SETTINGS[name]
    data = Dataset.from_list(persona_rows(4, seed=5, conversational=False))
    common = {**COMMON, "max_length": 96, "beta": 0.2}

    def build(trainer_class, config_class, rows, **extra):
        args = config_class(output_dir=str(tmp_path / trainer_class.__name__), **{**common, **settings, **extra})
        return trainer_class(
            model=perturbed_policy(tiny_lm_path), args=args, train_dataset=rows, processing_class=tokenizer
        )

    dpo = build(DPOTrainer, DPOConfig, data.remove_columns("persona_embedding"))
    off = build(DPORETrainer, DPOREConfig, data, re_lambda=0.0)
    on = build(DPORETrainer, DPOREConfig, data, re_lambda=lam)
    sigmoid_alone = name == "sigmoid"
    assert on.args.re_placement == ("margin" if sigmoid_alone else "additive")
    batch = dict(next(iter(on.get_train_dataloader())))
    for trainer in (dpo, off, on):
        trainer.model.eval()
    with torch.no_grad():
        stock = DPOTrainer.compute_loss(dpo, dpo.model, without_persona(batch))
        assert torch.equal(off.compute_loss(off.model, dict(batch)), stock)
        loss = on.compute_loss(on.model, dict(batch))
        d = hand_regulariser_difference(on, batch)
        if sigmoid_alone:  # L_total, with the DPO logits from full logits of the policy and the reference
            reference = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
            pol_c, pol_r = full_sequence_logps(on.model, batch).chunk(2)
            ref_c, ref_r = full_sequence_logps(reference, batch).chunk(2)
            expected = (-F.logsigmoid(0.2 * ((pol_c - ref_c) - (pol_r - ref_r)) + lam * d)).mean()
        else:
            expected = stock - lam * d.mean()
    assert math.isfinite(stock.item()) and abs(d).max() > 1e-3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


def test_auto_placement_is_logged_once_and_recorded(tiny_lm_path, tokenizer, tmp_path, caplog):
    from personalign.hub.run_record import changed_fields

    assert DPOREConfig(output_dir="unused", use_cpu=True).re_placement == "margin"
    hinge = DPOREConfig(output_dir=str(tmp_path), loss_type="hinge", max_steps=1, **COMMON)
    assert hinge.re_placement == "additive" and changed_fields(hinge)["re_placement"] == "additive"
    with caplog.at_level("INFO", logger="personalign.trainers.dpore_trainer"):
        trainer = DPORETrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
            args=hinge,
            train_dataset=Dataset.from_list(persona_rows(4, seed=3)),
            processing_class=tokenizer,
        )
    chose = [record.message for record in caplog.records if "re_placement='auto' chose" in record.message]
    assert len(chose) == 1 and "chose 'additive'" in chose[0] and "loss_type=['hinge']" in chose[0]
    trainer.create_model_card(model_name="dpore-hinge")
    assert "| placement | additive |" in (tmp_path / "README.md").read_text()
    # A config changed after it was built is decided again by the trainer ("auto" stays the user's choice).
    hinge.loss_type = ["sigmoid"]
    DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=hinge,
        train_dataset=Dataset.from_list(persona_rows(4, seed=3)),
        processing_class=tokenizer,
    )
    assert hinge.re_placement == "margin"


# -------------------------------------------------------------- the head is the trainer's (issue 16, faults 2-3)
@pytest.mark.parametrize("re_lambda", [0.0, 0.5])
def test_sync_ref_model_pairs_policy_and_reference_by_name(tiny_lm_path, tokenizer, tmp_path, re_lambda):
    """The policy has exactly the reference's parameters (the head is held by the trainer), so TRL's
    SyncRefModelCallback (TR-DPO) mixes the policy into the reference, name for name."""
    args = DPOREConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        re_lambda=re_lambda,
        sync_ref_model=True,
        ref_model_sync_steps=1,
        ref_model_mixup_alpha=0.5,
        **COMMON,
    )
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        ref_model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=Dataset.from_list(persona_rows(8, seed=3)),
        processing_class=tokenizer,
    )
    policy, reference = dict(trainer.model.named_parameters()), dict(trainer.ref_model.named_parameters())
    assert list(policy) == list(reference)
    start = {name: parameter.detach().clone() for name, parameter in reference.items()}
    trainer.train()
    moved = [name for name in reference if not torch.equal(start[name], reference[name])]
    assert moved
    if re_lambda:
        assert trainer.projection_head is not None and not hasattr(trainer.model, "dpore_projection")


def test_head_saved_beside_the_policy_and_loaded_back(tiny_lm_path, tokenizer, tmp_path):
    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path, re_lambda=1.0)
    assert not any("projection" in name for name, _ in trainer.model.named_parameters())
    assert {id(p) for p in trainer.projection_head.parameters()} <= {
        id(p) for group in trainer.create_optimizer().param_groups for p in group["params"]
    }
    trainer.save_model(str(tmp_path / "final"))
    loaded = PersonaProjectionHead.from_pretrained(tmp_path / "final", subfolder="projection_head")
    for key, value in trainer.projection_head.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    _, info = AutoModelForCausalLM.from_pretrained(tmp_path / "final", output_loading_info=True)
    assert not any(info.values()), info


def test_trl_internal_11_clipping_and_grad_norm_cover_the_head(tiny_lm_path, tokenizer, tmp_path):
    import inspect

    from transformers import Trainer

    for name, parameters in (
        ("_clip_grad_norm", ["self", "model"]),
        ("_get_grad_norm", ["self", "model", "grad_norm"]),
    ):
        assert list(inspect.signature(getattr(Trainer, name)).parameters) == parameters, (
            f"transformers internal 11 changed: Trainer.{name} parameters"
        )
    loop = inspect.getsource(Trainer)
    assert "self._clip_grad_norm(model)" in loop and "self._get_grad_norm(model, grad_norm=grad_norm)" in loop, (
        "transformers internal 11 changed: the training loop no longer clips through _clip_grad_norm/_get_grad_norm"
    )
    trainer = perturbed_trainer(tiny_lm_path, tokenizer, tmp_path, re_lambda=5.0, max_grad_norm=1e-3)
    trainer.model.train()
    trainer.compute_loss(trainer.model, dict(next(iter(trainer.get_train_dataloader())))).backward()
    everything = [*trainer.model.parameters(), *trainer.projection_head.parameters()]
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in everything if p.grad is not None]))
    head_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.projection_head.parameters()]))
    assert head_norm > 0
    assert trainer._get_grad_norm(trainer.model).item() == pytest.approx(total.item(), rel=1e-5)
    assert trainer._clip_grad_norm(trainer.model).item() == pytest.approx(total.item(), rel=1e-5)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in everything if p.grad is not None]))
    assert clipped.item() == pytest.approx(1e-3, rel=1e-3)


# ------------------------------------------------------------------------------ head dtype (issue 16, fault 4)
@pytest.mark.parametrize(
    ("dtype", "bf16", "head"),
    [
        (torch.bfloat16, False, torch.bfloat16),  # a model loaded in bfloat16: the head matches it
        (torch.float32, True, torch.float32),  # float32 weights under bf16 autocast: a float32 head, autocast runs it
    ],
)
def test_the_head_follows_the_policy_dtype(tiny_lm_path, tokenizer, tmp_path, dtype, bf16, head):
    args = DPOREConfig(output_dir=str(tmp_path), max_steps=2, re_lambda=1.0, **{**COMMON, "bf16": bf16})
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path, dtype=dtype),
        args=args,
        train_dataset=Dataset.from_list(persona_rows(8, seed=3)),
        processing_class=tokenizer,
    )
    assert {p.dtype for p in trainer.projection_head.parameters()} == {head}
    before = {n: p.clone() for n, p in trainer.projection_head.state_dict().items()}
    trainer.train()
    assert any(not torch.equal(before[n], p) for n, p in trainer.projection_head.state_dict().items())
    assert all(math.isfinite(v) for v in _log(trainer, "loss") + _log(trainer, "re/term"))


# ------------------------------------------------------------------------- iterable data (issue 16, fault 5)
def test_iterable_dataset_with_persona_embeddings_trains(tiny_lm_path, tokenizer, tmp_path):
    data = Dataset.from_list(persona_rows(8, seed=3)).to_iterable_dataset()
    args = DPOREConfig(output_dir=str(tmp_path), max_steps=2, re_lambda=1.0, **COMMON)
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    assert trainer.embedding_dim == len(persona_rows(2, seed=3)[0]["persona_embedding"])
    trainer.train()
    assert _log(trainer, "re/persona_rows") == [1.0, 1.0]
    without = Dataset.from_list(persona_rows(4, seed=3)).remove_columns("persona_embedding").to_iterable_dataset()
    with pytest.raises(ValueError, match="DPORE needs persona embeddings"):
        DPORETrainer(model=str(tiny_lm_path), args=args, train_dataset=without, processing_class=tokenizer)


# ---------------------------------------------------------------- load_best_model_at_end (issue 16, fault 6)
def test_trl_internal_12_load_best_model_at_end_restores_the_head_too(tiny_lm_path, tokenizer, tmp_path):
    """The best checkpoint is made the first (greater_is_better on the eval loss), so the last step's head differs
    from the best one; both the policy and the head come back from it (`Trainer._load_best_model`)."""
    from transformers import Trainer

    assert callable(getattr(Trainer, "_load_best_model", None)), "transformers internal 12: Trainer._load_best_model"
    data = Dataset.from_list(persona_rows(8, seed=3))
    args = DPOREConfig(
        output_dir=str(tmp_path),
        max_steps=3,
        re_lambda=5.0,
        **{
            **COMMON,
            "save_strategy": "steps",
            "eval_strategy": "steps",
            "save_steps": 1,
            "eval_steps": 1,
            "load_best_model_at_end": True,
            "metric_for_best_model": "eval_loss",
            "greater_is_better": True,
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
    best = trainer.state.best_model_checkpoint
    assert best is not None and not best.endswith("checkpoint-3")
    saved = PersonaProjectionHead.from_pretrained(best, subfolder="projection_head").state_dict()
    last = PersonaProjectionHead.from_pretrained(tmp_path / "checkpoint-3", subfolder="projection_head").state_dict()
    assert any(not torch.equal(saved[k], last[k]) for k in saved)
    for key, value in trainer.projection_head.state_dict().items():
        assert torch.equal(value, saved[key]), key
    policy = AutoModelForCausalLM.from_pretrained(best).state_dict()
    for name, parameter in trainer.model.state_dict().items():
        assert torch.equal(parameter, policy[name]), name
