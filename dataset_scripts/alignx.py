"""Build the AlignX configs (raw, ica, pba) from the Hub release or a local copy.

    python dataset_scripts/alignx.py --source JinaLeejnl/AlignX --output data/alignx --num-proc 8
    python dataset_scripts/alignx.py --source path/to/local/alignx --output data/alignx_pba --config pba --seed 1

The command `personalign build-dataset alignx ...` as a script; `--help` lists every option.
"""

import typer

from personalign.cli import run
from personalign.cli.data import build_dataset_alignx

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
app.command()(build_dataset_alignx)

if __name__ == "__main__":
    run(app)
