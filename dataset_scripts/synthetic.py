"""Build offline synthetic datasets in the real release schemas.

    python dataset_scripts/synthetic.py alignx data/alignx_synthetic.parquet --rows 100000
    python dataset_scripts/synthetic.py multifaceted data/multifaceted_synthetic.parquet --instructions 10000

The same as `personalign synthetic ...`; see `--help` of each command.
"""

from personalign.cli import run
from personalign.cli.data import synthetic_app

if __name__ == "__main__":
    run(synthetic_app)
