"""Hub credentials: the token comes from the standard places (`HF_TOKEN`, `hf auth login`) and is never printed,
logged or saved; `redact_token` takes it out of any text shown to the user (through
`personalign.errors.redact_secrets`, the one masking function, which `inference/` uses too)."""

from __future__ import annotations

import huggingface_hub  # the package only (its names load on first use), so importing this module stays light

from ..errors import TOKEN_SHAPE, PersonalignError, redact_secrets


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
    """`text` with `token` masked as `***` (any case, any fragment of it of 8 or more characters: see
    `personalign.errors.redact_secrets`), for error messages that may quote it."""
    return redact_secrets(text, [token])


TOKEN_KEYS = ("hub_token",)
"""Config keys whose value is a token: never printed, in `--print-config` or in a message about a bad value."""


TOKEN_FLAGS = ("--hub_token", "--hub-token", "--token")
"""Command-line flags whose value is a token."""


def is_token_flag(flag: str, loose: bool = False) -> bool:
    """Whether `flag` (without any `=value`) takes a token: one of `TOKEN_FLAGS`, or, with `loose`, any flag whose
    name holds "tok" (a misspelling such as `--hub_tokn` or `--hub-tokenn`, among options that are unknown anyway)."""
    return flag in TOKEN_FLAGS or (loose and flag.startswith("-") and "tok" in flag.lower())


def mask_token_arguments(argv: list[str], loose: bool = False) -> list[str]:
    """`argv` with the value of every token flag (`is_token_flag`: `--hub_token X` or `--hub_token=X`) and every
    argument shaped like a token (`TOKEN_SHAPE`) replaced by `***`, for echoing a command or its unknown options.

    Args:
        argv (`list[str]`): The arguments.
        loose (`bool`, *optional*, defaults to `False`): Also mask the value of a flag whose name holds "tok" (for
            unknown options, which may be a misspelled `--hub_token`; a known option such as `--max_new_tokens`
            keeps its value when echoing a whole command).

    Returns:
        `list[str]`: The masked arguments.
    """
    masked = list(argv)
    for index, part in enumerate(masked):
        flag, equals, _ = part.partition("=")
        if equals and is_token_flag(flag, loose):
            masked[index] = f"{flag}=***"
        elif is_token_flag(part, loose) and index + 1 < len(masked):
            masked[index + 1] = "***"
    return [TOKEN_SHAPE.sub("***", part) for part in masked]
