"""PBA / ICA step time against DPOTrainer, and personas/s of the learned preference inferencer against the LLM one.

    python bench/pba_ica.py                                  # tiny local models, batch 8, 20 timed steps each
    python bench/pba_ica.py --batch-size 16 --steps 30 --trainer-input rendered --personas 8 --threads 1

Part 1, step time. Synthetic AlignX rows are rendered once into TRL prompt / chosen / rejected rows (the history drawn
with the trainers' own epoch-0 rule), and DPOTrainer trains on those. PBATrainer and ICATrainer get the raw AlignX
rows, which they render in `_prepare_dataset` and serve through their per-epoch redraw dataset (`--trainer-input
rendered` gives them the pre-rendered rows, which they pass through); the bench checks that every trainer tokenizes
exactly the same rows as its DPO anchor. Each trainer and its anchor start from the same weights with the same
sequential batches, and their steps alternate (which one goes first alternates too) so machine noise hits both alike.
A timed step is fetching the batch, `training_step` (forward, loss, backward) and the optimizer step. Prints the median
step times and the ratios PBA / DPO and ICA / DPO (expected about 1.0: the persona rendering happens once, before
training).

Part 2, preference inference. A `LearnedPreferenceInferencer` (frozen tiny encoder, head trained on synthetic rows)
and the LLM `PreferenceInferencer` (the tiny causal LM through `TransformersBackend`: 90 annotation questions per
comment) infer the same held-out personas, one `infer` call per persona, in alternating rounds; the best round of each
counts. Prints personas/s of each (and of the learned one's batched `infer_many`), both macro-F1 against the gold
directions, and the ratio learned / LLM.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import hermetic_workdir, trainer_settings

WORK = hermetic_workdir("pba-ica")  # before the Hugging Face libraries are imported


def step_times(options: argparse.Namespace, path: str) -> None:
    import torch
    from datasets import Dataset, disable_progress_bars
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging
    from trl import DPOConfig, DPOTrainer

    from personalign.data.synthetic import alignx_rows
    from personalign.trainers import ICAConfig, ICATrainer, PBAConfig, PBATrainer, render_for_training

    disable_progress_bars()
    transformers_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(path)
    num_rows = options.batch_size * (options.steps + options.warmup)
    raw = Dataset.from_list(list(alignx_rows(num_rows, seed=0, history_size=tuple(options.history))))
    common = dict(trainer_settings(options.batch_size), max_length=None)
    trainers = {}
    for name, trainer_class, config_class in (("PBA", PBATrainer, PBAConfig), ("ICA", ICATrainer, ICAConfig)):
        args = config_class(output_dir=f"{WORK}/{name.lower()}", **common)
        # The rows the trainer would render itself (epoch 0 of its history draws), rendered once up front.
        rendered = render_for_training(raw, trainer_class._style, args.rendering()).select_columns(
            ["prompt", "chosen", "rejected"]
        )
        trainers[f"DPO ({name} rows)"] = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(path),
            args=DPOConfig(output_dir=f"{WORK}/dpo-{name.lower()}", **common),
            train_dataset=rendered,
            processing_class=tokenizer,
        )
        trainers[name] = trainer_class(
            model=AutoModelForCausalLM.from_pretrained(path),
            args=args,
            train_dataset=raw if options.trainer_input == "raw" else rendered,
            processing_class=tokenizer,
        )
        anchor, ours = trainers[f"DPO ({name} rows)"].train_dataset, trainers[name].train_dataset
        same = all(
            anchor[i][key] == ours[i][key]
            for i in range(num_rows)
            for key in ("prompt_ids", "chosen_ids", "rejected_ids")
        )
        lengths = [len(anchor[i]["prompt_ids"]) for i in range(num_rows)]
        print(
            f"{name}: {type(ours).__name__} of {options.trainer_input} rows, prompts {min(lengths)}-{max(lengths)} "
            f"tokens (mean {sum(lengths) / len(lengths):.0f}); tokenized rows identical to DPO's: {same}"
        )
        if not same:
            raise SystemExit(f"{name} and DPO do not train on the same tokens: the comparison would be meaningless.")
    runs = {}
    for name, trainer in trainers.items():
        trainer.create_optimizer_and_scheduler(num_training_steps=options.steps + options.warmup)
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this bench drives by hand
        runs[name] = (trainer, iter(trainer.get_train_dataloader()))
    times: dict[str, list[float]] = {name: [] for name in trainers}
    fetches: dict[str, list[float]] = {name: [] for name in trainers}
    # Each method against its own anchor, alternating which goes first: a light PBA step never sits next to a heavy
    # ICA one, whose memory churn would bias whichever step follows it.
    for name in ("PBA", "ICA"):
        pair = [f"DPO ({name} rows)", name]
        for step in range(options.steps + options.warmup):
            for member in pair if step % 2 else pair[::-1]:
                trainer, batches = runs[member]
                start = time.perf_counter()
                batch = next(batches)
                fetched = time.perf_counter()
                trainer.training_step(trainer.model, batch)
                trainer.optimizer.step()
                trainer.optimizer.zero_grad()
                if step >= options.warmup:
                    times[member].append(time.perf_counter() - start)
                    fetches[member].append(fetched - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"model {path}, batch {options.batch_size}, {options.steps} timed steps each (after {options.warmup} warm-up), "
        f"{torch.get_num_threads()} threads"
    )
    print("median step: " + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in medians.items()))
    print(
        "  of which fetching the batch: "
        + ", ".join(f"{name} {statistics.median(values) * 1000:.2f} ms" for name, values in fetches.items())
    )
    for name in ("PBA", "ICA"):
        ratio = medians[name] / medians[f"DPO ({name} rows)"]
        print(f"ratio {name} / DPO: {ratio:.3f} (expected about 1.0)")


def inference_rates(options: argparse.Namespace, path: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from personalign import LearnedPreferenceInferencer, Persona, PersonaEncoder, PreferenceInferencer
    from personalign.data.synthetic import alignx_rows
    from personalign.inference.calibration import direction_report, gold_directions
    from personalign.inference.generation import TransformersBackend
    from personalign.inference.learned import LearnedInferenceConfig
    from personalign.testing import tiny_encoder

    learned = LearnedPreferenceInferencer(PersonaEncoder.from_pretrained(str(tiny_encoder())))
    learned.fit(alignx_rows(options.train_personas, seed=1), LearnedInferenceConfig(show_progress_bar=False))
    rows = alignx_rows(options.personas, seed=2, history_size=tuple(options.inference_history))
    personas = [Persona.from_alignx_row(row) for row in rows]
    num_comments = sum(len(p.ugc) + 2 * len(p.pairs) for p in personas)
    backend = TransformersBackend(
        AutoModelForCausalLM.from_pretrained(path),
        AutoTokenizer.from_pretrained(path),
        batch_size=options.generation_batch_size,
        show_progress=False,
    )
    llm = PreferenceInferencer(backend, max_new_tokens=options.max_new_tokens)
    best = {"llm": float("inf"), "learned": float("inf"), "learned, batched": float("inf")}
    directions = {}
    for _ in range(options.repeats):
        start = time.perf_counter()
        directions["llm"] = [llm.infer(persona) for persona in personas]
        best["llm"] = min(best["llm"], time.perf_counter() - start)
        # The learned inferencer is ~1,000x faster: time it over many passes so the clock resolves it.
        start = time.perf_counter()
        for _ in range(options.learned_passes):
            directions["learned"] = [learned.infer(persona) for persona in personas]
        best["learned"] = min(best["learned"], (time.perf_counter() - start) / options.learned_passes)
        start = time.perf_counter()
        for _ in range(options.learned_passes):
            batched = learned.infer_many(personas)
        best["learned, batched"] = min(
            best["learned, batched"], (time.perf_counter() - start) / options.learned_passes
        )
    if batched != directions["learned"]:
        raise SystemExit("infer_many and infer disagree: the batched rate would not measure the same work.")
    gold = gold_directions(personas)
    print(
        f"{len(personas)} held-out personas, {num_comments} comments in all ({num_comments * 90} LLM questions per "
        f"pass, {options.max_new_tokens} new tokens each); best of {options.repeats} alternating rounds"
    )
    for name, seconds in best.items():
        report = direction_report(directions["llm" if name == "llm" else "learned"], gold)
        print(f"{name:>17}: {len(personas) / seconds:10.2f} personas/s, macro-F1 {report['macro_f1']:.3f}")
    print(f"unreadable LLM answers: {llm.report.to_dict()['unparsable_rate']:.1%} (a random-init tiny LM)")
    print(f"ratio learned / LLM (personas/s, one infer() per persona): {best['llm'] / best['learned']:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Causal LM id or folder (default: the tiny local model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--history", type=int, nargs=2, default=(1, 4), help="Comments and pairs per training persona."
    )
    parser.add_argument("--trainer-input", choices=["raw", "rendered"], default="raw", help="What PBA / ICA get.")
    parser.add_argument("--personas", type=int, default=4, help="Held-out personas to infer (even).")
    parser.add_argument("--inference-history", type=int, nargs=2, default=(2, 2), help="Their comments and pairs.")
    parser.add_argument("--train-personas", type=int, default=100, help="Training personas of the learned head.")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="PreferenceInferencer's default.")
    parser.add_argument("--generation-batch-size", type=int, default=64)
    parser.add_argument("--learned-passes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's; 1 is steadier on a machine shared with other jobs)",
    )
    parser.add_argument("--skip-steps", action="store_true", help="Only part 2.")
    parser.add_argument("--skip-inference", action="store_true", help="Only part 1.")
    options = parser.parse_args()

    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    path = options.model
    if path is None:
        from personalign.testing import tiny_causal_lm

        path = str(tiny_causal_lm())
    if not options.skip_steps:
        step_times(options, path)
    if not options.skip_inference:
        inference_rates(options, path)


if __name__ == "__main__":
    main()
