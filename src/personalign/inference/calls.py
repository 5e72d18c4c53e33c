"""Calls at scale: every completion cached on disk, dry runs that count before spending, one entry point for commands.

Judged evaluation is paid by the call, so every generating command goes through `wrap_backend`:

- `CallCache(folder)`: completions on disk, one JSON line per call, keyed by the sha256 of a canonical JSON of the
  call (backend name, messages, `max_new_tokens`, `temperature`, `top_p`, `seed`, and the backend's
  `cache_key_fields()`: extra request fields, chat-template arguments, a fingerprint of local weights). The files are
  plain JSON lines (`<backend>-<hash>.jsonl`, one per backend name), to read with any tool; never pickles, never an
  API key.
- `CachedBackend(backend, cache)`: answers from the cache what it can and sends the rest to `backend`, writing each
  completion to disk the moment the backend hands it over (`GenerationBackend.generate(..., on_completion=...)`: after
  each request for the OpenAI backend, after each batch for transformers). A run stopped at any point (Ctrl-C,
  `kill -9`, a crash, the last retry failing) keeps every completion received so far, and a rerun sends only the
  missing calls. `.stats` counts requested, cached and called.
- `DryRunBackend(name, cache)`: sends nothing and returns `""` for every prompt (or, with `replay_cache`, the answers
  the cache holds and a `placeholder` for the others, so that a multi-turn run whose later prompts hold earlier answers
  can be priced); `.plan()` counts exactly the calls a real run would send (the cache and repeated prompts taken into
  account) and estimates their prompt tokens.
- `wrap_backend(spec_or_backend, cache_dir=..., no_cache=..., dry_run=...)`: what every command calls
  (`--cache-dir`, `--no-cache`, `--dry-run`).

What is cached: greedy calls (`temperature == 0`) and sampled calls with a seed. A sampled call without a seed
(`temperature > 0`, `seed=None`) asks for a fresh sample each time, so it is never cached. Within one `generate`
call, identical greedy prompts are sent once; identical sampled prompts (with a seed) are distinct calls (their
keys are numbered by occurrence, so best-of-n keeps its n samples, and a rerun returns the same n).

The cache folder is `$PERSONALIGN_CACHE`, else `~/.cache/personalign/calls` (`default_cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import InputError
from ..personas.persona import Messages
from .generation import (
    CompletionCallback,
    GenerationBackend,
    OpenAIBackend,
    StreamingBackend,
    check_chat_template_folder,
    check_local_model,
    load_backend,
    local_backend_name,
    local_model_key_fields,
    parse_backend_spec,
)

logger = logging.getLogger(__name__)

CACHE_ENV = "PERSONALIGN_CACHE"
"""The environment variable naming the call cache folder."""

CACHE_FORMAT = 1
"""The version of the cache records (`"format"` in each line); a change of key or record layout bumps it."""


def default_cache_dir() -> Path:
    """The call cache folder: `$PERSONALIGN_CACHE` if set, else `~/.cache/personalign/calls`.

    Returns:
        `Path`
    """
    folder = os.environ.get(CACHE_ENV)
    return Path(folder).expanduser() if folder else Path.home() / ".cache" / "personalign" / "calls"


_IN_USE: dict[str, int] = {}
_IN_USE_LOCK = threading.Lock()


def _note_cache_use(folder: Path, written: int = 0) -> None:
    with _IN_USE_LOCK:
        _IN_USE[str(folder)] = _IN_USE.get(str(folder), 0) + written


def caches_in_use() -> dict[str, int]:
    """The call cache folders a `CachedBackend` of this process has used, each with the completions written to it
    so far: what the command line's interrupt message reports (an interrupted command run again resumes from them).

    Returns:
        `dict[str, int]`: Folder -> completions written in this process.
    """
    with _IN_USE_LOCK:
        return dict(_IN_USE)


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON (sorted keys, no spaces, unicode kept): equal values give equal text. Values JSON
    cannot hold are written with `str`."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def is_cacheable(temperature: float, seed: int | None) -> bool:
    """Whether a call's completion may be reused: greedy decoding, or sampling with a seed (a sampled call without a
    seed asks for a fresh sample every time)."""
    return temperature <= 0 or seed is not None


@dataclass(frozen=True)
class CallRequest:
    """One call as the cache sees it.

    Args:
        backend (`str`): The backend's `name`.
        messages (`list[dict]`): The chat prompt.
        max_new_tokens (`int`), temperature (`float`), top_p (`float`), seed (`int` or `None`): Generation settings.
        fields (`dict`): The backend's `cache_key_fields()`.
        occurrence (`int`, *optional*, defaults to `0`): For sampled calls, which repeat of the same prompt in one
            `generate` call this is (0 for the first).
    """

    backend: str
    messages: list[dict[str, Any]]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    fields: dict[str, Any] = field(default_factory=dict)
    occurrence: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The request as a JSON-serialisable dict (what the key is the hash of)."""
        return asdict(self)

    @cached_property
    def key(self) -> str:
        """The cache key: sha256 (hex) of `canonical_json(self.as_dict())`."""
        return hashlib.sha256(canonical_json(self.as_dict()).encode("utf-8")).hexdigest()


def call_requests(
    backend_name: str,
    fields: Mapping[str, Any],
    prompts: Sequence[Messages],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
) -> list[CallRequest | None]:
    """The `CallRequest` of each prompt of one `generate` call, `None` where the call is not cacheable
    (`is_cacheable`). Repeats of a prompt are numbered (`occurrence`) only when sampling.

    Returns:
        `list[CallRequest | None]`: One per prompt, in order.
    """
    if not is_cacheable(temperature, seed):
        return [None] * len(prompts)
    seen: dict[str, int] = {}
    requests: list[CallRequest | None] = []
    for messages in prompts:
        messages = [dict(message) for message in messages]
        occurrence = 0
        if temperature > 0:
            text = canonical_json(messages)
            occurrence = seen.get(text, 0)
            seen[text] = occurrence + 1
        requests.append(
            CallRequest(backend_name, messages, max_new_tokens, temperature, top_p, seed, dict(fields), occurrence)
        )
    return requests


@dataclass
class CallSchedule:
    """What one `generate` call needs: the answers the cache holds, and the calls to send.

    Attributes:
        answered (`dict[int, str]`): Prompt index -> completion, from the cache.
        sends (`list[tuple[CallRequest | None, list[int]]]`): One entry per call to send: its request (`None` if not
            cacheable) and the prompt indices it answers (several for repeated greedy prompts).
    """

    answered: dict[int, str]
    sends: list[tuple[CallRequest | None, list[int]]]

    @property
    def num_cached(self) -> int:
        """Prompts answered without a call of their own (from the cache, or by a repeat's call)."""
        return sum(len(indices) for _, indices in self.sends) - len(self.sends) + len(self.answered)


def schedule_calls(
    requests: Sequence[CallRequest | None], lookup: Callable[[CallRequest], str | None]
) -> CallSchedule:
    """Split one `generate` call's prompts into cached answers and calls to send (repeats of a key sent once).

    Args:
        requests (`Sequence[CallRequest | None]`): From `call_requests`.
        lookup (`Callable[[CallRequest], str | None]`): The cached completion of a request, or `None`.

    Returns:
        `CallSchedule`
    """
    answered: dict[int, str] = {}
    sends: list[tuple[CallRequest | None, list[int]]] = []
    by_key: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        if request is None:
            sends.append((None, [index]))
            continue
        key = request.key
        if key in by_key:
            by_key[key].append(index)
            continue
        cached = lookup(request)
        if cached is not None:
            answered[index] = cached
            continue
        by_key[key] = [index]
        sends.append((request, by_key[key]))
    return CallSchedule(answered, sends)


def _file_slug(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "backend"
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:10]}"


class CallCache:
    """Completions on disk, one JSON line per call, in `folder/<backend name>-<hash>.jsonl`.

    Each line is `{"format", "key", "backend", "request" (`CallRequest.as_dict()`), "completion", "time"}`, written
    with one `write` to a file opened for appending, as soon as `put` is called: a process killed at any point loses
    nothing already written, and a torn last line (a crash mid-write, a full disk) is skipped when reading, never an
    error. Safe to use from many threads; several processes may share a folder (each record is one append). The
    lines are read into memory on the first look-up of a backend name. Nothing is ever fsync'ed: a power cut may
    lose the last records, which a rerun sends again.

    Args:
        folder (`str` or `Path`): The cache folder (created on the first write).
        reask (`Callable[[str], bool]`, *optional*): Cached completions for which `reask(completion)` is true read
            as missing (`get` returns `None`), so a `CachedBackend` sends those calls again, and its new completion,
            appended, is the one later reads find. `personalign judge --retry-unparsable` sets it to "the judge
            cannot parse this output". A public attribute: may be set on a cache already made.
    """

    def __init__(self, folder: str | os.PathLike, reask: Callable[[str], bool] | None = None):
        self.reask = reask
        self.folder = Path(folder).expanduser()
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"The call cache {self.folder} is not a folder; pass another --cache-dir.")
        self._entries: dict[str, dict[str, str]] = {}
        self._checked_tail: set[Path] = set()
        self._lock = threading.RLock()
        self.skipped_lines = 0

    def __repr__(self) -> str:
        return f"CallCache({str(self.folder)!r})"

    def path_for(self, backend_name: str) -> Path:
        """The file holding `backend_name`'s calls."""
        return self.folder / f"{_file_slug(backend_name)}.jsonl"

    def _load(self, backend_name: str) -> dict[str, str]:
        with self._lock:
            entries = self._entries.get(backend_name)
            if entries is not None:
                return entries
            entries = {}
            path = self.path_for(backend_name)
            skipped = 0
            if path.is_file():
                with open(path, "rb") as handle:
                    for line in handle:
                        try:
                            record = json.loads(line)
                        except ValueError:  # a torn last line, or not ours
                            skipped += line.strip() != b""
                            continue
                        if (
                            isinstance(record, dict)
                            and isinstance(record.get("key"), str)
                            and isinstance(record.get("completion"), str)
                        ):
                            entries[record["key"]] = record["completion"]
                        else:
                            skipped += 1
            if skipped:
                logger.info("Skipped %d unreadable line(s) of the call cache %s.", skipped, path)
                self.skipped_lines += skipped
            self._entries[backend_name] = entries
            return entries

    def get(self, request: CallRequest) -> str | None:
        """The cached completion of `request`, or `None` (also when `reask` asks for it again)."""
        completion = self._load(request.backend).get(request.key)
        if completion is not None and self.reask is not None and self.reask(completion):
            return None
        return completion

    def __contains__(self, request: CallRequest) -> bool:
        return self.get(request) is not None

    def count(self, backend_name: str) -> int:
        """How many distinct calls of `backend_name` the cache holds."""
        return len(self._load(backend_name))

    def put(self, request: CallRequest, completion: str) -> None:
        """Write `completion` for `request` to disk now (one appended line), and remember it.

        Args:
            request (`CallRequest`): The call.
            completion (`str`): Its completion.
        """
        record = {
            "format": CACHE_FORMAT,
            "key": request.key,
            "backend": request.backend,
            "request": request.as_dict(),
            "completion": completion,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        data = (canonical_json(record) + "\n").encode("utf-8")
        path = self.path_for(request.backend)
        with self._lock:
            entries = self._load(request.backend)
            self.folder.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                if path not in self._checked_tail:  # a torn last line would swallow this record: end it first
                    self._checked_tail.add(path)
                    size = os.fstat(descriptor).st_size
                    if size and os.pread(descriptor, 1, size - 1) != b"\n":
                        os.write(descriptor, b"\n")
                written = 0
                while written < len(data):
                    written += os.write(descriptor, data[written:])
            finally:
                os.close(descriptor)
            entries[request.key] = completion
        _note_cache_use(self.folder, 1)


@dataclass(frozen=True)
class CallStats:
    """Calls of a `CachedBackend` so far.

    Attributes:
        requested (`int`): Prompts asked for.
        cached (`int`): Prompts answered from the cache (or by an identical greedy prompt's call in the same batch).
        called (`int`): Calls the backend completed.
    """

    requested: int = 0
    cached: int = 0
    called: int = 0

    def as_dict(self) -> dict[str, int]:
        """`{"requested", "cached", "called"}` (for `generation.json`'s `calls`)."""
        return asdict(self)


class CachedBackend(StreamingBackend):
    """A backend whose completions are cached on disk (`CallCache`): cached calls are answered without sending them,
    the others are sent to `backend` and each completion is written to disk as soon as it arrives.

    For remote backends (`backend.remote`, e.g. the OpenAI backend) it shows one progress bar over the calls, the
    cached ones included (`cached=` beside it).

    Args:
        backend (`GenerationBackend`): The backend.
        cache (`CallCache`, `str` or `Path`, *optional*): The cache, or its folder; `default_cache_dir()` by default.
    """

    def __init__(self, backend: GenerationBackend, cache: CallCache | str | os.PathLike | None = None):
        self.backend = backend
        self.cache = cache if isinstance(cache, CallCache) else CallCache(cache or default_cache_dir())
        _note_cache_use(self.cache.folder)
        self.name = backend.name
        self.remote = backend.remote
        self._stats = CallStats()
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedBackend({self.backend!r}, cache={self.cache!r})"

    @property
    def stats(self) -> CallStats:
        """`CallStats(requested, cached, called)` over every `generate` call so far."""
        return self._stats

    def _count(self, requested: int = 0, cached: int = 0, called: int = 0) -> None:
        with self._stats_lock:
            stats = self._stats
            self._stats = CallStats(stats.requested + requested, stats.cached + cached, stats.called + called)

    def cache_key_fields(self) -> dict[str, Any]:
        """The wrapped backend's `cache_key_fields`: caching changes nothing about the completions."""
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
        """Answer from the cache, send the rest, write each completion as it arrives."""
        requests = call_requests(
            self.name, self.backend.cache_key_fields(), prompts, max_new_tokens, temperature, top_p, seed
        )
        schedule = schedule_calls(requests, self.cache.get)
        outputs: list[str | None] = [None] * len(prompts)
        self._count(requested=len(prompts), cached=len(schedule.answered))
        for index, text in schedule.answered.items():
            outputs[index] = text
            if on_completion is not None:
                on_completion(index, text)
        if schedule.answered:
            logger.info(
                "%s: %d of %d calls answered from the cache %s.",
                self.name,
                len(schedule.answered),
                len(prompts),
                self.cache.folder,
            )
        if not schedule.sends:
            return outputs  # type: ignore[return-value]

        progress = None
        if self.remote:  # one bar over all calls, the cached ones counted; the backend's own bar is hidden
            progress = tqdm(
                total=len(prompts),
                initial=len(schedule.answered),
                desc=self.name,
                unit="call",
                disable=None if show_progress is None else not show_progress,
            )
            progress.set_postfix(cached=len(schedule.answered), refresh=False)
        lock = threading.Lock()

        def received(position: int, text: str) -> None:
            request, indices = schedule.sends[position]
            if request is not None:
                self.cache.put(request, text)  # on disk before anything else: a kill now loses nothing
            self._count(called=1, cached=len(indices) - 1)
            with lock:
                for index in indices:
                    outputs[index] = text
                    if on_completion is not None:
                        on_completion(index, text)
                if progress is not None:
                    progress.update(len(indices))

        to_send = [prompts[indices[0]] for _, indices in schedule.sends]
        try:
            self.backend.generate(
                to_send,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                on_completion=received,
                show_progress=False if progress is not None else show_progress,
            )
        finally:
            if progress is not None:
                progress.close()
        return outputs  # type: ignore[return-value]


def estimate_prompt_tokens(messages: Messages) -> int:
    """An estimate of a chat prompt's tokens: the characters of its message contents divided by 4, rounded up
    (about right for English text with the usual BPE tokenizers; the chat template adds a few per message)."""
    return math.ceil(sum(len(str(message.get("content", ""))) for message in messages) / 4)


PLACEHOLDER_PATTERN = re.compile(r"<placeholder reply (?:[^<>]* )?of (\d+) tokens>")
"""What `placeholder_reply` writes; a dry run counts each match as the number of tokens it names
(`placeholder_tokens`), whatever tokenizer counts the rest of the prompt."""


def placeholder_reply(max_new_tokens: int, tag: str = "") -> str:
    """A stand-in completion for a dry run whose later prompts hold earlier answers (`DryRunBackend.placeholder`):
    a short marker that a dry run counts as exactly `max_new_tokens` tokens (`placeholder_tokens`), the longest answer
    the call may give, so the prompts that follow are priced at their largest, by an estimate or by a model's
    tokenizer alike (a long stand-in text would be counted differently by each tokenizer).

    Args:
        max_new_tokens (`int`): The call's token limit.
        tag (`str`, *optional*, defaults to `""`): Words that tell stand-ins apart (e.g. a number), so that two
            conversations stood in at the same turn keep different later prompts.

    Returns:
        `str`: E.g. `"<placeholder reply of 256 tokens>"`.
    """
    tag = " ".join(str(tag).replace("<", "").replace(">", "").split())
    return f"<placeholder reply {tag + ' ' if tag else ''}of {max_new_tokens} tokens>"


def placeholder_tokens(messages: Messages) -> tuple[Messages, int]:
    """Split a prompt's `placeholder_reply` markers from the rest: the messages without them, and the tokens they
    stand for (the sum of their `max_new_tokens`).

    Args:
        messages (`Messages`): A chat prompt.

    Returns:
        `tuple[Messages, int]`
    """
    tokens = 0
    stripped = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and "<placeholder reply" in content:
            tokens += sum(int(found) for found in PLACEHOLDER_PATTERN.findall(content))
            message = {**message, "content": PLACEHOLDER_PATTERN.sub("", content)}
        stripped.append(message)
    return stripped, tokens


@dataclass(frozen=True)
class CallPlan:
    """What a run would send, counted by a `DryRunBackend`.

    Attributes:
        calls (`int`): Prompts asked for.
        cached (`int`): Of those, answered without a call of their own (from the cache, or by an identical greedy
            prompt's call).
        to_call (`int`): Calls a real run would send (`calls - cached`).
        prompt_tokens (`int`): Prompt tokens of the calls to send (see `token_method`).
        token_method (`str`): How `prompt_tokens` was counted.
        max_completion_tokens (`int`): The most completion tokens the calls to send can produce
            (their `max_new_tokens` summed).
        backend (`str`): The backend's name.
        cache_folder (`str`, *optional*): The cache consulted, `None` without a cache.
        repeated (`int`): Of `cached`, the prompts that repeat one asked earlier in this run (in the same or an
            earlier `generate` call; e.g. a prompt several models share), which the cache did not hold before the run.
        remote (`bool`): Whether the calls go to an API (paid per token) rather than a local model.
    """

    calls: int
    cached: int
    to_call: int
    prompt_tokens: int
    token_method: str = "estimated as characters / 4 of the message contents"
    max_completion_tokens: int = 0
    backend: str = "backend"
    cache_folder: str | None = None
    repeated: int = 0
    remote: bool = False

    def describe(self) -> str:
        """One line for the command line: calls, cached, to send, tokens and how they were counted."""
        if self.cache_folder:
            cache = f"{self.cached - self.repeated:,} answered from the cache ({self.cache_folder})"
            if self.repeated:
                cache += f", {self.repeated:,} repeat a prompt asked earlier in this run (sent once)"
        else:
            cache = "no cache"
        return (
            f"Dry run, nothing sent: {self.calls:,} calls to {self.backend}, {cache}, {self.to_call:,} to send; "
            f"{self.prompt_tokens:,} prompt tokens to send ({self.token_method}), "
            f"at most {self.max_completion_tokens:,} completion tokens."
        )


class DryRunBackend(GenerationBackend):
    """A backend that sends nothing: it records every prompt and returns `""` for each; `plan()` then counts what a
    real run through `CachedBackend` (or, without a cache, the bare backend) would send.

    A run whose later prompts hold earlier answers (a multi-turn conversation, `personalign eval roleplay`) sets
    `replay_cache` and `placeholder` (public attributes, settable on a backend `wrap_backend` returned): each call the
    cache holds is answered with its cached completion, as the real run would be, and every other call with
    `placeholder(max_new_tokens)`, a stand-in of the expected length, so the prompts that follow are priced at about
    the size they will have.

    Args:
        name (`str`): The name of the backend a real run would use (`openai:gpt-4o-mini`, ...): the cache is looked
            up under it.
        cache (`CallCache`, *optional*): The cache a real run would use; `None` for a run without one.
        key_fields (`dict`, *optional*): The real backend's `cache_key_fields()`, so that look-ups find what it
            cached.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): Count prompt tokens exactly with its chat template
            (generation prompt added) instead of estimating them (`estimate_prompt_tokens`).
        chat_template_kwargs (`dict`, *optional*): Extra arguments of the chat template.
        replay_cache (`bool`, *optional*, defaults to `False`): Answer the calls the cache holds with their cached
            completions (`CallCache.get`, its `reask` included) instead of `""`.
        placeholder (`Callable[[int], str]`, *optional*): The answer of every other call, given its `max_new_tokens`
            (e.g. `placeholder_reply`), called once per prompt; `""` when unset.
        remote (`bool`, *optional*, defaults to `False`): Whether the real backend is an API (`CallPlan.remote`).
    """

    def __init__(
        self,
        name: str,
        cache: CallCache | None = None,
        *,
        key_fields: Mapping[str, Any] | None = None,
        tokenizer: Any | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        replay_cache: bool = False,
        placeholder: Callable[[int], str] | None = None,
        remote: bool = False,
    ):
        self.name = name
        self.remote = remote
        self.cache = cache
        self.key_fields = dict(key_fields or {})
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.replay_cache = replay_cache
        self.placeholder = placeholder
        self.recorded: list[tuple[list[Messages], dict[str, Any]]] = []

    def __repr__(self) -> str:
        return f"DryRunBackend(name={self.name!r}, cache={self.cache!r})"

    def cache_key_fields(self) -> dict[str, Any]:
        """The `key_fields` of the backend this dry run stands for, so that its plan looks up the same cache keys."""
        return dict(self.key_fields)

    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
        self.recorded.append(([[dict(m) for m in messages] for messages in prompts], settings))
        requests: list[CallRequest | None] = [None] * len(prompts)
        if self.replay_cache and self.cache is not None:
            requests = call_requests(self.name, self.key_fields, prompts, max_new_tokens, temperature, top_p, seed)
        answers = [None if request is None else self.cache.get(request) for request in requests]
        return [self._stand_in(max_new_tokens) if answer is None else answer for answer in answers]

    def _stand_in(self, max_new_tokens: int) -> str:
        return "" if self.placeholder is None else self.placeholder(max_new_tokens)

    def _count_tokens(self, messages: Messages) -> int:
        # A stand-in reply counts as the tokens it stands for, whoever counts the rest (`placeholder_reply`).
        messages, stand_ins = placeholder_tokens(messages)
        if self.tokenizer is None:
            return estimate_prompt_tokens(messages) + stand_ins
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, **self.chat_template_kwargs
        )
        return len(encoded["input_ids"]) + stand_ins

    def plan(self) -> CallPlan:
        """Count the recorded calls against the cache as it is now.

        A real run writes each completion to the cache, so a call repeated by a later `generate` call is counted as
        cached there, as it would be.

        Returns:
            `CallPlan`
        """
        calls = cached = from_cache = prompt_tokens = max_completion_tokens = 0
        planned: set[str] = set()

        def lookup(request: CallRequest) -> str | None:
            nonlocal from_cache
            if request.key in planned:  # asked earlier in this run: its answer will be in the cache by then
                return ""
            if self.cache is not None and self.cache.get(request) is not None:
                from_cache += 1
                return ""
            return None

        for prompts, settings in self.recorded:
            calls += len(prompts)
            if self.cache is None:  # every prompt is a call
                sends = [(None, [index]) for index in range(len(prompts))]
            else:
                schedule = schedule_calls(call_requests(self.name, self.key_fields, prompts, **settings), lookup)
                sends = schedule.sends
                cached += schedule.num_cached
                planned.update(request.key for request, _ in sends if request is not None)
            for _, indices in sends:
                prompt_tokens += self._count_tokens(prompts[indices[0]])
                max_completion_tokens += settings["max_new_tokens"]
        method = (
            "counted with the model's tokenizer and chat template"
            if self.tokenizer is not None
            else "estimated as characters / 4 of the message contents"
        )
        return CallPlan(
            calls=calls,
            cached=cached,
            to_call=calls - cached,
            prompt_tokens=prompt_tokens,
            token_method=method,
            max_completion_tokens=max_completion_tokens,
            backend=self.name,
            cache_folder=str(self.cache.folder) if self.cache is not None else None,
            repeated=cached - from_cache,
            remote=self.remote,
        )


def _local_tokenizer(model: str, trust_remote_code: bool = False) -> Any | None:
    """The tokenizer of a local model folder, if it has a chat template (only the tokenizer is loaded)."""
    if not os.path.isdir(model):
        return None
    from transformers import AutoTokenizer  # only for a dry run of a local model: keeps transformers out of start-up

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        logger.info("No tokenizer loaded from %s (%s); prompt tokens are estimated.", model, error)
        return None
    return tokenizer if getattr(tokenizer, "chat_template", None) else None


def dry_run_backend(
    spec_or_backend: str | GenerationBackend, cache: CallCache | None = None, **backend_kwargs: Any
) -> DryRunBackend:
    """The `DryRunBackend` standing in for a spec or a backend, without loading a model or sending anything: it has
    the real backend's name and cache key fields (so cached calls are found), and for a local model folder its
    tokenizer (prompt tokens counted exactly).

    Args:
        spec_or_backend (`str` or `GenerationBackend`): A spec of `load_backend`, or a backend.
        cache (`CallCache`, *optional*): The cache a real run would use.
        **backend_kwargs: The arguments `load_backend` would get.

    Returns:
        `DryRunBackend`
    """
    if isinstance(spec_or_backend, DryRunBackend):
        return spec_or_backend
    if isinstance(spec_or_backend, CachedBackend):
        spec_or_backend = spec_or_backend.backend
    if isinstance(spec_or_backend, GenerationBackend):
        tokenizer = getattr(spec_or_backend, "tokenizer", None)
        return DryRunBackend(
            spec_or_backend.name,
            cache,
            key_fields=spec_or_backend.cache_key_fields(),
            tokenizer=tokenizer if getattr(tokenizer, "chat_template", None) else None,
            chat_template_kwargs=getattr(spec_or_backend, "chat_template_kwargs", None),
            remote=spec_or_backend.remote,
        )
    kind, arguments = parse_backend_spec(spec_or_backend)
    if kind == "openai":  # building it loads and sends nothing
        backend = OpenAIBackend(arguments["base_url"], arguments["model"], **backend_kwargs)
        return DryRunBackend(backend.name, cache, key_fields=backend.cache_key_fields(), remote=True)
    model = arguments["model"]
    check_local_model(kind, model)  # what the real run would refuse, the dry run refuses
    if kind == "transformers" and os.path.isdir(model):
        check_chat_template_folder(model)
    chat_template_kwargs = backend_kwargs.get("chat_template_kwargs")
    generation_kwargs = backend_kwargs.get("generation_kwargs") if kind == "transformers" else None
    return DryRunBackend(
        backend_kwargs.get("name") or local_backend_name(kind, model),
        cache,
        key_fields=local_model_key_fields(model, chat_template_kwargs, generation_kwargs),
        tokenizer=_local_tokenizer(model, bool(backend_kwargs.get("trust_remote_code", False))),
        chat_template_kwargs=chat_template_kwargs,
    )


API_ONLY_KWARGS = frozenset({"num_workers", "max_requests_per_minute", "max_retries", "timeout"})
"""Backend arguments that only the API backend takes; `wrap_backend` drops them for a local model's spec, so a
command can pass its `--num-workers` (and `api_kwargs`) whatever the backend."""


def api_kwargs(
    max_requests_per_minute: float | None = None, max_retries: int | None = None, request_timeout: float | None = None
) -> dict[str, Any]:
    """The API backend's arguments (`OpenAIBackend`) for the commands' `--max-requests-per-minute`, `--max-retries`
    and `--request-timeout`: those given (`None` keeps the backend's default), for `wrap_backend`, which drops them
    for a local model.

    Args:
        max_requests_per_minute (`float`, *optional*): Rate limit over all workers, retries included.
        max_retries (`int`, *optional*): Retries of a failed call.
        request_timeout (`float`, *optional*): Seconds per call.

    Returns:
        `dict[str, Any]`: Keyword arguments of `OpenAIBackend` (`max_requests_per_minute`, `max_retries`, `timeout`).
    """
    given = {
        "max_requests_per_minute": max_requests_per_minute,
        "max_retries": max_retries,
        "timeout": request_timeout,
    }
    return {name: value for name, value in given.items() if value is not None}


def _kwargs_for(spec_or_backend: str | GenerationBackend, backend_kwargs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec_or_backend, str) and parse_backend_spec(spec_or_backend)[0] != "openai":
        return {key: value for key, value in backend_kwargs.items() if key not in API_ONLY_KWARGS}
    return backend_kwargs


def wrap_backend(
    spec_or_backend: str | GenerationBackend,
    *,
    cache_dir: str | os.PathLike | None = None,
    no_cache: bool = False,
    dry_run: bool = False,
    **backend_kwargs: Any,
) -> GenerationBackend:
    """The backend a command uses: a `DryRunBackend` for `--dry-run` (nothing loaded, nothing sent), else the loaded
    backend wrapped in a `CachedBackend` unless `--no-cache`.

    Args:
        spec_or_backend (`str` or `GenerationBackend`): A spec of `load_backend` (`openai:URL@MODEL`,
            `transformers:PATH`, ...) or a backend.
        cache_dir (`str` or `Path`, *optional*): The cache folder; `default_cache_dir()` by default.
        no_cache (`bool`, *optional*, defaults to `False`): Neither read nor write the cache.
        dry_run (`bool`, *optional*, defaults to `False`): Return a `DryRunBackend` (its `plan().describe()` is the
            line to print).
        **backend_kwargs: Arguments of the backend's constructor (`num_workers`, `max_requests_per_minute`,
            `batch_size`, ...), as `load_backend` takes them; `API_ONLY_KWARGS` are dropped for a local model.

    Returns:
        `GenerationBackend`: A `DryRunBackend`, a `CachedBackend`, or (with `no_cache`) the bare backend.

    Example:

    ```python
    >>> backend = wrap_backend("openai:http://localhost:8000/v1@my-judge", num_workers=8, dry_run=True)
    >>> backend.generate([[{"role": "user", "content": "Hello there, judge."}]])
    ['']
    >>> backend.plan().to_call
    1
    ```
    """
    cache = None if no_cache else CallCache(cache_dir if cache_dir is not None else default_cache_dir())
    backend_kwargs = _kwargs_for(spec_or_backend, backend_kwargs)
    if dry_run:
        return dry_run_backend(spec_or_backend, cache, **backend_kwargs)
    if isinstance(spec_or_backend, DryRunBackend):
        return spec_or_backend
    if isinstance(spec_or_backend, CachedBackend):
        return spec_or_backend.backend if cache is None else spec_or_backend
    backend = load_backend(spec_or_backend, **backend_kwargs)
    return backend if cache is None else CachedBackend(backend, cache)
