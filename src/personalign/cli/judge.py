"""`personalign judge`: the papers' judged evaluations of generated responses (contract C3): read one or two
`personalign generate` folders, ask an LLM judge with a paper's protocol, write per-item judgments, a summary with
bootstrap intervals, PNG plots and, with `--model-card`, the headline numbers into the model's `model-index`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import InputError
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

PROTOCOL_HELP = (
    "[bold]pairwise-win[/bold] (AlignX win rate; needs --against), [bold]persona-tailoring[/bold] (the DPORE "
    "paper's 1-5 score), [bold]multifacet-rubric[/bold] (the counterfactual paper's Table 3, per dimension) or "
    "[bold]style-score[/bold] (its Table 2: --responses with history, --against the --no-history run)."
)


def judge_command(
    responses: Annotated[
        Path, typer.Option(help="Responses folder written by [bold]personalign generate[/bold] (the system judged).")
    ],
    protocol: Annotated[str, typer.Option(help=PROTOCOL_HELP)],
    judge: Annotated[
        str,
        typer.Option(
            help="Judge model: [bold]openai:BASE_URL@MODEL[/bold], [bold]openai:MODEL[/bold] (key from "
            "$OPENAI_API_KEY), [bold]vllm:PATH[/bold] or [bold]transformers:PATH[/bold]."
        ),
    ],
    output: Annotated[
        Path, typer.Option(help="Output folder: judgments.jsonl, summary.json and the protocol's PNG plots.")
    ],
    against: Annotated[
        Path | None,
        typer.Option(help="A second responses folder on the same rows (matched by row id): the other system."),
    ] = None,
    model_card: Annotated[
        Path | None,
        typer.Option(help="Add the results to this model card's model-index (the --responses model's README.md)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the judge's sampling, the pairwise order and the bootstrap: an integer from 0 to 2**63 - 1."
        ),
    ] = 0,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples of the confidence intervals (1 to 100,000).")
    ] = 1000,
    confidence: Annotated[float, typer.Option(help="Coverage of the confidence intervals, in (0, 1).")] = 0.95,
    swap: Annotated[
        bool,
        typer.Option("--swap", help="pairwise-win: judge every row in both orders (position-bias control)."),
    ] = False,
    dimension: Annotated[
        str | None,
        typer.Option(
            help="style-score: the dimension whose rows are graded (default style; case, spaces, hyphens and "
            "underscores do not matter: Background-Knowledge is background_knowledge)."
        ),
    ] = None,
    no_derive_rubrics: Annotated[
        bool,
        typer.Option(
            "--no-derive-rubrics",
            help="multifacet-rubric / style-score: refuse rows without a rubric instead of deriving one from their "
            "ground-truth preference.",
        ),
    ] = False,
    retry_unparsable: Annotated[
        bool,
        typer.Option(
            "--retry-unparsable",
            help="Ask again the judge calls whose cached answers could not be parsed (the others still come from "
            "the call cache); their new answers are cached.",
        ),
    ] = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    dry_run: DryRun = False,
    num_workers: NumWorkers = 4,
    max_requests_per_minute: MaxRequestsPerMinute = None,
    max_retries: MaxRetries = None,
    request_timeout: RequestTimeout = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens per judge output (default: the judge's, pairwise 128, tailoring 64, rubric 512)."),
    ] = None,
    temperature: Annotated[
        float, typer.Option(help="Judge sampling temperature, >= 0 (0: greedy, as the papers).")
    ] = 0.0,
    top_p: Annotated[float, typer.Option(help="Judge nucleus sampling mass, in (0, 1].")] = 1.0,
    overwrite: Overwrite = False,
) -> None:
    """Judge generated responses with a paper's protocol: per-item judgments, a summary with bootstrap confidence
    intervals, PNG plots, and optionally the results in a model card.

    Every option is checked before a file is read or a call is sent (the dry run too). Judge answers are cached
    (`--cache-dir`); answers the judge gave but that could not be parsed are cached too, and a run says how many came
    from the cache: `--retry-unparsable` asks exactly those calls again."""
    from ..errors import PersonalignError
    from ..evaluation.protocols import (
        RETRY_NEEDS_CACHE,
        JudgeSettings,
        get_protocol,
        judge_responses,
        load_judge_inputs,
        reask_unparsable,
        update_model_card_with_judgments,
        write_judge_outputs,
    )
    from ..hub.cards import check_card_path
    from ..inference.calls import DryRunBackend, api_kwargs, wrap_backend
    from ..io import ensure_writable

    # The options first, the dry run's too: a bad one must not surface after the judge calls are paid.
    settings = JudgeSettings(
        seed=seed,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        num_resamples=bootstrap,
        confidence=confidence,
    )
    if retry_unparsable and no_cache:
        raise InputError(RETRY_NEEDS_CACHE)
    if not dry_run:
        ensure_writable(output, overwrite, inputs=(responses, against, cache_dir))  # before reading or calling
        if model_card is not None:
            check_card_path(model_card)
    options: dict[str, Any] = {}
    if swap:
        if protocol != "pairwise-win":
            raise InputError("--swap applies to --protocol pairwise-win only.")
        options["swap"] = True
    if dimension is not None:
        if protocol != "style-score":
            raise InputError("--dimension applies to --protocol style-score only.")
        options["dimension"] = dimension
    if no_derive_rubrics:
        if protocol not in ("multifacet-rubric", "style-score"):
            raise InputError("--no-derive-rubrics applies to --protocol multifacet-rubric and style-score only.")
        options["derive_rubrics"] = False
    chosen = get_protocol(protocol, **options)
    inputs = load_judge_inputs(responses, against)
    chosen.check(inputs)  # every row is judgeable before the judge is loaded
    for note in inputs.notes:
        console.print(escape(note), soft_wrap=True)
    # A dry run loads and sends nothing; otherwise the judge answers through the call cache unless --no-cache.
    backend = wrap_backend(
        judge,
        cache_dir=cache_dir,
        no_cache=no_cache,
        dry_run=dry_run,
        num_workers=num_workers,
        **api_kwargs(max_requests_per_minute, max_retries, request_timeout),
    )
    if isinstance(backend, DryRunBackend):
        # The protocols' judges do not warn about the dry run's empty answers (`judge_responses` reports them).
        if retry_unparsable:
            reask_unparsable(backend, chosen)
        chosen.judge(inputs, backend, settings)
        console.print(escape(backend.plan().describe()), soft_wrap=True)
        # What the real run would refuse before any call, said now (the dry run writes nothing).
        try:
            ensure_writable(output, overwrite)
            if model_card is not None:
                check_card_path(model_card)
        except PersonalignError as error:
            console.print(escape(f"note: the real run would stop here: {error}"), soft_wrap=True)
        return
    run = judge_responses(inputs, backend, chosen, settings, judge_spec=judge, retry_unparsable=retry_unparsable)
    for path in write_judge_outputs(run, output, overwrite=overwrite):
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    for line in chosen.describe(run.summary["results"], run.labels):
        console.print(escape(line), soft_wrap=True)
    if model_card is not None:
        existed = model_card.is_file()
        written = update_model_card_with_judgments(model_card, run)
        if written is None:
            shown = f"no result to add to {model_card}: every judgment was unparsable"
        else:
            shown = f"updated the model-index of {written}" if existed else f"created the model card {written}"
        console.print(escape(shown), soft_wrap=True)
