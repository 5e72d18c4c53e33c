"""Text generation behind one interface, for judges, LLM preference inference and in-context generation.

A backend turns a batch of chat prompts (each a list of `{"role", "content"}` messages) into one completion each:

- `TransformersBackend` (the default): a local `transformers` causal LM; prompts go through the tokenizer's chat
  template, are left-padded and generated in length-sorted batches.
- `VLLMBackend`: vLLM's offline `LLM.chat` (the optional extra `pip install "personalign[vllm]"`).
- `OpenAIBackend`: any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, a vLLM or TGI server, ...), over
  the standard library's HTTP client.

`load_backend` builds one from a spec string, for command lines:

| spec                                     | backend                                                          |
|------------------------------------------|------------------------------------------------------------------|
| `transformers:PATH_OR_ID` or `PATH_OR_ID`| `TransformersBackend.from_pretrained(PATH_OR_ID)`                |
| `vllm:PATH_OR_ID`                        | `VLLMBackend(PATH_OR_ID)`                                        |
| `openai:BASE_URL@MODEL`                  | `OpenAIBackend(BASE_URL, MODEL)`, e.g. `openai:http://localhost:8000/v1@meta-llama/Llama-3.1-8B-Instruct` |
| `openai:MODEL`                           | `OpenAIBackend($OPENAI_BASE_URL or https://api.openai.com/v1, MODEL)` |

Importing this module imports neither torch nor vLLM; each backend imports what it needs when built.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from ..errors import InputError
from ..personas.persona import Messages

logger = logging.getLogger(__name__)

VLLM_INSTALL_HINT = 'pip install "personalign[vllm]"'
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
BACKEND_KINDS = ("transformers", "vllm", "openai")


class BackendError(RuntimeError):
    """A backend could not produce a completion (for example, the HTTP endpoint answered with an error)."""


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
    in reports.
    """

    name: str = "backend"

    def generate(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
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

        Returns:
            `list[str]`: The completions, in the order of `prompts`.
        """
        prompts = _check_prompts(prompts)
        if not prompts:
            return []
        return self._generate(prompts, max_new_tokens, temperature, top_p, seed)

    @abstractmethod
    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        """One completion per prompt; `generate` has already checked the prompts and handled an empty batch."""

    def __call__(self, prompts: Sequence[Messages], **kwargs: Any) -> list[str]:
        return self.generate(prompts, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ------------------------------------------------------------------------------------------------- transformers
class TransformersBackend(GenerationBackend):
    """Local generation with a `transformers` causal LM.

    Prompts are rendered with the tokenizer's chat template (generation prompt added), sorted by length (longest
    first) and generated in left-padded batches, then returned in the input order. Greedy decoding
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
        if getattr(tokenizer, "chat_template", None) is None:
            raise InputError(
                "The tokenizer has no chat template, so chat prompts cannot be rendered; set `tokenizer.chat_template` "
                "or use an instruction-tuned model's tokenizer."
            )
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.generation_kwargs = dict(generation_kwargs or {})
        path = getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__
        self.name = name or f"transformers:{path}"

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

        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, **(model_kwargs or {})
        )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        kwargs.setdefault("name", f"transformers:{model_name_or_path}")
        return cls(model, tokenizer, **kwargs)

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

    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
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
        show = self.show_progress
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
        finally:
            progress.close()
            self.model.train(was_training)
        return outputs


# --------------------------------------------------------------------------------------------------------- vLLM
def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
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
        `ImportError`: If vLLM is not installed, naming the extra to install.
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
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.name = name or f"vllm:{label}"

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
def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class OpenAIBackend(GenerationBackend):
    """Generation through an OpenAI-compatible chat completions endpoint (`POST {base_url}/chat/completions`).

    Works with OpenAI and with servers speaking the same protocol (`vllm serve`, TGI, llama.cpp, ...). Requests are
    sent concurrently by `num_workers` threads; the completions come back in the input order. The API key is sent as
    a bearer token and never logged, printed or shown in errors.

    Args:
        base_url (`str`): The API root, e.g. `"http://localhost:8000/v1"` (a URL ending in `/chat/completions` is used
            as is).
        model (`str`): The `model` field of the requests.
        api_key (`str`, *optional*): The key; by default the environment variable named by `api_key_env`. No
            `Authorization` header is sent when there is none (local servers).
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`): Where to read the key from.
        num_workers (`int`, *optional*, defaults to `4`): Concurrent requests.
        timeout (`float`, *optional*, defaults to `120.0`): Seconds per request.
        max_retries (`int`, *optional*, defaults to `3`): Retries of a request after a connection error, HTTP 408,
            409, 429 or 5xx, with exponential backoff.
        retry_backoff (`float`, *optional*, defaults to `1.0`): Seconds before the first retry (doubled each time).
        extra_body (`dict`, *optional*): More fields of every request body (e.g. `{"stop": ["\\n"]}`).
        send_seed (`bool`, *optional*, defaults to `True`): Send the `seed` field (some servers reject it).
        name (`str`, *optional*): Name in reports; `openai:<model>` by default.
    """

    RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

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
        extra_body: Mapping[str, Any] | None = None,
        send_seed: bool = True,
        name: str | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base_url must start with http:// or https://, got {base_url!r}.")
        if num_workers < 1:
            raise InputError(f"num_workers must be at least 1, got {num_workers}.")
        base_url = base_url.rstrip("/")
        self.url = base_url if base_url.endswith("/chat/completions") else f"{base_url}/chat/completions"
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self.num_workers = num_workers
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.extra_body = dict(extra_body or {})
        self.send_seed = send_seed
        self.name = name or f"openai:{model}"

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAIBackend(url={self.url!r}, model={self.model!r}, api_key=<{key}>)"

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        delay = self.retry_backoff
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                detail = error.read().decode("utf-8", errors="replace").strip()
                message = (
                    f"POST {self.url} failed with HTTP {error.code} {error.reason}: {detail[:500] or '(no body)'}"
                )
                if error.code in (401, 403):
                    message += " Check the API key (argument api_key or the environment variable)."
                retry = error.code in self.RETRY_STATUSES
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                message = f"Could not reach {self.url}: {reason}"
                retry = True
            except json.JSONDecodeError as error:
                raise BackendError(f"{self.url} answered with a body that is not JSON: {error}") from None
            message = _redact(message, self._api_key)
            if not retry or attempt == self.max_retries:
                raise BackendError(message) from None  # the message says it all; no chained HTTPError
            logger.warning("%s; retrying in %.1fs (%d/%d).", message, delay, attempt + 1, self.max_retries)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _complete(self, messages: Messages, options: dict[str, Any]) -> str:
        payload = self._post({"model": self.model, "messages": [dict(m) for m in messages], **options})
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.url} answered without choices[0].message.content: {json.dumps(payload)[:300]}"
            ) from None
        return content or ""

    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        options: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        if seed is not None and self.send_seed:
            options["seed"] = seed
        options.update(self.extra_body)
        if self.num_workers == 1 or len(prompts) <= 1:
            return [self._complete(messages, options) for messages in prompts]
        with ThreadPoolExecutor(max_workers=min(self.num_workers, len(prompts))) as pool:
            return list(pool.map(lambda messages: self._complete(messages, options), prompts))


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
    return _BUILDERS[kind](**arguments, **kwargs)
