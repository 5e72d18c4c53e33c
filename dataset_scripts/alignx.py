"""Build the AlignX configs (raw, ica, pba) from the Hub release or a local copy.

    python dataset_scripts/alignx.py --source JinaLeejnl/AlignX --output data/alignx --num-proc 8
    python dataset_scripts/alignx.py --source path/to/local/alignx --output data/alignx_pba --config pba --seed 1

The same as `personalign build-dataset alignx ...`; `--help` lists every option.
"""

import sys

from personalign.cli import app, run

if __name__ == "__main__":
    sys.argv[1:1] = ["build-dataset", "alignx"]
    run(app)
