"""Build ALOE's per-turn preference rows (configs `preference`, `personas`, `excerpts`) from ALOE records.

    python dataset_scripts/aloe.py --source ShujinWu-0814/ALOE --output data/aloe
    python dataset_scripts/aloe.py --source path/to/aloe.jsonl --output data/aloe --test-personas 10 --rejected first

The command `personalign build-dataset aloe ...` as a script; `--help` lists every option. From Python, the same
build is `personalign.data.aloe.build_aloe(source, ALOEBuildConfig(...))`.
"""

import typer

from personalign.cli import run
from personalign.cli.data import build_dataset_aloe

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
app.command()(build_dataset_aloe)

if __name__ == "__main__":
    run(app)
