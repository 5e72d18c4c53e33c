"""`personalign demo`: the whole workflow offline, on tiny models, in a few minutes on 2 CPU cores.

1. synthetic counterfactual AlignX data (every user has a mirror who prefers the other response);
2. a tiny PersonaEncoder, trained on excerpts of the training personas (`personalign train encoder`);
3. DPORE (with that encoder) and PBA on a tiny causal LM (`personalign train dpore|pba`);
4. the base model and both policies evaluated on held-out users: alignment accuracy and flip rate
   (`personalign eval policy`), with the reference = the base model;
5. a report in the output folder: `report.json`, `report.png`, the evaluation's JSON and plots, and the model cards
   `push-model` would publish.

Every step is the library call behind the matching CLI command (the training scripts' `main`, `evaluate_alignment`,
`model_card`), with settings like the tiny configs of `examples/configs/tiny/`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datasets import Dataset
from trl import ModelConfig

from .data.synthetic import alignx_rows, pair_adjacent_epochs
from .encoder.training_args import PersonaEncoderTrainingArguments
from .errors import InputError
from .evaluation.runner import AlignmentEvalConfig, evaluate_alignment, write_alignment_results
from .hub.models import model_card
from .io import atomic_output, ensure_writable
from .reward.evaluation import plot_accuracy_table
from .scripts import dpore, encoder, pba
from .scripts.utils import ScriptArguments, make_config
from .testing import write_tiny_assets
from .trainers.dpore_config import DPOREConfig
from .trainers.pba_config import PBAConfig

BASE_NAME = "base (reference-free)"
MIN_TRAIN_ROWS = 8
"""The fewest training rows (one persona each): the persona encoder holds out a fifth of the personas, and scoring
it needs at least two of them (pairs of the same and of different personas)."""
INCOMPLETE_MARKER = ".personalign-demo-incomplete"
"""A file in the output folder while the demo runs: a folder holding it was left by a demo that was killed, and the
next run replaces it."""
OPTIONS = {
    "num_train_rows": "--train-rows",
    "num_test_rows": "--test-rows",
    "epochs": "--epochs",
    "encoder_steps": "--encoder-steps",
}
"""`run_demo`'s settings and the `personalign demo` options that set them, for messages."""


def check_demo_options(num_train_rows: int, num_test_rows: int, epochs: int, encoder_steps: int) -> None:
    """Refuse settings the demo cannot run with, before anything is written.

    Raises:
        `InputError`: One line naming the setting and its CLI option: a row count that is not even (rows come in
            counterfactual pairs) or too small, or a non-positive number of epochs or encoder steps (which would
            report untrained policies as results).
    """
    given = {"num_train_rows": num_train_rows, "num_test_rows": num_test_rows, "epochs": epochs}
    given["encoder_steps"] = encoder_steps
    least = {"num_train_rows": MIN_TRAIN_ROWS, "num_test_rows": 2, "epochs": 1, "encoder_steps": 1}
    for name, value in given.items():
        rows = name.endswith("_rows")
        valid = isinstance(value, int) and not isinstance(value, bool) and value >= least[name]
        if not valid or (rows and value % 2):
            why = " (the rows come in counterfactual pairs: a user and their mirror)" if rows else ""
            raise InputError(
                f"{name} must be {'an even' if rows else 'an'} integer >= {least[name]}{why}, got {value!r} "
                f"(CLI: {OPTIONS[name]})."
            )


@contextmanager
def fresh_output(
    output_dir: str | Path, overwrite: bool = False, log: Callable[[str], None] = print
) -> Iterator[Path]:
    """An empty folder at `output_dir` for a run that writes into it in place, that is left only when the run ends
    well: on any failure (Ctrl-C included) it is removed and a previous output (`overwrite`) is put back.

    The demo runs in place rather than in `personalign.io.atomic_output`'s hidden staging folder because what it writes
    records its own paths (model cards, run records and results name the models and data under the output folder):
    staged, they would name a staging folder that is gone after the rename. A previous output is moved aside, not
    deleted, until the run succeeds. A folder left by a killed run (it holds `INCOMPLETE_MARKER`) is replaced.

    Raises:
        `OutputExistsError`: If `output_dir` exists (and is not a killed run's), and `overwrite` is False.
    """
    output = Path(output_dir)
    if (output / INCOMPLETE_MARKER).is_file():
        log(f"removing {output}, left incomplete by an interrupted demo")
        shutil.rmtree(output)
    ensure_writable(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    aside = None
    if output.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".previous", dir=output.parent))
        os.replace(output, aside / output.name)
    try:
        output.mkdir()
        (output / INCOMPLETE_MARKER).touch()
        yield output
        (output / INCOMPLETE_MARKER).unlink()
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        if aside is not None:
            os.replace(aside / output.name, output)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def _policy_config(config_class: type, output: Path, epochs: int, **extra: Any) -> Any:
    """The demo's policy training settings (the tiny configs', with sequential batches that keep each user next to
    their mirror), device policy applied."""
    return make_config(
        config_class,
        output_dir=str(output), num_train_epochs=epochs, max_steps=-1, per_device_train_batch_size=16,
        learning_rate=1e-3, lr_scheduler_type="constant", train_sampling_strategy="sequential", beta=0.1,
        max_length=1024, activation_checkpointing=False, save_strategy="no", logging_steps=8, report_to="none", seed=0,
        **extra,
    )  # fmt: skip


def write_demo_data(folder: Path, num_train_rows: int, num_test_rows: int, seed: int = 0) -> Path:
    """Counterfactual AlignX rows: train rows with each user next to their mirror (sequential batches keep the pair
    together), held-out rows from other users."""
    folder.mkdir(parents=True, exist_ok=True)
    train = pair_adjacent_epochs(list(alignx_rows(num_train_rows, seed=seed, history_size=(1, 4))), 1, seed)
    Dataset.from_list(train).to_parquet(str(folder / "train.parquet"))
    test = list(alignx_rows(num_test_rows, seed=seed + 1, history_size=(2, 4)))
    Dataset.from_list(test).to_parquet(str(folder / "test.parquet"))
    return folder


def plot_report(models: dict[str, dict[str, Any]], path: Path) -> Path:
    """Alignment accuracy and flip rate of each model as grouped bars, with the persona-blind level (0.5) marked."""
    title = "Held-out users: accuracy and flip rate (reference = base model)"
    return plot_accuracy_table(models, path, ["alignment_accuracy", "flip_rate"], title)


def run_demo(
    output_dir: str | Path = "runs/demo",
    num_train_rows: int = 512,
    num_test_rows: int = 128,
    epochs: int = 3,
    encoder_steps: int = 40,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the offline demo into `output_dir` (see the module docstring) and return the report.

    Args:
        output_dir (`str` or `Path`, *optional*, defaults to `"runs/demo"`): Where everything goes; an existing folder
            is refused unless `overwrite`. A failed run leaves nothing there (see `fresh_output`).
        num_train_rows (`int`, *optional*, defaults to `512`): Training rows (counterfactual pairs, so even; at
            least `MIN_TRAIN_ROWS`).
        num_test_rows (`int`, *optional*, defaults to `128`): Held-out rows (even, at least 2).
        epochs (`int`, *optional*, defaults to `3`): Policy training epochs (at least 1).
        encoder_steps (`int`, *optional*, defaults to `40`): Persona encoder training steps (at least 1).
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing `output_dir`.
        log (`Callable[[str], None]`, *optional*): Receives one line per step.

    Returns:
        `dict`: The report written to `report.json`.

    Raises:
        `InputError`: On a setting the demo cannot run with (see `check_demo_options`), before anything is written.
        `OutputExistsError`: If `output_dir` exists and `overwrite` is False.
    """
    check_demo_options(num_train_rows, num_test_rows, epochs, encoder_steps)
    with fresh_output(output_dir, overwrite, log) as output:
        return _run(output, num_train_rows, num_test_rows, epochs, encoder_steps, log)


def _run(
    output: Path, num_train_rows: int, num_test_rows: int, epochs: int, encoder_steps: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """`run_demo`'s steps, writing into the empty folder `output`."""
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def step(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - step.last, 1)  # type: ignore[attr-defined]
        step.last = now  # type: ignore[attr-defined]

    step.last = start  # type: ignore[attr-defined]
    log("[1/5] tiny models and synthetic counterfactual data")
    assets = write_tiny_assets(output / "assets", num_train_rows=2, num_test_rows=2)
    data = write_demo_data(output / "data", num_train_rows, num_test_rows)
    step("data")

    log("[2/5] persona encoder (InfoNCE over the training personas' excerpts)")
    encoder_config = make_config(
        PersonaEncoderTrainingArguments,
        output_dir=str(output / "encoder"), max_steps=encoder_steps, per_device_train_batch_size=32,
        learning_rate=1e-3, warmup_steps=0, save_strategy="no", report_to="none", seed=0,
    )  # fmt: skip
    encoder_record = encoder.main(
        encoder.EncoderScriptArguments(dataset_name=str(data / "train.parquet"), eval_fraction=0.2),
        encoder_config,
        ModelConfig(model_name_or_path=str(assets / "encoder_backbone")),
    )
    step("encoder")

    log("[3/5] DPORE policy (lambda 1, the trained persona encoder)")
    policy_model = ModelConfig(model_name_or_path=str(assets / "causal_lm"))
    dpore.main(
        dpore.DPOREScriptArguments(dataset_name=str(data), persona_encoder=str(output / "encoder")),
        _policy_config(DPOREConfig, output / "dpore", epochs, re_lambda=1.0),
        policy_model,
    )
    step("dpore")
    log("[4/5] PBA policy")
    pba.main(ScriptArguments(dataset_name=str(data)), _policy_config(PBAConfig, output / "pba", epochs), policy_model)
    step("pba")

    log("[5/5] evaluation on held-out users: alignment accuracy and flip rate")
    base = str(assets / "causal_lm")
    config = AlignmentEvalConfig(split="test", persona_format="pba", flip=True, persona_sizes=(1, 2, 4), batch_size=16)
    results = evaluate_alignment(
        {"dpore": str(output / "dpore"), "pba": str(output / "pba")}, base, str(data), config=config, log=log
    )
    # The base model against itself ties on every pair (accuracy 0 by the strict rule), so it is scored
    # reference-free: a pair is correct iff the model gives the chosen response the higher log-prob.
    base_results = evaluate_alignment({BASE_NAME: base}, None, str(data), config=config, log=log)
    results["models"] = {**base_results["models"], **results["models"]}
    write_alignment_results(results, output / "eval")
    step("eval")

    overall = {name: result["overall"] for name, result in results["models"].items()}
    summary = {
        name: {
            key: metrics.get(key)
            for key in ("alignment_accuracy", "flip_rate", "strict_flip_rate", "reversed_alignment_accuracy")
        }
        for name, metrics in overall.items()
    }
    cards = output / "cards"
    cards.mkdir()
    for method in ("dpore", "pba"):
        (cards / f"{method}.md").write_text(model_card(output / method), encoding="utf-8")
    shutil.copy(output / "encoder" / "README.md", cards / "encoder.md")
    report = {
        "models": summary,
        "encoder": {key: encoder_record["eval"][key] for key in ("before", "after")},
        "num_train_rows": num_train_rows,
        "num_test_rows": num_test_rows,
        "epochs": epochs,
        "seconds": timings,
    }
    plot_report(summary, output / "report.png")
    step("report")
    report["seconds"] = {**timings, "total": round(time.perf_counter() - start, 1)}
    with atomic_output(output / "report.json") as path:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
