"""How far each learning test's measured value sits above its threshold, over several data seeds.

The tests marked `learning` draw their data (and training order) from `PERSONALIGN_LEARNING_SEED` (0 in the suite)
and report every checked value through the `check_learning` fixture. This script runs them once per seed in a fresh
pytest process, then prints, per check, the threshold, the values over the seeds and the margin (smallest value
minus threshold): a threshold every seed clears with room is one a new machine, CPU kernel or library release also
clears. A seed other than 0 is a stand-in for that numeric drift: it changes the data and the batch order.

    python bench/learning_margins.py --seeds 0 1 2 3 4 [-k pba] [--output runs/learning_margins]

Writes `learning_margins.json` and `learning_margins.png` (each check's values against its threshold) to
`--output`. Exits 1 when a seed fails a check, so the margin table is also a test of the thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def run_seed(seed: int, record: Path, selection: str | None) -> tuple[int, float]:
    """Run the learning tests under one seed; their checks are appended to `record`. Returns (exit code, seconds)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "learning"]
    command += ["--continue-on-collection-errors", str(ROOT / "tests")]
    if selection:
        command += ["-k", selection]
    environment = {**os.environ, "PERSONALIGN_LEARNING_SEED": str(seed), "PERSONALIGN_LEARNING_RECORD": str(record)}
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    if completed.returncode not in (0, 1):  # 1 = a check failed: that is a measurement, not a crash
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
    return completed.returncode, time.perf_counter() - start


def summarise(entries: list[dict]) -> list[dict]:
    """One row per (test, check): threshold, values by seed, min / mean / max and the margin (min - threshold)."""
    grouped: dict[tuple[str, str], dict] = defaultdict(lambda: {"values": {}})
    for entry in entries:
        row = grouped[(entry["test"], entry["name"])]
        row["minimum"] = entry["minimum"]
        row["values"][entry["seed"]] = entry["value"]
    rows = []
    for (test, name), row in grouped.items():
        values = list(row["values"].values())
        rows.append(
            {
                "test": test.split("::")[-1],
                "check": name,
                "threshold": row["minimum"],
                "values": row["values"],
                "min": min(values),
                "mean": sum(values) / len(values),
                "max": max(values),
                "margin": min(values) - row["minimum"],
            }
        )
    return rows


def plot(rows: list[dict], path: Path) -> Path:
    from personalign.evaluation.plots import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    for index, row in enumerate(rows):
        values = list(row["values"].values())
        axis.scatter(values, [index] * len(values), color="tab:blue", s=18, zorder=3)
        axis.plot([row["threshold"]] * 2, [index - 0.35, index + 0.35], color="tab:red", linewidth=2)
    axis.set_yticks(range(len(rows)), [f"{row['test'][5:40]}: {row['check']}" for row in rows], fontsize=7)
    axis.set_xlabel("measured value (dots: seeds; red: threshold)")
    axis.invert_yaxis()
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path, overwrite=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("-k", dest="selection", help="pytest -k expression to run a subset of the learning tests")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "learning_margins")
    args = parser.parse_args()
    failed = []
    with tempfile.TemporaryDirectory(prefix="personalign-margins-") as folder:
        record = Path(folder) / "checks.jsonl"
        record.touch()
        for seed in args.seeds:
            code, seconds = run_seed(seed, record, args.selection)
            print(f"seed {seed}: pytest exit {code} in {seconds:.0f} s", flush=True)
            if code != 0:
                failed.append(seed)
        entries = [json.loads(line) for line in record.read_text().splitlines() if line]
    rows = summarise(entries)
    print(f"\n{'test':<58} {'check':<36} {'threshold':>9} {'min':>7} {'mean':>7} {'max':>7} {'margin':>7}")
    for row in rows:
        print(
            f"{row['test'][:58]:<58} {row['check'][:36]:<36} {row['threshold']:>9.3f} {row['min']:>7.3f} "
            f"{row['mean']:>7.3f} {row['max']:>7.3f} {row['margin']:>+7.3f}"
        )
    args.output.mkdir(parents=True, exist_ok=True)
    packages = ("torch", "transformers", "trl", "datasets", "sentence-transformers", "peft", "accelerate")
    versions = {package: version(package) for package in packages}
    (args.output / "learning_margins.json").write_text(
        json.dumps({"seeds": args.seeds, "failed_seeds": failed, "versions": versions, "checks": rows}, indent=2)
    )
    if rows:
        print(f"\nwrote {plot(rows, args.output / 'learning_margins.png')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
