"""The compatibility suite: personalign's DPO trainers against stock `trl.DPOTrainer` over the DPOConfig features TRL
supports (each loss type, a weighted mix, WPO, LD, the f-divergences, sync_ref_model, explicit / implicit / PEFT
references, precomputed reference log-probs on map-style and iterable data, a bfloat16 model, padding_free, and
evaluation datasets as one dataset, a dict of them or an iterable one).

Each case asserts what TRL's own tests/test_dpo_trainer.py asserts: training runs (a finite loss), every trainable
parameter changes, the reference's do not, and DPO's metrics are logged. A combination stock refuses is refused by
every trainer with stock's message; a combination only ours refuse is an intended refusal, asserted with its message
(`INTENDED_REFUSALS`, each with its reason in docs/methods/dpore.md). Tiny model, 4 rows, 2 steps per case."""

import importlib.util
from types import SimpleNamespace

import accelerate.utils.memory
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from personalign.trainers import DPOREConfig, DPORETrainer, ICAConfig, ICATrainer, PBAConfig, PBATrainer
from test_dpore import TRL_LOSS_SETTINGS, persona_rows

pytestmark = pytest.mark.usefixtures("one_thread", "no_gc_per_train")

TRAINERS = {
    "dpo": (DPOTrainer, DPOConfig, {}),
    "dpore-0.1": (DPORETrainer, DPOREConfig, {"re_lambda": 0.1}),
    "dpore-0": (DPORETrainer, DPOREConfig, {"re_lambda": 0.0}),
    "pba": (PBATrainer, PBAConfig, {}),
    "ica": (ICATrainer, ICAConfig, {}),
}
"""Stock DPOTrainer (the reference behaviour) and ours, with the settings each is run with."""

FEATURES = {
    **{f"loss-{name}": settings for name, settings in TRL_LOSS_SETTINGS.items()},
    "sync_ref_model": dict(sync_ref_model=True, ref_model_sync_steps=1, ref_model_mixup_alpha=0.5),
    "explicit_ref": dict(reference="explicit"),
    "peft_ref": dict(reference="peft"),
    "precompute_map": dict(precompute_ref_log_probs=True),
    "precompute_iterable": dict(precompute_ref_log_probs=True, data="iterable"),
    # 1e-2: an Adam step of 1e-3 is below bfloat16's spacing at 1.0 (2**-7), so the norm weights would not move.
    "model_bf16": dict(model_dtype=torch.bfloat16, learning_rate=1e-2),
    "model_fp16": dict(model_dtype=torch.float16),
    "padding_free": dict(padding_free=True),
    "liger": dict(use_liger_kernel=True),
    "eval_dataset": dict(eval="dataset"),
    "eval_dict": dict(eval="dict"),
    "eval_iterable": dict(eval="iterable"),
}
"""DPOConfig features (plus how the reference, the data and the model are given). The loss cases use TRL's default
reference: the policy's checkpoint loaded again (implicit)."""

STOCK_REFUSALS = {
    "precompute_iterable": "`precompute_ref_log_probs=True` is not supported with IterableDataset",
}
"""Combinations stock DPOTrainer refuses; every trainer must refuse them the same way."""

INTENDED_REFUSALS = {
    ("dpore-0.1", "liger"): "DPORETrainer does not support use_liger_kernel=True",
    ("dpore-0", "liger"): "DPORETrainer does not support use_liger_kernel=True",
}
"""Combinations only ours refuse, by design: (trainer, feature) -> message. Liger's fused loss replaces the forward
DPORE reads the hidden states from (refused before any model loads, so asserted with or without Liger installed)."""

LIGER = importlib.util.find_spec("liger_kernel") is not None

METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen")


@pytest.fixture(scope="module")
def no_gc_per_train():
    """`Trainer.train` starts with `accelerator.free_memory()`, whose full `gc.collect()` costs about a second per
    case in a long test session and frees nothing a tiny CPU model needs: skipped in this module (only there)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accelerate.utils.memory, "gc", SimpleNamespace(collect=lambda: 0))
        yield


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path):
    return AutoTokenizer.from_pretrained(tiny_lm_path)


@pytest.fixture(scope="module")
def rows():
    return persona_rows(4, seed=3, conversational=False)


def dataset(rows, trainer, kind="map"):
    data = Dataset.from_list(rows)
    if not trainer.startswith("dpore"):
        data = data.remove_columns("persona_embedding")
    return data.to_iterable_dataset() if kind == "iterable" else data


def build(trainer_name, feature, tiny_lm_path, tokenizer, rows, tmp_path):
    trainer_class, config_class, trainer_settings = TRAINERS[trainer_name]
    settings = dict(FEATURES[feature])
    reference, data_kind = settings.pop("reference", "implicit"), settings.pop("data", "map")
    model_dtype, eval_kind = settings.pop("model_dtype", torch.float32), settings.pop("eval", None)
    settings.setdefault("learning_rate", 1e-3)
    args = config_class(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        max_length=64,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        **trainer_settings,
        **settings,
    )
    kwargs = {}
    if reference == "explicit":
        kwargs["ref_model"] = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    if reference == "peft":
        from peft import LoraConfig

        kwargs["peft_config"] = LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        )
    if eval_kind == "dataset":
        kwargs["eval_dataset"] = dataset(rows, trainer_name)
    elif eval_kind == "dict":
        kwargs["eval_dataset"] = {"a": dataset(rows[:2], trainer_name), "b": dataset(rows[2:], trainer_name)}
    elif eval_kind == "iterable":
        kwargs["eval_dataset"] = dataset(rows, trainer_name, "iterable")
    return trainer_class(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path, dtype=model_dtype),
        args=args,
        train_dataset=dataset(rows, trainer_name, data_kind),
        processing_class=tokenizer,
        **kwargs,
    )


def cases():
    for trainer_name in TRAINERS:
        for feature in FEATURES:
            marks = []
            if feature == "liger" and not LIGER and (trainer_name, feature) not in INTENDED_REFUSALS:
                marks.append(pytest.mark.skip(reason="liger-kernel is not installed"))
            yield pytest.param(trainer_name, feature, id=f"{trainer_name}-{feature}", marks=marks)


def trainable(trainer):
    parameters = {f"policy.{n}": p for n, p in trainer.model.named_parameters() if p.requires_grad}
    head = getattr(trainer, "projection_head", None)
    if head is not None:
        parameters |= {f"head.{n}": p for n, p in head.named_parameters()}
    return parameters


def reference_parameters(trainer):
    """The reference's parameters: a separate model's, or under PEFT the frozen base the adapter-disabled policy
    runs."""
    if trainer.ref_model is not None:
        return dict(trainer.ref_model.named_parameters())
    return {n: p for n, p in trainer.model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize(("trainer_name", "feature"), list(cases()))
def test_trainer_supports_the_feature(trainer_name, feature, tiny_lm_path, tokenizer, rows, tmp_path):
    refusal = STOCK_REFUSALS.get(feature) or INTENDED_REFUSALS.get((trainer_name, feature))
    if refusal is not None:
        with pytest.raises(ValueError, match=refusal):
            build(trainer_name, feature, tiny_lm_path, tokenizer, rows, tmp_path)
        return
    trainer = build(trainer_name, feature, tiny_lm_path, tokenizer, rows, tmp_path)
    before = {n: p.detach().clone() for n, p in trainable(trainer).items()}
    reference = {n: p.detach().clone() for n, p in reference_parameters(trainer).items()}
    if FEATURES[feature].get("sync_ref_model"):
        assert list(dict(trainer.model.named_parameters())) == list(reference)  # TRL pairs them for the sync

    trainer.train()

    assert torch.isfinite(torch.tensor(trainer.state.log_history[-1]["train_loss"]))
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2 and all(set(METRICS) <= set(entry) for entry in logged), logged
    if trainer_name == "dpore-0.1":
        assert all("re/term" in entry for entry in logged)
    after = trainable(trainer)
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n].detach())]
    assert not unchanged, f"trainable parameters that did not change: {unchanged}"
    now = reference_parameters(trainer)
    if FEATURES[feature].get("sync_ref_model"):
        assert any(not torch.equal(p, now[n]) for n, p in reference.items())  # mixed into by the sync
    else:
        assert all(torch.equal(p, now[n]) for n, p in reference.items()), "the reference changed"
    if feature == "padding_free":
        assert trainer.padding_free is False  # TRL 1.16 turns it off, with a warning, for every trainer
    dtype = FEATURES[feature].get("model_dtype")
    if dtype is not None:
        assert next(trainer.model.parameters()).dtype == dtype
        if getattr(trainer, "projection_head", None) is not None:
            assert next(trainer.projection_head.parameters()).dtype == dtype

    eval_kind = FEATURES[feature].get("eval")
    if eval_kind is not None:
        metrics = trainer.evaluate()
        # Stock names the loss per dataset (eval_a_loss) but its DPO metrics eval_* for each (its `log` prefixes by
        # mode only), so with a dict they hold the last dataset's values; ours do the same.
        losses = ["eval_a_loss", "eval_b_loss"] if eval_kind == "dict" else ["eval_loss"]
        assert {*losses, "eval_rewards/margins", "eval_rewards/chosen"} <= set(metrics), metrics
        if trainer_name == "dpore-0.1":
            assert "eval_re/term" in metrics
