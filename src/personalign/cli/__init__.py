"""The `personalign` command line (Typer, rich help)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from personalign import __version__

app = typer.Typer(
    name="personalign",
    help="User-level (personalized) alignment of LLMs: persona data, encoders, trainers, metrics, Hub publishing.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
synthetic_app = typer.Typer(
    help="Generate offline synthetic data in the real release schemas (AlignX, Multifaceted-Collection).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(synthetic_app, name="synthetic")

console = Console(stderr=True)

Output = Annotated[Path, typer.Argument(help="Output file: [bold].parquet[/bold] or [bold].jsonl[/bold].")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed always gives the same rows.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"personalign {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """User-level (personalized) alignment of LLMs, Hugging Face-native."""


@synthetic_app.command("alignx")
def synthetic_alignx(
    output: Output,
    rows: Annotated[int, typer.Option(help="Number of rows (even: rows come in counterfactual pairs).")] = 1000,
    seed: Seed = 0,
    num_personas: Annotated[
        int | None, typer.Option(help="Draw users from a fixed pool of this many personas (even).")
    ] = None,
    min_history: Annotated[int, typer.Option(help="Fewest comments, and fewest pairs, per persona.")] = 4,
    max_history: Annotated[int, typer.Option(help="Most comments, and most pairs, per persona.")] = 8,
    item_noise: Annotated[float, typer.Option(help="Probability a history item shows the opposite pole.")] = 0.0,
    with_metadata: Annotated[
        bool, typer.Option("--with-metadata", help="Add persona_id, counterfactual_id and target_dimensions.")
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Simulated users' AlignX rows: the release's exact columns, counterfactual by construction."""
    from personalign.data.synthetic import ALIGNX_FEATURES, ALIGNX_METADATA_FEATURES, alignx_rows
    from personalign.io import write_rows

    stream = alignx_rows(
        rows,
        seed,
        num_personas=num_personas,
        history_size=(min_history, max_history),
        item_noise=item_noise,
        with_metadata=with_metadata,
    )
    features = ALIGNX_METADATA_FEATURES if with_metadata else ALIGNX_FEATURES
    written = write_rows(stream, output, features, overwrite=overwrite, total=rows)
    console.print(f"wrote {written} AlignX rows to {output}")


@synthetic_app.command("multifaceted")
def synthetic_multifaceted(
    output: Output,
    instructions: Annotated[int, typer.Option(help="Number of instructions (three rows each).")] = 300,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Multifaceted-Collection SFT rows: three per instruction, one preference set each."""
    from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows
    from personalign.io import write_rows

    written = write_rows(
        multifaceted_rows(instructions, seed),
        output,
        MULTIFACETED_FEATURES,
        overwrite=overwrite,
        total=3 * instructions,
    )
    console.print(f"wrote {written} Multifaceted-Collection rows to {output}")


DatasetKind = Annotated[
    str, typer.Argument(help="Dataset to build: [bold]alignx[/bold] or [bold]multifacet-cf[/bold].")
]
ConfigNames = Annotated[
    list[str] | None, typer.Option("--config", help="Config to build (repeatable); all configs by default.")
]
KeepFullHistory = Annotated[
    bool, typer.Option("--keep-full-history", help="Keep every history item (no 0-4 sampling).")
]
PromptFormat = Annotated[str, typer.Option(help="[bold]chat[/bold] or [bold]alignx_release[/bold].")]
Arithmetic = Annotated[str, typer.Option(help="PBA aggregation: [bold]exact[/bold] or [bold]float32[/bold].")]
NumProc = Annotated[int | None, typer.Option(help="Processes for the batched build.")]
HistorySize = Annotated[int, typer.Option(help="multifacet-cf: feedback pairs per user (T).")]
Match = Annotated[
    str, typer.Option(help="multifacet-cf: same preference = [bold]preference[/bold] or [bold]subdimension[/bold].")
]
TestInstructions = Annotated[
    int | None,
    typer.Option(
        help="multifacet-cf: instructions held out for the test split; by default the paper's 307, or a tenth of the "
        "instructions when the source has fewer than 3,070."
    ),
]
AllowMissingDimensions = Annotated[
    bool,
    typer.Option(
        "--allow-missing-dimensions",
        help="multifacet-cf: warn instead of failing when a dimension ends with no user / pair.",
    ),
]


BUILD_SETTINGS = (
    "seed",
    "keep_full_history",
    "prompt_format",
    "arithmetic",
    "history_size",
    "match",
    "test_instructions",
    "allow_missing_dimensions",
)


def _settings(options: dict) -> dict:
    """The dataset-build settings among a command's options (build-dataset and push-dataset share them)."""
    return {name: options[name] for name in BUILD_SETTINGS}


def _select(configs: dict, names: list[str] | None, where: str) -> dict:
    """The named configs (all when none are named), refusing a name that is not there."""
    unknown = [name for name in names or [] if name not in configs]
    if unknown:
        raise ValueError(f"{where} has no config {unknown[0]!r}; choose from {', '.join(configs)}")
    return {name: configs[name] for name in names or configs}


def _build(
    kind: str,
    source: str,
    names: list[str] | None,
    num_proc: int | None,
    settings: dict,
):
    """Build the configs of a dataset kind from the command's options: `(configs, rendered card)`."""
    from personalign.hub.cards import render_dataset_card

    if kind == "alignx":
        from personalign.data.alignx import ALIGNX_CONFIGS, AlignXBuildConfig, alignx_card, build_alignx_configs

        alignx_keys = ("seed", "keep_full_history", "prompt_format", "arithmetic")
        build_config = AlignXBuildConfig(**{k: settings[k] for k in alignx_keys})
        configs = build_alignx_configs(source, tuple(names or ALIGNX_CONFIGS), build_config, num_proc=num_proc)
        return configs, render_dataset_card(configs, alignx_card(source, build_config))
    if kind == "multifacet-cf":
        from personalign.data.multifacet import MultifacetBuildConfig, build_multifacet_cf, multifacet_card

        build_config = MultifacetBuildConfig(
            seed=settings["seed"],
            history_size=settings["history_size"],
            match=settings["match"],
            test_instructions=settings["test_instructions"],
            allow_missing_dimensions=settings["allow_missing_dimensions"],
        )
        configs, report = build_multifacet_cf(source, build_config)
        configs = _select(configs, names, "multifacet-cf")
        for line in report.lines():
            console.print(line)
        return configs, render_dataset_card(configs, multifacet_card(source, build_config, report))
    raise ValueError(f"unknown dataset {kind!r}; available: alignx, multifacet-cf")


@app.command("build-dataset")
def build_dataset(
    kind: DatasetKind,
    source: Annotated[str, typer.Option(help="Hub dataset id, or a local folder / file of the release.")],
    output: Annotated[Path, typer.Option(help="Output folder (parquet shards per config + README.md card).")],
    config: ConfigNames = None,
    seed: Seed = 0,
    keep_full_history: KeepFullHistory = False,
    prompt_format: PromptFormat = "chat",
    arithmetic: Arithmetic = "exact",
    history_size: HistorySize = 10,
    match: Match = "preference",
    test_instructions: TestInstructions = None,
    allow_missing_dimensions: AllowMissingDimensions = False,
    num_proc: NumProc = None,
    overwrite: Overwrite = False,
) -> None:
    """Build a dataset's configs into a folder that [bold]datasets.load_dataset(folder, config)[/bold] reads."""
    from personalign.hub.datasets import write_dataset_folder
    from personalign.io import ensure_writable

    ensure_writable(output, overwrite)  # before the (long) build
    configs, card = _build(kind, source, config, num_proc, _settings(locals()))
    write_dataset_folder(configs, output, card, overwrite=overwrite)
    for name, splits in configs.items():
        console.print(f"{name}: " + ", ".join(f"{split} {len(data):,} rows" for split, data in splits.items()))
    console.print(f"wrote {output}")


@app.command("push-dataset")
def push_dataset_command(
    kind: DatasetKind,
    repo_id: Annotated[str, typer.Option(help="Hub dataset repo, ORG/NAME.")],
    source: Annotated[str | None, typer.Option(help="Build from this Hub id or local release, then push.")] = None,
    from_dir: Annotated[Path | None, typer.Option(help="Push a folder written by build-dataset.")] = None,
    config: ConfigNames = None,
    seed: Seed = 0,
    keep_full_history: KeepFullHistory = False,
    prompt_format: PromptFormat = "chat",
    arithmetic: Arithmetic = "exact",
    history_size: HistorySize = 10,
    match: Match = "preference",
    test_instructions: TestInstructions = None,
    allow_missing_dimensions: AllowMissingDimensions = False,
    num_proc: NumProc = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
) -> None:
    """Push every config of a dataset, and its card, to the Hub (token from HF_TOKEN or the saved login)."""
    from personalign.data.loading import load_configs
    from personalign.hub.auth import resolve_token
    from personalign.hub.datasets import push_dataset

    resolve_token()  # fail before any build when there is no token
    if (source is None) == (from_dir is None):
        raise ValueError("pass exactly one of --source (build, then push) or --from-dir (push a built folder)")
    if from_dir is not None:
        configs = _select(load_configs(from_dir), config, str(from_dir))
        card = (from_dir / "README.md").read_text(encoding="utf-8")
    else:
        configs, card = _build(kind, source, config, num_proc, _settings(locals()))
    url = push_dataset(configs, repo_id, card, private=private)
    console.print(f"pushed {', '.join(configs)} to {url}")


ExcerptFormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="[bold]alignx[/bold] (comments and pairs of AlignX rows), [bold]aloe[/bold] (profile, personality, "
        "conversations) or [bold]table[/bold] (a persona column and a text column).",
    ),
]
PersonaColumn = Annotated[
    str | None, typer.Option(help="Persona column (alignx: groups rows; table: defaults to persona_id).")
]
TextColumn = Annotated[str, typer.Option(help="Text column of a table.")]
IncludeDemographics = Annotated[
    bool, typer.Option("--include-demographics", help="alignx: the demographic text is one more excerpt.")
]
EncoderData = Annotated[str, typer.Option("--data", help="Local parquet / jsonl file or folder, or a Hub dataset id.")]


@app.command("train-encoder")
def train_encoder_command(
    model: Annotated[str, typer.Option(help="Backbone, sentence-transformers model or PersonaEncoder: id or path.")],
    data: EncoderData,
    output: Annotated[Path, typer.Option(help="Folder for the trained encoder, its card and eval_results.json.")],
    excerpt_format: ExcerptFormatOption = "alignx",
    persona_column: PersonaColumn = None,
    text_column: TextColumn = "text",
    include_demographics: IncludeDemographics = False,
    eval_fraction: Annotated[float, typer.Option(help="Share of personas held out for evaluation (0: none).")] = 0.1,
    epochs: Annotated[float, typer.Option(help="Training epochs (the DPORE paper trains 30).")] = 3.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (-1: run the epochs).")] = -1,
    batch_size: Annotated[int, typer.Option(help="Rows (anchor, positive, negatives) per batch.")] = 30,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-5,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps, then cosine decay.")] = 100,
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature tau.")] = 0.05,
    num_negatives: Annotated[int, typer.Option(help="Explicit negatives per anchor.")] = 1,
    truncation_probability: Annotated[float, typer.Option(help="Chance a training text is truncated.")] = 0.5,
    pooling: Annotated[str | None, typer.Option(help="Pooling of a new encoder around a plain backbone.")] = None,
    projection_dim: Annotated[
        int | None, typer.Option(help="Projection size of a new encoder around a plain backbone.")
    ] = None,
    save_steps: Annotated[int, typer.Option(help="Checkpoint every this many steps.")] = 500,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints folder (default: OUTPUT-checkpoints).")
    ] = None,
    seed: Seed = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Train a PersonaEncoder (InfoNCE over persona excerpts; DPORE §3.2) and write it with a model card."""
    from personalign.encoder import PersonaEncoder, PersonaEncoderTrainingArguments
    from personalign.encoder.pipeline import load_excerpts, train_encoder
    from personalign.io import ensure_writable

    ensure_writable(output, overwrite)  # before loading models and data
    excerpts = load_excerpts(data, excerpt_format, persona_column, text_column, include_demographics)
    console.print(f"{len(excerpts):,} excerpts of {len(set(excerpts['persona_id'])):,} personas from {data}")
    encoder = PersonaEncoder.from_pretrained(model, pooling=pooling, projection_dim=projection_dim)
    args = PersonaEncoderTrainingArguments(
        output_dir=str(checkpoint_dir or output.with_name(f"{output.name}-checkpoints")),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        temperature=temperature,
        num_negatives=num_negatives,
        truncation_probability=truncation_probability,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        logging_steps=max(1, min(50, save_steps)),
        report_to="none",
        seed=seed,
    )
    results = train_encoder(
        encoder, excerpts, output, args, model, data, eval_fraction, resume=resume, overwrite=overwrite
    )
    if results:
        before, after = results["before"], results["after"]
        console.print(
            f"held-out recall@1 {before['recall@1']:.3f} -> {after['recall@1']:.3f} "
            f"(chance {after['chance_recall@1']:.3f}), pair AUC {before['pair_auc']:.3f} -> {after['pair_auc']:.3f}"
        )
    console.print(f"wrote {output}")


@app.command("eval-encoder")
def eval_encoder_command(
    model: Annotated[str, typer.Option(help="PersonaEncoder (or sentence-transformers / backbone): id or path.")],
    data: EncoderData,
    output: Annotated[Path, typer.Option(help="Results JSON file.")],
    excerpt_format: ExcerptFormatOption = "alignx",
    persona_column: PersonaColumn = None,
    text_column: TextColumn = "text",
    include_demographics: IncludeDemographics = False,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
    overwrite: Overwrite = False,
) -> None:
    """Score a persona encoder: excerpt retrieval (recall@1, recall@5, MRR) and same-persona pair AUC."""
    import json

    from personalign.encoder import PersonaEncoder, evaluate_encoder
    from personalign.encoder.pipeline import load_excerpts
    from personalign.io import atomic_output, ensure_writable

    ensure_writable(output, overwrite)
    excerpts = load_excerpts(data, excerpt_format, persona_column, text_column, include_demographics)
    encoder = PersonaEncoder.from_pretrained(model)
    results = {"model": model, "data": data, **evaluate_encoder(encoder, excerpts, batch_size=batch_size)}
    with atomic_output(output, overwrite) as path:
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(
        " ".join(f"{key} {results[key]:.4f}" for key in ("recall@1", "recall@5", "mrr", "pair_auc", "chance_recall@1"))
    )
    console.print(f"wrote {output}")


TrainMethod = Annotated[
    str,
    typer.Argument(
        help="[bold]dpore[/bold], [bold]pba[/bold], [bold]ica[/bold], [bold]reward[/bold] or [bold]encoder[/bold]."
    ),
]


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["--help"]},
)
def train_command(
    ctx: typer.Context,
    method: TrainMethod,
    num_processes: Annotated[
        int, typer.Option(help="Run on this many processes (GPUs) through `accelerate launch`.")
    ] = 1,
    accelerate_config: Annotated[
        Path | None, typer.Option(help="An accelerate config file (DeepSpeed ZeRO-3, FSDP; see examples/accelerate).")
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved configuration as YAML and exit.")
    ] = False,
) -> None:
    """Train a method from a YAML config: [bold]personalign train dpore --config cfg.yaml [--key value ...][/bold].

    YAML keys are the fields of TrainScriptArguments (dataset_name, persona_encoder, resume, ...), the method's config
    (DPOREConfig, PBAConfig, ICAConfig, PersonalizedRewardConfig, PersonaEncoderTrainingArguments) and TRL's
    ModelConfig (model_name_or_path, use_peft, lora_r, ...). YAML values are defaults, flags override them, unknown
    keys are errors. `--resume` continues from the last checkpoint; `--push_to_hub` pushes the result with a card.
    """
    import dataclasses
    import subprocess

    import yaml

    from personalign.cli.train import accelerate_command, format_command, parse_train_arguments, run_training

    if num_processes > 1 or accelerate_config is not None:
        command = accelerate_command(method, ctx.args, num_processes, accelerate_config)
        console.print(f"launching: {escape(format_command(command))}")
        raise typer.Exit(subprocess.call(command))
    script_args, config, model_args, notice = parse_train_arguments(method, ctx.args)
    if notice:
        console.print(notice)
    if print_config:
        from personalign.hub.run_record import to_jsonable

        resolved = {
            name: to_jsonable(dataclasses.asdict(part))
            for name, part in (("script", script_args), ("config", config), ("model", model_args))
        }
        typer.echo(yaml.safe_dump(resolved, sort_keys=False))
        return
    record = run_training(method, script_args, config, model_args)
    metrics = record.get("eval_metrics") or {}
    shown = {key: value for key, value in metrics.items() if key in ("eval_rewards/accuracies", "eval_accuracy")}
    if shown:
        console.print(" ".join(f"{key} {value:.4f}" for key, value in shown.items()))
    console.print(f"wrote {record.get('output_dir') or config.output_dir}")
    if record.get("hub_url"):
        console.print(f"pushed {record['hub_url']}")


@app.command("push-model")
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
    from personalign.hub.models import export_model, push_model

    if (repo_id is None) == (to_dir is None):
        raise ValueError("pass exactly one of --repo-id (push to the Hub) or --to-dir (write the layout locally)")
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder.")
    if to_dir is not None:
        export_model(folder, to_dir, overwrite=overwrite)
        console.print(f"wrote {to_dir}")
        return
    console.print(f"pushed {push_model(folder, repo_id, private=private)}")


@app.command("demo")
def demo_command(
    output: Annotated[Path, typer.Option(help="Folder for the report, models and cards.")] = Path("runs/demo"),
    train_rows: Annotated[int, typer.Option(help="Synthetic training rows (counterfactual pairs).")] = 512,
    test_rows: Annotated[int, typer.Option(help="Held-out rows.")] = 128,
    epochs: Annotated[int, typer.Option(help="Policy training epochs.")] = 3,
    encoder_steps: Annotated[int, typer.Option(help="Persona encoder training steps.")] = 40,
    overwrite: Overwrite = False,
) -> None:
    """The whole workflow offline on tiny models: data, persona encoder, DPORE and PBA, evaluation, report."""
    from personalign.demo import run_demo

    report = run_demo(output, train_rows, test_rows, epochs, encoder_steps, overwrite=overwrite, log=console.print)
    for name, metrics in report["models"].items():
        console.print(
            f"{name}: alignment accuracy {metrics['alignment_accuracy']:.3f}, flip rate {metrics['flip_rate']:.3f}"
        )
    console.print(f"wrote {output}/report.json and report.png in {report['seconds']['total']:.0f} s")


@app.command("space")
def show_space(
    name: Annotated[str, typer.Argument(help="[bold]alignx[/bold], [bold]psoups[/bold], or a JSON file.")] = "alignx",
) -> None:
    """Show the dimensions of a preference space, in vector order."""
    from rich.table import Table

    from personalign.personas.space import PreferenceSpace

    builders = {"alignx": PreferenceSpace.alignx, "psoups": PreferenceSpace.psoups}
    if name in builders:
        space = builders[name]()
    elif Path(name).is_file():
        space = PreferenceSpace.from_json(name)
    else:
        raise ValueError(f"unknown preference space {name!r}: use alignx, psoups or a JSON file path")
    table = Table(title=f"{space.name}: {len(space)} dimensions")
    for column in ("index", "name", "positive (1)", "negative (0)"):
        table.add_column(column)
    for index, dimension in enumerate(space.dimensions):
        table.add_row(str(index), dimension.name, dimension.positive_label, dimension.negative_label)
    Console().print(table)


@app.command("eval")
def eval_command(
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
    model_card: Annotated[
        Path | None, typer.Option(help="Write the overall results into this model card's model-index (README.md).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Alignment accuracy (and flip rate) of policies on persona-conditioned pairs: overall, per dimension, per
    persona, per benchmark file and per persona size, as JSON and PNG plots."""
    from personalign.evaluation.runner import (
        AlignmentEvalConfig,
        evaluate_alignment,
        update_model_card,
        write_alignment_results,
    )
    from personalign.io import ensure_writable

    ensure_writable(output, overwrite)  # before loading models and data
    if model_card is not None and len(model) != 1:
        raise ValueError("--model-card takes the results of exactly one --model")
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
        console.print(f"{escape(name)}: {', '.join(shown)} ({overall['num_pairs']} pairs)", soft_wrap=True)
    if model_card is not None:
        console.print(f"updated the model-index of {update_model_card(model_card, results)}")


@app.command("rejection-sample")
def rejection_sample_command(
    reward_model: Annotated[str, typer.Option(help="Personalized reward model: a folder or Hub id.")],
    dataset: Annotated[
        str,
        typer.Option(
            help="Training rows with a feedback history: parquet / jsonl file (with history_text), a "
            "[bold]build-dataset multifacet-cf[/bold] folder, a saved dataset or a Hub id."
        ),
    ],
    output: Annotated[Path, typer.Option(help="Output folder: rs_sft/, rs_dpo/, README.md, summary JSON, PNG.")],
    keep: Annotated[float, typer.Option(help="Share of pairs kept, by reward margin: floor(keep * rows).")] = 0.6,
    split: Annotated[str, typer.Option(help="Split of the dataset.")] = "train",
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 16,
    history_size: Annotated[
        int | None, typer.Option(help="History pairs T (default: as the reward model was trained, else 10).")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Token budget per input (default: as the reward model was trained).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Score training pairs with a personalized reward model and keep the top share by margin (the counterfactual
    paper's §4.3): writes the RS-SFT and RS-DPO datasets."""
    from dataclasses import fields

    from personalign.io import ensure_writable
    from personalign.reward.feedback import FeedbackRendering
    from personalign.reward.modeling import load_reward_model
    from personalign.reward.rejection_sampling import keep_count, load_rows, rejection_sample, write_rejection_sampling

    ensure_writable(output, overwrite)  # before loading models and data
    keep_count(0, keep)
    rows = load_rows(dataset, split)
    model, tokenizer, trained = load_reward_model(reward_model)
    settings = {f.name: trained[f.name] for f in fields(FeedbackRendering) if f.name in trained}
    settings.update({k: v for k, v in (("history_size", history_size), ("max_length", max_length)) if v is not None})
    result = rejection_sample(model, tokenizer, rows, keep, FeedbackRendering(**settings), batch_size)
    write_rejection_sampling(result, output, overwrite, reward_model=reward_model, source=dataset)
    summary = result.summary
    threshold = summary["margin_threshold"]
    console.print(
        f"kept {summary['num_kept']:,} of {summary['num_rows']:,} pairs"
        + ("" if threshold is None else f" (margin >= {threshold:.4f})")
    )
    console.print(f"wrote {output}")


def run(typer_app: typer.Typer) -> None:
    """Run a Typer app so that user errors end with one readable line and exit code 1 (set PERSONALIGN_DEBUG=1 for
    the traceback)."""
    try:
        typer_app()
    except (ValueError, OSError) as error:
        if os.environ.get("PERSONALIGN_DEBUG"):
            raise
        console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(1)


def main() -> None:
    """The `personalign` console script."""
    run(app)


if __name__ == "__main__":
    main()
