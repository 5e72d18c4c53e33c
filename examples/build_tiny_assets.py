"""Build the tiny local assets the configs in examples/configs/tiny/ point at (no network):

python examples/build_tiny_assets.py runs/tiny
personalign train pba --config examples/configs/tiny/pba.yaml
"""

from __future__ import annotations

import argparse

from personalign.testing import write_tiny_assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="runs/tiny")
    parser.add_argument("--train-rows", type=int, default=256)
    parser.add_argument("--test-rows", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    print(f"wrote {write_tiny_assets(args.folder, args.train_rows, args.test_rows, overwrite=args.overwrite)}")


if __name__ == "__main__":
    main()
