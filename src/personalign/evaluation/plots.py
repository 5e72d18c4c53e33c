"""PNG plots of alignment results (matplotlib, Agg backend: no display needed).

Both functions read the results dict of `personalign.evaluation.evaluate_alignment` (`results["models"][name]`) and
write one PNG atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
        `ValueError`: If no model has persona-size results.
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
        raise ValueError("no persona-size results to plot.")
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


def plot_per_dimension(models: Mapping[str, Mapping[str, Any]], path: str | Path, overwrite: bool = False) -> Path:
    """Accuracy per preference dimension (AlignX Table 8): one horizontal-bar panel per model, dimensions sorted by
    accuracy, each bar labelled with its accuracy and pair count; the figure grows with the number of dimensions
    (90 AlignX dimensions stay readable).

    Args:
        models (`Mapping[str, Mapping]`): `results["models"]`: per model, a `per_dimension` dict `{name: metrics}`.
        path (`str` or `Path`): The PNG to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.

    Raises:
        `ValueError`: If no model has per-dimension results.
    """
    plt = pyplot()
    panels = {name: r["per_dimension"] for name, r in models.items() if r.get("per_dimension")}
    if not panels:
        raise ValueError("no per-dimension results to plot.")
    rows = max(len(d) for d in panels.values())
    longest = max(len(str(label)) for d in panels.values() for label in d)
    height = max(2.5, 0.26 * rows + 1.2)
    width = 3.5 + min(longest, 60) * 0.07
    figure, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    for axis, (name, per_dimension) in zip(axes[0], panels.items(), strict=True):
        ordered = sorted(per_dimension.items(), key=lambda item: (item[1]["alignment_accuracy"], item[0]))
        labels = [label if len(label) <= 60 else label[:59] + "…" for label, _ in ordered]
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
        axis.set_title(f"Accuracy per dimension: {name}", fontsize=9)
        axis.set_ylim(-0.7, len(ordered) - 0.3)
    figure.tight_layout()
    return save_figure(figure, path, overwrite)
