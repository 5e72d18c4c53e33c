"""Log-prob scoring throughput: `score_policy_and_reference` vs `DPOTrainer.evaluate()` on long-persona data.

    python bench/scoring.py                          # 64 pairs, ICA prompts of ~1,000 tokens, batch 8
    python bench/scoring.py --rows 128 --history 8 12

Both score the same synthetic AlignX pairs rendered as ICA prompts (the persona's comments and pairs in the prompt,
~1,000+ tokens; responses of ~35 tokens), under the tiny test model as policy and a perturbed copy as reference, with
the same batch size, in one process, each timed end to end from the raw rows (tokenization included) after a warm-up
on other rows; the timed runs are interleaved and repeated, and the best time of each counts. Prints pairs/s of
each, checks that both give the same accuracy (so keep --rows a multiple of --batch-size: TRL averages batch means),
and prints the ratio `score_pairs / DPOTrainer.evaluate` (target >= 1.5). One more line times the scoring with the
reference log-probs read from the on-disk cache.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import hermetic_workdir

WORK = hermetic_workdir("scoring")  # before the Hugging Face libraries are imported


def ica_dataset(num_rows: int, seed: int, history: tuple[int, int]):
    from datasets import Dataset

    from personalign import Persona, ica_messages, preference_example
    from personalign.data.synthetic import alignx_rows

    rows = [
        preference_example(ica_messages(row["prompt"], Persona.from_alignx_row(row)), row["chosen"], row["rejected"])
        for row in alignx_rows(num_rows, seed, history_size=history)
    ]
    return Dataset.from_list(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=64, help="Pairs to score (even).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--history", type=int, nargs=2, default=(4, 8), help="Comments and pairs per persona.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs of each; the best time counts.")
    args = parser.parse_args()

    import torch
    from datasets import disable_progress_bars
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, ProgressCallback
    from transformers.utils import logging as transformers_logging
    from trl import DPOConfig, DPOTrainer

    from personalign.evaluation import (
        compute_alignment_metrics,
        score_policy_and_reference,
        tokenize_preference_example,
    )
    from personalign.testing import tiny_causal_lm

    disable_progress_bars()
    transformers_logging.set_verbosity_error()
    path = tiny_causal_lm()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ref_model = AutoModelForCausalLM.from_pretrained(path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in ref_model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))

    history = tuple(args.history)
    data = ica_dataset(args.rows, seed=1, history=history)
    warmup = ica_dataset(2 * args.batch_size, seed=2, history=history)
    prompt_lengths = [len(tokenize_preference_example(row, tokenizer)["prompt_ids"]) for row in data]
    response_lengths = [len(tokenize_preference_example(row, tokenizer)["chosen_ids"]) for row in data]

    config = DPOConfig(
        output_dir=os.path.join(WORK, "dpo"),
        per_device_eval_batch_size=args.batch_size,
        max_length=None,
        beta=0.1,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref_model, args=config, train_dataset=warmup, processing_class=tokenizer
    )
    for callback in (PrinterCallback, ProgressCallback):  # keep the output to the numbers below
        trainer.remove_callback(callback)
    trainer.evaluate(eval_dataset=warmup)
    score_policy_and_reference(model, ref_model, tokenizer, warmup, batch_size=args.batch_size)

    # Interleaved repeats, best time of each: a busy neighbour process slows one run, not the comparison.
    trl_seconds = ours_seconds = cached_seconds = float("inf")
    cache = os.path.join(WORK, "logps-cache")
    for _ in range(args.repeats):
        start = time.perf_counter()
        trl_metrics = trainer.evaluate(eval_dataset=data)
        trl_seconds = min(trl_seconds, time.perf_counter() - start)

        start = time.perf_counter()
        scores = score_policy_and_reference(model, ref_model, tokenizer, data, batch_size=args.batch_size)
        ours_seconds = min(ours_seconds, time.perf_counter() - start)

        # The first repeat fills the cache; the later ones read the reference log-probs from it.
        start = time.perf_counter()
        score_policy_and_reference(
            model, ref_model, tokenizer, data, batch_size=args.batch_size, reference_cache_dir=cache
        )
        cached_seconds = min(cached_seconds, time.perf_counter() - start)
    ours = compute_alignment_metrics(**scores, beta=0.1)

    trl_accuracy, our_accuracy = trl_metrics["eval_rewards/accuracies"], ours["alignment_accuracy"]
    print(
        f"{args.rows} pairs, prompts {min(prompt_lengths)}-{max(prompt_lengths)} tokens "
        f"(mean {sum(prompt_lengths) / len(prompt_lengths):.0f}), responses "
        f"{sum(response_lengths) / len(response_lengths):.0f} tokens on average, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"DPOTrainer.evaluate():        {args.rows / trl_seconds:7.1f} pairs/s ({trl_seconds:.2f} s)")
    print(f"score_policy_and_reference(): {args.rows / ours_seconds:7.1f} pairs/s ({ours_seconds:.2f} s)")
    agree = "same" if abs(trl_accuracy - our_accuracy) < 1e-12 else "DIFFERENT"
    print(f"alignment accuracy: DPOTrainer {trl_accuracy:.4f}, score_pairs {our_accuracy:.4f} ({agree})")
    if args.repeats > 1:  # the first repeat only fills the cache
        print(f"  with the reference log-probs cached on disk: {args.rows / cached_seconds:7.1f} pairs/s")
    print(f"ratio score_pairs / DPOTrainer.evaluate: {trl_seconds / ours_seconds:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
