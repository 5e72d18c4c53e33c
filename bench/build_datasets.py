"""Dataset build throughput and memory: AlignX (raw + ica + pba) from synthetic releases of growing size, and the
counterfactual MultiFacet benchmark from a full-size (196,998-row) synthetic Multifaceted-Collection.

    python bench/build_datasets.py                     # AlignX at 10k and 100k rows, MultiFacet at full size
    python bench/build_datasets.py --sizes 10000 100000 1000000 --num-proc 2

Each size: a synthetic release in the real schema is written first (not timed), then a fresh process builds all
three configs and writes the dataset folder. Prints rows/s and the peak anonymous memory of the build's process
tree (workers included, copy-on-write pages counted once), sampled every 50 ms; memory-mapped Arrow pages are
page cache, not counted. The synthetic releases use 1,000-row parquet row groups. The last line
is the ratio of the largest size's peak over the smallest's (target <= 1.5x: memory must not grow with the rows).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GENERATE = """
import sys
from personalign.data.synthetic import ALIGNX_FEATURES, alignx_rows
from personalign.io import write_rows
write_rows(alignx_rows(int(sys.argv[1]), seed=0), sys.argv[2], ALIGNX_FEATURES, batch_size=1000, progress=False)
"""
BUILD = """
import json, os, sys, threading, time
import psutil
os.environ["HF_DATASETS_CACHE"] = sys.argv[3]
peak = [0]
def anon_kb(pid):
    # Proportional anonymous memory: pages a forked worker shares copy-on-write with its parent count once.
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Pss_Anon:"))
    except (OSError, StopIteration):
        return 0
def sample():
    me = psutil.Process()
    while True:
        total = anon_kb(me.pid) + sum(anon_kb(child.pid) for child in me.children(recursive=True))
        peak[0] = max(peak[0], total)
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
from datasets import disable_progress_bars
disable_progress_bars()
from personalign.data.alignx import AlignXBuildConfig, alignx_card, build_alignx_configs
from personalign.hub.datasets import render_dataset_card, write_dataset_folder
start = time.perf_counter()
configs = build_alignx_configs(sys.argv[1], config=AlignXBuildConfig(seed=0), num_proc=int(sys.argv[4]) or None)
write_dataset_folder(configs, sys.argv[2], render_dataset_card(configs, alignx_card(sys.argv[1])))
elapsed = time.perf_counter() - start
rows = sum(len(split) for split in configs["raw"].values())
time.sleep(0.1)
print(json.dumps({"rows": rows, "seconds": elapsed, "peak_anon_mb": peak[0] / 1024}))
"""


MULTIFACET = """
import json, os, resource, sys, time
os.environ["HF_DATASETS_CACHE"] = sys.argv[3]
from datasets import disable_progress_bars
disable_progress_bars()
from personalign.data.multifacet import MultifacetBuildConfig, build_multifacet_cf, multifacet_card
from personalign.hub.datasets import render_dataset_card, write_dataset_folder
start = time.perf_counter()
config = MultifacetBuildConfig()
configs, report = build_multifacet_cf(sys.argv[1], config)
write_dataset_folder(configs, sys.argv[2], render_dataset_card(configs, multifacet_card(sys.argv[1], config, report)))
elapsed = time.perf_counter() - start
rows = len(configs["responses"]["train"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "peak_rss_mb": peak, "report": report.lines()}))
"""


def run_multifacet(instructions: int, folder: Path) -> dict:
    source = folder / "multifaceted"
    source.mkdir()
    generate = (
        "import sys\n"
        "from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows\n"
        "from personalign.io import write_rows\n"
        "write_rows(multifaceted_rows(int(sys.argv[1]), seed=0), sys.argv[2], MULTIFACETED_FEATURES, progress=False)\n"
    )
    subprocess.run([sys.executable, "-c", generate, str(instructions), str(source / "train.parquet")], check=True)
    output = subprocess.run(
        [sys.executable, "-c", MULTIFACET, str(source), str(folder / "multifacet_cf"), str(folder / "cache")],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def run(size: int, folder: Path, num_proc: int) -> dict:
    source = folder / f"source_{size}"
    source.mkdir()
    subprocess.run([sys.executable, "-c", GENERATE, str(size), str(source / "train.parquet")], check=True)
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            BUILD,
            str(source),
            str(folder / f"built_{size}"),
            str(folder / "cache"),
            str(num_proc),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument(
        "--multifacet-instructions", type=int, default=65_666, help="3 SFT rows each; 0 skips MultiFacet."
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            result = run(size, Path(folder), args.num_proc)
            results.append(result)
            print(
                f"AlignX {result['rows']:>9,} rows (raw+ica+pba, num_proc={args.num_proc}): "
                f"{result['rows'] / result['seconds']:,.0f} rows/s, {result['seconds']:.1f} s, "
                f"peak anonymous memory {result['peak_anon_mb']:.0f} MB",
                flush=True,
            )
        if args.multifacet_instructions:
            mf = run_multifacet(args.multifacet_instructions, Path(folder))
            print(
                f"MultiFacet-CF from {mf['rows']:,} SFT rows: {mf['seconds']:.1f} s "
                f"({mf['rows'] / mf['seconds']:,.0f} source rows/s, target <= 120 s), peak RSS {mf['peak_rss_mb']:.0f} MB"
            )
            for line in mf["report"]:
                print(f"  {line}")
    ratio = results[-1]["peak_anon_mb"] / results[0]["peak_anon_mb"]
    print(f"peak memory ratio ({results[-1]['rows']:,} / {results[0]['rows']:,} rows): {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
