"""Running a judge protocol end to end, as `personalign judge` does: judge, summarise, write (contract C3), and put
the headline numbers into the `--responses` model's card through the one card writer.

- `judge_responses`: the judgments and the summary of one protocol over loaded inputs (`load_judge_inputs`), with one
  progress bar over the judge calls (`JudgeCallLog`) and one warning line for unparsable judge outputs (how many came
  from the call cache; `reask_unparsable` asks those calls again);
- `write_judge_outputs`: `judgments.jsonl`, `summary.json` and the protocol's PNG plots, staged and renamed;
- `judge_card_results` / `update_model_card_with_judgments`: `model-index` `EvalResult`s, written with
  `personalign.hub.cards.add_results_to_card` (as `eval policy --model-card` writes its results).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult
from tqdm.auto import tqdm

from ... import __version__
from ...errors import InputError
from ...hub.cards import add_results_to_card
from ...inference.calls import CachedBackend, CallCache, call_requests
from ...inference.generation import CompletionCallback, GenerationBackend, Messages, StreamingBackend, public_spec
from ...io import atomic_output
from .base import AGAINST, RESPONSES, JudgeInputs, JudgeProtocol, JudgeSettings

logger = logging.getLogger(__name__)

JUDGMENTS_FILE = "judgments.jsonl"
SUMMARY_FILE = "summary.json"
RETRY_NEEDS_CACHE = "--retry-unparsable asks cached calls again: it needs the call cache, drop --no-cache."
"""The refusal of `--retry-unparsable` without a call cache (`--no-cache`)."""


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


def answered_from_cache(
    backend: GenerationBackend,
    prompts: Sequence[Messages],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
) -> list[bool]:
    """Per prompt, whether a `CachedBackend` would answer it from its call cache now (the cache's `reask` taken into
    account); all `False` for any other backend. The look-up is the cache's own (`call_requests`, `CallCache.get`).

    Returns:
        `list[bool]`: One per prompt, in order.
    """
    if not isinstance(backend, CachedBackend):
        return [False] * len(prompts)
    requests = call_requests(
        backend.name, backend.cache_key_fields(), prompts, max_new_tokens, temperature, top_p, seed
    )
    return [request is not None and backend.cache.get(request) is not None for request in requests]


class JudgeCallLog(StreamingBackend):
    """The judge backend as one `judge_responses` run sees it: every call goes to `backend` unchanged, and on the way
    it moves the run's one progress bar as each answer arrives (the backends' `on_completion`, as `personalign
    generate` does: per request for an API, per batch for transformers, the cached answers at once; the backends'
    own bars are hidden) and notes which answers came from the call cache (`answers`).

    The bar opens with the first `generate` call; a later call adds its prompts to the same bar's total. `close` it
    when the run is done.

    Args:
        backend (`GenerationBackend`): The judge backend (a `CachedBackend` under the command line).
        description (`str`, *optional*, defaults to `"Judging"`): The bar's label.
        progress (`bool`, *optional*, defaults to `True`): Show the bar.
    """

    def __init__(self, backend: GenerationBackend, description: str = "Judging", progress: bool = True):
        self.backend = backend
        self.description = description
        self.progress = progress
        self.name = backend.name
        self.remote = backend.remote
        self.answers: list[tuple[str, bool]] = []
        self.bar: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the progress bar (if one was opened)."""
        if self.bar is not None:
            self.bar.close()

    def cache_key_fields(self) -> dict[str, Any]:
        return self.backend.cache_key_fields()

    def _generate_each(
        self,
        prompts: list[Messages],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        on_completion: CompletionCallback | None,
        show_progress: bool | None,
    ) -> list[str]:
        cached = answered_from_cache(self.backend, prompts, max_new_tokens, temperature, top_p, seed)
        with self._lock:
            if self.bar is None:
                self.bar = tqdm(total=len(prompts), desc=self.description, unit="call", disable=not self.progress)
            else:
                self.bar.total += len(prompts)
                self.bar.refresh()

        def arrived(index: int, text: str) -> None:
            with self._lock:  # called from an API backend's worker threads
                self.bar.update(1)
            if on_completion is not None:
                on_completion(index, text)

        outputs = self.backend.generate(
            prompts, max_new_tokens, temperature, top_p, seed, on_completion=arrived, show_progress=False
        )
        self.answers.extend(zip(outputs, cached, strict=True))
        return outputs


def reask_unparsable(backend: GenerationBackend, protocol: JudgeProtocol) -> Callable[[str], bool] | None:
    """Ask again the calls whose cached answers the protocol's judge cannot parse (`--retry-unparsable`): the call
    cache behind `backend` (a `CachedBackend`'s, or a dry run's) then reads those answers as missing (`CallCache`'s
    `reask`), so they are sent again, counted as calls to send by a dry run, and their new answers cached. Every
    other call is still answered from the cache.

    Args:
        backend (`GenerationBackend`): A `CachedBackend` or a `DryRunBackend` (anything with a `cache`).
        protocol (`JudgeProtocol`): The protocol; its `judge_class.parse_output` decides what is unparsable.

    Returns:
        `Callable[[str], bool]` or `None`: The cache's `reask` before, to put back when the run is done.

    Raises:
        `InputError`: If `backend` has no call cache (`--no-cache`: every call is sent anyway).
    """
    cache = getattr(backend, "cache", None)
    if not isinstance(cache, CallCache):
        raise InputError(RETRY_NEEDS_CACHE)
    parse = protocol.judge_class.parse_output
    previous, cache.reask = cache.reask, lambda completion: parse(completion) is None
    return previous


def unparsable_line(protocol: JudgeProtocol, unparsable: int, total: int, from_cache: int | None) -> str | None:
    """The warning of a run with unparsable judge outputs, naming the protocol as the command line does; `None`
    without any.

    Args:
        protocol (`JudgeProtocol`): The protocol.
        unparsable (`int`): Judge outputs that could not be parsed.
        total (`int`): Judge outputs read.
        from_cache (`int`, *optional*): How many of the unparsable ones came from the call cache (`None`: no cache).

    Returns:
        `str` or `None`
    """
    if not unparsable:
        return None
    line = f"{protocol.name}: {unparsable} of {total} judge answers could not be parsed; they are counted, not scored."
    if from_cache:
        line += (
            f" {from_cache} of them came from the call cache (answers of an earlier run): pass --retry-unparsable to "
            "ask those calls again."
        )
    return line


def _call_stats(backend: GenerationBackend) -> dict[str, int] | None:
    """The calls of a `CachedBackend` (requested, cached, called); `None` for an uncached backend (`--no-cache`)."""
    return backend.stats.as_dict() if isinstance(backend, CachedBackend) else None


def judge_responses(
    inputs: JudgeInputs,
    backend: GenerationBackend,
    protocol: JudgeProtocol,
    settings: JudgeSettings | None = None,
    judge_spec: str | None = None,
    retry_unparsable: bool = False,
    progress: bool = True,
) -> JudgeRun:
    """Judge the responses of `inputs` with a protocol and summarise the verdicts.

    Shows one progress bar over the judge calls (`JudgeCallLog`) and, when some judge outputs cannot be parsed, logs
    one warning naming the protocol and how many of them came from the call cache (`unparsable_line`).

    Args:
        inputs (`JudgeInputs`): The responses (`load_judge_inputs`).
        backend (`GenerationBackend`): The judge model.
        protocol (`JudgeProtocol`): The protocol (`personalign.evaluation.protocols.get_protocol`).
        settings (`JudgeSettings`, *optional*): Decoding, seed and bootstrap settings.
        judge_spec (`str`, *optional*): The judge's spec as given (recorded, redacted); the backend's name by default.
        retry_unparsable (`bool`, *optional*, defaults to `False`): Send again the calls whose cached answers the
            judge cannot parse (`reask_unparsable`; `backend` must be a `CachedBackend`).
        progress (`bool`, *optional*, defaults to `True`): Show the progress bar.

    Returns:
        `JudgeRun`: with `summary` holding `protocol`, `paper`, `options`, `judge` (spec, backend, decoding),
        `bootstrap`, `systems` (per system its folder, label and `generation.json`), `num_items`,
        `num_unparsable_items`, `num_judge_outputs`, `num_unparsable_outputs`, `num_unparsable_from_cache`
        (unparsable outputs answered by the call cache; `None` without the cache), `calls` (a `CachedBackend`'s
        requested / cached / called; `None` without the cache), `results` (the protocol's) and
        `personalign_version`.

    Raises:
        `InputError`: If the protocol cannot judge the inputs (before any call), or `retry_unparsable` without a call
            cache.
    """
    settings = settings or JudgeSettings()
    protocol.check(inputs)
    previous = reask_unparsable(backend, protocol) if retry_unparsable else None
    log = JudgeCallLog(backend, f"Judging ({protocol.name})", progress)
    try:
        judgments = protocol.judge(inputs, log, settings)
    finally:
        log.close()
        if retry_unparsable:  # this run's choice only: the backend's cache reads as before afterwards
            backend.cache.reask = previous  # type: ignore[attr-defined]
    unparsable = [cached for output, cached in log.answers if protocol.judge_class.parse_output(output) is None]
    from_cache = sum(unparsable) if isinstance(backend, CachedBackend) else None
    line = unparsable_line(protocol, len(unparsable), len(log.answers), from_cache)
    if line is not None:
        logger.warning(line)
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
        "num_judge_outputs": len(log.answers),
        "num_unparsable_outputs": len(unparsable),
        "num_unparsable_from_cache": from_cache,
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
