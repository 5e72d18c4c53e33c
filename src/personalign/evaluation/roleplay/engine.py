"""The role-play run: for each persona and run, a simulated user talks with each model under test for K turns and
the judge scores every reply (the DPORE paper, §4.1-4.2 and Table 1).

Turn k of every conversation is one step: the user simulator writes the user's message of turn k for every
conversation (`user_simulator_messages`), each model answers its conversations (`model_messages`, through its chat
template, without the persona), and the judge scores every reply with the DPORE paper's Appendix A prompt
(`PersonaTailoringJudge`). A conversation is sequential, but the conversations of one step are batched: one
`generate` call per role and run at each turn (all personas, and for the shared simulator and judge all models,
together), so a backend's concurrency (API) or batching (transformers) applies across conversations. Runs differ by
their seed (`seed + run index`), which every call carries and which is part of its call-cache key; a generate call has
one seed, hence one call per run.

Every call goes through `personalign.inference.calls.wrap_backend`: answered calls are cached on disk as they arrive,
so an interrupted evaluation, run again, replays them from the cache and sends only the rest. A dry run sends
nothing: it follows the cached answers where the cache has them and a placeholder of `max_new_tokens` beyond
(`DryRunBackend.replay_cache`, `placeholder_reply`), and prices each role's calls (`RoleplayResult.plans`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...errors import InputError
from ...inference.calls import CachedBackend, CallPlan, DryRunBackend, placeholder_reply, wrap_backend
from ...inference.generation import (
    MAX_SEED,
    GenerationBackend,
    check_backend_spec,
    check_generation_settings,
    public_spec,
)
from ..generate import backend_description, backend_kwargs
from ..judges import PersonaTailoringJudge
from .conversation import JUDGE, USER_SIMULATOR, Conversation
from .personas import LoadedPersonas, load_personas
from .prompts import model_messages, user_simulator_messages
from .summary import summarize

logger = logging.getLogger(__name__)


@dataclass
class RoleplayConfig:
    """Settings of `run_roleplay` (the options of `personalign eval roleplay`).

    Args:
        turns (`int`, *optional*, defaults to `10`): Turns per conversation (the DPORE paper: 10).
        runs (`int`, *optional*, defaults to `5`): Runs per persona and model, each with its own seed (`seed + run`;
            the DPORE paper: five runs at temperature 0).
        num_personas (`int`, *optional*): Take the first N personas (the DPORE paper: 100).
        split (`str`, *optional*): The personas' split; `test` when there is one, else the only one.
        max_new_tokens (`int`, *optional*, defaults to `256`): Tokens per reply of a model under test.
        user_max_new_tokens (`int`, *optional*, defaults to `128`): Tokens per simulated user message.
        judge_max_new_tokens (`int`, *optional*): Tokens per judge output; the judge's own (64) when unset.
        temperature (`float`, *optional*, defaults to `0.0`): Sampling temperature of all three roles (the DPORE
            paper: 0).
        top_p (`float`, *optional*, defaults to `1.0`): Nucleus sampling mass (sampling only).
        seed (`int`, *optional*, defaults to `0`): Seed of run 0; run r uses `seed + r`.
        batch_size (`int`, *optional*, defaults to `8`): Prompts per forward pass (local transformers models).
        num_workers (`int`, *optional*, defaults to `4`): Concurrent requests (OpenAI-compatible servers).
        max_requests_per_minute (`float`, *optional*): API rate limit (retries included); unlimited by default.
        max_retries (`int`, *optional*): Retries of a failed API request; the backend's default (3) when unset.
        request_timeout (`float`, *optional*): Seconds per API request; the backend's default (120) when unset.
        cache_dir (`str`, *optional*): Folder of the call cache; its default folder when unset.
        no_cache (`bool`, *optional*, defaults to `False`): Neither read nor write the call cache (no resume).
        dry_run (`bool`, *optional*, defaults to `False`): Load nothing and send nothing: price every role's calls.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar over the calls, per turn.

    Raises:
        `InputError`: On a value out of range, naming the option.
    """

    turns: int = 10
    runs: int = 5
    num_personas: int | None = None
    split: str | None = None
    max_new_tokens: int = 256
    user_max_new_tokens: int = 128
    judge_max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 4
    max_requests_per_minute: float | None = None
    max_retries: int | None = None
    request_timeout: float | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    dry_run: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("turns", "runs", "num_personas", "batch_size", "num_workers"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise InputError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}.")
        check_generation_settings(self.max_new_tokens, self.temperature, self.top_p, self.seed)
        for option, value in (
            ("--user-max-new-tokens", self.user_max_new_tokens),
            ("--judge-max-new-tokens", self.judge_max_new_tokens),
        ):
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise InputError(f"{option} must be an integer >= 1, got {value!r}.")
        if self.seed + self.runs - 1 > MAX_SEED:
            raise InputError(f"--seed + --runs - 1 must be at most 2**63 - 1 (run r uses seed + r), got {self.seed}.")

    def run_seed(self, run: int) -> int:
        """The seed of run `run` (0-based): `seed + run`."""
        return self.seed + run

    def settings(self) -> dict[str, Any]:
        """The settings `summary.json` records."""
        return {
            "turns": self.turns,
            "runs": self.runs,
            "seeds": [self.run_seed(run) for run in range(self.runs)],
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "max_new_tokens": {
                "model": self.max_new_tokens,
                USER_SIMULATOR: self.user_max_new_tokens,
                JUDGE: self.judge_max_new_tokens or PersonaTailoringJudge.max_new_tokens,
            },
        }


@dataclass
class RoleplayResult:
    """What `run_roleplay` returns.

    Attributes:
        conversations (`list[Conversation]`): Every conversation, model by model, persona by persona, run by run
            (in a dry run: with the cached answers and placeholders the dry run followed).
        summary (`dict`): `summary.json` (`personalign.evaluation.roleplay.summary.summarize`); `None` in a dry run.
        plans (`dict[str, CallPlan]`): In a dry run, each role's `CallPlan` (`user_simulator`, each model's label,
            `judge`); empty otherwise.
    """

    conversations: list[Conversation]
    summary: dict[str, Any] | None
    plans: dict[str, CallPlan] = field(default_factory=dict)


def model_label(model: str | GenerationBackend) -> str:
    """The default label of a model under test: the folder (or Hub / served model) name's last part.

    Args:
        model (`str` or `GenerationBackend`): A backend spec or a backend.

    Returns:
        `str`
    """
    name = backend_description(model)["model"]
    return Path(str(name).rstrip("/")).name or str(name)


def model_labels(models: Sequence[str | GenerationBackend], labels: Sequence[str] | None) -> list[str]:
    """The labels of the models under test: `labels` (one per model), else `model_label` of each.

    Raises:
        `InputError`: If the counts differ or two models get the same label.
    """
    if labels:
        if len(labels) != len(models):
            raise InputError(f"--label was given {len(labels)} times for {len(models)} --model; give one per model.")
        chosen = [str(label) for label in labels]
    else:
        chosen = [model_label(model) for model in models]
    repeated = sorted({label for label in chosen if chosen.count(label) > 1})
    if repeated:
        raise InputError(f"two models are labelled {repeated[0]!r}; give each --model its own --label.")
    if any(not label.strip() for label in chosen):
        raise InputError("a --label is empty.")
    return chosen


def _wrap(spec: str | GenerationBackend, config: RoleplayConfig) -> GenerationBackend:
    """One role's backend through the call layer (cache, dry run); a dry run follows the cache and stands in the
    rest with `placeholder_reply`, since later prompts hold earlier answers."""
    kind = backend_description(spec)["backend"]
    backend = wrap_backend(
        spec,
        cache_dir=config.cache_dir,
        no_cache=config.no_cache,
        dry_run=config.dry_run,
        **backend_kwargs(kind, config),
    )
    if isinstance(backend, DryRunBackend):
        backend.replay_cache, backend.placeholder = True, _numbered_placeholders()
    return backend


def _numbered_placeholders() -> Callable[[int], str]:
    """`placeholder_reply`s told apart by a number: two conversations whose unanswered turns were stood in by equal
    texts would give equal later prompts, which the dry run would count once, though the real answers differ (every
    role's prompts of one turn differ by persona, model or run seed)."""
    numbers = itertools.count(1)
    return lambda max_new_tokens: placeholder_reply(max_new_tokens, tag=f"#{next(numbers)}")


def call_counts(backend: GenerationBackend) -> dict[str, int] | None:
    """A `CachedBackend`'s calls (`requested`, `cached`, `called`); `None` without the cache."""
    return backend.stats.as_dict() if isinstance(backend, CachedBackend) else None


def run_roleplay(
    models: Sequence[str | GenerationBackend],
    personas: str | Path | LoadedPersonas,
    user_simulator: str | GenerationBackend,
    judge: str | GenerationBackend,
    config: RoleplayConfig | None = None,
    labels: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> RoleplayResult:
    """Role-play every persona with every model for `config.turns` turns, `config.runs` times, and judge every turn.

    Args:
        models (`Sequence[str | GenerationBackend]`): The models under test: backend specs
            (`personalign.inference.generation.load_backend`: a folder or Hub id, `vllm:PATH`,
            `openai:BASE_URL@MODEL`, ...) or backends.
        personas (`str`, `Path` or `LoadedPersonas`): See `load_personas`.
        user_simulator (`str` or `GenerationBackend`): The LLM playing the user (a spec or a backend).
        judge (`str` or `GenerationBackend`): The judge (a spec or a backend), asked with the DPORE paper's Appendix A
            prompt.
        config (`RoleplayConfig`, *optional*): The settings.
        labels (`Sequence[str]`, *optional*): One label per model (the table's rows); `model_label` by default.
        log (`Callable[[str], None]`, *optional*): Receives one line per step (the CLI prints them).

    Returns:
        `RoleplayResult`: The conversations and `summary.json` (a dry run: the plans instead).

    Raises:
        `InputError`: On bad settings, labels or personas (before anything is loaded or sent).
        `BackendError`: If a backend fails (the answers received so far are in the call cache).

    Example:

    ```python
    >>> from personalign.evaluation.roleplay import RoleplayConfig, run_roleplay, write_roleplay
    >>> result = run_roleplay(
    ...     ["runs/dpo", "runs/dpore"], "runs/aloe", "openai:gpt-4o-mini", "openai:gpt-4o-mini",
    ...     RoleplayConfig(turns=10, runs=5, num_personas=100),
    ... )
    >>> write_roleplay(result, "results/roleplay")
    ```
    """
    config = config or RoleplayConfig()
    log = log or logger.info
    chosen = model_labels(models, labels)
    loaded = personas if isinstance(personas, LoadedPersonas) else load_personas(personas, config.split)
    people = loaded.personas[: config.num_personas]
    described = loaded.describe()
    if len(people) < len(loaded.personas):
        described += f"; the first {len(people)}"
    elif config.num_personas is not None and config.num_personas > len(people):
        described += f"; --num-personas {config.num_personas} asked for more, so all {len(people)} are role-played"
    log(described)
    for spec in (*models, user_simulator, judge):  # every refusal before anything loads or is sent
        if isinstance(spec, str):
            check_backend_spec(spec, dry_run=config.dry_run)
    simulator = _wrap(user_simulator, config)
    judge_backend = _wrap(judge, config)
    backends = {label: _wrap(model, config) for label, model in zip(chosen, models, strict=True)}
    conversations = [
        Conversation(label, persona, run, config.run_seed(run))
        for label in chosen
        for persona in people
        for run in range(config.runs)
    ]
    per_turn = 3 * len(conversations)
    lock = threading.Lock()
    progress = config.progress and not config.dry_run
    with tqdm(total=per_turn * config.turns, unit="call", disable=not progress) as bar:

        def arrived(index: int, text: str) -> None:
            with lock:  # called from an API backend's worker threads
                bar.update(1)

        calls = {"on_completion": arrived, "show_progress": False}
        for turn in range(1, config.turns + 1):
            bar.set_description(f"Role-play turn {turn}/{config.turns}")
            for run in range(config.runs):
                seed = config.run_seed(run)
                group = [c for c in conversations if c.run == run]
                settings = {"temperature": config.temperature, "top_p": config.top_p, "seed": seed, **calls}
                prompts = [
                    user_simulator_messages(c.persona.profile, c.persona.personality, c.messages) for c in group
                ]
                messages = simulator.generate(prompts, max_new_tokens=config.user_max_new_tokens, **settings)
                for conversation, text in zip(group, messages, strict=True):
                    conversation.messages.append({"role": "user", "content": text})
                for label, backend in backends.items():
                    mine = [c for c in group if c.model == label]
                    replies = backend.generate(
                        [model_messages(c.messages) for c in mine], max_new_tokens=config.max_new_tokens, **settings
                    )
                    for conversation, text in zip(mine, replies, strict=True):
                        conversation.messages.append({"role": "assistant", "content": text})
                scorer = PersonaTailoringJudge(
                    judge_backend,
                    max_new_tokens=config.judge_max_new_tokens or PersonaTailoringJudge.max_new_tokens,
                    temperature=config.temperature,
                    seed=seed,
                    generation_kwargs={"top_p": config.top_p, **calls},
                    report_unparsable=False,  # counted per turn in the summary
                )
                report = scorer.judge(
                    [c.messages[-1]["content"] for c in group],
                    [c.messages[-2]["content"] for c in group],
                    [c.persona.profile for c in group],
                    [c.persona.personality for c in group],
                )
                for conversation, outputs, scores in zip(group, report.outputs, report.item_scores, strict=True):
                    conversation.judge_outputs.append(outputs[0])
                    conversation.scores.append(scores[0])
            done = [c.scores[-1] for c in conversations]
            if not config.dry_run:
                scored = [s for s in done if s is not None]
                shown = f"{sum(scored) / len(scored):.3f}" if scored else "n/a"
                log(f"turn {turn}: mean score {shown} over {len(scored)} of {len(done)} replies")
    if config.dry_run:
        roles = {USER_SIMULATOR: simulator, **backends, JUDGE: judge_backend}
        plans = {key: backend.plan() for key, backend in roles.items()}  # type: ignore[attr-defined]
        return RoleplayResult(conversations, None, plans)
    specs = {
        "models": {label: _described(model) for label, model in zip(chosen, models, strict=True)},
        USER_SIMULATOR: _described(user_simulator),
        JUDGE: _described(judge),
    }
    calls_made = {
        USER_SIMULATOR: call_counts(simulator),
        JUDGE: call_counts(judge_backend),
        "models": {label: call_counts(backend) for label, backend in backends.items()},
    }
    summary = summarize(conversations, chosen, config.settings(), loaded, specs, calls_made, num_personas=len(people))
    return RoleplayResult(conversations, summary)


def _described(model: str | GenerationBackend) -> dict[str, Any]:
    described = backend_description(model)
    if isinstance(model, str):
        described["spec"] = public_spec(model)
    return described


def describe_calls(calls: dict[str, Any]) -> list[str]:
    """The real run's lines: per role (user simulator, each model, judge) the calls requested, answered from the cache
    and sent, as `summary.json`'s `calls` has them.

    Args:
        calls (`dict`): `summary["calls"]`.

    Returns:
        `list[str]`: Empty when the run used no cache.
    """
    roles = {"user simulator": calls.get(USER_SIMULATOR)}
    roles.update({f"model {label}": counts for label, counts in (calls.get("models") or {}).items()})
    roles["judge"] = calls.get(JUDGE)
    return [
        f"calls of the {role}: {counts['requested']:,} requested, {counts['cached']:,} answered from the cache or by "
        f"a repeated prompt, {counts['called']:,} sent"
        for role, counts in roles.items()
        if counts is not None
    ]


def describe_plans(plans: dict[str, CallPlan]) -> list[str]:
    """The dry run's lines: one per role (`CallPlan.describe`, named by role), then the total calls, cached and to
    send.

    Args:
        plans (`dict[str, CallPlan]`): `RoleplayResult.plans`.

    Returns:
        `list[str]`
    """
    lines = []
    for key, plan in plans.items():
        role = {USER_SIMULATOR: "user simulator", JUDGE: "judge"}.get(key, f"model {key}")
        lines.append(f"{role}: {plan.describe()}")
    calls = sum(plan.calls for plan in plans.values())
    cached = sum(plan.cached for plan in plans.values())
    # API tokens are paid, a local model's are not: never one sum of both.
    tokens = {
        remote: sum(plan.prompt_tokens for plan in plans.values() if plan.remote == remote) for remote in (True, False)
    }
    priced = [
        f"{tokens[remote]:,} prompt tokens to send to {where}"
        for remote, where in ((True, "API models (paid)"), (False, "local models (free)"))
        if any(plan.remote == remote for plan in plans.values())
    ]
    lines.append(
        f"total: {calls:,} calls, {cached:,} answered without a call of their own, {calls - cached:,} to send; "
        + "; ".join(priced)
        + " (later turns priced with the cached answers, else a stand-in reply of max_new_tokens tokens)"
    )
    return lines
