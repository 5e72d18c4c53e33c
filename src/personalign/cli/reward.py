"""`personalign rejection-sample`: keep the training pairs a personalized reward model separates best (the
counterfactual paper's §4.3)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from .common import Overwrite, console


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
    from ..io import ensure_writable
    from ..reward.feedback import FeedbackRendering
    from ..reward.modeling import load_reward_model
    from ..reward.rejection_sampling import (
        keep_count,
        rejection_sample,
        rejection_sampling_rows,
        write_rejection_sampling,
    )

    ensure_writable(output, overwrite, inputs=(reward_model, dataset))  # before loading models and data
    keep_count(0, keep)
    rows, names = rejection_sampling_rows(dataset, split)
    model, tokenizer, trained = load_reward_model(reward_model)
    settings = {f.name: trained[f.name] for f in fields(FeedbackRendering) if f.name in trained}
    settings.update({k: v for k, v in (("history_size", history_size), ("max_length", max_length)) if v is not None})
    result = rejection_sample(model, tokenizer, rows, keep, FeedbackRendering(**settings), batch_size, names=names)
    write_rejection_sampling(result, output, overwrite, reward_model=reward_model, source=dataset)
    summary = result.summary
    threshold = summary["margin_threshold"]
    console.print(
        f"kept {summary['num_kept']:,} of {summary['num_rows']:,} pairs"
        + ("" if threshold is None else f" (margin >= {threshold:.4f})")
    )
    console.print(f"wrote {output}")
