"""`personalign space`: show a preference space's dimensions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InputError


def space_command(
    name: Annotated[str, typer.Argument(help="[bold]alignx[/bold], [bold]psoups[/bold], or a JSON file.")] = "alignx",
) -> None:
    """Show the dimensions of a preference space, in vector order."""
    from ..io import require_local_path  # `io` imports safetensors: kept out of the CLI's start-up
    from ..personas.space import PreferenceSpace

    builders = {"alignx": PreferenceSpace.alignx, "psoups": PreferenceSpace.psoups}
    if name not in builders:
        require_local_path(name, "preference space file", (".json",))
    if name in builders:
        space = builders[name]()
    elif Path(name).is_file():
        space = PreferenceSpace.from_json(name)
    else:
        raise InputError(f"unknown preference space {name!r}: use alignx, psoups or a JSON file path")
    table = Table(title=f"{space.name}: {len(space)} dimensions")
    for column in ("index", "name", "positive (1)", "negative (0)"):
        table.add_column(column)
    for index, dimension in enumerate(space.dimensions):
        table.add_row(str(index), dimension.name, dimension.positive_label, dimension.negative_label)
    Console().print(table)
