"""The role-play results: the per-turn summary (`summary.json`), the DPORE paper's Table 1 layout (`table.md`), the
plot over turns (`roleplay.png`), the transcripts, and the model-card results through `personalign.hub.cards`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import EvalResult

from ...errors import InputError
from ...hub.cards import add_results_to_card
from ...io import atomic_output
from ..plots import pyplot, save_figure
from .conversation import JUDGE, USER_SIMULATOR
from .engine import RoleplayResult

TRANSCRIPTS_FILE, JUDGMENTS_FILE, SUMMARY_FILE, TABLE_FILE, PLOT_FILE = (
    "transcripts.jsonl",
    "judgments.jsonl",
    "summary.json",
    "table.md",
    "roleplay.png",
)
"""The files `write_roleplay` writes."""


def _cell(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table_text(text: str) -> str:
    """`text` as one Markdown table cell: a `|` escaped (it would start a new cell), line breaks as spaces."""
    return " ".join(str(text).split()).replace("|", "\\|")


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
"""One marker per line of `roleplay.png` (cycled), so lines drawn over each other stay told apart."""

SCORE_LIMITS = (0.8, 5.2)
"""The plot's score axis: 1-5 with a margin, so a point at 1 or 5 is not hidden on the frame."""


def roleplay_table(summary: Mapping[str, Any], row_header: str = "Method") -> str:
    """The DPORE paper's Table 1 layout as Markdown: one row per model (per lambda for Table 3), one column per turn
    `k = 1..K` and `Avg.`, the mean judge score (1-5) to three decimals; a second table gives the spread over runs
    (sample standard deviation of the run means).

    Args:
        summary (`Mapping`): `summary.json`.
        row_header (`str`, *optional*, defaults to `"Method"`): The first column's header (`"λ"` for Table 3).

    Returns:
        `str`
    """
    turns = summary["settings"]["turns"]
    header = f"| {_table_text(row_header)} | " + " | ".join(f"k = {k}" for k in range(1, turns + 1)) + " | Avg. |"
    rule = "|---|" + "---:|" * (turns + 1)
    means, spreads = [header, rule], [header, rule]
    for label, result in summary["models"].items():
        per_turn = result["per_turn"]
        label = _table_text(label)
        means.append(
            f"| {label} | "
            + " | ".join(_cell(entry["mean"]) for entry in per_turn)
            + f" | {_cell(result['average'])} |"
        )
        spreads.append(
            f"| {label} | "
            + " | ".join(_cell(entry["run_std"]) for entry in per_turn)
            + f" | {_cell(result['average_run_std'])} |"
        )
    personas = summary["personas"]["num_personas"]
    runs = summary["settings"]["runs"]
    return (
        f"Mean persona-alignment score (1-5, the DPORE paper's Appendix A judge) per turn k, over {personas} personas "
        f"x {runs} runs; Avg. is the mean over the {turns} turns.\n\n"
        + "\n".join(means)
        + f"\n\nSpread over the {runs} runs (sample standard deviation of the run means; n/a with one run).\n\n"
        + "\n".join(spreads)
        + "\n"
    )


def plot_roleplay(summary: Mapping[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """The mean score per turn, one line per model, with its spread shaded: the sample standard deviation of the run
    means when there are several runs, else of the replies.

    Args:
        summary (`Mapping`): `summary.json`.
        path (`str` or `Path`): The PNG to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.
    """
    plt = pyplot()
    runs = summary["settings"]["runs"]
    spread = "run_std" if runs > 1 else "std"
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    drawn: dict[tuple[float, ...], str] = {}
    count = len(summary["models"])
    for index, (label, result) in enumerate(summary["models"].items()):
        turns = [entry["turn"] for entry in result["per_turn"]]
        means = np.array([np.nan if e["mean"] is None else e["mean"] for e in result["per_turn"]])
        widths = np.array([0.0 if e[spread] is None else e[spread] for e in result["per_turn"]])
        color = f"C{index % 10}"
        shown = "n/a" if result["average"] is None else f"{result['average']:.3f}"
        key = tuple(np.round(means, 6).tolist())
        same = f", same as {drawn[key]}" if key in drawn else ""  # a line drawn over another: say so
        drawn.setdefault(key, label)
        # Markers shrink with the index, so identical lines show each marker inside the one drawn before.
        axes.plot(
            turns,
            means,
            marker=MARKERS[index % len(MARKERS)],
            markersize=4 + 2 * (count - 1 - index),
            color=color,
            label=f"{label} (avg. {shown}{same})",
        )
        axes.fill_between(turns, means - widths, means + widths, color=color, alpha=0.15, linewidth=0)
    turns = summary["settings"]["turns"]
    axes.set_xticks(range(1, turns + 1))
    axes.set_xlabel("turn k")
    axes.set_ylabel("persona-alignment score (1-5)")
    axes.set_ylim(*SCORE_LIMITS)
    shaded = "std over runs" if runs > 1 else "std over personas"
    axes.set_title(
        f"Role-play: score per turn ({summary['personas']['num_personas']} personas x {runs} runs; shaded: {shaded})",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return save_figure(figure, path, overwrite)


def write_roleplay(
    result: RoleplayResult, output: str | Path, overwrite: bool = False, row_header: str = "Method"
) -> list[Path]:
    """Write the role-play folder, staged and renamed (it appears whole or not at all): `transcripts.jsonl` (one line
    per conversation), `judgments.jsonl` (one line per judged turn), `summary.json`, `table.md` (`roleplay_table`) and
    `roleplay.png` (`plot_roleplay`).

    Args:
        result (`RoleplayResult`): What `run_roleplay` returned (not a dry run).
        output (`str` or `Path`): The folder.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.
        row_header (`str`, *optional*, defaults to `"Method"`): The table's first column header.

    Returns:
        `list[Path]`: The files written.

    Raises:
        `InputError`: For a dry run's result.
        `OutputExistsError`: If `output` exists and `overwrite` is False.
    """
    if result.summary is None:
        raise InputError("a dry run judged nothing; there are no role-play results to write.")
    output = Path(output)
    with atomic_output(output, overwrite=overwrite) as folder:
        folder.mkdir()
        with (folder / TRANSCRIPTS_FILE).open("w", encoding="utf-8") as handle:
            for conversation in result.conversations:
                handle.write(json.dumps(conversation.record(), ensure_ascii=False) + "\n")
        with (folder / JUDGMENTS_FILE).open("w", encoding="utf-8") as handle:
            for conversation in result.conversations:
                for item in conversation.judgments():
                    handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        (folder / SUMMARY_FILE).write_text(
            json.dumps(result.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (folder / TABLE_FILE).write_text(roleplay_table(result.summary, row_header), encoding="utf-8")
        plot_roleplay(result.summary, folder / PLOT_FILE)
    return [output / name for name in (TRANSCRIPTS_FILE, JUDGMENTS_FILE, SUMMARY_FILE, TABLE_FILE, PLOT_FILE)]


def roleplay_card_results(summary: Mapping[str, Any], label: str) -> list[EvalResult]:
    """One model's role-play results as `model-index` results: the average over turns and the score of each turn,
    each with its arguments (personas' split and count, turns, runs, seed, user simulator, judge).

    Args:
        summary (`Mapping`): `summary.json`.
        label (`str`): The model's label.

    Returns:
        `list[EvalResult]`: Empty when no reply was scored.
    """
    result = summary["models"][label]
    personas, settings = summary["personas"], summary["settings"]
    dataset = str(personas["source"])
    metric_args = {
        "judge": summary[JUDGE].get("spec") or summary[JUDGE]["model"],
        "user_simulator": summary[USER_SIMULATOR].get("spec") or summary[USER_SIMULATOR]["model"],
        "turns": settings["turns"],
        "runs": settings["runs"],
        "seed": settings["seeds"][0],
        "temperature": settings["temperature"],
    }
    common = {
        "task_type": "text-generation",
        "task_name": "Role-play persona alignment (the DPORE paper, Table 1)",
        "dataset_type": dataset,
        "dataset_name": dataset,
        "dataset_split": personas["split"],
        "dataset_args": {"num_personas": personas["num_personas"]},
        "metric_args": metric_args,
    }
    values = [("roleplay_alignment", "role-play persona alignment (1-5), average over turns", result["average"])]
    values += [
        (
            f"roleplay_alignment_turn_{entry['turn']}",
            f"role-play persona alignment (1-5), turn {entry['turn']}",
            entry["mean"],
        )
        for entry in result["per_turn"]
    ]
    if result["average"] is None:
        return []
    return [
        EvalResult(metric_type=kind, metric_name=name, metric_value=round(float(value), 4), **common)
        for kind, name, value in values
        if value is not None
    ]


def update_model_card_with_roleplay(card_path: str | Path, summary: Mapping[str, Any], label: str) -> Path | None:
    """Add one model's role-play results (`roleplay_card_results`) to a model card's `model-index` with
    `personalign.hub.cards.add_results_to_card` (as `personalign judge --model-card` does): the same evaluation again
    replaces its old values, everything else is kept, a missing card is created. Nothing scored: the card is left
    alone.

    Args:
        card_path (`str` or `Path`): The card (the model's `README.md`).
        summary (`Mapping`): `summary.json`.
        label (`str`): The model's label.

    Returns:
        `Path` or `None`: `card_path`, or `None` when there was nothing to add.

    Raises:
        `InputError`: If the card's folder is missing or its metadata cannot be read.
    """
    results = roleplay_card_results(summary, label)
    if not results:
        return None
    name = Path(str(summary["models"][label]["model"]).rstrip("/")).name or label
    return add_results_to_card(card_path, results, name, description="Evaluated with `personalign eval roleplay`.")
