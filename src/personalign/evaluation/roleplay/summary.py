"""The role-play summary (`summary.json`): per model, per turn the mean score and its spread over personas and runs,
and the average over turns (the DPORE paper's Table 1 "Avg.")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ... import __version__
from ..judges.reports import mean_or_none
from .conversation import JUDGE, USER_SIMULATOR, Conversation
from .personas import LoadedPersonas
from .prompts import USER_SIMULATOR_PROMPT

PAPER = "the DPORE paper, §4.1-4.2 (Table 1; the judge: Appendix A)"


def _std(values: Sequence[float]) -> float | None:
    """The sample standard deviation (`ddof=1`); `None` under two values."""
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1)) if len(values) > 1 else None


def turn_statistics(scores: Sequence[int | None], runs: Sequence[int]) -> dict[str, Any]:
    """The statistics of one model at one turn, over its personas and runs.

    Args:
        scores (`Sequence[int | None]`): The judge's score of each conversation's reply at that turn (`None`:
            unparsable, left out).
        runs (`Sequence[int]`): Each conversation's run.

    Returns:
        `dict`: `mean` (over the scored replies), `std` (their sample standard deviation), `run_means` (the mean of
        each run, in run order), `run_std` (the sample standard deviation of the run means: the spread over runs the
        DPORE paper's five runs average out), `num_replies`, `num_scored`, `num_unparsable`.
    """
    scored = [float(s) for s in scores if s is not None]
    run_means = [
        mean_or_none(float(s) for s, r in zip(scores, runs, strict=True) if r == run and s is not None)
        for run in sorted(set(runs))
    ]
    return {
        "mean": mean_or_none(scored),
        "std": _std(scored),
        "run_means": run_means,
        "run_std": _std([m for m in run_means if m is not None]),
        "num_replies": len(scores),
        "num_scored": len(scored),
        "num_unparsable": len(scores) - len(scored),
    }


def model_statistics(conversations: Sequence[Conversation], turns: int) -> dict[str, Any]:
    """One model's results: per turn `turn_statistics`, and the average over turns.

    Args:
        conversations (`Sequence[Conversation]`): The model's conversations (every persona and run).
        turns (`int`): The number of turns.

    Returns:
        `dict`: `per_turn` (a list, turn 1 first), `average` (the mean over turns of the per-turn means: the DPORE
        paper's "Avg." column), `average_run_std` (the sample standard deviation over runs of each run's average over
        turns), `num_unparsable` (judge outputs without a score).
    """
    runs = [c.run for c in conversations]
    per_turn = [
        {"turn": turn, **turn_statistics([c.scores[turn - 1] for c in conversations], runs)}
        for turn in range(1, turns + 1)
    ]
    run_averages = [
        mean_or_none(m for m in (entry["run_means"][index] for entry in per_turn) if m is not None)
        for index in range(len(per_turn[0]["run_means"]) if per_turn else 0)
    ]
    return {
        "per_turn": per_turn,
        "average": mean_or_none(entry["mean"] for entry in per_turn if entry["mean"] is not None),
        "average_run_std": _std([m for m in run_averages if m is not None]),
        "num_unparsable": sum(entry["num_unparsable"] for entry in per_turn),
    }


def summarize(
    conversations: Sequence[Conversation],
    labels: Sequence[str],
    settings: Mapping[str, Any],
    personas: LoadedPersonas,
    specs: Mapping[str, Any],
    calls: Mapping[str, Any],
    num_personas: int,
) -> dict[str, Any]:
    """`summary.json`: the settings, the personas, the roles' backends, per model its statistics
    (`model_statistics`), the calls per role.

    Args:
        conversations (`Sequence[Conversation]`): Every conversation.
        labels (`Sequence[str]`): The models' labels, in order.
        settings (`Mapping`): The settings (`RoleplayConfig.settings()`).
        personas (`LoadedPersonas`): Where the personas came from.
        specs (`Mapping`): `{"models": {label: description}, "user_simulator": ..., "judge": ...}`.
        calls (`Mapping`): Per role a `CachedBackend`'s counts (`None` without the cache).
        num_personas (`int`): The personas role-played.

    Returns:
        `dict`
    """
    models = {}
    for label in labels:
        mine = [c for c in conversations if c.model == label]
        models[label] = {**specs["models"][label], **model_statistics(mine, settings["turns"])}
    return {
        "protocol": "roleplay",
        "paper": PAPER,
        "settings": dict(settings),
        "personas": {
            "source": personas.source,
            "config": personas.config,
            "split": personas.split,
            "num_personas": num_personas,
        },
        USER_SIMULATOR: {**specs[USER_SIMULATOR], "prompt": USER_SIMULATOR_PROMPT},
        JUDGE: {**specs[JUDGE], "prompt": "PERSONA_TAILORING_PROMPT (the DPORE paper, Appendix A)"},
        "models": models,
        "calls": dict(calls),
        "personalign_version": __version__,
    }
