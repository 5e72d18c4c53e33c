"""Rejection sampling of training data with a personalized reward model (the counterfactual paper, §4.3, Table 3).

The reward model scores both responses of every training pair given the user's feedback history; pairs whose
margin `r(chosen) - r(rejected)` is small carry little of the user's preference, so only the top `keep` share
(the counterfactual paper keeps p = 60%) by margin is kept. The kept pairs become two datasets:

- **RS-SFT** (`rs_sft`): TRL's conversational prompt-completion rows: the Appendix B.2 prompt (history and
  instruction) and the chosen response as the completion;
- **RS-DPO** (`rs_dpo`): TRL's conversational preference rows: the same prompt, chosen and rejected.

Both carry the `margin` column, the row's index in the source (`source_row`) and its `instruction_id` /
`dimension` / `preference` when the source has them.

The count is defined exactly: `floor(keep * rows)`, computed on the decimal value of `keep` (so 0.6 of 5 rows is 3
and 0.29 of 100 rows is 29, with no floating-point surprise). The ranking is a stable sort by (-margin, source
index): equal margins keep the earlier row, so the same scores always select the same rows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, List, Value

from ..data.loading import RowNames, load_source
from ..data.multifacet import multifacet_cf_responses
from ..errors import InputError
from ..evaluation.plots import pyplot, save_figure
from ..hub.cards import DatasetCardSpec, render_dataset_card
from ..hub.datasets import write_dataset_folder
from ..io import atomic_output
from ..papers import COUNTERFACTUAL_CITATION
from .feedback import (
    HISTORY_IDS_COLUMN,
    HISTORY_TEXT_COLUMN,
    FeedbackRendering,
    attach_history_texts,
    column_values,
    generation_messages,
)
from .modeling import score_rewards

MESSAGES = List({"role": Value("string"), "content": Value("string")})
METADATA_COLUMNS = {"instruction_id": Value("int64"), "dimension": Value("string"), "preference": Value("string")}
SUMMARY_FILE = "rejection_sampling.json"
PLOT_FILE = "margins.png"


# ---------------------------------------------------------------------------------------------- pure functions
def keep_count(num_rows: int, keep: float) -> int:
    """How many rows rejection sampling keeps: `floor(keep * num_rows)`, on the exact decimal value of `keep`.

    Args:
        num_rows (`int`): Rows scored.
        keep (`float`): The share kept (the counterfactual paper's p), in (0, 1].

    Returns:
        `int`: The number of rows kept (`keep_count(100, 0.29) == 29`, with no floating-point surprise).

    Raises:
        `InputError`: If `keep` is not in (0, 1] or `num_rows` is negative.
    """
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise InputError(f"keep must be a fraction in (0, 1], got {keep!r}.")
    if num_rows < 0:
        raise InputError(f"num_rows must be non-negative, got {num_rows}.")
    return math.floor(Fraction(str(keep)) * num_rows)


def select_top_margin(margins: Sequence[float], keep: float, names: Callable[[int], str] | None = None) -> list[int]:
    """The rows to keep: the `keep_count(len(margins), keep)` largest margins, ties broken by the lower index.

    Args:
        margins (`Sequence[float]`): `r(chosen) - r(rejected)` per row.
        keep (`float`): The share kept, in (0, 1].
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `list[int]`: The kept row indices, in source order.

    Raises:
        `InputError`: If a margin is not a finite number (naming the row).
    """
    for index, margin in enumerate(margins):
        if not math.isfinite(margin):
            at = (names or RowNames.of("rows"))(index)
            raise InputError(f"{at}: the reward margin is {margin}; every margin must be a finite number.")
    ranked = sorted(range(len(margins)), key=lambda i: (-margins[i], i))
    return sorted(ranked[: keep_count(len(margins), keep)])


# ------------------------------------------------------------------------------------------------- the datasets
@dataclass
class RejectionSamplingResult:
    """What `rejection_sample` made.

    Attributes:
        sft (`Dataset`): RS-SFT rows (`prompt`, `completion`, `margin`, `source_row`, metadata).
        dpo (`Dataset`): RS-DPO rows (`prompt`, `chosen`, `rejected`, `margin`, `source_row`, metadata).
        margins (`list[float]`): Every source row's margin.
        kept (`list[int]`): The kept source rows, in source order.
        summary (`dict`): Counts, the margin threshold, per-dimension counts and the settings.
    """

    sft: Dataset
    dpo: Dataset
    margins: list[float]
    kept: list[int]
    summary: dict[str, Any] = field(default_factory=dict)


def _metadata(rows: Any) -> dict[str, Value]:
    names = rows.column_names if isinstance(rows, Dataset) else list(rows[0]) if len(rows) else []
    return {name: feature for name, feature in METADATA_COLUMNS.items() if name in names}


def build_rs_datasets(
    rows: Any,
    margins: Sequence[float],
    kept: Sequence[int],
    rendering: FeedbackRendering | None = None,
    names: Callable[[int], str] | None = None,
) -> tuple[Dataset, Dataset]:
    """The RS-SFT and RS-DPO datasets of the kept rows (prompts rendered with the Appendix B.2 template; the
    history is capped at `history_size` but not cut to a token budget: the policy trainer's `max_length` decides).

    Args:
        rows (`Dataset` or `Sequence[Mapping]`): The scored rows, with their history texts.
        margins (`Sequence[float]`): Every row's margin.
        kept (`Sequence[int]`): The rows to keep (`select_top_margin`).
        rendering (`FeedbackRendering`, *optional*): Columns and T.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `(sft, dpo)`: TRL's conversational prompt-completion and preference datasets, each with `margin`,
        `source_row` and the source's `instruction_id` / `dimension` / `preference` when present.

    Raises:
        `InputError`: If a kept row is malformed, naming the row and column.
    """
    rendering = rendering or FeedbackRendering()
    names = names or RowNames.of("rows")
    metadata = _metadata(rows)
    sft: dict[str, list] = {"prompt": [], "completion": [], "margin": [], "source_row": []}
    dpo: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "margin": [], "source_row": []}
    for name in metadata:
        sft[name], dpo[name] = [], []
    for index in kept:
        row = rows[int(index)]
        prompt = generation_messages(row, rendering, names(int(index)))
        chosen = [{"role": "assistant", "content": row[rendering.chosen_column]}]
        rejected = [{"role": "assistant", "content": row[rendering.rejected_column]}]
        for columns in (sft, dpo):
            columns["prompt"].append(prompt)
            columns["margin"].append(float(margins[index]))
            columns["source_row"].append(int(index))
            for name in metadata:
                columns[name].append(row[name])
        sft["completion"].append(chosen)
        dpo["chosen"].append(chosen)
        dpo["rejected"].append(rejected)
    common = {"margin": Value("float64"), "source_row": Value("int64"), **metadata}
    sft_features = Features({"prompt": MESSAGES, "completion": MESSAGES, **common})
    dpo_features = Features({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES, **common})
    return Dataset.from_dict(sft, features=sft_features), Dataset.from_dict(dpo, features=dpo_features)


def summarize(
    margins: Sequence[float], kept: Sequence[int], keep: float, dimensions: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """Counts, the lowest kept margin (the threshold), margin statistics and per-dimension counts.

    Args:
        margins (`Sequence[float]`): Every row's margin.
        kept (`Sequence[int]`): The kept rows.
        keep (`float`): The share kept.
        dimensions (`Sequence[str | None]`, *optional*): Each row's preference dimension, for `per_dimension`.

    Returns:
        `dict`: `keep`, `count_rule`, `num_rows`, `num_kept`, `margin_threshold`, `margin_mean`, `kept_margin_mean`,
        `positive_margin_rate` and, with dimensions, `per_dimension` (`{dimension: {"rows", "kept"}}`).
    """
    kept_margins = [margins[i] for i in kept]
    summary: dict[str, Any] = {
        "keep": keep,
        "count_rule": "floor(keep * rows), on the decimal value of keep; ties by source order",
        "num_rows": len(margins),
        "num_kept": len(kept),
        "margin_threshold": min(kept_margins) if kept_margins else None,
        "margin_mean": sum(margins) / len(margins) if margins else None,
        "kept_margin_mean": sum(kept_margins) / len(kept_margins) if kept_margins else None,
        "positive_margin_rate": sum(m > 0 for m in margins) / len(margins) if margins else None,
    }
    if dimensions is not None and any(d is not None for d in dimensions):
        total, chosen = Counter(dimensions), Counter(dimensions[i] for i in kept)
        summary["per_dimension"] = {str(d): {"rows": total[d], "kept": chosen[d]} for d in sorted(total, key=str)}
    return summary


def rejection_sample(
    model: Any,
    tokenizer: Any,
    rows: Any,
    keep: float = 0.6,
    rendering: FeedbackRendering | None = None,
    batch_size: int = 16,
    progress: bool = True,
    responses: Any = None,
    names: Callable[[int], str] | None = None,
) -> RejectionSamplingResult:
    """Score every training pair with a personalized reward model and keep the top `keep` share by margin.

    Args:
        model, tokenizer: The personalized reward model (`load_reward_model`).
        rows (`Dataset` or `Sequence[Mapping]`): Training rows: instruction, chosen, rejected and the history
            (`history_text`, or history ids with `responses`).
        keep (`float`, *optional*, defaults to `0.6`): The share kept (the counterfactual paper's p), in (0, 1].
        rendering (`FeedbackRendering`, *optional*): As the reward model was trained.
        batch_size (`int`, *optional*, defaults to `16`): Sequences per forward pass.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar.
        responses (`Dataset`, *optional*): The `responses` table, for rows with history ids.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `RejectionSamplingResult`
    """
    keep_count(0, keep)  # validate before scoring
    rendering = rendering or FeedbackRendering()
    rows = attach_history_texts(rows, responses)
    if not isinstance(rows, Dataset):
        rows = list(rows)
    scores = score_rewards(model, tokenizer, rows, rendering, batch_size, progress, names=names)
    margins = [c - r for c, r in zip(scores["chosen_rewards"], scores["rejected_rewards"], strict=True)]
    kept = select_top_margin(margins, keep, names)
    sft, dpo = build_rs_datasets(rows, margins, kept, rendering, names)
    summary = summarize(margins, kept, keep, column_values(rows, "dimension"))
    summary.update(rendering=rendering.to_dict(), over_length=scores["over_length"])
    return RejectionSamplingResult(sft, dpo, margins, kept, summary)


def plot_margins(margins: Sequence[float], kept: Sequence[int], path: str | Path) -> Path:
    """Histogram of the reward margins, kept rows and dropped rows stacked, with the threshold line (Agg backend).

    Args:
        margins (`Sequence[float]`): Every row's margin.
        kept (`Sequence[int]`): The kept rows.
        path (`str` or `Path`): The PNG to write (replaced if present: it is written inside the caller's staging
            folder).

    Returns:
        `Path`: The file written.
    """
    plt = pyplot()
    kept_set = set(kept)
    kept_values = [m for i, m in enumerate(margins) if i in kept_set]
    dropped_values = [m for i, m in enumerate(margins) if i not in kept_set]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    bins = min(50, max(5, len(margins) // 10))
    axes.hist([kept_values, dropped_values], bins=bins, stacked=True, label=["kept", "dropped"])
    if kept_values:
        axes.axvline(min(kept_values), color="black", linestyle="--", linewidth=1, label="threshold")
    axes.set_xlabel("reward margin r(chosen) - r(rejected)")
    axes.set_ylabel("rows")
    axes.set_title(f"Rejection sampling: kept {len(kept_values)} of {len(margins)}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, overwrite=True, dpi=120)  # inside the caller's staging folder


def rejection_sampling_card(
    result: RejectionSamplingResult, reward_model: str = "", source: str = ""
) -> DatasetCardSpec:
    """The dataset card of rejection-sampled data (`rs_sft` / `rs_dpo`): what was kept, by which reward model, from
    which source."""
    return DatasetCardSpec(
        pretty_name="Rejection-sampled personalized training data (RS-SFT / RS-DPO)",
        summary=(
            "Training pairs with a feedback history, filtered by a personalized reward model as in Jin et al. "
            "(2025), §4.3: each pair's margin r(chosen) - r(rejected) given the user's history was scored and "
            f"only the top {result.summary.get('keep')} share by margin was kept."
        ),
        source=source or "(in memory)",
        descriptions={
            "rs_sft": "prompt (Appendix B.2: history + instruction) and the chosen response as the completion.",
            "rs_dpo": "prompt, chosen and rejected: TRL's conversational preference format.",
        },
        provenance={
            "reward_model": reward_model,
            "keep": result.summary.get("keep"),
            "count_rule": result.summary.get("count_rule"),
            "rows": result.summary.get("num_rows"),
            "kept": result.summary.get("num_kept"),
            "margin_threshold": result.summary.get("margin_threshold"),
        },
        citations=[COUNTERFACTUAL_CITATION],
        tags=["rejection-sampling", "reward-model"],
    )


def write_rejection_sampling(
    result: RejectionSamplingResult,
    output_dir: str | Path,
    overwrite: bool = False,
    reward_model: str = "",
    source: str = "",
) -> Path:
    """Write the RS datasets as a dataset folder (`load_dataset(output_dir, "rs_sft")` / `"rs_dpo"`) with a card,
    the summary (`rejection_sampling.json`) and the margin histogram (`margins.png`), all in one atomic rename.

    Args:
        result (`RejectionSamplingResult`): What `rejection_sample` made.
        output_dir (`str` or `Path`): The folder to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.
        reward_model (`str`, *optional*): The reward model's folder or Hub id, recorded in the card and summary.
        source (`str`, *optional*): The training rows' source, recorded likewise.

    Returns:
        `Path`: `output_dir`.

    Raises:
        `OutputExistsError`: If `output_dir` exists and `overwrite` is False.
    """
    configs = {"rs_sft": DatasetDict({"train": result.sft}), "rs_dpo": DatasetDict({"train": result.dpo})}
    summary = {"reward_model": reward_model, "source": source, **result.summary}
    card = render_dataset_card(configs, rejection_sampling_card(result, reward_model, source))
    output_dir = Path(output_dir)
    with atomic_output(output_dir, overwrite) as staging:
        write_dataset_folder(configs, staging, card)
        (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        plot_margins(result.margins, result.kept, staging / PLOT_FILE)
    return output_dir


def load_rows(source: str | Path, split: str = "train") -> Any:
    """`rejection_sampling_rows` without the names of the rows."""
    return rejection_sampling_rows(source, split)[0]


def rejection_sampling_rows(source: str | Path, split: str = "train") -> tuple[Any, RowNames]:
    """Training rows for rejection sampling from a `.parquet` / `.jsonl` file, a folder written by
    `personalign build-dataset multifacet-cf` (its `counterfactual` config; history ids are resolved through its
    `responses` config), a saved dataset or a Hub id.

    Args:
        source (`str` or `Path`): Where the rows are.
        split (`str`, *optional*, defaults to `"train"`): The split.

    Returns:
        `tuple[Dataset, RowNames]`: Rows with `prompt`, `chosen`, `rejected` and `history_text` (attached lazily for
        a build folder), and the names of the rows for messages (a JSON-lines row by its file and 1-based line, any
        other by its 0-based row).

    Raises:
        `InputError`: If the rows lack the instruction, the responses or a history, naming the source and columns.
    """
    dataset = load_source(source)
    rows = dataset.split(split)
    where = f"{source} [{split}]"
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in rows.column_names]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(repr(c) for c in missing)}; a row needs prompt, chosen, rejected "
            f"and {HISTORY_TEXT_COLUMN} (found: {', '.join(rows.column_names)})."
        )
    if HISTORY_TEXT_COLUMN in rows.column_names:
        return rows, dataset.row_names(split)
    responses = multifacet_cf_responses(dataset) if HISTORY_IDS_COLUMN in rows.column_names else None
    if responses is not None:
        return attach_history_texts(rows, responses), dataset.row_names(split)
    raise InputError(
        f"{where}: no {HISTORY_TEXT_COLUMN!r} column (the feedback history as [{{prompt, chosen, rejected}}]); pass a "
        "folder written by `personalign build-dataset multifacet-cf` (history ids are resolved through its "
        f"responses config) or rows with {HISTORY_TEXT_COLUMN} (found: {', '.join(rows.column_names)})."
    )
