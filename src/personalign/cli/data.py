"""Data commands: `synthetic alignx|multifaceted|aloe|general`, `build-dataset alignx|multifacet-cf|aloe` and
`push-dataset alignx|multifacet-cf|aloe` (one sub-command per dataset, each with the options that dataset's build
takes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError
from .common import Output, Overwrite, Seed, console

synthetic_app = typer.Typer(
    help="Generate offline synthetic data in the real release schemas (AlignX, Multifaceted-Collection, ALOE, "
    "UltraFeedback-binarized).",
    no_args_is_help=True,
    add_completion=False,
)
build_app = typer.Typer(
    help="Build a dataset's configs into a folder that [bold]datasets.load_dataset(folder, config)[/bold] reads.",
    no_args_is_help=True,
    add_completion=False,
)
push_app = typer.Typer(
    help="Push every config of a dataset, and its card, to the Hub (token from HF_TOKEN or the saved login).",
    no_args_is_help=True,
    add_completion=False,
)

# ------------------------------------------------------------------------------------------------------ synthetic


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
    from ..data.synthetic import ALIGNX_FEATURES, ALIGNX_METADATA_FEATURES, alignx_rows
    from ..io import write_rows

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
    from ..data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows
    from ..io import write_rows

    written = write_rows(
        multifaceted_rows(instructions, seed),
        output,
        MULTIFACETED_FEATURES,
        overwrite=overwrite,
        total=3 * instructions,
    )
    console.print(f"wrote {written} Multifaceted-Collection rows to {output}")


OutputFile = Annotated[Path, typer.Option(help="Output file: [bold].parquet[/bold] or [bold].jsonl[/bold].")]


@synthetic_app.command("aloe")
def synthetic_aloe(
    output: OutputFile,
    personas: Annotated[int, typer.Option(help="Number of personas (styles in turn).")] = 100,
    conversations: Annotated[int, typer.Option(help="Conversations per persona.")] = 4,
    turns: Annotated[int, typer.Option(help="Turns per conversation.")] = 10,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """ALOE records (profile, personality, multi-turn conversations with preferred and rejected replies) of
    personas with learnable styles."""
    from ..data.synthetic_aloe import ALOE_FEATURES, aloe_rows
    from ..io import write_rows

    for name, value in (("--personas", personas), ("--conversations", conversations), ("--turns", turns)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}.")
    stream = aloe_rows(personas, conversations_per_persona=conversations, turns=turns, seed=seed)
    written = write_rows(stream, output, ALOE_FEATURES, overwrite=overwrite, total=personas * conversations)
    console.print(f"wrote {written} ALOE conversations ({personas} personas) to {output}")


@synthetic_app.command("general")
def synthetic_general(
    output: OutputFile,
    rows: Annotated[int, typer.Option(help="Number of rows.")] = 1000,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """General (non-personal) preference rows in UltraFeedback-binarized's schema."""
    from ..data.synthetic_aloe import GENERAL_FEATURES, general_preference_rows
    from ..io import write_rows

    if rows < 1:
        raise InputError(f"--rows must be at least 1, got {rows}.")
    written = write_rows(
        general_preference_rows(rows, seed), output, GENERAL_FEATURES, overwrite=overwrite, total=rows
    )
    console.print(f"wrote {written} general preference rows to {output}")


# ----------------------------------------------------------------------------------------- build-dataset options
Source = Annotated[str, typer.Option(help="Hub dataset id, or a local folder / file of the release.")]
BuildOutput = Annotated[Path, typer.Option(help="Output folder (parquet shards per config + README.md card).")]
ConfigNames = Annotated[
    list[str] | None, typer.Option("--config", help="Config to build (repeatable); all configs by default.")
]
KeepFullHistory = Annotated[
    bool, typer.Option("--keep-full-history", help="Keep every history item (no 0-4 sampling).")
]
PromptFormat = Annotated[str, typer.Option(help="[bold]chat[/bold] or [bold]alignx_release[/bold].")]
Arithmetic = Annotated[str, typer.Option(help="PBA aggregation: [bold]exact[/bold] or [bold]float32[/bold].")]
NumProc = Annotated[int | None, typer.Option(help="Processes for the batched build.")]
HistorySize = Annotated[int, typer.Option(help="Feedback pairs per user (T).")]
Match = Annotated[str, typer.Option(help="Same preference = [bold]preference[/bold] or [bold]subdimension[/bold].")]
TestInstructions = Annotated[
    int | None,
    typer.Option(
        help="Instructions held out for the test split; by default the paper's 307, or a tenth of the "
        "instructions when the source has fewer than 3,070."
    ),
]
AllowMissingDimensions = Annotated[
    bool,
    typer.Option(
        "--allow-missing-dimensions", help="Warn instead of failing when a dimension ends with no user / pair."
    ),
]
TestPersonas = Annotated[
    int | None,
    typer.Option(
        help="Personas held out for the test split; by default the DPORE paper's 100, or a tenth of the personas "
        "when the source has fewer than 1,000; 0 builds a train-only dataset (no test split)."
    ),
]
Rejected = Annotated[
    str,
    typer.Option(help="[bold]all[/bold]: a row per rejected reply of a turn; [bold]first[/bold]: the first only."),
]
PersonaText = Annotated[
    str,
    typer.Option(
        help="[bold]dialogue[/bold]: no persona text column (DPORE embeds the conversation); "
        "[bold]description[/bold]: a persona_text column, profile and personality."
    ),
]
RepoId = Annotated[str, typer.Option(help="Hub dataset repo, ORG/NAME.")]
PushSource = Annotated[str | None, typer.Option(help="Build from this Hub id or local release, then push.")]
FromDir = Annotated[Path | None, typer.Option(help="Push a folder written by build-dataset.")]
Private = Annotated[bool, typer.Option("--private", help="Create the repo as private.")]

Built = tuple[dict[str, Any], str]
"""`(configs, rendered card)`: `{config: {split: Dataset}}` and the dataset card's text."""


def select_configs(configs: dict[str, Any], names: list[str] | None, where: str) -> dict[str, Any]:
    """The named configs (all when none are named).

    Raises:
        `InputError`: If a name is not a config of `where`, naming the ones there are.
    """
    unknown = [name for name in names or [] if name not in configs]
    if unknown:
        raise InputError(f"{where} has no config {unknown[0]!r}; choose from {', '.join(configs)}")
    return {name: configs[name] for name in names or configs}


def build_alignx(source: str, names: list[str] | None, build_config: Any, num_proc: int | None) -> Built:
    """The AlignX configs `names` (all by default) built from `source`, with their card."""
    from ..data.alignx import ALIGNX_CONFIGS, alignx_card, build_alignx_configs
    from ..hub.cards import render_dataset_card

    if num_proc is not None and num_proc < 1:  # datasets would quietly run in one process
        raise InputError(f"--num-proc must be at least 1, got {num_proc}.")
    configs = build_alignx_configs(source, tuple(names or ALIGNX_CONFIGS), build_config, num_proc=num_proc)
    return configs, render_dataset_card(configs, alignx_card(source, build_config))


def build_multifacet(source: str, names: list[str] | None, build_config: Any) -> Built:
    """The counterfactual MultiFacet configs `names` (all by default) built from `source`, with their card; the
    build report's lines are printed."""
    from ..data.multifacet import build_multifacet_cf, multifacet_card
    from ..hub.cards import render_dataset_card

    configs, report = build_multifacet_cf(source, build_config)
    configs = select_configs(configs, names, "multifacet-cf")
    for line in report.lines():
        console.print(line)
    return configs, render_dataset_card(configs, multifacet_card(source, build_config, report))


def build_aloe(source: str, names: list[str] | None, build_config: Any) -> Built:
    """The ALOE configs `names` (all by default) built from `source`, with their card; the build report's lines
    (personas held out, pairs skipped, records repeated) are printed."""
    from ..data.aloe import ALOE_CONFIGS, ALOEBuildReport, aloe_card, build_aloe
    from ..hub.cards import render_dataset_card

    report = ALOEBuildReport()
    configs = build_aloe(source, build_config, select_configs(dict.fromkeys(ALOE_CONFIGS), names, "aloe"), report)
    for line in report.lines():
        console.print(line)
    return configs, render_dataset_card(configs, aloe_card(source, build_config, configs, report))


def aloe_build_config(seed: int, test_personas: int | None, rejected: str, persona_text: str) -> Any:
    """The `ALOEBuildConfig` of the command's options."""
    from ..data.aloe import ALOEBuildConfig

    return ALOEBuildConfig(seed=seed, test_personas=test_personas, rejected=rejected, persona_text=persona_text)


def write_built(build: Callable[[], Built], output: Path, overwrite: bool, source: str) -> None:
    """Build from `source`, then write the configs and the card into `output` (refused before the long build if it
    exists, or if it is or holds `source`)."""
    from ..hub.datasets import write_dataset_folder
    from ..io import ensure_writable

    ensure_writable(output, overwrite, inputs=(source,))
    configs, card = build()
    write_dataset_folder(configs, output, card, overwrite=overwrite)
    for name, splits in configs.items():
        console.print(f"{name}: " + ", ".join(f"{split} {len(data):,} rows" for split, data in splits.items()))
    console.print(f"wrote {output}")


def push_built(
    build: Callable[[], Built],
    repo_id: str,
    source: str | None,
    from_dir: Path | None,
    names: list[str] | None,
    private: bool,
) -> None:
    """Push a dataset built now from `source`, or the folder `from_dir` written by `build-dataset`.

    Raises:
        `InputError`: Unless exactly one of `source` and `from_dir` is given.
        `HubError`: If there is no token (checked before any build) or the push fails.
    """
    from ..data.loading import load_configs
    from ..hub.auth import resolve_token
    from ..hub.datasets import push_dataset

    resolve_token()  # fail before any build when there is no token
    if (source is None) == (from_dir is None):
        raise InputError("pass exactly one of --source (build, then push) or --from-dir (push a built folder)")
    if from_dir is not None:
        configs = select_configs(load_configs(from_dir), names, str(from_dir))
        card = (from_dir / "README.md").read_text(encoding="utf-8")
    else:
        configs, card = build()
    url = push_dataset(configs, repo_id, card, private=private)
    console.print(f"pushed {', '.join(configs)} to {url}")


def alignx_build_config(seed: int, keep_full_history: bool, prompt_format: str, arithmetic: str) -> Any:
    """The `AlignXBuildConfig` of the command's options."""
    from ..data.alignx import AlignXBuildConfig

    return AlignXBuildConfig(
        seed=seed, keep_full_history=keep_full_history, prompt_format=prompt_format, arithmetic=arithmetic
    )


def multifacet_build_config(
    seed: int, history_size: int, match: str, test_instructions: int | None, allow_missing_dimensions: bool
) -> Any:
    """The `MultifacetBuildConfig` of the command's options."""
    from ..data.multifacet import MultifacetBuildConfig

    return MultifacetBuildConfig(
        seed=seed,
        history_size=history_size,
        match=match,
        test_instructions=test_instructions,
        allow_missing_dimensions=allow_missing_dimensions,
    )


# ------------------------------------------------------------------------------------------------ build-dataset
@build_app.command("alignx")
def build_dataset_alignx(
    source: Source,
    output: BuildOutput,
    config: ConfigNames = None,
    seed: Seed = 0,
    keep_full_history: KeepFullHistory = False,
    prompt_format: PromptFormat = "chat",
    arithmetic: Arithmetic = "exact",
    num_proc: NumProc = None,
    overwrite: Overwrite = False,
) -> None:
    """AlignX: the configs [bold]raw[/bold], [bold]ica[/bold] and [bold]pba[/bold] from the release."""
    build_config = alignx_build_config(seed, keep_full_history, prompt_format, arithmetic)
    write_built(lambda: build_alignx(source, config, build_config, num_proc), output, overwrite, source)


@build_app.command("multifacet-cf")
def build_dataset_multifacet(
    source: Source,
    output: BuildOutput,
    config: ConfigNames = None,
    seed: Seed = 0,
    history_size: HistorySize = 10,
    match: Match = "preference",
    test_instructions: TestInstructions = None,
    allow_missing_dimensions: AllowMissingDimensions = False,
    overwrite: Overwrite = False,
) -> None:
    """The counterfactual MultiFacet benchmark (configs [bold]counterfactual[/bold] and [bold]responses[/bold])
    from Multifaceted-Collection."""
    build_config = multifacet_build_config(seed, history_size, match, test_instructions, allow_missing_dimensions)
    write_built(lambda: build_multifacet(source, config, build_config), output, overwrite, source)


@build_app.command("aloe")
def build_dataset_aloe(
    source: Source,
    output: BuildOutput,
    config: ConfigNames = None,
    test_personas: TestPersonas = None,
    seed: Seed = 0,
    rejected: Rejected = "all",
    persona_text: PersonaText = "dialogue",
    overwrite: Overwrite = False,
) -> None:
    """ALOE: per-turn preference rows in TRL's conversational format (configs [bold]preference[/bold],
    [bold]personas[/bold] and [bold]excerpts[/bold]), split by persona."""
    build_config = aloe_build_config(seed, test_personas, rejected, persona_text)
    write_built(lambda: build_aloe(source, config, build_config), output, overwrite, source)


# ------------------------------------------------------------------------------------------------- push-dataset
@push_app.command("alignx")
def push_dataset_alignx(
    repo_id: RepoId,
    source: PushSource = None,
    from_dir: FromDir = None,
    config: ConfigNames = None,
    seed: Seed = 0,
    keep_full_history: KeepFullHistory = False,
    prompt_format: PromptFormat = "chat",
    arithmetic: Arithmetic = "exact",
    num_proc: NumProc = None,
    private: Private = False,
) -> None:
    """AlignX: push a built folder ([bold]--from-dir[/bold]) or build from [bold]--source[/bold] and push."""
    build_config = alignx_build_config(seed, keep_full_history, prompt_format, arithmetic)
    build = lambda: build_alignx(source, config, build_config, num_proc)  # noqa: E731
    push_built(build, repo_id, source, from_dir, config, private)


@push_app.command("multifacet-cf")
def push_dataset_multifacet(
    repo_id: RepoId,
    source: PushSource = None,
    from_dir: FromDir = None,
    config: ConfigNames = None,
    seed: Seed = 0,
    history_size: HistorySize = 10,
    match: Match = "preference",
    test_instructions: TestInstructions = None,
    allow_missing_dimensions: AllowMissingDimensions = False,
    private: Private = False,
) -> None:
    """Counterfactual MultiFacet: push a built folder ([bold]--from-dir[/bold]) or build from
    [bold]--source[/bold] and push."""
    build_config = multifacet_build_config(seed, history_size, match, test_instructions, allow_missing_dimensions)
    build = lambda: build_multifacet(source, config, build_config)  # noqa: E731
    push_built(build, repo_id, source, from_dir, config, private)


@push_app.command("aloe")
def push_dataset_aloe(
    repo_id: RepoId,
    source: PushSource = None,
    from_dir: FromDir = None,
    config: ConfigNames = None,
    test_personas: TestPersonas = None,
    seed: Seed = 0,
    rejected: Rejected = "all",
    persona_text: PersonaText = "dialogue",
    private: Private = False,
) -> None:
    """ALOE: push a built folder ([bold]--from-dir[/bold]) or build from [bold]--source[/bold] and push."""
    build_config = aloe_build_config(seed, test_personas, rejected, persona_text)
    build = lambda: build_aloe(source, config, build_config)  # noqa: E731
    push_built(build, repo_id, source, from_dir, config, private)
