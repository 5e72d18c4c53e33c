"""`personalign push-model`: publish a trained folder (the datasets' push is `push-dataset`, in `data`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from .common import Overwrite, console


def push_model_command(
    folder: Annotated[Path, typer.Argument(help="A folder written by [bold]personalign train[/bold].")],
    repo_id: Annotated[str | None, typer.Option(help="Hub model repo, ORG/NAME.")] = None,
    to_dir: Annotated[
        Path | None, typer.Option(help="Write the exact layout that would be pushed to this local folder instead.")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Push a trained checkpoint (weights, tokenizer, DPORE head and encoder) with a generated model card."""
    from ..hub.models import export_model, push_model

    if (repo_id is None) == (to_dir is None):
        raise InputError("pass exactly one of --repo-id (push to the Hub) or --to-dir (write the layout locally)")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder.")
    if to_dir is not None:
        export_model(folder, to_dir, overwrite=overwrite)
        console.print(f"wrote {to_dir}")
        return
    console.print(f"pushed {push_model(folder, repo_id, private=private)}")
