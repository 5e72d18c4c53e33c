"""`personalign generate`: one response per dataset row under its persona prompt (the training renderers), written
as a responses folder for `personalign judge`. The library's `generate_responses` + `write_responses`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .common import (
    CacheDir,
    DryRun,
    MaxRequestsPerMinute,
    MaxRetries,
    NoCache,
    NumWorkers,
    Overwrite,
    RequestTimeout,
    console,
)


def generate_command(
    model: Annotated[
        str,
        typer.Option(
            help="The model: a folder or Hub id (transformers), or a backend spec: [bold]vllm:PATH[/bold], "
            "[bold]openai:BASE_URL@MODEL[/bold] (an OpenAI-compatible server: vllm serve, TGI, ...) or "
            "[bold]openai:MODEL[/bold] ($OPENAI_BASE_URL, else OpenAI; key from $OPENAI_API_KEY)."
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="AlignX or counterfactual MultiFacet rows, as [bold]eval policy[/bold] reads them: parquet / jsonl / "
            "json file (JSON lines or a JSON list, as AlignX's benchmark files) or folder, a build-dataset folder "
            "(raw, else its ready pba / ica prompts, sent as they are), or a Hub id."
        ),
    ],
    output: Annotated[Path, typer.Option(help="Output folder: responses.jsonl and generation.json.")],
    persona_format: Annotated[
        str | None,
        typer.Option(
            help="AlignX prompts: [bold]pba[/bold] (default: the row's profile, else the preference text of its "
            "history) or [bold]ica[/bold] (the history itself); MultiFacet: [bold]feedback[/bold]."
        ),
    ] = None,
    preferences: Annotated[
        Path | None,
        typer.Option(
            help="PBA: a folder of [bold]personalign infer-preferences[/bold]; each row's prompt states the profile "
            "inferred from its history instead of the gold one (the record keeps the gold one for the judge)."
        ),
    ] = None,
    no_history: Annotated[
        bool,
        typer.Option(
            "--no-history",
            help="The ablation without the persona: the user's query alone (with the format's system message).",
        ),
    ] = False,
    data_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="[bold]alignx[/bold] or [bold]multifacet[/bold]: overrides the detection from the columns.",
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="Split; by default the only one, else test.")] = None,
    limit: Annotated[int | None, typer.Option(help="Generate for the first N rows only.")] = None,
    no_demographics: Annotated[
        bool, typer.Option("--no-demographics", help="ICA: leave the demographic description out.")
    ] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum new tokens per response.")] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy decoding.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (sampling only).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass (transformers).")] = 8,
    num_workers: NumWorkers = 4,
    max_requests_per_minute: MaxRequestsPerMinute = None,
    max_retries: MaxRetries = None,
    request_timeout: RequestTimeout = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    dry_run: DryRun = False,
    overwrite: Overwrite = False,
) -> None:
    """Generate one response per dataset row under its persona prompt (the training renderers), with the generation
    settings recorded: the responses folder [bold]personalign judge[/bold] grades."""
    from ..evaluation.generate import GenerationEvalConfig, generate_responses
    from ..inference.generation import parse_backend_spec
    from ..io import ensure_writable

    # Before loading models and data; never over what the run reads (a dataset or model folder, the preferences).
    inputs = (dataset, parse_backend_spec(model)[1]["model"], preferences, cache_dir)
    ensure_writable(output, overwrite, inputs=inputs)
    config = GenerationEvalConfig(
        data_format=data_format,
        split=split,
        persona_format=persona_format,
        no_history=no_history,
        limit=limit,
        include_demographics=not no_demographics,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
        num_workers=num_workers,
        max_requests_per_minute=max_requests_per_minute,
        max_retries=max_retries,
        request_timeout=request_timeout,
        cache_dir=None if cache_dir is None else str(cache_dir),
        no_cache=no_cache,
        dry_run=dry_run,
    )

    def log(line: str) -> None:
        console.print(escape(line), soft_wrap=True)

    profiles = None
    if preferences is not None:
        from ..inference.preferences_file import read_inferred_preferences

        def profiles(rows):  # read once the rows are loaded: the file is checked against their ids and histories
            return read_inferred_preferences(preferences, rows, limit)

    result = generate_responses(
        model,
        dataset,
        config,
        log=log,
        profiles=profiles,
        preferences=None if preferences is None else str(preferences),
    )
    if result.plan is not None:
        console.print(escape(result.plan), soft_wrap=True)
        return
    result.write(output, overwrite)
    calls = result.meta["calls"]
    console.print(
        escape(
            f"wrote {output} ({len(result.records)} responses; calls: {calls['requested']} requested, "
            f"{calls['cached']} cached, {calls['called']} sent)"
        ),
        soft_wrap=True,
    )
