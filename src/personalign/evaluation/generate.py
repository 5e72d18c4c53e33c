"""Personalized generation behind `personalign generate`: one response per dataset row under its persona prompt, for
the judges (`personalign judge`) to grade.

Rows are read and checked exactly as `personalign eval policy` reads them (`personalign.evaluation.rows.load_eval_rows`),
and each row's chat prompt is the `prompt` of the training renderer's row, without its target pair
(`personalign.evaluation.rows.row_renderer`: AlignX's PBA / ICA prompts through `personalign.data.alignx.render_row`,
the counterfactual paper's feedback-history prompt for MultiFacet rows). `no_history` is the papers' ablation (the
counterfactual paper's Table 2 compares with and without the feedback history): the chat prompt holds the user's
query alone (see `no_history_messages`).

`generate_responses` returns the records and settings (`GeneratedResponses`); `write_responses`
(`personalign.evaluation.responses`) writes them as a responses folder.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import __version__
from ..data.alignx import AlignXBuildConfig
from ..data.loading import value_kind
from ..errors import InputError
from ..inference.calls import api_kwargs, wrap_backend
from ..inference.generation import (
    GenerationBackend,
    check_generation_settings,
    check_local_model,
    parse_backend_spec,
    public_spec,
    public_url,
)
from ..personas.persona import Messages, PairItem, Persona
from ..personas.prompts import (
    ICA_SYSTEM_PROMPT,
    PBA_SYSTEM_PROMPT,
    ica_messages,
    pba_messages,
    render_feedback_history,
    render_history,
)
from ..personas.space import PreferenceSpace
from .judges.prompts import format_rubric
from .responses import ResponseRecord, write_responses
from .robustness import HISTORY_TEXT_COLUMN
from .rows import (
    DATA_FORMATS,
    PERSONA_FORMATS,
    EvalRows,
    load_eval_rows,
    normalize_alignx_rows,
    rendered_alignx_rows,
    row_renderer,
)

logger = logging.getLogger(__name__)

SYSTEM_PROMPTS: dict[str, str | None] = {"pba": PBA_SYSTEM_PROMPT, "ica": ICA_SYSTEM_PROMPT, "feedback": None}
"""The system message of each persona format's prompt (`None`: the prompt has none), which `no_history_messages`
keeps: AlignX's PBA and ICA prompts open with a system instruction (AlignX, Appendix B.2), the counterfactual paper's
feedback prompt has none (its Appendix B.2)."""
ROW_EXTRAS = ("rubric", "reference_answer")
"""Columns passed through to the records when the rows have them (Multifaceted-Bench-style rows)."""


@dataclass
class GenerationEvalConfig:
    """Settings of `generate_responses` (the options of `personalign generate`).

    Args:
        data_format (`str`, *optional*): `"alignx"` or `"multifacet"` (counterfactual MultiFacet rows); detected from
            the columns by default.
        split (`str`, *optional*): The split; by default the only one, else `"test"`.
        persona_format (`str`, *optional*): How the persona enters the prompt, as in training and `eval policy`:
            AlignX rows `"pba"` (default; the row's `profile`, else the preference text aggregated from its history)
            or `"ica"` (the history itself); MultiFacet rows `"feedback"` (the counterfactual paper's feedback-history
            prompt). Ready-rendered rows (a build folder's `pba` / `ica` config) are sent as they are: it can only
            pick that config.
        no_history (`bool`, *optional*, defaults to `False`): The ablation without the persona: the prompt is the
            user's query alone, with the persona format's system message (`no_history_messages`). Refused for
            ready-rendered rows, whose persona cannot be taken out.
        limit (`int`, *optional*): Generate for the first `limit` rows only.
        include_demographics (`bool`, *optional*, defaults to `True`): ICA: show the demographic description.
        max_new_tokens (`int`, *optional*, defaults to `512`): Maximum new tokens per response.
        temperature (`float`, *optional*, defaults to `0.0`): Sampling temperature; `0` is greedy decoding.
        top_p (`float`, *optional*, defaults to `1.0`): Nucleus sampling mass (sampling only).
        seed (`int`, *optional*, defaults to `0`): Sampling seed, passed with every `generate` call (the
            transformers backend reseeds per call, an API backend sends it with each request), so a rerun with the
            same settings asks the same questions (and hits the call cache).
        batch_size (`int`, *optional*, defaults to `8`): Prompts per forward pass (transformers backend).
        num_workers (`int`, *optional*, defaults to `4`): Concurrent requests (OpenAI-compatible backend).
        max_requests_per_minute (`float`, *optional*): Rate limit of the OpenAI-compatible backend (retries
            included); unlimited by default.
        max_retries (`int`, *optional*): Retries of a failed request (OpenAI-compatible backend); its default (3)
            when unset.
        request_timeout (`float`, *optional*): Seconds per request (OpenAI-compatible backend); its default (120)
            when unset.
        cache_dir (`str`, *optional*): Folder of the call cache (`personalign.inference.calls`); its default folder
            when unset.
        no_cache (`bool`, *optional*, defaults to `False`): Neither read nor write the call cache.
        dry_run (`bool`, *optional*, defaults to `False`): Load nothing and send nothing: count the calls and
            estimate the prompt tokens (`GeneratedResponses.plan`).
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar over the rows.
    """

    data_format: str | None = field(default=None, metadata={"help": "alignx or multifacet; auto by default."})
    split: str | None = field(default=None, metadata={"help": "Split; by default the only one, else test."})
    persona_format: str | None = field(default=None, metadata={"help": "pba / ica (AlignX), feedback (MultiFacet)."})
    no_history: bool = field(default=False, metadata={"help": "The user's query alone, without the persona."})
    limit: int | None = field(default=None, metadata={"help": "Generate for the first N rows."})
    include_demographics: bool = field(default=True, metadata={"help": "ICA: include demographics."})
    max_new_tokens: int = field(default=512, metadata={"help": "Maximum new tokens per response."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature; 0 is greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (sampling only)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per forward pass (transformers)."})
    num_workers: int = field(default=4, metadata={"help": "Concurrent requests (OpenAI-compatible servers)."})
    max_requests_per_minute: float | None = field(default=None, metadata={"help": "API rate limit (unlimited)."})
    max_retries: int | None = field(default=None, metadata={"help": "Retries of a failed API request (3)."})
    request_timeout: float | None = field(default=None, metadata={"help": "Seconds per API request (120)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Call cache folder."})
    no_cache: bool = field(default=False, metadata={"help": "Do not use the call cache."})
    dry_run: bool = field(default=False, metadata={"help": "Count calls and prompt tokens; send nothing."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self) -> None:
        if self.data_format is not None and self.data_format not in DATA_FORMATS:
            raise InputError(f"unknown data format {self.data_format!r}; use {' or '.join(DATA_FORMATS)}.")
        known = [name for formats in PERSONA_FORMATS.values() for name in formats]
        if self.persona_format is not None and self.persona_format not in known:
            raise InputError(f"unknown persona format {self.persona_format!r}; use one of {', '.join(known)}.")
        for name in ("limit", "batch_size", "num_workers"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise InputError(f"{name} must be an integer >= 1, got {value!r}.")
        check_generation_settings(self.max_new_tokens, self.temperature, self.top_p, self.seed)

    def generation_settings(self) -> dict[str, Any]:
        """The settings every call is made with: `max_new_tokens`, `temperature`, `top_p`, `seed` (the keyword
        arguments of `GenerationBackend.generate`, and the `generation` entry of `generation.json`)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "seed": self.seed,
        }


@dataclass
class GeneratedResponses:
    """What `generate_responses` returns.

    Args:
        records (`list[ResponseRecord]`): One per row, in dataset order (empty responses in a dry run).
        meta (`dict`): The settings, as `generation.json` holds them.
        plan (`str`, *optional*): In a dry run, the line describing the calls that would be made (how many, how many
            are cached, the estimated prompt tokens); `None` otherwise.
    """

    records: list[ResponseRecord]
    meta: dict[str, Any]
    plan: str | None = None

    def write(self, output: str | Path, overwrite: bool = False) -> list[Path]:
        """Write the responses folder (`write_responses`).

        Raises:
            `InputError`: For the result of a dry run (it holds no responses).
            `OutputExistsError`: If `output` exists and `overwrite` is False.
        """
        if self.plan is not None:
            raise InputError("a dry run generated nothing; there are no responses to write.")
        return write_responses(self.records, self.meta, output, overwrite)


# ------------------------------------------------------------------------------------------------------ prompts
def no_history_messages(query: str, persona_format: str) -> Messages:
    """The prompt of the ablation without the persona: the persona format's system message, if its prompt has one
    (`SYSTEM_PROMPTS`), then the user's query alone as the user turn.

    The system message stays because it is part of the prompt a model was trained with and holds no persona (AlignX's
    PBA / ICA instruction); the user turn drops the task scaffolding with the persona sections. The counterfactual
    paper's ablation removes the feedback history from the model input (its Table 2); its generation prompt without the
    examples would still speak of them, so the instruction is sent alone.

    Args:
        query (`str`): The user's instruction / post.
        persona_format (`str`): `"pba"`, `"ica"` or `"feedback"`.

    Returns:
        `list[dict]`: `[system?, {"role": "user", "content": query}]`.
    """
    system = SYSTEM_PROMPTS[persona_format]
    return [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": query}]


_MARK = "\x00"


def _task_layouts() -> list[tuple[str, str]]:
    """The text before and after the post in the user turn of AlignX's PBA and ICA prompts, read off the renderers
    themselves (a marker as the post, an empty persona), so that the post can be read back from a rendered prompt."""
    layouts = []
    for messages in (pba_messages(_MARK, ""), ica_messages(_MARK, Persona(), include_demographics=False)):
        before, _, after = messages[-1]["content"].partition(_MARK)
        layouts.append((before, after))
    return layouts


def rendered_query(messages: Messages) -> str:
    """The user's query in a ready-rendered AlignX prompt: the post of the PBA / ICA task when the last user turn has
    that layout, else the last user turn's whole text.

    Args:
        messages (`list[dict]`): A chat prompt.

    Returns:
        `str`
    """
    content = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    for before, after in _task_layouts():
        if content.startswith(before):
            end = content.find(after, len(before))
            if end >= 0:
                return content[len(before) : end]
    return content


# ------------------------------------------------------------------------------------------------------ personas
def alignx_persona(row: Mapping[str, Any], space: PreferenceSpace | None = None) -> dict[str, str]:
    """What a judge needs about an AlignX row's user (`ResponseRecord.persona`): `history` (comments, pairs and the
    demographic description as AlignX's ICA prompt shows them, `render_history`), `profile` (the row's `profile`,
    else the preference text PBA aggregates from the history or the gold direction, with `AlignXBuildConfig`'s
    thresholds) and `ground_truth_persona`, each where the row has it.

    Args:
        row (`Mapping`): A `raw`-config row (`normalize_alignx_rows`).
        space (`PreferenceSpace`, *optional*): AlignX's by default.

    Returns:
        `dict[str, str]`
    """
    space = space or PreferenceSpace.alignx()
    persona = Persona.from_alignx_row(row, space=space, validate=False)  # `raw` rows are validated
    found: dict[str, str] = {}
    history = render_history(persona, include_demographics=True)
    if history:
        found["history"] = history
    if persona.profile is not None or persona.direction is not None or persona.item_directions():
        build = AlignXBuildConfig()
        found["profile"] = persona.profile_text(
            space, upper=build.upper, lower=build.lower, arithmetic=build.arithmetic
        )
    if row.get("ground_truth_persona") is not None:
        found["ground_truth_persona"] = str(row["ground_truth_persona"])
    return found


def _multifacet_history(row: Mapping[str, Any], at: str) -> list[PairItem]:
    items = row.get(HISTORY_TEXT_COLUMN)
    if not isinstance(items, list):
        raise InputError(f"{at}, column {HISTORY_TEXT_COLUMN!r}: expected a list of pairs, got {value_kind(items)}.")
    for number, item in enumerate(items):
        if not (
            isinstance(item, Mapping) and all(isinstance(item.get(k), str) for k in ("prompt", "chosen", "rejected"))
        ):
            raise InputError(
                f"{at}, column {HISTORY_TEXT_COLUMN!r} item {number}: expected an object with text 'prompt', 'chosen' "
                "and 'rejected'."
            )
    return [PairItem(item["prompt"], item["chosen"], item["rejected"]) for item in items]


def multifacet_persona(row: Mapping[str, Any], at: str = "row") -> dict[str, str]:
    """What a judge needs about a counterfactual MultiFacet row's user: `dimension`, `preference` (the ground-truth
    preference text) and `history` (the feedback pairs as the counterfactual paper shows them,
    `render_feedback_history`).

    Args:
        row (`Mapping`): A row with `history_text` (`load_eval_rows` attaches it).
        at (`str`, *optional*): The row for messages.

    Raises:
        `InputError`: Naming the row and column of a value that is not text, or a bad history item.
    """
    for column in ("prompt", "chosen", "rejected", "dimension", "preference"):
        if not isinstance(row.get(column), str):
            raise InputError(f"{at}, column {column!r}: expected text, got {value_kind(row.get(column))}.")
    found = {"dimension": row["dimension"], "preference": row["preference"]}
    history = render_feedback_history(_multifacet_history(row, at))
    if history:
        found["history"] = history
    return found


def _rubric(value: Any, at: str) -> list[dict[str, Any]] | None:
    """A row's rubric as a list of Multifaceted-Bench items (a JSON text of them, or one item, is accepted), each
    checked by `format_rubric`; `None` when the row has none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(
                f"{at}, column 'rubric': expected a list of rubric items ({{criteria, score_descriptions}}), got text "
                "that is not JSON."
            ) from None
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        raise InputError(f"{at}, column 'rubric': expected a list of rubric items, got {value_kind(value)}.")
    for number, item in enumerate(items):
        try:
            format_rubric(item)
        except InputError as error:
            raise InputError(f"{at}, column 'rubric' item {number}: {error}") from None
    return [dict(item) for item in items]


def _reference_answer(value: Any, at: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise InputError(f"{at}, column 'reference_answer': expected text, got {value_kind(value)}.")


def _last_content(turn: Any) -> str:
    """A response of a row: its text, or the content of its last message (conversational rows)."""
    return turn if isinstance(turn, str) else turn[-1]["content"]


# ------------------------------------------------------------------------------------------------------ records
Profiles = Sequence[str] | Callable[[EvalRows], Sequence[str]]
"""Per-row PBA profiles used in the prompts instead of the gold ones: one text per row of the split (or per generated
row), or a function of the loaded rows that returns them (for readers that check the rows' ids first)."""


def prompt_records(
    loaded: EvalRows, config: GenerationEvalConfig, profiles: Profiles | None = None
) -> tuple[str, list[ResponseRecord]]:
    """The records to generate for (empty `response`): each row's id, query, chat prompt, persona, reference pair and
    rubric, checked and rendered.

    Args:
        loaded (`EvalRows`): The rows (`load_eval_rows`).
        config (`GenerationEvalConfig`): The settings (`persona_format`, `no_history`, `limit`,
            `include_demographics`).
        profiles (`Sequence[str]` or `Callable[[EvalRows], Sequence[str]]`, *optional*): PBA profiles used in the
            prompts instead of the rows' own (e.g. inferred preferences), one per row of the split or per generated
            row. The records' `persona.profile` stays the row's own (what a judge grades against).

    Returns:
        `tuple[str, list[ResponseRecord]]`: The persona format used (a ready-rendered config's own), and the records.

    Raises:
        `InputError`: For a persona format the rows do not take, `no_history` or `profiles` on ready-rendered rows,
            `profiles` with another format than PBA or of the wrong length, and (naming the row and column) a bad row.
    """
    data_format, data, where = loaded.data_format, loaded.data, loaded.where
    if loaded.rendered:
        persona_format = loaded.rendered
        why = (
            "its persona cannot be taken out"
            if config.no_history
            else "its profile cannot be replaced"
            if profiles is not None
            else None
        )
        if why:
            raise InputError(
                f"{where}: the rows hold ready-rendered prompts ({loaded.rendered}): "
                f"{'--no-history' if config.no_history else 'other preferences'} cannot apply, {why}; use the source "
                "rows, or a `personalign build-dataset alignx` folder with the raw config (--config raw)."
            )
    else:
        persona_format = config.persona_format or PERSONA_FORMATS[data_format][0]
        render = row_renderer(data_format, persona_format, config.include_demographics)
    count = len(data) if config.limit is None else min(config.limit, len(data))
    overrides = None
    if profiles is not None:
        if data_format != "alignx":
            raise InputError(
                f"{where}: these are {data_format} rows; inferred preferences (--preferences) apply to AlignX rows "
                "only, replacing the profile of their PBA prompts."
            )
        if persona_format != "pba" or config.no_history:
            raise InputError(
                "inferred preferences replace the profile of PBA prompts: use them with --persona-format pba and "
                "without --no-history."
            )
        overrides = list(profiles(loaded) if callable(profiles) else profiles)
        if len(overrides) not in (len(data), count):
            raise InputError(f"{where}: {len(overrides)} profiles for {len(data)} rows; expected one per row.")
    data = data.select(range(count)) if count < len(data) else data
    extras = {column: list(data[column]) for column in ROW_EXTRAS if column in data.column_names}
    records = []
    if data_format == "multifacet":
        rows = data.to_list()
    elif loaded.rendered:
        rows = rendered_alignx_rows(data, where, loaded.files)
        if isinstance(rows[0]["prompt"], str):
            raise InputError(
                f"{where}: the rows hold the AlignX release's prompt strings (--prompt-format alignx_release), not chat "
                "messages; generate from the source rows, or a build with --prompt-format chat."
            )
    else:
        require = persona_format == "pba" and overrides is None and not config.no_history
        rows = normalize_alignx_rows(data, where, loaded.files, require_preference=require)
    for index, row in enumerate(rows):
        at = loaded.row_name(index)
        if data_format == "multifacet":
            persona = multifacet_persona(row, at)
        elif loaded.rendered:
            persona = {key: row[key] for key in ("profile", "ground_truth_persona") if row.get(key) is not None}
        else:
            persona = alignx_persona(row)
        if loaded.rendered:
            messages = [dict(message) for message in row["prompt"]]
            query = rendered_query(messages)
        else:
            query = row["prompt"]
            if config.no_history:
                messages = no_history_messages(query, persona_format)
            elif overrides is None:
                messages = render(row, index)["prompt"]
            else:  # as `render_row` renders PBA; through the row's `profile` an empty (all-neutral) one would be gold
                messages = pba_messages(query, overrides[index])
        records.append(
            ResponseRecord(
                id=loaded.row_id(index),
                row=index,
                prompt=query,
                messages=messages,
                response="",
                persona=persona,
                reference={"chosen": _last_content(row["chosen"]), "rejected": _last_content(row["rejected"])},
                rubric=_rubric(extras["rubric"][index], at) if "rubric" in extras else None,
                reference_answer=_reference_answer(extras["reference_answer"][index], at)
                if "reference_answer" in extras
                else None,
            )
        )
    return persona_format, records


# ------------------------------------------------------------------------------------------------------ backends
def backend_description(model: str | GenerationBackend) -> dict[str, Any]:
    """The `model` and `backend` entries of `generation.json` for a backend spec (`load_backend`'s syntax) or a
    backend: the model (folder, Hub id or served model name) and the backend kind (`transformers`, `vllm`, `openai`,
    or a backend object's class name), with `base_url` for an OpenAI-compatible server."""
    if isinstance(model, GenerationBackend):
        return {"model": public_spec(model.name), "backend": type(model).__name__}
    kind, arguments = parse_backend_spec(model)
    described = {"model": arguments["model"], "backend": kind}
    if "base_url" in arguments:
        # Without credentials a URL may carry (user:password@, ?api-key=...): generation.json is shared.
        described["base_url"] = public_url(arguments["base_url"])
    return described


def backend_kwargs(kind: str, config: Any) -> dict[str, Any]:
    """The options of `load_backend` each backend kind takes: the transformers backend's batch size (its own progress
    bar off: the run shows one over the rows), the API backend's concurrency, rate limit, retries and timeout.

    Args:
        kind (`str`): The backend kind (`backend_description(...)["backend"]`).
        config (`GenerationEvalConfig` or alike): Anything with `batch_size`, `num_workers`,
            `max_requests_per_minute`, `max_retries` and `request_timeout` (`RoleplayConfig` too).

    Returns:
        `dict[str, Any]`: Keyword arguments of `wrap_backend`.
    """
    if kind == "transformers":
        return {"batch_size": config.batch_size, "show_progress": False}
    if kind == "openai":
        return {
            "num_workers": config.num_workers,
            **api_kwargs(config.max_requests_per_minute, config.max_retries, config.request_timeout),
        }
    return {}


def _call_counts(backend: GenerationBackend, num_calls: int) -> dict[str, int]:
    """`{requested, cached, called}`: the backend's call statistics (`CachedBackend.stats`), or, for a backend
    without a cache, every call made."""
    stats = getattr(backend, "stats", None)
    if stats is None:
        return {"requested": num_calls, "cached": 0, "called": num_calls}
    return {"requested": stats.requested, "cached": stats.cached, "called": stats.called}


def _generate_all(
    backend: GenerationBackend, prompts: list[Messages], settings: Mapping[str, Any], progress: bool
) -> list[str]:
    """Every prompt's completion, in order, in one `generate` call, with one progress bar over the rows that moves as
    each completion arrives (`on_completion`: per request for an API, per batch for transformers; cached answers
    at once); the backends' own bars are hidden."""
    lock = threading.Lock()
    with tqdm(total=len(prompts), desc="Generating responses", unit="row", disable=not progress) as bar:

        def arrived(index: int, text: str) -> None:
            with lock:  # called from an API backend's worker threads
                bar.update(1)

        return backend.generate(prompts, **settings, on_completion=arrived, show_progress=False)


# ------------------------------------------------------------------------------------------------------ the run
def generate_responses(
    model: str | GenerationBackend,
    dataset: Any,
    config: GenerationEvalConfig | None = None,
    profiles: Profiles | None = None,
    preferences: str | None = None,
    log: Callable[[str], None] | None = None,
) -> GeneratedResponses:
    """Generate one response per dataset row under its persona prompt.

    The rows are read as `personalign eval policy` reads them (`load_eval_rows`), each rendered with the training
    renderer (`row_renderer`) and its `prompt` messages sent to the backend in dataset order (`prompt_records`);
    with `config.no_history` the prompt is the user's query alone (`no_history_messages`). The model folder and the
    rows are checked before anything is loaded.

    Args:
        model (`str` or `GenerationBackend`): A backend spec (`personalign.inference.generation.load_backend`: a
            model folder or Hub id, `transformers:PATH`, `vllm:PATH`, `openai:BASE_URL@MODEL`, `openai:MODEL`) or a
            ready backend.
        dataset (`str`, `Path` or `datasets.Dataset`): See `load_eval_rows`.
        config (`GenerationEvalConfig`, *optional*): The settings.
        profiles (`Sequence[str]` or `Callable[[EvalRows], Sequence[str]]`, *optional*): PBA profiles used in the
            prompts instead of the rows' own (inferred preferences); see `prompt_records`.
        preferences (`str`, *optional*): Where `profiles` come from, recorded as `preferences` in the settings.
        log (`Callable[[str], None]`, *optional*): Receives one line per step (the CLI prints them).

    Returns:
        `GeneratedResponses`: The records and the settings (`generation.json`); in a dry run the records' responses
        are empty and `plan` says what would be sent.

    Raises:
        `InputError`: On bad settings, a model folder that is not a (causal) model (`check_local_model`), or bad
            rows (see
            `load_eval_rows` and `prompt_records`).

    Example:

    ```python
    >>> from personalign.evaluation.generate import GenerationEvalConfig, generate_responses
    >>> result = generate_responses(
    ...     "out/pba-model", "bench/p_soups.json", GenerationEvalConfig(persona_format="pba", max_new_tokens=256)
    ... )
    >>> result.write("responses/pba")
    ```
    """
    config = config or GenerationEvalConfig()
    log = log or logger.info
    described = backend_description(model)
    check_local_model(described["backend"], described["model"])  # before the rows load (load_backend checks again)
    loaded = load_eval_rows(dataset, config.split, config.data_format, config.persona_format)
    persona_format, records = prompt_records(loaded, config, profiles)
    log(
        f"{len(records)} rows ({loaded.data_format}, "
        f"{'no persona' if config.no_history else f'{persona_format} prompts'}) from {loaded.where}"
    )
    backend = wrap_backend(
        model,
        cache_dir=config.cache_dir,
        no_cache=config.no_cache,
        dry_run=config.dry_run,
        **backend_kwargs(described["backend"], config),
    )
    settings = config.generation_settings()
    progress = config.progress and not config.dry_run
    responses = _generate_all(backend, [record.messages for record in records], settings, progress)
    for record, response in zip(records, responses, strict=True):
        record.response = response
    meta = {
        **described,
        "dataset": str(dataset) if isinstance(dataset, (str, Path)) else "<in memory>",
        "split": loaded.split,
        "data_format": loaded.data_format,
        "persona_format": persona_format,
        "no_history": config.no_history,
        "preferences": preferences,
        "include_demographics": config.include_demographics,
        "limit": config.limit,
        "generation": settings,
        "num_rows": len(records),
        "personalign_version": __version__,
        "calls": _call_counts(backend, len(records)),
    }
    plan = backend.plan().describe() if config.dry_run else None
    return GeneratedResponses(records, meta, plan)
