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

# The call-layer options of every command that generates (generate, judge, infer-preferences --inferencer llm): one
# spelling and one meaning everywhere (`personalign.inference.calls.wrap_backend` acts on them).
CacheDir = Annotated[
    Path | None,
    typer.Option(help="The call cache's folder (default $PERSONALIGN_CACHE, else ~/.cache/personalign/calls)."),
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the call cache.")]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print how many calls the run makes, how many the cache already holds and the estimated prompt tokens; "
        "send and write nothing.",
    ),
]
NumWorkers = Annotated[
    int, typer.Option(help="Concurrent API calls (openai: servers and APIs; a local model ignores it).", min=1)
]

# The API knobs (openai: specs; dropped for a local model, as --num-workers is): None keeps the backend's default.
MaxRequestsPerMinute = Annotated[
    float | None,
    typer.Option(help="API calls per minute over all workers, retries included (default: unlimited)."),
]
MaxRetries = Annotated[
    int | None,
    typer.Option(
        help="Retries of an API call after a connection error, a timeout, HTTP 408, 409, 429 or 5xx, with backoff "
        "(the server's Retry-After honoured; default 3).",
        min=0,
    ),
]
RequestTimeout = Annotated[
    float | None, typer.Option(help="Seconds one API call may take before it counts as failed (default 120).")
]
