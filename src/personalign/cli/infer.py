"""`personalign infer-preferences`: each row's preference direction and profile text, inferred from its history by the
LLM inferencer (the AlignX paper's annotation prompt, through a generation backend) or a trained learned inferencer,
written as a preferences folder (`personalign.inference.preferences_file`) that `eval policy --preferences` and
`generate --preferences` give PBA in place of the gold profile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .. import __version__
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

if TYPE_CHECKING:
    from ..inference.base import BasePreferenceInferencer
    from ..inference.generation import GenerationBackend

INFERENCERS = ("llm", "learned")
LEARNED_CHUNK = 64
"""Histories per batched pass of the learned inferencer (one progress step)."""


def generation_backend(
    spec: str, *, cache_dir: Path | None, no_cache: bool, dry_run: bool, **backend_kwargs: Any
) -> GenerationBackend:
    """The generation backend of `--inferencer llm`, as every generating command builds it (`wrap_backend` of
    `personalign.inference.calls`: a dry run sends nothing; calls are cached on disk unless `no_cache`).

    Args:
        spec (`str`): A backend spec (`transformers:PATH`, `vllm:PATH`, `openai:BASE_URL@MODEL`, `openai:MODEL`).
        cache_dir (`Path`, *optional*): The call cache's folder.
        no_cache (`bool`): Send every call, cache nothing.
        dry_run (`bool`): Count the calls, send none.
        **backend_kwargs: Arguments of the backend (`num_workers`, ...).
    """
    from ..inference.calls import wrap_backend

    return wrap_backend(spec, cache_dir=cache_dir, no_cache=no_cache, dry_run=dry_run, **backend_kwargs)


def check_inferencer_folder(path: str) -> None:
    """Check a learned inferencer's folder before loading it: it exists, holds `learned_inference_config.json`, and
    its head's (and saved encoder's) weights load (`io.check_model_folder`). A Hub id passes.

    Raises:
        `InputError`: Naming the folder and what is missing or damaged.
    """
    from ..inference.learned import CONFIG_NAME, ENCODER_FOLDER, HEAD_FOLDER
    from ..io import check_model_folder, require_local_path

    require_local_path(path, "preference inferencer")
    folder = Path(path).expanduser()
    if not folder.exists():
        return  # a Hub id
    if not (folder / CONFIG_NAME).is_file():
        raise InputError(
            f"preference inferencer {path}: no {CONFIG_NAME}; expected a folder written by `personalign train "
            "preference-inferencer` (LearnedPreferenceInferencer.save_pretrained)."
        )
    for part in (HEAD_FOLDER, ENCODER_FOLDER):
        if (folder / part).exists() or part == HEAD_FOLDER:
            check_model_folder(folder / part, "preference inferencer")


def build_inferencer(
    kind: str,
    model: str,
    backend: GenerationBackend | None,
    upper: float | None,
    lower: float | None,
    batch_size: int | None,
    max_new_tokens: int,
) -> BasePreferenceInferencer:
    """The inferencer of `--inferencer`: `PreferenceInferencer` around `backend`, or the learned inferencer saved in
    `model`; `upper` / `lower` / `batch_size` replace its own where given."""
    from ..inference.calibration import check_thresholds

    if kind == "llm":
        from ..inference.llm import PreferenceInferencer

        inferencer = PreferenceInferencer(backend, max_new_tokens=max_new_tokens)
    else:
        from ..inference.learned import LearnedPreferenceInferencer

        inferencer = LearnedPreferenceInferencer.from_pretrained(model)
    if upper is not None or lower is not None:
        new_upper = inferencer.upper if upper is None else upper
        new_lower = inferencer.lower if lower is None else lower
        check_thresholds(new_upper, new_lower)
        inferencer.upper, inferencer.lower = new_upper, new_lower
    if batch_size is not None:
        inferencer.batch_size = batch_size
    return inferencer


def report_lines(report: dict[str, Any], num_rows: int) -> list[str]:
    """The direction report (`calibration.direction_report`) as lines: macro-F1, then precision / recall / F1 per
    category."""
    lines = [f"against the gold directions of {num_rows} rows: macro-F1 {report['macro_f1']:.3f}"]
    for name in ("positive", "negative", "neutral"):
        scores = report[name]
        lines.append(
            f"  {name:8s} precision {scores['precision']:.3f} recall {scores['recall']:.3f} f1 {scores['f1']:.3f} "
            f"(support {scores['support']})"
        )
    return lines


def infer_preferences_command(
    inferencer: Annotated[
        str,
        typer.Option(
            help="[bold]llm[/bold]: the AlignX paper's annotation prompt, 90 questions per history item, through a "
            "generation backend; [bold]learned[/bold]: a trained learned inferencer (`personalign train "
            "preference-inferencer`).",
            show_default=False,
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            help="llm: a backend spec (transformers:PATH, vllm:PATH, openai:BASE_URL@MODEL, openai:MODEL); learned: "
            "the inferencer's folder or Hub id.",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="AlignX rows (release or snake_case columns): a file, a folder, a build-dataset folder (its raw "
            "config) or a Hub id, as `eval policy` reads them.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option(help="Output folder: preferences.jsonl and inference.json.", show_default=False)
    ],
    split: Annotated[str | None, typer.Option(help="Split; by default the only one, else test.")] = None,
    limit: Annotated[int | None, typer.Option(help="Infer for the first N rows only.", min=1)] = None,
    data_format: Annotated[
        str | None,
        typer.Option("--format", help="[bold]alignx[/bold]: skip the detection from the columns (AlignX rows only)."),
    ] = None,
    upper: Annotated[
        float | None, typer.Option(help="Aggregation threshold of a positive dimension (default: the inferencer's).")
    ] = None,
    lower: Annotated[
        float | None, typer.Option(help="Aggregation threshold of a negative dimension (default: the inferencer's).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="llm: prompts per backend call (256); learned: item texts per encoder pass (saved).", min=1),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="llm: tokens per answer (an option number).", min=1)] = 8,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    dry_run: DryRun = False,
    num_workers: NumWorkers = 4,
    max_requests_per_minute: MaxRequestsPerMinute = None,
    max_retries: MaxRetries = None,
    request_timeout: RequestTimeout = None,
    overwrite: Overwrite = False,
) -> None:
    """Infer each row's preference direction from its history (comments and pairs, gold vectors ignored) and write
    it with its PBA profile text: preferences.jsonl (one line per row) and inference.json (with the direction report
    against gold where the rows carry gold directions)."""
    from ..evaluation.rows import load_eval_rows
    from ..inference.calibration import check_threshold
    from ..inference.calls import api_kwargs
    from ..inference.generation import parse_backend_spec, public_spec
    from ..inference.preferences_file import infer_row_preferences, write_inferred_preferences
    from ..io import ensure_writable

    if inferencer not in INFERENCERS:
        raise InputError(f"--inferencer must be one of {', '.join(INFERENCERS)}, got {inferencer!r}.")
    if data_format not in (None, "alignx"):
        raise InputError(f"--format {data_format}: preferences are inferred from AlignX histories; use alignx.")
    llm_only = [
        flag
        for flag, used in (
            ("--dry-run", dry_run),
            ("--no-cache", no_cache),
            ("--cache-dir", cache_dir is not None),
            ("--max-requests-per-minute", max_requests_per_minute is not None),
            ("--max-retries", max_retries is not None),
            ("--request-timeout", request_timeout is not None),
        )
        if used
    ]
    if inferencer == "learned" and llm_only:
        raise InputError(
            f"{', '.join(llm_only)}: options of --inferencer llm (the learned inferencer makes no calls)."
        )
    for flag, value in (("--upper", upper), ("--lower", lower)):  # each alone now; their order once the defaults load
        if value is not None:
            check_threshold(flag, value)
    if not dry_run:  # before loading rows and models; never over what the run reads
        model_path = parse_backend_spec(model)[1]["model"] if inferencer == "llm" else model
        ensure_writable(output, overwrite, inputs=(dataset, model_path, cache_dir))
    rows = load_eval_rows(dataset, split, data_format)
    if rows.data_format != "alignx":
        raise InputError(
            f"{rows.where}: these are {rows.data_format} rows; preferences are inferred from AlignX histories "
            "(comments and pairs)."
        )
    if rows.rendered:
        raise InputError(
            f"{rows.where}: the rows hold ready-rendered prompts ({rows.rendered}), not the history to infer from; "
            "infer from the source rows, or a build-dataset folder with the raw config."
        )
    backend = None
    if inferencer == "llm":
        backend = generation_backend(
            model,
            cache_dir=cache_dir,
            no_cache=no_cache,
            dry_run=dry_run,
            num_workers=num_workers,  # these dropped for a local model (wrap_backend)
            **api_kwargs(max_requests_per_minute, max_retries, request_timeout),
        )
    else:
        check_inferencer_folder(model)
    built = build_inferencer(inferencer, model, backend, upper, lower, batch_size, max_new_tokens)
    num_rows = len(rows.data) if limit is None else min(limit, len(rows.data))
    console.print(f"inferring the preferences of {num_rows} rows of {escape(rows.where)} ({inferencer} inferencer)")
    records, summary = infer_row_preferences(
        built, rows, limit, chunk_size=LEARNED_CHUNK if inferencer == "learned" else 1
    )
    if dry_run:
        console.print(escape(backend.plan().describe()), soft_wrap=True)
        return
    settings: dict[str, Any] = {"upper": built.upper, "lower": built.lower, "batch_size": built.batch_size}
    if inferencer == "learned":
        settings["item_threshold"] = built.item_threshold
    else:
        settings["max_new_tokens"] = max_new_tokens
    calls = getattr(backend, "stats", None)
    meta = {
        "inferencer": inferencer,
        "model": public_spec(model),  # a URL's credentials are never written
        "backend": getattr(backend, "name", None),
        "dataset": dataset,
        "split": rows.split,
        "where": rows.where,
        "data_format": rows.data_format,
        "limit": limit,
        "settings": settings,
        **summary,
        "annotation": built.report.to_dict() if inferencer == "llm" else None,
        "calls": None if calls is None else {k: getattr(calls, k) for k in ("requested", "cached", "called")},
        "personalign_version": __version__,
    }
    write_inferred_preferences(records, meta, output, overwrite)
    console.print(
        f"{summary['num_rows']} rows, {summary['num_histories']} distinct histories; "
        f"{summary['num_empty_profiles']} all-neutral profiles ({summary['num_empty_histories']} rows without history)"
    )
    if inferencer == "llm" and built.report.num_unparsable:
        console.print(
            f"notice: {built.report.num_unparsable} of {built.report.num_calls} answers could not be read (counted as "
            "neutral)."
        )
    if meta["calls"]:
        console.print("calls: " + ", ".join(f"{key} {value}" for key, value in meta["calls"].items()))
    if summary["direction_report"] is not None:
        for line in report_lines(summary["direction_report"], summary["num_rows_with_gold"]):
            console.print(line, highlight=False)
    console.print(f"wrote {escape(str(output))}")
