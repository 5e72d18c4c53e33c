"""DPORETrainer step time against DPOTrainer's on the same tiny model and batches, interleaved in one run.

    python bench/dpore_overhead.py                      # tiny local model, batch 8, 30 timed steps each
    python bench/dpore_overhead.py --batch-size 16 --steps 50 --placement additive

Both trainers are built on the same synthetic PBA rows (DPORE's rows also carry a persona embedding) and the same
model weights. Each timed step is one `training_step` (forward, loss, backward) on the trainer's own collation of the
same rows, alternating DPO and DPORE so that machine noise hits both alike; an optimizer step follows each. Prints
the median step times and the ratio DPORE / DPO (target <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _common import trainer_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Causal LM id or folder (default: the tiny local model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--placement", default="margin", choices=["margin", "additive"])
    parser.add_argument("--re-lambda", type=float, default=5.0, help="0 measures the bare wrapper (hooks, collator)")
    options = parser.parse_args()

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from personalign import Persona, pba_messages, preference_example
    from personalign.data.synthetic import alignx_rows
    from personalign.trainers import DPOREConfig, DPORETrainer

    workdir = tempfile.mkdtemp(prefix="personalign-bench-dpore-")
    path = options.model
    if path is None:
        from personalign.testing import tiny_causal_lm

        path = str(tiny_causal_lm(cache_dir=workdir))
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = []
    for row in alignx_rows(options.batch_size * (options.steps + options.warmup), seed=0):
        persona = Persona.from_alignx_row(row)
        example = preference_example(
            pba_messages(row["prompt"], persona.profile_text()), row["chosen"], row["rejected"]
        )
        example["persona_embedding"] = [value - 0.5 for value in persona.preference_vector()]
        rows.append(example)
    data = Dataset.from_list(rows)
    common = trainer_settings(options.batch_size)
    dpo = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=DPOConfig(output_dir=f"{workdir}/dpo", **common),
        train_dataset=data.remove_columns("persona_embedding"),
        processing_class=tokenizer,
    )
    dpore = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=DPOREConfig(
            output_dir=f"{workdir}/dpore", re_lambda=options.re_lambda, re_placement=options.placement, **common
        ),
        train_dataset=data,
        processing_class=tokenizer,
    )
    runs = {}
    for name, trainer in (("DPO", dpo), ("DPORE", dpore)):
        trainer.create_optimizer_and_scheduler(num_training_steps=options.steps + options.warmup)
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this bench drives by hand
        runs[name] = (trainer, iter(trainer.get_train_dataloader()))
    times: dict[str, list[float]] = {"DPO": [], "DPORE": []}
    for step in range(options.steps + options.warmup):
        order = ("DPO", "DPORE") if step % 2 else ("DPORE", "DPO")
        for name in order:
            trainer, batches = runs[name]
            batch = next(batches)
            start = time.perf_counter()
            trainer.training_step(trainer.model, batch)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad()
            if step >= options.warmup:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"model {path}, batch {options.batch_size}, {options.steps} timed steps each, placement {options.placement}")
    print(f"median step: DPO {medians['DPO'] * 1000:.1f} ms, DPORE {medians['DPORE'] * 1000:.1f} ms")
    print(f"ratio DPORE / DPO: {medians['DPORE'] / medians['DPO']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
