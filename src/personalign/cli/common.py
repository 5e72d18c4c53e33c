"""What the command modules share: the stderr console and the option types several commands take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)
"""Progress and result lines go to stderr; stdout carries only what a command prints as data (`--print-config`)."""

Output = Annotated[Path, typer.Argument(help="Output file: [bold].parquet[/bold] or [bold].jsonl[/bold].")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed always gives the same rows.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
