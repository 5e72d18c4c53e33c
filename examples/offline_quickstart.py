"""Offline quickstart: synthetic AlignX data, PBA prompts, a tiny local model, and TRL's DPOTrainer.

    python examples/offline_quickstart.py --output-dir runs/quickstart

Everything is built on the spot (no network): a byte-level BPE tokenizer with a chat template, a random-init
Llama-style model, and counterfactual synthetic users. The script trains briefly and reports held-out reward
accuracy (TRL's `rewards/accuracies`) before and after; on counterfactual data 0.5 is what a model that ignores the
persona gets, so anything above it is persona-conditioned learning. Swap `--model` for a Hub id (e.g.
meta-llama/Llama-3.1-8B-Instruct) on a GPU machine to run the same pipeline for real.

Batches keep each counterfactual pair (the same responses under a user and under their mirror) together: the
persona-independent parts of the two gradients cancel, and a tiny model starts learning the persona mapping at
once instead of after ~100 steps of noise (measured: held-out accuracy 0.57 after 32 steps vs 0.50 with shuffled
rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from personalign import Persona, pba_messages, preference_example
from personalign.data.synthetic import alignx_rows, pair_adjacent_epochs
from personalign.testing import tiny_causal_lm


def pba_rows(num_rows: int, seed: int) -> list[dict]:
    rows = []
    for row in alignx_rows(num_rows, seed):
        prompt = pba_messages(row["prompt"], Persona.from_alignx_row(row).profile_text())
        rows.append(preference_example(prompt, row["chosen"], row["rejected"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("--model", default=None, help="Model id or folder (default: the tiny local model).")
    parser.add_argument("--train-rows", type=int, default=512)
    parser.add_argument("--eval-rows", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    model_path = args.model or str(tiny_causal_lm())
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    config = DPOConfig(
        output_dir=str(args.output_dir),
        per_device_train_batch_size=16,
        num_train_epochs=1,  # the epochs are laid out in the dataset
        train_sampling_strategy="sequential",
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        beta=0.1,
        max_length=512,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=8,
    )
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(pair_adjacent_epochs(pba_rows(args.train_rows, seed=0), args.epochs, seed=0)),
        eval_dataset=Dataset.from_list(pba_rows(args.eval_rows, seed=1)),
        processing_class=tokenizer,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    report = {
        "model": model_path,
        "held_out_reward_accuracy_before": before["eval_rewards/accuracies"],
        "held_out_reward_accuracy_after": after["eval_rewards/accuracies"],
        "held_out_loss_before": before["eval_loss"],
        "held_out_loss_after": after["eval_loss"],
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
