"""TRL's own DPOTrainer on the offline kit: the tiny model, its tokenizer and synthetic AlignX rows fit together."""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from personalign import Persona, pba_messages, preference_example
from personalign.data.synthetic import alignx_rows


def pba_rows(num_rows, seed, positive_only=False):
    rows = []
    for row in alignx_rows(num_rows, seed):
        if positive_only and 0.0 in row["Preference Direction"]:
            continue
        prompt = pba_messages(row["prompt"], Persona.from_alignx_row(row).profile_text())
        rows.append(preference_example(prompt, row["chosen"], row["rejected"]))
    return Dataset.from_list(rows)


@pytest.mark.learning
def test_dpo_trainer_learns_on_the_tiny_model(tiny_lm_path, tmp_path, learning_seed, check_learning):
    # Rows whose chosen response always takes the positive pole: a preference that needs no persona, so a few
    # dozen DPO steps must move held-out reward accuracy from 0 (policy == reference: all margins tie) to ~1.
    train = pba_rows(400, seed=2 * learning_seed, positive_only=True)
    held_out = pba_rows(200, seed=2 * learning_seed + 1, positive_only=True)
    assert len(train) > 100 and len(held_out) > 50
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        num_train_epochs=2,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        beta=0.1,
        max_length=256,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=5,
        seed=learning_seed,
    )
    # ref_model=None: TRL reloads the reference from the tiny model's folder.
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=held_out, processing_class=tokenizer
    )
    assert trainer.evaluate()["eval_rewards/accuracies"] == 0.0
    trainer.train()
    metrics = trainer.evaluate()
    check_learning("held-out accuracy", metrics["eval_rewards/accuracies"], 0.9)
    assert metrics["eval_rewards/margins"] > 0
    changed = [name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())]
    assert len(changed) == len(before)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]
