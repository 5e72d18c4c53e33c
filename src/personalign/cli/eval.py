"""`personalign eval policy|encoder|roleplay|nominal`: the one evaluation front-end, one sub-command per kind of
evaluation (as `train` has one per method). Each is the library's evaluation with its results written to disk:
`evaluate_alignment` + `write_alignment_results` (+ `update_model_card`) for policies, `evaluate_encoder` for persona
encoders, `run_roleplay` + `write_roleplay` (+ `update_model_card_with_roleplay`) for the DPORE paper's role-play, and
lm-evaluation-harness through `evaluation.nominal` for nominal capability."""

from __future__ import annotations

import json
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

eval_app = typer.Typer(
    help="Evaluate a model: [bold]policy[/bold] (alignment accuracy and flip rate of policies on persona-conditioned "
    "pairs), [bold]encoder[/bold] (persona retrieval of a persona encoder) or [bold]roleplay[/bold] (a simulated "
    "user talks with the models for K turns, a judge scores every turn: the DPORE paper's Table 1) or "
    "[bold]nominal[/bold] (general capability through lm-evaluation-harness).",
    no_args_is_help=True,
    add_completion=False,
)


@eval_app.command("policy")
def eval_policy(
    model: Annotated[
        list[str], typer.Option("--model", help="Policy: local folder or Hub id (repeat to compare several).")
    ],
    reference: Annotated[
        str,
        typer.Option(
            help="Reference model of the DPO reward: folder or Hub id; [bold]none[/bold] scores reference-free "
            "(the policy's log-probs alone)."
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="AlignX or counterfactual MultiFacet rows: parquet / jsonl / json file (JSON lines or a JSON list, "
            "as AlignX's benchmark files) or folder (several files: results per file too), a build-dataset folder "
            "(raw, else its ready pba / ica prompts, scored as they are), or a Hub id."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            help="Output folder: results.json, persona_size.png, per_dimension.png (per_persona.png, "
            "per_benchmark.png where the rows allow)."
        ),
    ],
    flip: Annotated[bool, typer.Option("--flip", help="Also score under the reversed persona (flip rate).")] = False,
    persona_sizes: Annotated[
        str | None,
        typer.Option(
            help="History sizes of the robustness run, e.g. 2,4,8,16, or [bold]none[/bold]. Default 2,4,8,16 "
            "without the sizes no row reaches."
        ),
    ] = None,
    data_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="[bold]alignx[/bold] or [bold]multifacet[/bold]: overrides the detection from the columns.",
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="Split; by default the only one, else test.")] = None,
    persona_format: Annotated[
        str | None,
        typer.Option(help="AlignX prompts: [bold]pba[/bold] (default) or [bold]ica[/bold]; MultiFacet: feedback."),
    ] = None,
    beta: Annotated[float, typer.Option(help="DPO temperature of the implicit reward.")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Pairs per forward pass.")] = 8,
    max_length: Annotated[int | None, typer.Option(help="Cut prompt+response to this many tokens.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N rows only.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the persona-size history subsets.")] = 0,
    no_demographics: Annotated[
        bool, typer.Option("--no-demographics", help="ICA: leave the demographic description out.")
    ] = False,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    reference_cache: Annotated[Path | None, typer.Option(help="Cache the reference log-probs in this folder.")] = None,
    preferences: Annotated[
        Path | None,
        typer.Option(
            help="A folder of `personalign infer-preferences`: also score every row with the profile inferred from "
            "its history in its PBA prompt, reported beside the gold results (AlignX rows, PBA prompts)."
        ),
    ] = None,
    model_card: Annotated[
        Path | None, typer.Option(help="Write the overall results into this model card's model-index (README.md).")
    ] = None,
    card_inferred: Annotated[
        bool,
        typer.Option(
            "--card-inferred", help="With --preferences: the card gets the inferred-preference results, not the gold."
        ),
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Alignment accuracy (and flip rate) of policies on persona-conditioned pairs: overall, per dimension, per
    persona, per benchmark file and per persona size, as JSON and PNG plots; with --preferences, also with the
    inferred profiles, side by side."""
    from ..evaluation.runner import (
        INFERRED,
        AlignmentEvalConfig,
        evaluate_alignment,
        update_model_card,
        write_alignment_results,
    )
    from ..hub.cards import check_card_path
    from ..io import ensure_writable

    # Before loading models and data; never over what the run reads (models, data, preferences, the reference cache).
    inputs = (*model, reference, dataset, preferences, reference_cache)
    ensure_writable(output, overwrite, inputs=inputs)
    if card_inferred and (preferences is None or model_card is None):
        raise InputError("--card-inferred puts the results with --preferences into --model-card: pass both.")
    if model_card is not None:
        if len(model) != 1:
            raise InputError("--model-card takes the results of exactly one --model")
        check_card_path(model_card)  # a folder, a missing folder or a broken card fails now, not after the run
    config = AlignmentEvalConfig(
        data_format=data_format,
        split=split,
        persona_format=persona_format,
        flip=flip,
        persona_sizes="2,4,8,16" if persona_sizes is None else persona_sizes,
        skip_unavailable_sizes=persona_sizes is None,
        beta=beta,
        batch_size=batch_size,
        max_length=max_length,
        limit=limit,
        seed=seed,
        include_demographics=not no_demographics,
        dtype=dtype,
        reference_cache_dir=None if reference_cache is None else str(reference_cache),
        preferences=None if preferences is None else str(preferences),
    )
    no_reference = reference.strip().lower() == "none"

    def log(line: str) -> None:
        console.print(escape(line), soft_wrap=True)

    results = evaluate_alignment(model, None if no_reference else reference, dataset, config=config, log=log)
    for path in write_alignment_results(results, output, overwrite=overwrite):
        console.print(f"wrote {path}")
    for name, result in results["models"].items():
        overall = result["overall"]
        shown = [f"{key} {overall[key]:.4f}" for key in ("alignment_accuracy", "flip_rate") if key in overall]
        sizes = result.get("persona_size") or {}
        if sizes:
            shown.append("by size " + ", ".join(f"{s}: {m['alignment_accuracy']:.3f}" for s, m in sizes.items()))
        label = f"{name}, gold profiles" if INFERRED in result else name
        console.print(f"{escape(label)}: {', '.join(shown)} ({overall['num_pairs']} pairs)", soft_wrap=True)
        if INFERRED in result:
            inferred = result[INFERRED]["overall"]
            shown = [f"{key} {inferred[key]:.4f}" for key in ("alignment_accuracy", "flip_rate") if key in inferred]
            console.print(
                f"{escape(name)}, inferred profiles: {', '.join(shown)} ({inferred['num_pairs']} pairs)",
                soft_wrap=True,
            )
    if model_card is not None:
        existed = model_card.is_file()
        written = update_model_card(model_card, results, inferred=card_inferred)
        shown = f"updated the model-index of {written}" if existed else f"created the model card {written}"
        console.print(escape(shown), soft_wrap=True)


@eval_app.command("encoder")
def eval_encoder(
    model: Annotated[str, typer.Option(help="PersonaEncoder (or sentence-transformers / backbone): id or path.")],
    dataset: Annotated[str, typer.Option(help="Local parquet / jsonl file or folder, or a Hub dataset id.")],
    output: Annotated[Path, typer.Option(help="Results JSON file.")],
    excerpt_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="[bold]alignx[/bold] (comments and pairs of AlignX rows), [bold]aloe[/bold] (profile, personality, "
            "conversations) or [bold]table[/bold] (a persona column and a text column).",
        ),
    ] = "alignx",
    persona_column: Annotated[
        str | None, typer.Option(help="Persona column (alignx: groups rows; table: defaults to persona_id).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of a table.")] = "text",
    include_demographics: Annotated[
        bool, typer.Option("--include-demographics", help="alignx: the demographic text is one more excerpt.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
    overwrite: Overwrite = False,
) -> None:
    """Persona retrieval of a persona encoder: excerpt retrieval (recall@1, recall@5, MRR) and same-persona pair
    AUC, as JSON."""
    from ..encoder.evaluation import evaluate_encoder
    from ..encoder.modeling_persona_encoder import PersonaEncoder
    from ..encoder.pipeline import load_excerpts
    from ..io import atomic_output, check_model_folder, ensure_writable

    ensure_writable(output, overwrite, inputs=(model, dataset))  # before loading models and data
    check_model_folder(model, "persona encoder")
    excerpts = load_excerpts(dataset, excerpt_format, persona_column, text_column, include_demographics)
    encoder = PersonaEncoder.from_pretrained(model)
    results = {"model": model, "data": dataset, **evaluate_encoder(encoder, excerpts, batch_size=batch_size)}
    with atomic_output(output, overwrite) as path:
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(
        " ".join(f"{key} {results[key]:.4f}" for key in ("recall@1", "recall@5", "mrr", "pair_auc", "chance_recall@1"))
    )
    console.print(f"wrote {output}")


# ------------------------------------------------------------------------------------------------ eval nominal
@eval_app.command("nominal")
def eval_nominal(
    model: Annotated[
        list[str],
        typer.Option("--model", help="Causal LM: local folder (a trained checkpoint) or Hub id (repeat to compare)."),
    ],
    tasks: Annotated[
        str,
        typer.Option(
            help="lm-evaluation-harness tasks, groups or tags, comma-separated (e.g. arc_easy,hellaswag); a glob "
            "pattern (quoted, e.g. 'mmlu_*') runs every task, group and tag it matches, as `lm-eval --tasks` does; "
            "list them with `lm-eval ls tasks`."
        ),
    ],
    output: Annotated[
        Path, typer.Option(help="Output folder: nominal.json, raw/<model>.json (the harness's results), nominal.png.")
    ],
    include_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--include-path",
            help="A folder of task YAML files of your own (the harness's --include_path); repeat for several.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="Score only the first N documents of each task: a smoke test, not a benchmark number."),
    ] = None,
    num_fewshot: Annotated[
        int | None, typer.Option(help="Few-shot examples per prompt (default: the task's).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Requests per forward pass.")] = 8,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when a GPU is visible, else cpu).")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="auto (the checkpoint's), float32, bfloat16 or float16; nothing else.")
    ] = "auto",
    log_samples: Annotated[
        bool,
        typer.Option("--log-samples", help="Also keep every document's requests and scores (raw/<model>/*.jsonl)."),
    ] = False,
    model_card: Annotated[
        Path | None, typer.Option(help="Write the scores into this model card's model-index (README.md).")
    ] = None,
    merge_into: Annotated[
        Path | None, typer.Option(help="Also add the scores to this `eval policy` results folder (a `nominal` block).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Nominal capability through lm-evaluation-harness (the extra personalign\\[nominal]): its scores per model, task
    and metric, with their standard errors, as JSON and a bar plot; optionally into the model card and an `eval
    policy` results folder."""
    from ..evaluation.nominal import (
        NominalEvalConfig,
        check_results_folder,
        evaluate_nominal,
        import_harness,
        limit_note,
        merge_nominal_into_results,
        update_model_card_with_nominal,
        write_nominal_results,
    )
    from ..hub.cards import check_card_path
    from ..io import ensure_writable

    import_harness()  # before anything else: without the extra, say which pip command installs it
    ensure_writable(output, overwrite, inputs=(*model, *(include_path or []), merge_into))
    if model_card is not None:
        if len(model) != 1:
            raise InputError("--model-card takes the scores of exactly one --model")
        check_card_path(model_card)
    if merge_into is not None:
        check_results_folder(merge_into)
    config = NominalEvalConfig(
        tasks=[tasks],
        include_path=[str(path) for path in include_path] if include_path else None,
        limit=limit,
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        log_samples=log_samples,
    )
    results = evaluate_nominal(model, config, log=lambda line: console.print(escape(line), soft_wrap=True))
    for path in write_nominal_results(results, output, overwrite=overwrite):
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    for name, entry in results["models"].items():
        for task, scores in entry["tasks"].items():
            shown = ", ".join(
                f"{metric} {score['value']:.4f}" + ("" if score["stderr"] is None else f" ± {score['stderr']:.4f}")
                for metric, score in scores["metrics"].items()
            )
            note = limit_note(config.limit, scores["num_samples"])
            shown += f" ({note})" if note else ""
            console.print(f"{escape(name)} {escape(task)}: {escape(shown)}", soft_wrap=True)
    if model_card is not None:
        existed = model_card.is_file()
        written = update_model_card_with_nominal(model_card, results)
        shown = f"updated the model-index of {written}" if existed else f"created the model card {written}"
        console.print(escape(shown), soft_wrap=True)
    if merge_into is not None:
        console.print(f"added the scores to {escape(str(merge_nominal_into_results(merge_into, results)))}")


SCRIPTED_PREFIX = "scripted:"
"""The spec kind of the offline scripted backends (`personalign.testing.scripted_backend`: `scripted:aloe-user`,
`scripted:aloe-judge`), which `eval roleplay` resolves for its user simulator and judge."""


def resolve_spec(spec: str) -> Any:
    """A `scripted:NAME` spec as its scripted backend (`personalign.testing.scripted_backend`); any other spec as it
    is (the call layer loads it)."""
    if not spec.strip().lower().startswith(SCRIPTED_PREFIX):
        return spec
    from ..testing import scripted_backend

    return scripted_backend(spec.strip()[len(SCRIPTED_PREFIX) :])


@eval_app.command("roleplay")
def eval_roleplay(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="A model under test (repeat to compare several): a folder or Hub id (transformers, its chat "
            "template), [bold]vllm:PATH[/bold] or [bold]openai:BASE_URL@MODEL[/bold]. It is never shown the persona.",
        ),
    ],
    personas: Annotated[
        str,
        typer.Option(
            help="The personas: a [bold]build-dataset aloe[/bold] folder (its personas config), or a parquet / jsonl / "
            "json file or Hub id with profile and personality columns (released ALOE records too: de-duplicated)."
        ),
    ],
    user_simulator: Annotated[
        str,
        typer.Option(
            help="The LLM playing the user, prompted with the persona: [bold]openai:BASE_URL@MODEL[/bold], "
            "[bold]openai:MODEL[/bold], [bold]vllm:PATH[/bold], a folder, or [bold]scripted:aloe-user[/bold] (offline, "
            "synthetic ALOE personas)."
        ),
    ],
    judge: Annotated[
        str,
        typer.Option(
            help="The judge of every turn (the DPORE paper's Appendix A prompt, 1-5): a spec as --user-simulator, or "
            "[bold]scripted:aloe-judge[/bold] (offline, synthetic ALOE personas)."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(help="Output folder: transcripts.jsonl, judgments.jsonl, summary.json, table.md, roleplay.png."),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="A label per --model, in order (the table's rows); default the folder name."),
    ] = None,
    turns: Annotated[int, typer.Option(help="Turns per conversation (the DPORE paper: 10).")] = 10,
    runs: Annotated[int, typer.Option(help="Runs per persona and model; run r uses seed + r (the paper: 5).")] = 5,
    num_personas: Annotated[int | None, typer.Option(help="Role-play the first N personas (the paper: 100).")] = None,
    split: Annotated[str | None, typer.Option(help="The personas' split; test when there is one.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply of a model under test.")] = 256,
    user_max_new_tokens: Annotated[int, typer.Option(help="Tokens per simulated user message.")] = 128,
    judge_max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per judge output (default 64).")] = None,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature of the user simulator, the models and the judge (paper: 0).")
    ] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (sampling only).")] = 1.0,
    seed: Annotated[
        int, typer.Option(help="Seed of run 0; run r uses seed + r (part of every call's cache key).")
    ] = 0,
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass (local transformers models).")] = 8,
    table_header: Annotated[
        str, typer.Option(help="The first column's header in table.md (e.g. λ for the lambda sweep).")
    ] = "Method",
    model_card: Annotated[
        Path | None,
        typer.Option(help="Add the average and per-turn scores to this model card's model-index (one --model)."),
    ] = None,
    num_workers: NumWorkers = 4,
    max_requests_per_minute: MaxRequestsPerMinute = None,
    max_retries: MaxRetries = None,
    request_timeout: RequestTimeout = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    dry_run: DryRun = False,
    overwrite: Overwrite = False,
) -> None:
    """Role-play evaluation (the DPORE paper, Table 1): a simulated user with each persona talks with each model for
    --turns turns, --runs times, and a judge scores every reply 1-5 for alignment with the persona. Writes every
    transcript, the per-turn table and plot; every call is cached, so an interrupted run resumes, and --dry-run
    prices the whole evaluation."""
    from ..errors import PersonalignError
    from ..evaluation.roleplay import (
        RoleplayConfig,
        describe_calls,
        describe_plans,
        run_roleplay,
        update_model_card_with_roleplay,
        write_roleplay,
    )
    from ..hub.cards import check_card_path
    from ..inference.generation import parse_backend_spec
    from ..io import ensure_writable

    # The options first, the dry run's too: a bad one must not surface after calls are paid.
    config = RoleplayConfig(
        turns=turns,
        runs=runs,
        num_personas=num_personas,
        split=split,
        max_new_tokens=max_new_tokens,
        user_max_new_tokens=user_max_new_tokens,
        judge_max_new_tokens=judge_max_new_tokens,
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
    if model_card is not None and len(model) != 1:
        raise InputError("--model-card takes the results of exactly one --model.")

    def checks() -> None:  # what the real run refuses before any call
        models = [parse_backend_spec(spec)[1]["model"] for spec in model]
        ensure_writable(output, overwrite, inputs=(*models, personas, cache_dir))
        if model_card is not None:
            check_card_path(model_card)

    if not dry_run:
        checks()

    def log(line: str) -> None:
        console.print(escape(line), soft_wrap=True)

    result = run_roleplay(
        model, personas, resolve_spec(user_simulator), resolve_spec(judge), config, labels=label or None, log=log
    )
    if dry_run:
        for line in describe_plans(result.plans):
            console.print(escape(line), soft_wrap=True)
        try:
            checks()
        except PersonalignError as error:
            console.print(escape(f"note: the real run would stop here: {error}"), soft_wrap=True)
        return
    for path in write_roleplay(result, output, overwrite=overwrite, row_header=table_header):
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    summary = result.summary
    for name, entry in summary["models"].items():
        average = "n/a" if entry["average"] is None else f"{entry['average']:.3f}"
        unparsable = f", {entry['num_unparsable']} unparsable" if entry["num_unparsable"] else ""
        console.print(escape(f"{name}: average {average} over {turns} turns{unparsable}"), soft_wrap=True)
    for line in describe_calls(summary["calls"]):
        console.print(escape(line), soft_wrap=True)
    if model_card is not None:
        existed = model_card.is_file()
        written = update_model_card_with_roleplay(model_card, summary, next(iter(summary["models"])))
        if written is None:
            shown = f"no result to add to {model_card}: every judgment was unparsable"
        else:
            shown = f"updated the model-index of {written}" if existed else f"created the model card {written}"
        console.print(escape(shown), soft_wrap=True)
