"""Text generation behind one interface, for judges, LLM preference inference and in-context generation.

A backend turns a batch of chat prompts (each a list of `{"role", "content"}` messages) into one completion each:

- `TransformersBackend` (the default): a local `transformers` causal LM; prompts go through the tokenizer's chat
  template, are left-padded and generated in length-sorted batches.
- `VLLMBackend`: vLLM's offline `LLM.chat` (the optional extra `pip install "personalign[vllm]"`).
- `OpenAIBackend`: any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, a vLLM or TGI server, Inference
  Providers, ...), through huggingface_hub's `InferenceClient`, with concurrent requests, a shared rate limit and
  retries with backoff.

Each backend can hand every completion over as soon as it is ready (`generate(..., on_completion=...)`): the OpenAI
backend after each request, the transformers backend after each batch. `personalign.inference.calls` uses this to
write every completion to its on-disk cache at once, so an interrupted run loses only the calls in flight.

`load_backend` builds one from a spec string, for command lines:

| spec                                     | backend                                                          |
|------------------------------------------|------------------------------------------------------------------|
| `transformers:PATH_OR_ID` or `PATH_OR_ID`| `TransformersBackend.from_pretrained(PATH_OR_ID)`                |
| `vllm:PATH_OR_ID`                        | `VLLMBackend(PATH_OR_ID)`                                        |
| `openai:BASE_URL@MODEL`                  | `OpenAIBackend(BASE_URL, MODEL)`, e.g. `openai:http://localhost:8000/v1@meta-llama/Llama-3.1-8B-Instruct` |
| `openai:MODEL`                           | `OpenAIBackend($OPENAI_BASE_URL or https://api.openai.com/v1, MODEL)` |

A local path in a `transformers` / `vllm` spec is checked before anything loads (`check_local_model`: one line for
a missing path, a folder of another kind, a model that does not generate); a name that is neither a local folder nor
a model the Hub gives is one line too (`hub_load_error`). A spec is recorded anywhere (files, the call cache, cards)
only in its public form (`public_spec`: a URL's credentials removed).

Importing this module imports neither torch nor vLLM; each backend imports what it needs when built.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import numbers
import os
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from tqdm.auto import tqdm

from ..errors import InputError, PersonalignError, network_error_types, redact_secrets
from ..io import check_model_folder, is_repo_id, one_line
from ..personas.persona import Messages

logger = logging.getLogger(__name__)

VLLM_INSTALL_HINT = 'pip install "personalign[vllm]"'
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
BACKEND_KINDS = ("transformers", "vllm", "openai")


CompletionCallback = Callable[[int, str], None]
"""`on_completion(index, completion)`: called once per prompt as soon as its completion is ready (`index` is the
prompt's position in the batch given to `generate`)."""


MAX_SEED = 2**63 - 1
"""The largest seed the generating commands (`generate`, `judge`) take: seeds are integers in [0, 2**63 - 1], which every consumer of the seed
accepts: `numpy.random.default_rng` (the bootstrap; it refuses negative seeds), `random.Random` (the pairwise order),
`torch.manual_seed` (a local judge) and the `seed` field of OpenAI-compatible servers (a signed 64-bit integer)."""


def check_seed(seed: Any, option: str = "--seed") -> int:
    """Refuse a seed that some consumer of it cannot take (see `MAX_SEED`), before anything is read or sent.

    Args:
        seed (`int`): The seed.
        option (`str`, *optional*, defaults to `"--seed"`): The command-line option that set it, for the message.

    Returns:
        `int`: The seed.

    Raises:
        `InputError`: If `seed` is not an integer in [0, `MAX_SEED`].
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"the seed ({option}) must be an integer from 0 to 2**63 - 1, got {seed!r}.")
    return int(seed)


def check_generation_settings(max_new_tokens: Any, temperature: Any, top_p: Any, seed: Any) -> None:
    """Refuse generation settings some backend cannot take, before anything is read, loaded or sent, naming the
    command-line options that set them (`generate` and `judge` take the same ones).

    Args:
        max_new_tokens (`int` or `None`): Tokens per completion (`None`: the caller's default).
        temperature (`float`): Sampling temperature; `0` is greedy.
        top_p (`float`): Nucleus sampling mass.
        seed (`int`): The sampling seed (see `check_seed`).

    Raises:
        `InputError`: `"--max-new-tokens must be an integer >= 1, got 0."`, `"--temperature must be a finite number
            >= 0, got nan."`, `"--temperature must be >= 0, got -1."`, `"--top-p must be a number in (0, 1], got 2."`
            or `check_seed`'s line.
    """
    check_seed(seed)
    integer = isinstance(max_new_tokens, numbers.Integral) and not isinstance(max_new_tokens, bool)
    if max_new_tokens is not None and not (integer and max_new_tokens >= 1):
        raise InputError(f"--max-new-tokens must be an integer >= 1, got {max_new_tokens!r}.")
    number = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not (number and math.isfinite(temperature)):
        raise InputError(f"--temperature must be a finite number >= 0, got {temperature!r}.")
    if temperature < 0:
        raise InputError(f"--temperature must be >= 0, got {temperature!r}.")
    number = isinstance(top_p, numbers.Real) and not isinstance(top_p, bool)
    if not (number and 0 < top_p <= 1):
        raise InputError(f"--top-p must be a number in (0, 1], got {top_p!r}.")


class BackendError(PersonalignError, RuntimeError):
    """A backend could not produce a completion (the HTTP endpoint answered with an error after the last retry, or
    with a body that is not a chat completion). The message is one line, without the API key; the command line
    prints it as one `error:` line."""


def _check_prompts(prompts: Sequence[Messages]) -> list[Messages]:
    prompts = list(prompts)
    for index, messages in enumerate(prompts):
        if isinstance(messages, str) or not isinstance(messages, Sequence):
            raise TypeError(
                f"Prompt {index} is a {type(messages).__name__}; each prompt must be a list of "
                '{"role": ..., "content": ...} messages (wrap plain text as [{"role": "user", "content": text}]).'
            )
        for message in messages:
            if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
                raise TypeError(f"Prompt {index} has a message without 'role' and 'content': {message!r:.80}")
    return prompts


class GenerationBackend(ABC):
    """The generation interface: a batch of chat prompts in, one completion (the new text only) per prompt out.

    Subclasses implement `_generate` (`generate` checks the prompts first); `name` identifies the backend and model
    in reports and, with `cache_key_fields()`, in the call cache (`personalign.inference.calls`). A backend that can
    hand completions over before the whole batch is done derives from `StreamingBackend` instead.

    Attributes:
        name (`str`): The backend and model, e.g. `"openai:gpt-4o-mini"`.
        remote (`bool`): Whether each prompt is one request to a service (paid by the call). The call layer then
            shows a progress bar over calls, with the cached ones counted.
    """

    name: str = "backend"
    remote: bool = False

    def generate(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
        *,
        on_completion: CompletionCallback | None = None,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Generate one completion per prompt.

        Args:
            prompts (`Sequence[list[dict]]`): Chat prompts, each a list of `{"role": ..., "content": ...}` messages
                ending with the turn to answer.
            max_new_tokens (`int`, *optional*, defaults to `256`): Maximum number of generated tokens per prompt.
            temperature (`float`, *optional*, defaults to `0.0`): Sampling temperature; `0` means greedy decoding.
            top_p (`float`, *optional*, defaults to `1.0`): Nucleus sampling mass (used only when sampling).
            seed (`int`, *optional*, defaults to `0`): Seed of the sampling; the same seed, prompts and settings give
                the same completions. `None` leaves the generator state as it is.
            on_completion (`Callable[[int, str], None]`, *optional*): Called with `(index in prompts, completion)`
                for every prompt as soon as its completion is ready: by the OpenAI backend after each request (from
                its worker threads, so it must be thread-safe), by the transformers backend after each batch, by
                other backends once all are done. An exception it raises stops the generation.
            show_progress (`bool`, *optional*): Show (`True`) or hide (`False`) the backend's progress bar for this
                call; by default the backend's own setting.

        Returns:
            `list[str]`: The completions, in the order of `prompts`.
        """
        prompts = _check_prompts(prompts)
        if not prompts:
            return []
        outputs = self._generate_each(prompts, max_new_tokens, temperature, top_p, seed, on_completion, show_progress)
        if len(outputs) != len(prompts):
            raise BackendError(f"{self.name} returned {len(outputs)} completions for {len(prompts)} prompts.")
        return outputs

    @abstractmethod
    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        """One completion per prompt; `generate` has already checked the prompts and handled an empty batch."""

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
        """`_generate`, then `on_completion` for every completion. Backends that finish prompts one by one (or batch
        by batch) override this to report each as soon as it is ready."""
        outputs = self._generate(prompts, max_new_tokens, temperature, top_p, seed)
        if on_completion is not None:
            for index, text in enumerate(outputs):
                on_completion(index, text)
        return outputs

    def cache_key_fields(self) -> dict[str, Any]:
        """What, besides `name` and the generation parameters, changes this backend's completions (extra request
        fields, chat-template arguments, a fingerprint of local weights): part of the key under which
        `personalign.inference.calls` caches its completions. Never holds a secret. Empty by default.

        Returns:
            `dict[str, Any]`: JSON-serialisable settings.
        """
        return {}

    def __call__(self, prompts: Sequence[Messages], **kwargs: Any) -> list[str]:
        return self.generate(prompts, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class StreamingBackend(GenerationBackend):
    """A backend that hands each completion over as soon as it is ready (per request, per batch): it implements
    `_generate_each`, and `_generate` (the whole batch, no callback) is that without a callback."""

    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        return self._generate_each(prompts, max_new_tokens, temperature, top_p, seed, None, None)

    @abstractmethod
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
        """One completion per prompt, each reported to `on_completion` (when given) as soon as it is ready."""


def local_model_fingerprint(path: str | os.PathLike | None) -> str | None:
    """A fingerprint of a local model folder: sha256 over the name, size and modification time of each file at its
    top level (weights, config, tokenizer, chat template). It changes when the folder is rewritten (a retrained model
    saved to the same path), so cached completions of the old weights are not reused. Cheap: only `stat` calls.

    Args:
        path (`str` or `os.PathLike`, *optional*): A folder, or a Hub id / anything else.

    Returns:
        `str` or `None`: The hex digest, or `None` when `path` is not a local folder (a Hub id is identified by its
            name only).
    """
    if path is None or not os.path.isdir(path):
        return None
    digest = hashlib.sha256()
    for entry in sorted(Path(path).iterdir()):
        if entry.is_file() and not entry.name.startswith("."):
            stat = entry.stat()
            digest.update(f"{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def local_model_key_fields(
    model_name_or_path: str | os.PathLike | None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    generation_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `cache_key_fields` of a local model backend (transformers, vLLM), computable without loading the model
    (for `DryRunBackend`): the folder's `local_model_fingerprint` and the arguments that change the completions.

    Args:
        model_name_or_path (`str` or `os.PathLike`, *optional*): The model's folder or Hub id.
        chat_template_kwargs (`dict`, *optional*): Extra arguments of the chat template.
        generation_kwargs (`dict`, *optional*): Extra arguments of the generation.

    Returns:
        `dict[str, Any]`
    """
    fields: dict[str, Any] = {"weights": local_model_fingerprint(model_name_or_path)}
    if chat_template_kwargs:
        fields["chat_template_kwargs"] = dict(chat_template_kwargs)
    if generation_kwargs:
        fields["generation_kwargs"] = dict(generation_kwargs)
    return fields


def local_backend_name(kind: str, model: str | os.PathLike) -> str:
    """The default name of a local model backend (`transformers:...`, `vllm:...`), which also names its calls in the
    call cache (`CallRequest.backend`, the cache file): an existing local folder by its resolved absolute path, so
    that the same folder spelled relatively, absolutely or through a link shares its cached calls; a Hub id as
    given.

    Args:
        kind (`str`): `"transformers"` or `"vllm"`.
        model (`str` or `os.PathLike`): The folder or Hub id.

    Returns:
        `str`: E.g. `"transformers:/home/me/runs/sft"` for `"runs/sft"` run from `/home/me`.
    """
    path = Path(model).expanduser()
    return f"{kind}:{path.resolve()}" if path.is_dir() else f"{kind}:{model}"


# ----------------------------------------------------------------------------------------------- model checks
NO_CHAT_TEMPLATE = (
    "the tokenizer has no chat template, so chat prompts cannot be rendered; set `tokenizer.chat_template` or use an "
    "instruction-tuned model's tokenizer."
)
"""The refusal of a tokenizer without a chat template, after `model <name>: `."""
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
"""Files in which transformers saves a tokenizer's chat template (besides `tokenizer_config.json`'s key)."""


def check_chat_template_folder(folder: str | os.PathLike) -> None:
    """Refuse a local model folder whose saved tokenizer has no chat template, without loading it: its
    `tokenizer_config.json` has no `chat_template` and none of `CHAT_TEMPLATE_FILES` is there. A folder without
    `tokenizer_config.json` (a Hub id, an adapter) is left to the loader.

    Args:
        folder (`str` or `os.PathLike`): A local model folder.

    Raises:
        `InputError`: `"model <folder>: the tokenizer has no chat template, ..."`.
    """
    folder = Path(folder).expanduser()
    config = folder / "tokenizer_config.json"
    if not config.is_file() or any((folder / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return
    try:
        saved = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return  # the loader names what is wrong with it
    if isinstance(saved, dict) and not saved.get("chat_template"):
        raise InputError(f"model {folder}: {NO_CHAT_TEMPLATE}")


def check_api_key(base_url: str, api_key_env: str = OPENAI_API_KEY_ENV) -> None:
    """Refuse, before anything loads or is sent, an OpenAI API spec without a key: the URL is OpenAI's
    (`DEFAULT_OPENAI_BASE_URL`), carries no credential, and `$OPENAI_API_KEY` is unset. Any other server (a local
    `vllm serve`, say) may need no key, so it is not checked.

    Args:
        base_url (`str`): The API root.
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`): Where the key is read from.

    Raises:
        `InputError`: `"openai:... needs an API key: set $OPENAI_API_KEY ..."`.
    """
    if os.environ.get(api_key_env) or public_url(base_url) != base_url:  # a key in the environment or the URL
        return
    if urlsplit(base_url).hostname == urlsplit(DEFAULT_OPENAI_BASE_URL).hostname:
        raise InputError(
            f"{public_url(base_url)} needs an API key: set ${api_key_env} (for a server that needs none, give its "
            "URL: openai:BASE_URL@MODEL)."
        )


def check_backend_spec(spec: str, dry_run: bool = False) -> None:
    """What a spec's backend would refuse, checked before any backend loads (so a run with several backends stops
    before the first loads): a local path that is no (causal) model (`check_local_model`), a transformers folder
    without a chat template (`check_chat_template_folder`), and, unless `dry_run` (which sends nothing), an OpenAI
    spec without its key (`check_api_key`).

    Args:
        spec (`str`): A spec of `load_backend`.
        dry_run (`bool`, *optional*, defaults to `False`): Skip the key check.

    Raises:
        `InputError`: Naming the model and what is wrong.
    """
    kind, arguments = parse_backend_spec(spec)
    if kind == "openai":
        if not dry_run:
            check_api_key(arguments["base_url"])
        return
    check_local_model(kind, arguments["model"])
    if kind == "transformers" and Path(arguments["model"]).expanduser().is_dir():
        check_chat_template_folder(arguments["model"])


GENERATIVE_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
"""Endings of the class names (a `config.json`'s `architectures`) of models that generate text; a checkpoint saved
from a bare encoder (`BertModel`) or a classifier (`...ForSequenceClassification`) has none of them."""


def check_causal_lm_folder(folder: str | os.PathLike) -> None:
    """Refuse a local folder that `AutoModelForCausalLM` would not load as a generative model, before anything loads
    (transformers would otherwise load, for one, a BERT encoder as a fresh `BertLMHeadModel`, print its table of
    missing weights, then fail on the chat template): its `config.json` must be of a model type transformers has a
    causal LM class for (`transformers.MODEL_FOR_CAUSAL_LM_MAPPING`) and, when it names its `architectures`, one of
    them a generative head (`GENERATIVE_HEADS`); a model with its own code for `AutoModelForCausalLM` (`auto_map`)
    passes. A sentence-transformers folder is refused (without `config.json`, or with one whose model type
    transformers does not know, as a PersonaEncoder's before `personalign.encoder` registers it); a PEFT adapter
    (`adapter_config.json` only) and another model type this transformers does not know are left to transformers.

    Args:
        folder (`str` or `os.PathLike`): A local model folder (`io.check_model_folder` has passed).

    Raises:
        `InputError`: `"model <folder>: a bert model (BertModel), not a causal (generative) language model; ..."`.
    """
    from transformers import CONFIG_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING  # only to check a local folder

    folder = Path(folder).expanduser()
    remedy = "generation needs one, such as an instruction-tuned chat model's folder"
    config_file = folder / "config.json"
    if not config_file.is_file():
        if (folder / "modules.json").is_file():
            raise InputError(
                f"model {folder}: a sentence-transformers model (modules.json), not a causal (generative) language "
                f"model; {remedy}."
            )
        return
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"model {config_file}: not a readable JSON config ({one_line(error)}).") from None
    if not isinstance(config, dict) or "AutoModelForCausalLM" in (config.get("auto_map") or {}):
        return
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type not in CONFIG_MAPPING and (folder / "modules.json").is_file():
        # A sentence-transformers folder of a type only its own package registers (a PersonaEncoder's
        # `persona_encoder`, known to transformers once `personalign.encoder` is imported, or not at all).
        raise InputError(
            f"model {folder}: a sentence-transformers model (modules.json) of type {model_type!r}, not a causal "
            f"(generative) language model; {remedy}."
        )
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        return
    architectures = [name for name in config.get("architectures") or [] if isinstance(name, str)]
    generative = not architectures or any(name.endswith(GENERATIVE_HEADS) for name in architectures)
    if CONFIG_MAPPING[model_type] in MODEL_FOR_CAUSAL_LM_MAPPING and generative:
        return
    shown = f" ({', '.join(architectures)})" if architectures else ""
    raise InputError(
        f"model {folder}: a {model_type} model{shown}, not a causal (generative) language model; {remedy}."
    )


def check_local_model(kind: str, model: str | os.PathLike) -> None:
    """Check the model of a `transformers` or `vllm` spec before anything loads it: a local path (one that exists,
    or that looks like a path: `io.require_local_path`) must be a model folder (`io.check_model_folder`: one line
    for a missing path, a file, a folder of another kind such as a learned preference inferencer's, damaged or
    pickled weights) and, for transformers, a causal LM (`check_causal_lm_folder`). A Hub id passes (its load
    explains a failure: `TransformersBackend.from_pretrained`).

    Args:
        kind (`str`): The spec's kind (`parse_backend_spec`); `"openai"` is not checked.
        model (`str` or `os.PathLike`): The folder or Hub id.

    Raises:
        `InputError`: Naming the path and what is wrong with it.
    """
    if kind not in ("transformers", "vllm"):
        return
    check_model_folder(str(model), "model")
    if kind == "transformers" and Path(model).expanduser().is_dir():
        check_causal_lm_folder(model)


def hub_load_error(name: str, error: BaseException) -> InputError:
    """The one-line error for a model name that is no local folder and did not load from the Hub (not there, not in
    the local cache while offline, the Hub unreachable, ...), with the library's reason; a bare name (no `owner/`)
    may be an API model, for which the `openai:` spec is suggested.

    Args:
        name (`str`): The model name as given.
        error (`BaseException`): What transformers raised.

    Returns:
        `InputError`: `"model gpt-4: no such local folder, and the Hub model gpt-4 did not load (...); if it is an
        API model, write openai:gpt-4 ..."`.
    """
    reason = one_line(error).split(". ")[0].rstrip(".")  # its first sentence: what failed, without the advice
    reason = reason if len(reason) <= 240 else f"{reason[:237]}..."
    hint = (
        f"; if it is an API model, write openai:{name} (key from ${OPENAI_API_KEY_ENV})"
        if "/" not in name and is_repo_id(name)
        else ""
    )
    return InputError(f"model {name}: no such local folder, and the Hub model {name} did not load ({reason}){hint}.")


# ------------------------------------------------------------------------------------------------- transformers
class TransformersBackend(StreamingBackend):
    """Local generation with a `transformers` causal LM.

    Prompts are rendered with the tokenizer's chat template (generation prompt added), sorted by length (longest
    first) and generated in left-padded batches, then returned in the input order (each batch's completions are handed
    to `generate`'s `on_completion` as soon as the batch is decoded). Greedy decoding
    (`temperature=0`) gives the same completions whatever the batch size, up to floating-point ties.

    Args:
        model (`PreTrainedModel`): The causal LM. It is put in eval mode while generating, then restored.
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer; it needs a chat template. Without a pad token, EOS
            pads (padding is masked either way).
        batch_size (`int`, *optional*, defaults to `8`): Prompts per `generate` call.
        show_progress (`bool`, *optional*): Show a progress bar over batches. By default, shown when there is more
            than one batch and stderr is a terminal.
        chat_template_kwargs (`dict`, *optional*): Extra arguments of `tokenizer.apply_chat_template` (e.g.
            `{"enable_thinking": False}`).
        generation_kwargs (`dict`, *optional*): Extra arguments of `model.generate` (e.g. `repetition_penalty`).
        name (`str`, *optional*): Name in reports; `transformers:<model name or path>` by default.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 8,
        show_progress: bool | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        generation_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
    ):
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}.")
        path = getattr(getattr(model, "config", None), "name_or_path", None)
        if getattr(tokenizer, "chat_template", None) is None:
            shown = (name or "").removeprefix("transformers:") or path or type(model).__name__
            raise InputError(f"model {shown}: {NO_CHAT_TEMPLATE}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.generation_kwargs = dict(generation_kwargs or {})
        self.model_path: str | None = str(path) if path else None
        self.name = name or f"transformers:{path or type(model).__name__}"

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | os.PathLike,
        dtype: str | Any = "auto",
        device: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> TransformersBackend:
        """Load a model and its tokenizer from a local folder or a Hub id.

        Args:
            model_name_or_path (`str` or `os.PathLike`): The folder or Hub id.
            dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`): The weights' dtype.
            device (`str`, *optional*): Where to put the model (`"cuda"`, `"cpu"`, ...); by default the first GPU if
                there is one, else the CPU.
            trust_remote_code (`bool`, *optional*, defaults to `False`): Passed to `from_pretrained`.
            model_kwargs (`dict`, *optional*): More arguments of `AutoModelForCausalLM.from_pretrained`.
            **kwargs: Arguments of `TransformersBackend` (`batch_size`, `show_progress`, ...).
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(
                model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, **(model_kwargs or {})
            )
        except OSError as error:  # transformers' "not a local folder nor a Hub model it could fetch"
            if os.path.exists(os.path.expanduser(model_name_or_path)):
                raise
            raise hub_load_error(str(model_name_or_path), error) from error
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        kwargs.setdefault("name", local_backend_name("transformers", model_name_or_path))
        backend = cls(model, tokenizer, **kwargs)
        backend.model_path = str(model_name_or_path)
        return backend

    def cache_key_fields(self) -> dict[str, Any]:
        """The model folder's fingerprint (`local_model_fingerprint`), `chat_template_kwargs` and
        `generation_kwargs`. A model changed in memory keeps its name and fingerprint: do not cache its calls."""
        return local_model_key_fields(self.model_path, self.chat_template_kwargs, self.generation_kwargs)

    def _encode(self, messages: Messages) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, **self.chat_template_kwargs
        )
        return list(encoded["input_ids"])

    def _eos_ids(self) -> set[int]:
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos = self.tokenizer.eos_token_id if eos is None else eos
        if eos is None:
            return set()
        return {int(e) for e in eos} if isinstance(eos, (list, tuple)) else {int(eos)}

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
        """Generate batch by batch, reporting each batch's completions to `on_completion` when it is decoded."""
        import torch

        encoded = [self._encode(messages) for messages in prompts]
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        pad_id = self.tokenizer.pad_token_id
        pad_id = self.tokenizer.eos_token_id if pad_id is None else pad_id
        eos_ids = self._eos_ids()
        sampling = temperature > 0
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sampling, "pad_token_id": pad_id}
        if sampling:
            options.update(temperature=temperature, top_p=top_p)
        else:  # unset the sampling defaults of the model's generation config, which warn under greedy decoding
            options.update(temperature=None, top_p=None, top_k=None)
        options.update(self.generation_kwargs)

        device = getattr(self.model, "device", None) or next(self.model.parameters()).device
        starts = range(0, len(order), self.batch_size)
        show = self.show_progress if show_progress is None else show_progress
        progress = tqdm(
            starts,
            desc="Generating",
            unit="batch",
            disable=(None if len(starts) > 1 else True) if show is None else not show,
        )
        outputs: list[str] = [""] * len(prompts)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                for start in progress:
                    batch = order[start : start + self.batch_size]
                    width = max(len(encoded[i]) for i in batch)
                    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, index in enumerate(batch):  # left padding: the prompts end where generation starts
                        sequence = encoded[index]
                        ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
                        mask[row, width - len(sequence) :] = 1
                    generated = self.model.generate(
                        input_ids=ids.to(device), attention_mask=mask.to(device), **options
                    )
                    for row, index in enumerate(batch):
                        tokens = generated[row, width:].tolist()
                        cut = next((k for k, token in enumerate(tokens) if token in eos_ids), len(tokens))
                        outputs[index] = self.tokenizer.decode(tokens[:cut], skip_special_tokens=True)
                    if on_completion is not None:
                        for index in batch:
                            on_completion(index, outputs[index])
        finally:
            progress.close()
            self.model.train(was_training)
        return outputs


# --------------------------------------------------------------------------------------------------------- vLLM
class MissingExtraError(InputError, ImportError):
    """An optional extra of personalign is not installed (e.g. vLLM for `vllm:` specs): the user can install it, so
    the command line reports it in one line, not as a bug. Also an `ImportError`, as it was before."""


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise MissingExtraError(
            f"VLLMBackend needs vLLM, which is not installed. Install the optional extra with `{VLLM_INSTALL_HINT}` "
            "(vLLM needs a CUDA GPU), or use the default TransformersBackend (spec `transformers:MODEL`) or an "
            "OpenAI-compatible server (spec `openai:URL@MODEL`)."
        ) from error
    return vllm


class VLLMBackend(GenerationBackend):
    """Offline batched generation with vLLM (`LLM.chat`): the optional extra `personalign[vllm]`.

    Args:
        model (`str` or `vllm.LLM`): A folder or Hub id (loaded as `vllm.LLM(model, **llm_kwargs)`), or a ready
            `vllm.LLM`.
        chat_template_kwargs (`dict`, *optional*): Passed to `LLM.chat` as `chat_template_kwargs`.
        name (`str`, *optional*): Name in reports; `vllm:<model>` by default.
        **llm_kwargs: Arguments of `vllm.LLM` (e.g. `tensor_parallel_size`, `max_model_len`, `dtype`).

    Raises:
        `MissingExtraError`: If vLLM is not installed, naming the extra to install (an `ImportError`).
    """

    def __init__(
        self,
        model: str | os.PathLike | Any,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        **llm_kwargs: Any,
    ):
        self._vllm = _import_vllm()
        if isinstance(model, (str, os.PathLike)):
            self.llm = self._vllm.LLM(model=str(model), **llm_kwargs)
            label = str(model)
        else:
            self.llm = model
            label = type(model).__name__
        self.model_path = str(model) if isinstance(model, (str, os.PathLike)) else None
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.name = name or (
            local_backend_name("vllm", model) if isinstance(model, (str, os.PathLike)) else f"vllm:{label}"
        )

    def cache_key_fields(self) -> dict[str, Any]:
        """The model folder's fingerprint (`local_model_fingerprint`) and `chat_template_kwargs`."""
        return local_model_key_fields(self.model_path, self.chat_template_kwargs)

    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        params = self._vllm.SamplingParams(
            max_tokens=max_new_tokens, temperature=temperature, top_p=top_p if temperature > 0 else 1.0, seed=seed
        )
        kwargs = {"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else {}
        results = self.llm.chat(prompts, params, use_tqdm=len(prompts) > 1, **kwargs)
        return [result.outputs[0].text for result in results]


# ------------------------------------------------------------------------------------------------------- OpenAI
class RateLimiter:
    """At most `max_requests_per_minute` requests per minute, shared by every thread that calls `wait`: the
    requests are spaced evenly, `60 / max_requests_per_minute` seconds apart (a token bucket holding one token), so
    no burst can exceed the limit in any window.

    Args:
        max_requests_per_minute (`float`, *optional*): The limit; `None` for none (`wait` returns at once).

    Raises:
        `InputError`: If the limit is not positive.
    """

    def __init__(self, max_requests_per_minute: float | None = None):
        if max_requests_per_minute is not None and not max_requests_per_minute > 0:
            raise InputError(f"max_requests_per_minute must be positive, got {max_requests_per_minute}.")
        self.max_requests_per_minute = max_requests_per_minute
        self.interval = 60.0 / max_requests_per_minute if max_requests_per_minute else 0.0
        self._next = 0.0  # time.monotonic() of the next free slot
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Take the next free slot, sleeping until it comes."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP `Retry-After` header: a number of seconds, or an HTTP date.

    Args:
        value (`str`, *optional*): The header's value.
        now (`float`, *optional*): The current time (`time.time()`), for dates; by default the clock.

    Returns:
        `float` or `None`: Seconds (never negative), or `None` when there is no header or it cannot be read.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class OpenAIBackend(StreamingBackend):
    """Generation through an OpenAI-compatible chat completions endpoint (`POST {base_url}/chat/completions`).

    Works with OpenAI and with servers speaking the same protocol (`vllm serve`, TGI, llama.cpp, Inference Providers,
    ...), through huggingface_hub's `InferenceClient` (`chat_completion`). `num_workers` threads send the requests
    concurrently, all spaced by one shared `RateLimiter`; the completions come back in the input order, and each is
    handed to `on_completion` as soon as it arrives. A request that fails with a connection error, a timeout, or HTTP
    408, 409, 429 or 5xx is retried after an exponential backoff with jitter (`retry_backoff * 2**attempt`, times a
    random factor in [0.5, 1]), or after the server's `Retry-After` when it sends one, never longer than
    `max_retry_wait`; after the last retry, or on any other error, generation stops with one `BackendError` line
    (status, URL, the start of the answer's body). The requests already running are let finish first, so their
    completions still reach `on_completion` (and the call cache).

    The API key is sent as a bearer token and appears in no log, error, repr or cache, nor does any fragment of it a
    server echoes (`errors.redact_secrets`). Credentials in the URL (`https://user:key@host`, `?api_key=`) are used
    for the requests only: messages and the cache key name the URL without them (`public_url`). With no key, no
    `Authorization` header is sent (in particular not the Hugging Face token, which `InferenceClient` would
    otherwise send to any URL).

    huggingface_hub's client refuses every request while its offline mode is on (`HF_HUB_OFFLINE=1`), even to a
    local server; the backend then stops with a `BackendError` saying so.

    Args:
        base_url (`str`): The API root, e.g. `"http://localhost:8000/v1"` (a URL ending in `/chat/completions` is used
            as is).
        model (`str`): The `model` field of the requests.
        api_key (`str`, *optional*): The key; by default the environment variable named by `api_key_env`.
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`): Where to read the key from.
        num_workers (`int`, *optional*, defaults to `4`): Concurrent requests.
        timeout (`float`, *optional*, defaults to `120.0`): Seconds per request.
        max_retries (`int`, *optional*, defaults to `3`): Retries of a request after a connection error, a timeout,
            or HTTP 408, 409, 429 or 5xx.
        retry_backoff (`float`, *optional*, defaults to `1.0`): Seconds before the first retry (doubled each time,
            with jitter).
        max_retry_wait (`float`, *optional*, defaults to `60.0`): The longest wait before a retry, in seconds, also
            when the server's `Retry-After` asks for more.
        max_requests_per_minute (`float`, *optional*): Rate limit over all workers (retries included); `None` for
            none.
        extra_body (`dict`, *optional*): More fields of every request body (e.g. `{"stop": ["\\n"]}`). Note that
            huggingface_hub rewrites a `response_format` of type `json_schema` into TGI's form.
        send_seed (`bool`, *optional*, defaults to `True`): Send the `seed` field (some servers reject it).
        show_progress (`bool`, *optional*): Show a progress bar over the requests. By default, shown when stderr is a
            terminal.
        name (`str`, *optional*): Name in reports and the call cache (kept in its public form, `public_spec`);
            `openai:<model>` by default.

    Raises:
        `InputError`: If `base_url` is not an http(s) URL, or a number is out of range.
    """

    remote = True
    RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str = OPENAI_API_KEY_ENV,
        num_workers: int = 4,
        timeout: float = 120.0,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        max_retry_wait: float = 60.0,
        max_requests_per_minute: float | None = None,
        extra_body: Mapping[str, Any] | None = None,
        send_seed: bool = True,
        show_progress: bool | None = None,
        name: str | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base_url must start with http:// or https://, got {base_url!r}.")
        if num_workers < 1:
            raise InputError(f"num_workers must be at least 1, got {num_workers}.")
        if max_retries < 0 or retry_backoff < 0 or max_retry_wait < 0 or not (timeout > 0 and math.isfinite(timeout)):
            raise InputError(
                "max_retries, retry_backoff and max_retry_wait must be non-negative and timeout positive and finite, "
                "got "
                f"{max_retries}, {retry_backoff}, {max_retry_wait} and {timeout}."
            )
        base_url = base_url.rstrip("/")
        self.url = base_url if base_url.endswith("/chat/completions") else f"{base_url}/chat/completions"
        self.public_url = public_url(self.url)
        self.model = model
        self.api_key_env = api_key_env
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self.num_workers = num_workers
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_retry_wait = max_retry_wait
        self.rate_limiter = RateLimiter(max_requests_per_minute)
        self.extra_body = dict(extra_body or {})
        self.send_seed = send_seed
        self.show_progress = show_progress
        self.name = public_spec(name) if name else f"openai:{model}"
        # The full URL as `base_url`: InferenceClient uses a URL ending in /chat/completions as is (it would append
        # /v1/chat/completions to a root without /v1). Without a key, `api_key` must still be a string, or the
        # client sends the Hugging Face token; the lower-case `authorization: None` header removes the header the
        # key makes (huggingface_hub drops headers set to None; tests/test_calls.py pins this).
        self._client = InferenceClient(
            base_url=self.url,
            api_key=self._api_key or "no-key",
            headers=None if self._api_key else {"authorization": None},
            timeout=timeout,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAIBackend(url={self.public_url!r}, model={self.model!r}, api_key=<{key}>)"

    def _redact(self, text: str) -> str:
        """`text` without the key (nor a fragment of it, nor any other secret: `errors.redact_secrets`)."""
        return redact_secrets(text, [self._api_key])

    def cache_key_fields(self) -> dict[str, Any]:
        """The endpoint's public URL (`public_url`: without credentials), `extra_body` and whether the seed is sent
        (never the key)."""
        return {"url": self.public_url, "extra_body": self.extra_body, "send_seed": self.send_seed}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_wait)
        return min(self.retry_backoff * 2**attempt * random.uniform(0.5, 1.0), self.max_retry_wait)

    def _complete(self, messages: Messages, options: dict[str, Any], stop: threading.Event) -> str:
        """One request, with its retries; the completion's text. Gives up (`_Stopped`) once `stop` is set."""
        unreachable = network_error_types()
        for attempt in range(self.max_retries + 1):
            self.rate_limiter.wait()
            if stop.is_set():
                raise _Stopped()
            retry_after = None
            try:
                output = self._client.chat_completion([dict(m) for m in messages], model=self.model, **options)
            except OfflineModeIsEnabled:
                raise BackendError(
                    f"Could not send requests to {self.public_url}: huggingface_hub's offline mode "
                    "(HF_HUB_OFFLINE=1) blocks every request of its InferenceClient, which this backend uses, even to "
                    "a local server; unset HF_HUB_OFFLINE for this command."
                ) from None
            except HfHubHTTPError as error:
                response = error.response
                status = response.status_code
                body = " ".join(response.text.split())
                message = f"POST {self.public_url} failed with HTTP {status}: {body[:300] or '(no body)'}"
                if status in (401, 403):
                    message += f" Check the API key (${self.api_key_env}, or the api_key argument in Python)."
                retry = status in self.RETRY_STATUSES or status >= 500
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            except TimeoutError:  # InferenceTimeoutError
                message = f"{self.public_url} did not answer within {self.timeout:g}s"
                retry = True
            except unreachable as error:  # TimeoutError, which it also holds, is caught above
                message = f"Could not reach {self.public_url}: {error}"
                retry = True
            except json.JSONDecodeError as error:
                body = " ".join(str(error.doc).split())
                raise BackendError(
                    self._redact(f"{self.public_url} answered with a body that is not JSON: {body[:300]!r}")
                ) from None
            except ValueError as error:  # JSON, but not a chat completion object (huggingface_hub's parser)
                raise BackendError(
                    self._redact(f"{self.public_url} answered with a body that is not a chat completion: {error}")
                ) from None
            else:
                return self._content(output)
            message = " ".join(self._redact(message).split())
            if not retry or attempt == self.max_retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise BackendError(message + tries) from None  # the message says it all; no chained HTTP error
            delay = self._backoff(attempt, retry_after)
            logger.warning("%s; retrying in %.2fs (%d/%d).", message, delay, attempt + 1, self.max_retries)
            stop.wait(delay)
        raise AssertionError("unreachable")

    def _content(self, output: Any) -> str:
        try:
            content = output.choices[0].message.content
        except (AttributeError, IndexError, KeyError, TypeError):
            raise BackendError(
                self._redact(f"{self.public_url} answered without choices[0].message.content: {str(output)[:300]}")
            ) from None
        return content or ""

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
        """Send the requests from `num_workers` threads; report each completion as it arrives."""
        options: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        if seed is not None and self.send_seed:
            options["seed"] = seed
        if self.extra_body:
            options["extra_body"] = self.extra_body
        outputs: list[str] = [""] * len(prompts)
        show = self.show_progress if show_progress is None else show_progress
        progress = tqdm(total=len(prompts), desc=self.name, unit="call", disable=None if show is None else not show)
        progress_lock = threading.Lock()
        stop = threading.Event()  # set on the first error (or Ctrl-C): no new request, no more retries

        def run(index: int) -> None:
            outputs[index] = self._complete(prompts[index], options, stop)
            if on_completion is not None:
                on_completion(index, outputs[index])
            with progress_lock:
                progress.update(1)

        workers = min(self.num_workers, len(prompts))
        try:
            if workers == 1:
                for index in range(len(prompts)):
                    run(index)
                return outputs
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="personalign-openai")
            futures = [pool.submit(run, index) for index in range(len(prompts))]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:  # the running requests finish (their completions are reported), nothing new is sent
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
            errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
            errors = [error for error in errors if not isinstance(error, _Stopped)]
            if errors:
                raise errors[0]
            return outputs
        finally:
            progress.close()


class _Stopped(Exception):
    """A request given up because another one failed (`OpenAIBackend`)."""


# ----------------------------------------------------------------------------------------------------- load_backend
def parse_backend_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split a backend spec into the backend kind and its arguments (see the module docstring for the syntax).

    Args:
        spec (`str`): `transformers:PATH_OR_ID`, `vllm:PATH_OR_ID`, `openai:BASE_URL@MODEL`, `openai:MODEL`, or a bare
            `PATH_OR_ID` (transformers).

    Returns:
        `tuple[str, dict[str, str]]`: The kind (`"transformers"`, `"vllm"` or `"openai"`) and the arguments:
            `{"model": ...}`, plus `"base_url"` for `openai` (from `$OPENAI_BASE_URL`, else OpenAI's, when the spec
            has none).

    Raises:
        `InputError`: If the spec is empty or an `openai` spec lacks its model.
    """
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    if not sep or kind.lower() not in BACKEND_KINDS:
        kind, rest = "transformers", spec  # a bare path or Hub id (which may itself contain ':' only in paths)
    kind = kind.lower()
    if not rest:
        raise InputError(f"Empty backend spec {spec!r}; expected e.g. 'transformers:PATH', 'openai:URL@MODEL'.")
    if kind != "openai":
        return kind, {"model": rest}
    if "://" in rest:
        base_url, at, model = rest.rpartition("@")
        if not at or not model or "://" not in base_url:
            raise InputError(
                f"Backend spec {spec!r} has a URL but no model: write 'openai:BASE_URL@MODEL', "
                "e.g. 'openai:http://localhost:8000/v1@my-model'."
            )
        return kind, {"base_url": base_url, "model": model}
    return kind, {"base_url": os.environ.get(OPENAI_BASE_URL_ENV) or DEFAULT_OPENAI_BASE_URL, "model": rest}


CREDENTIAL_PARAMETER = re.compile(r"key|token|secret|passw|auth|sig|credential|session", re.IGNORECASE)
"""Names of URL query parameters that carry a credential (`api_key`, `api-key`, `access_token`, `sig`, ...)."""


def public_url(url: str) -> str:
    """`url` as it may be shown, recorded or used as a cache key: without its credentials (`user:key@` before the
    host, query parameters named like a credential: `CREDENTIAL_PARAMETER`) nor its fragment. Two servers still
    have two public URLs.

    Args:
        url (`str`): An http(s) URL.

    Returns:
        `str`: E.g. `"https://host:8000/v1?api-version=2"` for
            `"https://u:KEY@host:8000/v1?api_key=KEY&api-version=2"`.
    """
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    kept = urlencode([(name, value) for name, value in query if not CREDENTIAL_PARAMETER.search(name)])
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, kept, ""))


def public_spec(spec: str) -> str:
    """A backend spec (or a backend's name) as it may be written anywhere (a file, the call cache, a model card, a
    log): an `openai:BASE_URL@MODEL` spec with its URL's credentials removed (`public_url`), and, as a safety net,
    any other secret masked (`errors.redact_secrets`). Other specs (paths, Hub ids, `openai:MODEL`) are unchanged.
    Keys come from the environment, never from a spec; a URL can still carry them.

    Args:
        spec (`str`): A spec of `load_backend`'s syntax.

    Returns:
        `str`: E.g. `"openai:http://host/v1@judge"` for `"openai:http://user:KEY@host/v1?api_key=KEY@judge"`.
    """
    spec = str(spec).strip()
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() == "openai" and "://" in rest:
        base_url, at, model = rest.rpartition("@")
        if at and "://" in base_url:
            spec = f"{kind}:{public_url(base_url)}@{model}"
    return redact_secrets(spec)


_BUILDERS: dict[str, Callable[..., GenerationBackend]] = {
    "transformers": lambda model, **kwargs: TransformersBackend.from_pretrained(model, **kwargs),
    "vllm": lambda model, **kwargs: VLLMBackend(model, **kwargs),
    "openai": lambda model, base_url, **kwargs: OpenAIBackend(base_url, model, **kwargs),
}


def load_backend(spec: str | GenerationBackend, **kwargs: Any) -> GenerationBackend:
    """Build a generation backend from a spec string (a ready backend is returned as is).

    Spec syntax (see the module docstring): `transformers:PATH_OR_ID` (or a bare `PATH_OR_ID`), `vllm:PATH_OR_ID`,
    `openai:BASE_URL@MODEL` (the last `@` separates the model), `openai:MODEL` (base URL from `$OPENAI_BASE_URL`, else
    `https://api.openai.com/v1`). OpenAI keys come from `$OPENAI_API_KEY`, never from the spec.

    Args:
        spec (`str` or `GenerationBackend`): The spec.
        **kwargs: Arguments of the backend's constructor (`batch_size`, `num_workers`, `tensor_parallel_size`, ...).

    Returns:
        `GenerationBackend`

    Raises:
        `InputError`: For a bad spec (`parse_backend_spec`), a local path that is not a model folder or, for
            transformers, not a causal LM (`check_local_model`), or a name that is neither a local folder nor a
            model the Hub gave (`hub_load_error`), or an OpenAI spec without its key (`check_api_key`).
        `MissingExtraError`: For `vllm:` without vLLM installed.

    Example:

    ```python
    >>> backend = load_backend("openai:http://localhost:8000/v1@meta-llama/Llama-3.1-8B-Instruct", num_workers=8)
    >>> backend.name
    'openai:meta-llama/Llama-3.1-8B-Instruct'
    ```
    """
    if isinstance(spec, GenerationBackend):
        return spec
    kind, arguments = parse_backend_spec(spec)
    check_local_model(kind, arguments["model"])  # one line for a path that is no (causal) model, before any load
    if kind == "openai" and kwargs.get("api_key") is None:
        check_api_key(arguments["base_url"], kwargs.get("api_key_env", OPENAI_API_KEY_ENV))
    return _BUILDERS[kind](**arguments, **kwargs)
