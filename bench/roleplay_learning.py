"""Learning evidence for the DPORE paper's experiment on CPU: Base, Preferred-SFT, DPO and DPORE in the role-play
evaluation, per turn, over several seeds, with tiny models, synthetic ALOE personas, the scripted user and judge.

Per seed, the recipe of the README as a user runs it (every step is a `personalign` command in a subprocess):

1. `synthetic aloe` (personas with learnable styles), `build-dataset aloe` (test personas held out, every rejected
   reply a row: the generic one and the one in another style), `synthetic general` (general rows, mixed in at 0.25);
2. a tiny causal LM whose tokenizer is trained on ALOE-like text of another seed (`build_tiny_causal_lm(corpus=...)`:
   whole-word tokens, so ten turns fit and replies take fewer steps to learn) -- the Base model;
3. a tiny PersonaEncoder trained on the `excerpts` config (`train encoder`, the paper's contrastive G), for DPORE;
4. `train sft` from the base, then `train dpo` and `train dpore` from the SFT model (also their reference, as the
   paper), same steps / lr / batch; DPORE at lambda 1 in the margin placement (docs/methods/dpore.md: lambda 5
   saturates the sigmoid on tiny models) and, with `--lambdas 1 5`, the paper's lambda 5 too;
5. one `eval roleplay` of the models on the held-out personas, `--turns 10 --runs 1` (greedy decoding: the runs would
   coincide, see docs/evaluation/roleplay.md).

Then prints the per-turn table (mean +- std over seeds per model and turn, and the average), and writes
`roleplay_learning.json` and `roleplay_learning.png` (per-turn lines, the seed spread shaded) to `--output`.

    python bench/roleplay_learning.py --output runs/roleplay_learning [--seeds 0 1 2] [--jobs 2]

Seeds run in parallel (`--jobs`), each process on one thread. About 20 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
TINY = ROOT / "examples" / "configs" / "tiny"
# The tokenizer's text comes from another data seed than any run's: it learns the vocabulary, never a test persona.
TOKENIZER_DATA_SEED = 1000


def personalign(log: Path, *args: str) -> None:
    """`personalign ARGS` in a subprocess (one thread, offline), its output appended to `log`; raises on failure."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(log.parent / "hf"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("a") as out:
        out.write(f"\n$ personalign {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([sys.executable, "-m", "personalign", *args], stdout=out, stderr=out, env=env)
    if done.returncode:
        raise RuntimeError(f"personalign {args[0]} {args[1]} failed (exit {done.returncode}); see {log}")


def aloe_text(seed: int):
    """ALOE-like and general text for the tokenizers (another seed than the data: vocabulary, not test rows)."""
    from personalign.data.synthetic_aloe import aloe_rows, general_preference_rows

    for row in aloe_rows(40, conversations_per_persona=2, turns=10, seed=seed):
        yield row["profile"]
        yield row["personality"]
        for turn in row["conversations"]:
            yield turn["user"]
            yield turn["assistant"]["preferred"]
            yield from turn["assistant"]["rejected"]
    for row in general_preference_rows(200, seed=seed):
        yield row["prompt"]
        yield row["chosen"][-1]["content"]
        yield row["rejected"][-1]["content"]


def build_models(folder: Path, seed: int) -> None:
    """The base causal LM and the encoder backbone (wrapped as an untrained PersonaEncoder) of `seed`."""
    import torch

    from personalign.encoder import PersonaEncoder
    from personalign.testing import build_tiny_causal_lm, build_tiny_encoder, tokenizer_corpus

    torch.set_num_threads(1)
    corpus = list(chain(tokenizer_corpus(seed), aloe_text(TOKENIZER_DATA_SEED)))
    build_tiny_causal_lm(folder / "base", seed=seed, corpus=corpus)
    build_tiny_encoder(folder / "encoder_backbone", seed=seed, corpus=corpus)
    PersonaEncoder.from_pretrained(folder / "encoder_backbone").save_pretrained(folder / "encoder_init")


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """The whole recipe for one seed; returns the role-play summary's per-model scores and the step times."""
    folder = args.output / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    times: dict[str, float] = {}

    def step(name: str, *command: str) -> None:
        start = time.perf_counter()
        personalign(log, *command)
        times[name] = round(time.perf_counter() - start, 1)
        print(f"seed {seed}: {name} done in {times[name]:.0f} s", flush=True)

    s = str(seed)
    step("synthetic aloe", "synthetic", "aloe", "--output", str(folder / "aloe.jsonl"), "--personas",
         str(args.personas), "--conversations", str(args.conversations), "--turns", "10", "--seed", s)  # fmt: skip
    step("build-dataset aloe", "build-dataset", "aloe", "--source", str(folder / "aloe.jsonl"), "--output",
         str(folder / "aloe"), "--test-personas", str(args.test_personas), "--rejected", "all", "--seed", s)  # fmt: skip
    step("synthetic general", "synthetic", "general", "--output", str(folder / "general.jsonl"), "--rows",
         str(args.general_rows), "--seed", s)  # fmt: skip
    start = time.perf_counter()
    build_models(folder, seed)
    times["tiny models"] = round(time.perf_counter() - start, 1)

    data = ["--dataset_name", str(folder / "aloe"), "--general_dataset_name", str(folder / "general.jsonl")]
    # No periodic checkpoints or evaluation: the role-play is the evaluation; the run record still gets written.
    quiet = ["--save_strategy", "no", "--eval_strategy", "no", "--dataset_test_split", "", "--disable_tqdm", "true",
             "--logging_steps", "25", "--seed", s]  # fmt: skip
    step("train encoder", "train", "encoder", "--config", str(TINY / "encoder.yaml"), "--model_name_or_path",
         str(folder / "encoder_init"), "--dataset_name", str(folder / "aloe"), "--dataset_config", "excerpts",
         "--excerpt_format", "table", "--output_dir", str(folder / "encoder"), "--max_steps", str(args.encoder_steps),
         "--save_strategy", "no", "--disable_tqdm", "true", "--seed", s)  # fmt: skip
    step("train sft", "train", "sft", "--config", str(TINY / "sft_aloe.yaml"), "--model_name_or_path",
         str(folder / "base"), *data, "--output_dir", str(folder / "sft"), "--max_steps", str(args.sft_steps),
         "--learning_rate", str(args.sft_lr), "--per_device_train_batch_size", str(args.batch_size), *quiet)  # fmt: skip
    preference = ["--model_name_or_path", str(folder / "sft"), *data, "--max_steps", str(args.dpo_steps),
                  "--learning_rate", str(args.dpo_lr), "--per_device_train_batch_size", str(args.dpo_batch_size),
                  "--beta", str(args.beta), *quiet]  # fmt: skip
    step("train dpo", "train", "dpo", "--config", str(TINY / "dpo_aloe.yaml"), *preference,
         "--output_dir", str(folder / "dpo"))  # fmt: skip
    models = [("Base", "base"), ("Preferred-SFT", "sft"), ("DPO", "dpo")]
    for lam in args.lambdas:
        name = f"dpore_lambda{lam:g}"
        step(f"train dpore (lambda {lam:g})", "train", "dpore", "--config", str(TINY / "dpore_aloe.yaml"),
             *preference, "--persona_encoder", str(folder / "encoder"), "--re_lambda", f"{lam:g}",
             "--output_dir", str(folder / name))  # fmt: skip
        models.append((f"DPORE (λ={lam:g})", name))
    roleplay = []
    for label, path in models:
        roleplay += ["--model", str(folder / path), "--label", label]
    step("eval roleplay", "eval", "roleplay", *roleplay, "--personas", str(folder / "aloe"), "--user-simulator",
         "scripted:aloe-user", "--judge", "scripted:aloe-judge", "--turns", str(args.turns), "--runs", "1",
         "--max-new-tokens", str(args.max_new_tokens), "--seed", s, "--no-cache", "--output",
         str(folder / "roleplay"), "--overwrite")  # fmt: skip
    summary = json.loads((folder / "roleplay" / "summary.json").read_text())
    scores = {
        label: {"per_turn": [turn["mean"] for turn in model["per_turn"]], "average": model["average"]}
        for label, model in summary["models"].items()
    }
    return {"seed": seed, "scores": scores, "seconds": times}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict]) -> dict:
    """Per model: per turn and average, mean and std over the seeds."""
    labels = list(runs[0]["scores"])
    out = {}
    for label in labels:
        turns = zip(*(run["scores"][label]["per_turn"] for run in runs), strict=True)
        per_turn = [dict(zip(("mean", "std"), mean_std(list(values)), strict=True)) for values in turns]
        average = dict(zip(("mean", "std"), mean_std([run["scores"][label]["average"] for run in runs]), strict=True))
        out[label] = {"per_turn": per_turn, "average": average}
    return out


def table(models: dict) -> str:
    turns = len(next(iter(models.values()))["per_turn"])
    head = "| Method | " + " | ".join(f"k = {k}" for k in range(1, turns + 1)) + " | Avg. |"
    lines = [head, "|---|" + "---:|" * (turns + 1)]
    for label, model in models.items():
        cells = [f"{t['mean']:.2f} ± {t['std']:.2f}" for t in model["per_turn"]]
        cells.append(f"**{model['average']['mean']:.2f} ± {model['average']['std']:.2f}**")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(models: dict, seeds: list[int], path: Path) -> Path:
    from personalign.evaluation.plots import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    for label, model in models.items():
        turns = list(range(1, len(model["per_turn"]) + 1))
        means = [t["mean"] for t in model["per_turn"]]
        stds = [t["std"] for t in model["per_turn"]]
        axis.plot(turns, means, marker="o", markersize=3, label=f"{label} (avg {model['average']['mean']:.2f})")
        low = [m - s for m, s in zip(means, stds, strict=True)]
        high = [m + s for m, s in zip(means, stds, strict=True)]
        axis.fill_between(turns, low, high, alpha=0.2)
    axis.set_xlabel("turn k")
    axis.set_ylabel("persona-alignment score (scripted judge, 1-5)")
    axis.set_ylim(0.9, 5.1)
    axis.set_xticks(turns)
    axis.set_title(f"Role-play on held-out synthetic ALOE personas, tiny models (mean ± std over seeds {seeds})")
    axis.legend(fontsize=8, loc="lower right")
    return save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", type=Path, help="work and result folder (default runs/roleplay_learning, or a dated sibling)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=3, help="seeds run at once (one thread each)")
    parser.add_argument("--personas", type=int, default=60)
    parser.add_argument("--test-personas", type=int, default=12)
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--general-rows", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16, help="Preferred-SFT batch")
    parser.add_argument("--dpo-batch-size", type=int, default=8, help="DPO and DPORE batch")
    parser.add_argument("--encoder-steps", type=int, default=30)
    parser.add_argument("--sft-steps", type=int, default=250)
    parser.add_argument("--sft-lr", type=float, default=3e-3)
    parser.add_argument("--dpo-steps", type=int, default=40)
    parser.add_argument("--dpo-lr", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args()
    if args.output is None:  # `make bench` runs it again and again: never over an earlier result
        args.output = Path("runs/roleplay_learning")
        if args.output.exists():
            args.output = args.output.with_name(f"roleplay_learning-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.output.exists():
        if not args.overwrite:
            sys.exit(f"error: {args.output} exists; pass --overwrite to replace it.")
        shutil.rmtree(args.output)
    args.output.mkdir(parents=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda seed: run_seed(seed, args), args.seeds))
    wall = time.perf_counter() - start
    models = aggregate(runs)
    print(
        f"\nRole-play, {args.test_personas} held-out personas x {args.turns} turns, mean ± std over seeds {args.seeds}:"
    )
    print(table(models))
    result = {
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "models": models,
        "runs": runs,
        "wall_seconds": round(wall, 1),
        "load_average": os.getloadavg(),
    }
    (args.output / "roleplay_learning.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {plot(models, args.seeds, args.output / 'roleplay_learning.png')}")
    print(f"wall time {wall / 60:.1f} min ({len(args.seeds)} seeds, {args.jobs} at once); load {os.getloadavg()}")


if __name__ == "__main__":
    main()
