"""The errors personalign raises for problems a user can fix, as one hierarchy under `PersonalignError`.

Each user-facing class also subclasses the builtin the code raised before, so a Python caller's `except ValueError`
(or `except FileExistsError`, `except OSError`) keeps working:

- `InputError(PersonalignError, ValueError)`: bad data, config or arguments (defined here);
- `OutputExistsError(PersonalignError, FileExistsError)`: an output exists and overwriting was not asked for
  (`personalign.io`, beside the code that refuses it);
- `HubError(PersonalignError, OSError)`: a Hub operation failed for a reason the user can act on
  (`personalign.hub.auth`).

The command line prints any of them as one `error: <message>` line (exit code 1); any other exception is reported
as an internal error (a bug), see `personalign.cli.error_map`. Every message shown passes through `redact_secrets`,
the one place that masks keys and tokens (the Hub token, the OpenAI-compatible API key, credentials in a URL).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence


class PersonalignError(Exception):
    """Base class of every error personalign raises for a problem the user can fix."""

    def command_line_message(self) -> str:
        """The message as the command line shows it: the Python message, unless a subclass words it for the command
        line (options as flags, e.g. `--overwrite` for `overwrite=True`)."""
        return str(self)


class InputError(PersonalignError, ValueError):
    """Bad data, configuration or arguments: the message names the file / row / column / option and what was
    expected."""


def imported_error_types(by_module: Mapping[str, Sequence[str]]) -> tuple[type[BaseException], ...]:
    """The exception classes named in `by_module` (`{"yaml": ("YAMLError",)}`) of the modules already imported. A
    module that was never imported cannot have raised, so none is imported here (the CLI's start-up stays light)."""
    found = []
    for module_name, names in by_module.items():
        module = sys.modules.get(module_name)
        for name in names:
            error_type = getattr(module, name, None)
            if isinstance(error_type, type) and issubclass(error_type, BaseException):
                found.append(error_type)
    return tuple(found)


HTTP_TRANSPORT_ERRORS = {"httpx2": ("TransportError",), "httpx": ("TransportError",), "requests": ("ConnectionError",)}
"""The HTTP clients huggingface_hub and datasets use (huggingface_hub 1.x-2.x: httpx / httpx2; older: requests),
each with its base class of "the host could not be reached" errors, which are not `OSError`s in httpx."""


def network_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the Hub (or another host) is unreachable": `ConnectionError`, `TimeoutError`
    and the transport errors of the HTTP clients in `HTTP_TRANSPORT_ERRORS` already imported."""
    return (ConnectionError, TimeoutError, *imported_error_types(HTTP_TRANSPORT_ERRORS))


# ------------------------------------------------------------------------------------------------------ secrets
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")
"""The environment variables holding a secret personalign may send: the Hugging Face token (both names
huggingface_hub reads) and the key of OpenAI-compatible APIs (`personalign.inference.generation.OpenAIBackend`)."""

MIN_REDACTED_LENGTH = 8
"""Secrets from the environment shorter than this are not searched for (a placeholder such as `x` or vLLM's `EMPTY`
would mask every occurrence of it in a message); a fragment of a secret is masked from this many characters on."""

TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{20,}")
"""What a Hugging Face user access token looks like (`hf_` and its random part)."""

URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
"""The credentials part of a URL (`https://user:key@host`): everything between `://` and the first `@` of the host."""


def mask_fragments(text: str, secret: str, min_length: int = MIN_REDACTED_LENGTH) -> str:
    """`text` with every run of `min_length` or more characters that occurs in `secret` replaced by `***`, compared
    without case: the whole secret, its lower- or upper-case copy, and any part of it a server echoes (the key minus
    its last characters, a prefix, ...).

    Args:
        text (`str`): A message.
        secret (`str`): The secret; at least `min_length` characters (a shorter one is left to exact matching).
        min_length (`int`, *optional*, defaults to `8`): The shortest fragment masked.

    Returns:
        `str`: The message with the fragments masked (each maximal run becomes one `***`).
    """
    # Characters whose lower case is longer than one (e.g. "İ") are compared as they are, so positions line up.
    lowered = "".join(char.lower() if len(char.lower()) == 1 else char for char in text)
    secret = secret.lower()
    starts = {secret[i : i + min_length] for i in range(len(secret) - min_length + 1)}
    parts: list[str] = []
    index = 0
    while index < len(text):
        if lowered[index : index + min_length] in starts:
            end = index + min_length
            while end < len(text) and lowered[index : end + 1] in secret:
                end += 1
            parts.append("***")
            index = end
        else:
            parts.append(text[index])
            index += 1
    return "".join(parts)


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without secrets: the safety net for every message shown, logged or saved, whatever put a secret into
    it. Masked, each as `***`:

    - every secret of `secrets` and of the environment variables `SECRET_ENV_VARS` (from `MIN_REDACTED_LENGTH`
      characters; a shorter given secret only where it occurs exactly), in any case and any fragment of it of
      `MIN_REDACTED_LENGTH` or more characters (`mask_fragments`), as a server echoing part of a key would show it;
    - credentials in a URL (`https://user:key@host` -> `https://***@host`);
    - anything shaped like a Hugging Face token (`TOKEN_SHAPE`).

    Args:
        text (`str`): A message.
        secrets (`Iterable[str | None]`, *optional*): More secrets (a key given as an argument); `None`s are skipped.

    Returns:
        `str`: The message without a secret.

    Example:

    ```python
    >>> redact_secrets("key sk-trial-SECRET... refused; lower sk-trial-secret-123", ["sk-trial-SECRET-123"])
    'key ***... refused; lower ***'
    ```
    """
    from_environment = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    for secret in [*(s for s in secrets if s), *(s for s in from_environment if len(s) >= MIN_REDACTED_LENGTH)]:
        text = mask_fragments(text, secret) if len(secret) >= MIN_REDACTED_LENGTH else text.replace(secret, "***")
    return TOKEN_SHAPE.sub("***", URL_USERINFO.sub(r"\1***@", text))
