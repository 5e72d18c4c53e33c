"""PNG plots of alignment results (matplotlib, Agg backend: no display needed).

The alignment plots read the results dict of `personalign.evaluation.evaluate_alignment` (`results["models"][name]`);
the judged-evaluation plots read the results of a `personalign judge` summary. Each writes one PNG atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_output


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend (files only, no display), for every plot the library writes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, overwrite: bool = False, dpi: int = 110) -> Path:
    """Write `figure` as a PNG at `path` atomically (never over an existing file unless `overwrite`), then close it."""
    plt = pyplot()
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def plot_persona_size(models: Mapping[str, Mapping[str, Any]], path: str | Path, overwrite: bool = False) -> Path:
    """Accuracy against persona size (AlignX Figure 3): one solid line per model, and its flip rate dashed when the
    results have one; the y axis is in %, with the 50% chance line.

    Args:
        models (`Mapping[str, Mapping]`): `results["models"]`: per model, a `persona_size` dict `{size: metrics}`.
        path (`str` or `Path`): The PNG to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.

    Raises:
        `InputError`: If no model has persona-size results.
    """
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    plotted = False
    for index, (name, result) in enumerate(models.items()):
        per_size = result.get("persona_size") or {}
        if not per_size:
            continue
        sizes = sorted(per_size, key=int)
        color = f"C{index % 10}"
        accuracy = [100 * per_size[s]["alignment_accuracy"] for s in sizes]
        axes.plot([int(s) for s in sizes], accuracy, marker="o", color=color, label=f"{name}: accuracy")
        if "flip_rate" in per_size[sizes[0]]:
            flips = [100 * per_size[s]["flip_rate"] for s in sizes]
            axes.plot([int(s) for s in sizes], flips, marker="s", linestyle="--", color=color, label=f"{name}: flip")
        plotted = True
    if not plotted:
        plt.close(figure)
        raise InputError("no persona-size results to plot.")
    axes.axhline(50, color="grey", linewidth=0.8, linestyle=":", label="chance (accuracy)")
    axes.set_xscale("log", base=2)
    all_sizes = sorted({int(s) for r in models.values() for s in (r.get("persona_size") or {})})
    axes.set_xticks(all_sizes, [str(s) for s in all_sizes])
    axes.set_xlabel("persona size (history items)")
    axes.set_ylabel("%")
    axes.set_ylim(0, 100)
    first = next(r for r in models.values() if r.get("persona_size"))
    pairs = next(iter(first["persona_size"].values()))["num_pairs"]
    axes.set_title(f"Alignment accuracy vs persona size ({pairs} pairs per size)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return save_figure(figure, path, overwrite)


_GROUP_TITLES = {"per_dimension": "dimension", "per_persona": "persona", "per_benchmark": "benchmark"}


def _short_labels(labels: list[str], width: int = 60) -> list[str]:
    """Labels cut to `width` characters; cut labels that collide are numbered (persona texts often share a start)."""
    short = [label if len(label) <= width else label[: width - 1] + "…" for label in labels]
    if len(set(short)) == len(short):
        return short
    return [f"#{number} {label}" for number, label in enumerate(short, start=1)]


def plot_per_group(
    models: Mapping[str, Mapping[str, Any]], path: str | Path, key: str = "per_dimension", overwrite: bool = False
) -> Path:
    """Accuracy per group of one breakdown (AlignX Table 8 for `per_dimension`; also `per_persona`, `per_benchmark`):
    one horizontal-bar panel per model, groups sorted by accuracy, each bar labelled with its accuracy and pair count;
    the figure grows with the number of groups (90 AlignX dimensions stay readable). Labels longer than 60
    characters (persona descriptions) are cut, and numbered if cut labels collide.

    Args:
        models (`Mapping[str, Mapping]`): `results["models"]`: per model, a `key` dict `{group: metrics}`.
        path (`str` or `Path`): The PNG to write.
        key (`str`, *optional*, defaults to `"per_dimension"`): The breakdown to plot.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.

    Raises:
        `InputError`: If no model has results for `key`.
    """
    plt = pyplot()
    name_of_group = _GROUP_TITLES.get(key, key)
    panels = {name: r[key] for name, r in models.items() if r.get(key)}
    if not panels:
        raise InputError(f"no {key.replace('_', '-')} results to plot.")
    rows = max(len(d) for d in panels.values())
    longest = max(len(str(label)) for d in panels.values() for label in d)
    height = max(2.5, 0.26 * rows + 1.2)
    width = 3.5 + min(longest, 60) * 0.07
    figure, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    for axis, (name, per_group) in zip(axes[0], panels.items(), strict=True):
        ordered = sorted(per_group.items(), key=lambda item: (item[1]["alignment_accuracy"], item[0]))
        labels = _short_labels([label for label, _ in ordered])
        values = [100 * metrics["alignment_accuracy"] for _, metrics in ordered]
        bars = axis.barh(range(len(ordered)), values, color="C0")
        for bar, (_, metrics) in zip(bars, ordered, strict=True):
            axis.text(
                min(bar.get_width() + 1, 101),
                bar.get_y() + bar.get_height() / 2,
                f"{100 * metrics['alignment_accuracy']:.1f} (n={metrics['num_pairs']})",
                va="center",
                fontsize=7,
            )
        axis.axvline(50, color="grey", linewidth=0.8, linestyle=":")
        axis.set_yticks(range(len(ordered)), labels, fontsize=7)
        axis.set_xlim(0, 125)
        axis.set_xticks(range(0, 101, 25))
        axis.set_xlabel("alignment accuracy (%)")
        axis.set_title(f"Accuracy per {name_of_group}: {name}", fontsize=9)
        axis.set_ylim(-0.7, len(ordered) - 0.3)
    figure.tight_layout()
    return save_figure(figure, path, overwrite)


def plot_per_dimension(models: Mapping[str, Mapping[str, Any]], path: str | Path, overwrite: bool = False) -> Path:
    """Accuracy per preference dimension (AlignX Table 8): `plot_per_group(models, path, "per_dimension")`.

    Raises:
        `InputError`: If no model has per-dimension results.
    """
    return plot_per_group(models, path, "per_dimension", overwrite)


# ------------------------------------------------------------------------------------------------ judged results
def _interval_error(value: float | None, ci: Mapping[str, Any] | None) -> tuple[float, float]:
    """The (below, above) error bar lengths of `value` for a bootstrap interval `{"low", "high"}` (0 when missing)."""
    if value is None or not ci or ci.get("low") is None or ci.get("high") is None:
        return 0.0, 0.0
    return max(0.0, value - ci["low"]), max(0.0, ci["high"] - value)


def plot_pairwise_outcomes(
    results: Mapping[str, Any],
    path: str | Path,
    responses_label: str = "responses",
    against_label: str = "against",
    overwrite: bool = False,
) -> Path:
    """The pairwise win rate (AlignX, `personalign judge --protocol pairwise-win`): on the left the win / tie / lose /
    unparsable counts as bars, on the right Win / (Win + Lose) with its bootstrap interval and the 0.5 parity line.

    Args:
        results (`Mapping`): The `results` of a pairwise-win summary (`wins`, `ties`, `losses`, `unparsable`,
            `win_rate`, `win_rate_ci`).
        path (`str` or `Path`): The PNG to write.
        responses_label (`str`, *optional*): Names the `--responses` system.
        against_label (`str`, *optional*): Names the `--against` system.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.
    """
    plt = pyplot()
    figure, (counts, rate) = plt.subplots(1, 2, figsize=(8.4, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    names = ["win", "tie", "lose", "unparsable"]
    values = [results["wins"], results["ties"], results["losses"], results["unparsable"]]
    bars = counts.bar(names, values, color=["C2", "C7", "C3", "C1"])
    counts.bar_label(bars, fontsize=8, padding=2)
    counts.set_ylabel("rows")
    counts.set_ylim(0, max([*values, 1]) * 1.15)
    counts.set_title(f"{results['num_items']} rows, verdicts for {responses_label}", fontsize=9)
    win_rate = results.get("win_rate")
    if win_rate is None:
        rate.text(0, 0.5, "n/a: no decisive verdict", ha="center", va="center", fontsize=8)
    else:
        below, above = _interval_error(win_rate, results.get("win_rate_ci"))
        rate.errorbar([0], [win_rate], yerr=[[below], [above]], fmt="o", color="C0", capsize=6)
        rate.annotate(f"{win_rate:.3f}", (0, win_rate), xytext=(8, 0), textcoords="offset points", fontsize=8)
    rate.axhline(0.5, color="black", linestyle="--", linewidth=1)
    rate.set_xlim(-1, 1)
    rate.set_xticks([])
    rate.set_ylim(0, 1)
    confidence = (results.get("win_rate_ci") or {}).get("confidence", 0.95)
    rate.set_title(f"Win / (Win + Lose), {100 * confidence:.0f}% CI", fontsize=9)
    figure.suptitle(f"{responses_label} vs {against_label}", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path, overwrite)


def plot_score_histograms(
    histograms: Mapping[str, Mapping[str, int]], path: str | Path, overwrite: bool = False
) -> Path:
    """How often the judge gave each score (1-5), one bar group per score and one bar per system.

    Args:
        histograms (`Mapping[str, Mapping[str, int]]`): Per system, `{"1": count, ..., "5": count}`.
        path (`str` or `Path`): The PNG to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.
    """
    plt = pyplot()
    scores = sorted({score for histogram in histograms.values() for score in histogram}, key=int)
    width = 0.8 / max(1, len(histograms))
    figure, axes = plt.subplots(figsize=(6.0, 3.6))
    names = _short_labels(list(histograms), 40)
    for position, (name, histogram) in enumerate(zip(names, histograms.values(), strict=True)):
        xs = [int(s) + (position - (len(histograms) - 1) / 2) * width for s in scores]
        axes.bar(xs, [histogram.get(s, 0) for s in scores], width, label=name)
    axes.set_xticks([int(s) for s in scores])
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel("judge score")
    axes.set_ylabel("judge outputs")
    axes.set_title("Score distribution")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, overwrite)


def plot_scores_by_group(
    groups: Mapping[str, Mapping[str, Mapping[str, Any]]],
    path: str | Path,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Mean judge scores (1-5) with their bootstrap intervals: one bar group per group (a dimension, or "overall"),
    one bar per system; a missing mean is drawn as "n/a".

    Args:
        groups (`Mapping`): `{group: {system: {"mean": float | None, "ci": {"low", "high"}}}}`.
        path (`str` or `Path`): The PNG to write.
        title (`str`, *optional*): The plot title.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.
    """
    plt = pyplot()
    names = list(groups)
    systems = list(dict.fromkeys(system for entry in groups.values() for system in entry))
    shown = _short_labels(systems, 40)
    width = 0.8 / max(1, len(systems))
    figure, axes = plt.subplots(figsize=(max(5.5, 1.1 * len(names) * max(1, len(systems)) + 1.5), 3.8))
    for position, system in enumerate(systems):
        xs = [i + (position - (len(systems) - 1) / 2) * width for i in range(len(names))]
        stats = [groups[name].get(system) or {} for name in names]
        means = [s.get("mean") for s in stats]
        errors = [_interval_error(m, s.get("ci")) for m, s in zip(means, stats, strict=True)]
        bars = axes.bar(
            xs,
            [0.0 if m is None else m for m in means],
            width,
            yerr=[[e[0] for e in errors], [e[1] for e in errors]],
            capsize=4,
            label=shown[position],
        )
        for bar, mean in zip(bars, means, strict=True):
            axes.annotate(
                "n/a" if mean is None else f"{mean:.2f}",
                (bar.get_x() + bar.get_width() / 2, 0.05),
                ha="center",
                va="bottom",
                fontsize=8,
                color="white" if mean is not None else "black",
            )
    axes.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names])
    axes.set_ylim(0, 6.0)  # room above 5 for the legend
    axes.set_yticks(range(6))
    axes.set_ylabel("mean score (1-5)")
    axes.set_title(title or "Judge scores")
    axes.legend(fontsize=8, loc="upper right", ncol=len(systems) if sum(map(len, shown)) < 50 else 1)
    figure.tight_layout()
    return save_figure(figure, path, overwrite)
