"""Synthetic data streams in constant memory: peak RSS of writing N rows vs 10x N rows to parquet.

    python bench/synthetic_stream_memory.py [--rows 20000]

Each size runs in a fresh process (so peak RSS is its own). Prints rows/s and the ratio of peak RSS, large run
over small run: a generator that materialised its rows would show a ratio near 10; the target is <= 1.25.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from personalign.data.synthetic import ALIGNX_FEATURES, alignx_rows
from personalign.io import write_rows
rows, path = int(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
write_rows(alignx_rows(rows, seed=0), path, ALIGNX_FEATURES, batch_size=2000, progress=False)
elapsed = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(rows: int, folder: Path) -> dict:
    path = folder / f"alignx_{rows}.parquet"
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(rows), str(path)], check=True, capture_output=True, text=True
    )
    result = json.loads(output.stdout.strip().splitlines()[-1])
    result["file_mb"] = path.stat().st_size / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000, help="Rows of the small run (the large run has 10x).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small, large = measure(args.rows, Path(folder)), measure(10 * args.rows, Path(folder))
    for run in (small, large):
        print(
            f"{run['rows']:>9,} rows: {run['rows'] / run['seconds']:,.0f} rows/s, peak RSS {run['peak_rss_mb']:.0f} MB, "
            f"file {run['file_mb']:.0f} MB"
        )
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"peak RSS ratio ({large['rows']:,} / {small['rows']:,} rows): {ratio:.2f}x (target <= 1.25x)")


if __name__ == "__main__":
    main()
