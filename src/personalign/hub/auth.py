"""Hub credentials: the token comes from the standard places (`HF_TOKEN`, `hf auth login`) and is never printed,
logged or saved; `redact_token` takes it out of any text shown to the user."""

from __future__ import annotations

import huggingface_hub  # the package only (its names load on first use), so importing this module stays light

from ..errors import PersonalignError


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
