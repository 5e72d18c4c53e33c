"""`personalign demo`: the whole workflow offline on tiny models (`personalign.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Overwrite, console


def demo_command(
    output: Annotated[Path, typer.Option(help="Folder for the report, models and cards.")] = Path("runs/demo"),
    train_rows: Annotated[int, typer.Option(help="Synthetic training rows (counterfactual pairs: even, >= 8).")] = 512,
    test_rows: Annotated[int, typer.Option(help="Held-out rows (even, >= 2).")] = 128,
    epochs: Annotated[int, typer.Option(help="Policy training epochs (>= 1).")] = 3,
    encoder_steps: Annotated[int, typer.Option(help="Persona encoder training steps (>= 1).")] = 40,
    overwrite: Overwrite = False,
) -> None:
    """The whole workflow offline on tiny models: data, persona encoder, DPORE and PBA, evaluation, report."""
    from ..demo import run_demo

    report = run_demo(output, train_rows, test_rows, epochs, encoder_steps, overwrite=overwrite, log=console.print)
    for name, metrics in report["models"].items():
        console.print(
            f"{name}: alignment accuracy {metrics['alignment_accuracy']:.3f}, flip rate {metrics['flip_rate']:.3f}"
        )
    console.print(f"wrote {output}/report.json and report.png in {report['seconds']['total']:.0f} s")
