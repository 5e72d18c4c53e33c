"""What only a GPU can check: bf16 mixed-precision training of DPORE (margin), PBA and the personalized reward model on
CUDA, DPORE's margin loss against its reference formulation on CUDA in fp32 and bf16, and the persona encoder on CUDA
against the CPU. Skipped without CUDA (`bench/gpu_check.sh` runs them on a GPU machine).

`PERSONALIGN_GPU_TESTS_DEVICE=cpu` runs them on the CPU instead (bf16 through CPU autocast): a dry run of their logic,
not a GPU check. Each test prints a `GPU-RESULT` line with its numbers (shown with `pytest -s`).
"""

import contextlib
import math
import os

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from personalign.data.synthetic import alignx_rows
from personalign.trainers import DPOREConfig, DPORETrainer, PBAConfig, PBATrainer

# The DPORE test module's helpers (rows with persona embeddings, hook counts, the reference formulation of the
# margin loss), so that the GPU run checks the very code the CPU suite checks.
from test_dpore import RecordHooks, hook_counts, persona_rows, perturbed_trainer, reference_margin_loss

DEVICE = os.environ.get("PERSONALIGN_GPU_TESTS_DEVICE", "cuda")
ON_CPU = DEVICE == "cpu"

pytestmark = pytest.mark.skipif(
    not ON_CPU and not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs these on one)"
)

COMMON = dict(
    per_device_train_batch_size=4,
    per_device_eval_batch_size=8,
    learning_rate=1e-3,
    lr_scheduler_type="constant",
    max_length=384,
    use_cpu=ON_CPU,
    gradient_checkpointing=False,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
    disable_tqdm=True,
    seed=0,
)


def report(name, **values):
    shown = ", ".join(
        f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={value}" for key, value in values.items()
    )
    print(f"\nGPU-RESULT {name} [{DEVICE}]: {shown}")


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path):
    return AutoTokenizer.from_pretrained(tiny_lm_path)


def losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry and "train_runtime" not in entry]


def snapshot(model):
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def changed(model, before):
    return {name for name, parameter in model.named_parameters() if not torch.equal(before[name], parameter.detach())}


def on_device(model):
    return next(model.parameters()).device.type == torch.device(DEVICE).type


def check_training(name, trainer, model, before, result, steps):
    logged = losses(trainer)
    moved = changed(model, before)
    report(
        name,
        losses=[round(value, 5) for value in logged],
        changed_parameters=f"{len(moved)}/{len(before)}",
        steps_per_second=float(result.metrics.get("train_steps_per_second", float("nan"))),
        bf16=trainer.args.bf16,
        mixed_precision=str(trainer.accelerator.mixed_precision),
    )
    assert trainer.args.bf16 and str(trainer.accelerator.mixed_precision) == "bf16"
    assert on_device(model)
    assert len(logged) == steps and all(math.isfinite(value) for value in logged), logged
    assert math.isfinite(result.training_loss)
    return moved


# -------------------------------------------------------------------------------------------- bf16 training
def test_dpore_margin_trains_in_bf16(tiny_lm_path, tokenizer, tmp_path):
    data = Dataset.from_list(persona_rows(16, seed=3))
    args = DPOREConfig(
        output_dir=str(tmp_path), max_steps=3, bf16=True, beta=0.1, re_lambda=1.0, re_placement="margin", **COMMON
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    trainer = DPORETrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    record = RecordHooks(lambda: hook_counts(trainer, model))
    trainer.add_callback(record)
    assert hook_counts(trainer, model) == (0, 0, 0)
    before = snapshot(model)
    head_before = snapshot(trainer.projection_head)  # the head is the trainer's, not a submodule of the policy
    result = trainer.train()
    moved = check_training("dpore-margin-bf16-train", trainer, model, before, result, steps=3)
    assert changed(trainer.projection_head, head_before) and moved
    report("dpore-hooks", during=record.seen, after=hook_counts(trainer, model))
    assert record.seen == [(1, 1, 1)] * 3  # backbone, policy log-probs and the separate reference, while training
    assert hook_counts(trainer, model) == (0, 0, 0) and not trainer.hooks.installed  # removed after train()
    re_terms = [entry["re/term"] for entry in trainer.state.log_history if "re/term" in entry]
    assert re_terms and all(math.isfinite(value) for value in re_terms)


def test_pba_trains_in_bf16(tiny_lm_path, tokenizer, tmp_path):
    data = Dataset.from_list(list(alignx_rows(16, seed=4, history_size=(1, 4))))
    args = PBAConfig(output_dir=str(tmp_path), max_steps=3, bf16=True, beta=0.1, **{**COMMON, "max_length": 1024})
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    trainer = PBATrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    before = snapshot(model)
    result = trainer.train()
    moved = check_training("pba-bf16-train", trainer, model, before, result, steps=3)
    assert moved


def test_personalized_reward_trains_in_bf16(tiny_lm_path, tokenizer, tmp_path):
    from personalign import PersonalizedRewardConfig, PersonalizedRewardTrainer
    from personalign.data.multifacet import MultifacetBuildConfig, attach_history, build_multifacet_cf
    from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows
    from personalign.io import write_rows

    write_rows(multifaceted_rows(12, seed=0), tmp_path / "src.parquet", MULTIFACETED_FEATURES, progress=False)
    configs, _ = build_multifacet_cf(
        tmp_path / "src.parquet", MultifacetBuildConfig(test_instructions=2, history_size=3, seed=1)
    )
    rows = attach_history(
        configs["counterfactual"]["train"].select(range(16)), configs["responses"]["train"], lazy=False
    )
    args = PersonalizedRewardConfig(
        output_dir=str(tmp_path / "rm"),
        max_steps=3,
        bf16=True,
        history_size=3,
        **{**COMMON, "max_length": 1024},
    )
    trainer = PersonalizedRewardTrainer(
        model=str(tiny_lm_path), args=args, train_dataset=rows, processing_class=tokenizer
    )
    model = trainer.model
    before = snapshot(model)
    result = trainer.train()
    moved = check_training("reward-bf16-train", trainer, model, before, result, steps=3)
    assert moved


# ------------------------------------------------------------------------------ DPORE's loss, on the device
# bf16 autocast rounds each matmul's inputs to 8 bits of mantissa: the two formulations (fused LM head vs full logits,
# hooked hidden states vs a second backbone pass) round differently, so they agree to bf16 noise, not to fp32's.
TOLERANCES = {"fp32": dict(loss=1e-5, grad=1e-4), "bf16": dict(loss=1e-2, grad=1e-1)}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_margin_loss_equals_the_reference_formulation_on_the_device(tiny_lm_path, tokenizer, tmp_path, precision):
    """tests/test_dpore.py's equivalence (DPORE's loss, computed once from the captured forwards, against the DPORE
    paper's L_total written from full logits and a separate backbone pass, loss and gradients) on the device; in bf16
    both run under the autocast that bf16 training uses."""
    beta, lam, weight = 0.1, 2.0, 1.0
    bf16 = precision == "bf16"
    trainer = perturbed_trainer(
        tiny_lm_path,
        tokenizer,
        tmp_path,
        bf16=bf16,
        use_cpu=ON_CPU,
        beta=beta,
        re_lambda=lam,
        loss_weights=[weight],
        re_placement="margin",
    )
    model = trainer.model
    assert on_device(model)
    model.eval()
    device = next(model.parameters()).device
    batch = {
        k: v.to(device) if torch.is_tensor(v) else v for k, v in next(iter(trainer.get_train_dataloader())).items()
    }
    parameters = [p for p in model.parameters() if p.requires_grad]

    def autocast():
        if not bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    with autocast():
        new = trainer.compute_loss(model, dict(batch))
    new_grads = torch.autograd.grad(new, parameters)

    with autocast():
        old, logits, d, correction = reference_margin_loss(
            trainer, batch, AutoModelForCausalLM.from_pretrained(tiny_lm_path).to(device), beta, lam, weight
        )
    old_grads = torch.autograd.grad(old, parameters)

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    relative = {
        name: ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
        for name, a, b in zip(names, new_grads, old_grads, strict=True)
    }
    worst = max(relative, key=relative.get)
    report(
        f"dpore-margin-loss-equivalence-{precision}",
        new_loss=new.item(),
        reference_loss=old.item(),
        loss_abs_diff=abs(new.item() - old.item()),
        max_relative_grad_diff=relative[worst],
        worst_parameter=worst,
        max_abs_dpo_logit=abs(logits).max().item(),
        max_abs_d=abs(d).max().item(),
        regularizer_correction=(weight * correction.mean()).item(),
    )
    assert new.dtype == torch.float32 and math.isfinite(new.item())
    assert abs(logits).max() > 1e-3 and abs(d).max() > 1e-3 and abs(correction).max() > 1e-4  # all terms present
    assert new.item() == pytest.approx(old.item(), abs=TOLERANCES[precision]["loss"])
    assert relative[worst] <= TOLERANCES[precision]["grad"], worst
    assert any(g.abs().sum() > 0 for g in new_grads[-2:])  # the head learns from the margin


# ---------------------------------------------------------------------------------------- the persona encoder
def test_persona_encoder_on_the_device_matches_the_cpu(tiny_encoder_path):
    from personalign import PersonaEncoder

    texts = [row["prompt"][-1]["content"] for row in persona_rows(6, seed=0)] + ["a comment about cooking"]
    cpu = PersonaEncoder.from_pretrained(tiny_encoder_path).encode(texts, convert_to_tensor=True)
    assert cpu.device.type == "cpu"
    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path).to(DEVICE)
    embedded = encoder.encode(texts, convert_to_tensor=True)
    assert embedded.device.type == torch.device(DEVICE).type and embedded.dtype == torch.float32
    difference = (embedded.cpu() - cpu).abs().max().item()
    report(
        "persona-encoder-device-vs-cpu-fp32",
        max_abs_diff=difference,
        max_abs_value=cpu.abs().max().item(),
        shape=tuple(cpu.shape),
        tf32=torch.backends.cuda.matmul.allow_tf32,
    )
    assert embedded.shape == cpu.shape and difference <= 1e-4
