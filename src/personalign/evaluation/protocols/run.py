"""Running a judge protocol end to end, as `personalign judge` does: judge, summarise, write (contract C3), and put
the headline numbers into the `--responses` model's card through the one card writer.

- `judge_responses`: the judgments and the summary of one protocol over loaded inputs (`load_judge_inputs`);
- `write_judge_outputs`: `judgments.jsonl`, `summary.json` and the protocol's PNG plots, staged and renamed;
- `judge_card_results` / `update_model_card_with_judgments`: `model-index` `EvalResult`s, written with
  `personalign.hub.cards.add_results_to_card` (as `eval policy --model-card` writes its results).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult

from ... import __version__
from ...hub.cards import add_results_to_card
from ...inference.calls import CachedBackend
from ...inference.generation import GenerationBackend, public_spec
from ...io import atomic_output
from .base import AGAINST, RESPONSES, JudgeInputs, JudgeProtocol, JudgeSettings

JUDGMENTS_FILE = "judgments.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass
class JudgeRun:
    """One protocol's judged results.

    Attributes:
        protocol (`JudgeProtocol`): The protocol.
        inputs (`JudgeInputs`): What was judged.
        settings (`JudgeSettings`): How.
        judgments (`list[dict]`): One record per item (`judgments.jsonl`).
        summary (`dict`): `summary.json`.
    """

    protocol: JudgeProtocol
    inputs: JudgeInputs
    settings: JudgeSettings
    judgments: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def labels(self) -> dict[str, str]:
        """The systems' display names."""
        return {key: system.label for key, system in self.inputs.systems.items()}


def _call_stats(backend: GenerationBackend) -> dict[str, int] | None:
    """The calls of a `CachedBackend` (requested, cached, called); `None` for an uncached backend (`--no-cache`)."""
    return backend.stats.as_dict() if isinstance(backend, CachedBackend) else None


def judge_responses(
    inputs: JudgeInputs,
    backend: GenerationBackend,
    protocol: JudgeProtocol,
    settings: JudgeSettings | None = None,
    judge_spec: str | None = None,
) -> JudgeRun:
    """Judge the responses of `inputs` with a protocol and summarise the verdicts.

    Args:
        inputs (`JudgeInputs`): The responses (`load_judge_inputs`).
        backend (`GenerationBackend`): The judge model.
        protocol (`JudgeProtocol`): The protocol (`personalign.evaluation.protocols.get_protocol`).
        settings (`JudgeSettings`, *optional*): Decoding, seed and bootstrap settings.
        judge_spec (`str`, *optional*): The judge's spec as given (recorded, redacted); the backend's name by default.

    Returns:
        `JudgeRun`: with `summary` holding `protocol`, `paper`, `options`, `judge` (spec, backend, decoding),
        `bootstrap`, `systems` (per system its folder, label and `generation.json`), `num_items`,
        `num_unparsable_items`, `calls` (a `CachedBackend`'s requested / cached / called; `None` without the
        cache), `results` (the protocol's) and
        `personalign_version`.

    Raises:
        `InputError`: If the protocol cannot judge the inputs (before any call).
    """
    settings = settings or JudgeSettings()
    protocol.check(inputs)
    judgments = protocol.judge(inputs, backend, settings)
    results = protocol.summarize(judgments, inputs, settings)
    max_new_tokens = settings.max_new_tokens or protocol.judge_class.max_new_tokens
    summary = {
        "protocol": protocol.name,
        "paper": protocol.paper,
        "options": protocol.options(),
        "judge": {
            "spec": public_spec(judge_spec or backend.name),
            "backend": public_spec(backend.name),
            "max_new_tokens": max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
        },
        "bootstrap": {
            "num_resamples": settings.num_resamples,
            "confidence": settings.confidence,
            "seed": settings.seed,
        },
        "systems": {
            key: {"folder": system.folder, "label": system.label, "generation": system.generation}
            for key, system in inputs.systems.items()
        },
        "num_items": len(judgments),
        "num_unparsable_items": sum(bool(item["unparsable"]) for item in judgments),
        "calls": _call_stats(backend),
        "results": results,
        "personalign_version": __version__,
    }
    return JudgeRun(protocol, inputs, settings, judgments, summary)


def write_judge_outputs(run: JudgeRun, output: str | Path, overwrite: bool = False) -> list[Path]:
    """Write `judgments.jsonl`, `summary.json` and the protocol's plots into the folder `output`, staged and renamed
    (the folder appears whole or not at all).

    Returns:
        `list[Path]`: The files written.

    Raises:
        `OutputExistsError`: If `output` exists and `overwrite` is False.
    """
    output = Path(output)
    with atomic_output(output, overwrite=overwrite) as folder:
        folder.mkdir()
        with (folder / JUDGMENTS_FILE).open("w", encoding="utf-8") as handle:
            for item in run.judgments:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        (folder / SUMMARY_FILE).write_text(
            json.dumps(run.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        plots = run.protocol.plot(run.summary["results"], folder, run.labels)
    return [output / name for name in (JUDGMENTS_FILE, SUMMARY_FILE, *plots)]


def judge_card_results(run: JudgeRun) -> list[EvalResult]:
    """The run's headline numbers (`JudgeProtocol.card_metrics`) as `model-index` results of the `--responses`
    model, each with its arguments: the dataset and split its responses were generated on, how (`dataset_args`:
    persona format, with or without history, inferred preferences), and how they were judged (`metric_args`:
    protocol, judge spec, seed, the `--against` model, the protocol's options).

    Returns:
        `list[EvalResult]`
    """
    summary = run.summary
    generation = run.inputs.systems[RESPONSES].generation
    dataset = str(generation.get("dataset") or run.inputs.systems[RESPONSES].folder)
    dataset_args = {
        key: generation.get(key) for key in ("persona_format", "no_history", "preferences") if key in generation
    }
    options = {key: value for key, value in run.protocol.options().items() if isinstance(value, (str, int, float))}
    metric_args = {
        "protocol": run.protocol.name,
        "judge": summary["judge"]["spec"],
        "seed": run.settings.seed,
        **options,
    }
    if AGAINST in run.inputs.systems:
        metric_args["against"] = run.labels[AGAINST]
    return [
        EvalResult(
            task_type="text-generation",
            task_name=f"Personalized generation, LLM-judged ({run.protocol.name})",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=generation.get("split") or None,
            dataset_args=dataset_args or None,
            metric_type=metric.type,
            metric_value=round(float(metric.value), 4),
            metric_name=metric.name,
            metric_config=metric.config,
            metric_args={**metric_args, **metric.args},
        )
        for metric in run.protocol.card_metrics(summary["results"])
    ]


def update_model_card_with_judgments(card_path: str | Path, run: JudgeRun) -> Path | None:
    """Add the run's results (`judge_card_results`) to a model card's `model-index` with
    `personalign.hub.cards.add_results_to_card`: the same judgement run again replaces its old values, every other
    result and the card's text are kept, a missing card is created. A run without a result (every judgment
    unparsable) leaves the card alone.

    Args:
        card_path (`str` or `Path`): The card (the `--responses` model's `README.md`).
        run (`JudgeRun`): The judged results.

    Returns:
        `Path` or `None`: `card_path`, or `None` when there was nothing to add.

    Raises:
        `InputError`: If the card's folder is missing or its metadata cannot be read.
    """
    results = judge_card_results(run)
    if not results:
        return None
    generation: Mapping[str, Any] = run.inputs.systems[RESPONSES].generation
    model = str(generation.get("model") or run.inputs.systems[RESPONSES].folder)
    return add_results_to_card(card_path, results, Path(model).name, description="Evaluated with `personalign judge`.")
