"""Hub credentials: the token comes from the standard places (`HF_TOKEN`, `hf auth login`) and is never printed,
logged or saved; `redact_token` takes it out of any text shown to the user."""

from __future__ import annotations

import huggingface_hub  # the package only (its names load on first use), so importing this module stays light

from ..errors import PersonalignError, imported_error_types


class HubError(PersonalignError, OSError):
    """A Hub operation failed for a reason the user can act on (no token, Hub unreachable, ...)."""


def resolve_token(token: str | None = None) -> str:
    """The Hub token: the argument, else `HF_TOKEN` / the saved login. Never printed or logged.

    Raises:
        `HubError`: If there is none, with what to do about it.
    """
    token = token or huggingface_hub.get_token()
    if not token:
        raise HubError(
            "no Hugging Face token found: set HF_TOKEN or run `hf auth login` (the token is never printed)."
        )
    return token


def redact_token(text: str, token: str) -> str:
    """`text` with every occurrence of `token` replaced by `***` (for error messages that may quote it)."""
    return text.replace(token, "***") if token else text


HTTP_TRANSPORT_ERRORS = {"httpx2": ("TransportError",), "httpx": ("TransportError",), "requests": ("ConnectionError",)}
"""The HTTP clients huggingface_hub and datasets use (huggingface_hub 1.x-2.x: httpx / httpx2; older: requests),
each with its base class of "the host could not be reached" errors, which are not `OSError`s in httpx."""


def network_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the Hub (or another host) is unreachable": `ConnectionError`, `TimeoutError`
    and the transport errors of the HTTP clients in `HTTP_TRANSPORT_ERRORS` already imported."""
    return (ConnectionError, TimeoutError, *imported_error_types(HTTP_TRANSPORT_ERRORS))


TOKEN_FLAGS = ("--hub_token", "--hub-token", "--token")
"""Command-line flags whose value is a token."""


def mask_token_arguments(argv: list[str]) -> list[str]:
    """`argv` with the value of every `TOKEN_FLAGS` flag (`--hub_token X` or `--hub_token=X`) replaced by `***`,
    for echoing a command."""
    masked = list(argv)
    for index, part in enumerate(masked):
        flag, equals, _ = part.partition("=")
        if flag in TOKEN_FLAGS and equals:
            masked[index] = f"{flag}=***"
        elif part in TOKEN_FLAGS and index + 1 < len(masked):
            masked[index + 1] = "***"
    return masked
