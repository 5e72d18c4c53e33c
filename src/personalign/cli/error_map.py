"""The typed error map at the command line's boundary (as huggingface_hub's CLI maps known exception types to
messages): a known user-facing error ends the command with one `error: <message>` line and exit code 1; Ctrl-C with
one line and exit code 130, SIGTERM with one line and exit code 143 (both after the `finally` blocks have removed
their staging folders); anything else is a bug in personalign and says so. `PERSONALIGN_DEBUG=1` adds the
traceback in every case."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rich.markup import escape

from ..errors import PersonalignError, imported_error_types, network_error_types, redact_secrets
from .common import console

USER_ERRORS: tuple[type[BaseException], ...] = (
    PersonalignError,  # InputError, OutputExistsError, HubError
    FileNotFoundError,  # also datasets' DatasetNotFoundError / DataFilesNotFoundError, huggingface_hub's
    PermissionError,  # LocalEntryNotFoundError (not in the local cache, offline)
    IsADirectoryError,
    NotADirectoryError,
    json.JSONDecodeError,
)
"""Exception types whose message is meant for the user (the user can fix the input, the path or the network)."""

LIBRARY_USER_ERRORS = {
    "yaml": ("YAMLError",),
    "datasets.exceptions": ("DatasetNotFoundError",),
    "huggingface_hub.errors": ("HfHubHTTPError", "HFValidationError"),
}
"""User-facing error types of the field's libraries, by module. They are looked up only in modules already imported
(`errors.imported_error_types`), so the map imports none of them."""

DEBUG_ENV = "PERSONALIGN_DEBUG"
INTERRUPTED_EXIT_CODE = 130
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM  # 143, the shell's code for a command ended by SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived (`terminate_on_sigterm`). A `BaseException`, as `KeyboardInterrupt` is, so that no
    `except Exception` takes it for an error, while every `finally` block on the way out runs."""


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler: raise `Terminated` where the program is. The default handler is restored first, so a
    second SIGTERM (or one during the clean-up) ends the process at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` (instead of ending the process on the spot, which leaves staging
    folders behind); the previous handler is restored after it. Outside the main thread, where Python cannot set a
    handler, nothing changes."""
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def user_error_types() -> tuple[type[BaseException], ...]:
    """`USER_ERRORS`, the `LIBRARY_USER_ERRORS` of the libraries imported so far, and the errors that mean a host is
    unreachable (`errors.network_error_types`: `ConnectionError`, `TimeoutError`, the HTTP clients' transport
    errors; also datasets' offline-mode error)."""
    return USER_ERRORS + imported_error_types(LIBRARY_USER_ERRORS) + network_error_types()


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is user-facing: one of `user_error_types()`, or raised `from` one (transformers, for one,
    re-raises huggingface_hub's "not in the cache" and "not a repo id" errors as a plain `OSError` from them)."""
    known = user_error_types()
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, known):
            return True
        seen = seen.__cause__
    return False


def error_message(error: BaseException) -> str:
    """The message of the `error:` line for `error`: its text on one line (a library's multi-line message joined
    with spaces; a personalign error as worded for the command line, `PersonalignError.command_line_message`),
    prefixed for an internal error with what it is and its type. A secret in it is masked (`errors.redact_secrets`:
    the `HF_TOKEN` / `OPENAI_API_KEY` values and fragments of them, credentials in a URL, anything shaped like a Hub
    token), whatever put it there."""
    message = error.command_line_message() if isinstance(error, PersonalignError) else str(error)
    text = redact_secrets(" ".join(line.strip() for line in message.splitlines() if line.strip()))
    if is_user_error(error):
        return text or type(error).__name__
    described = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return f"internal error in personalign (a bug; please report it): {described}"


def print_error(message: str) -> None:
    """One `error: <message>` line on stderr."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def report(error: BaseException) -> int:
    """Print `error` on stderr: its traceback under `PERSONALIGN_DEBUG=1`, then the `error:` line, then for an
    internal error (without the traceback) a hint how to get it.

    Returns:
        `int`: The exit code, 1.
    """
    debug = bool(os.environ.get(DEBUG_ENV))
    if debug:
        traceback.print_exception(error, file=sys.stderr)
        sys.stderr.flush()
    print_error(error_message(error))
    if not debug and not is_user_error(error):
        console.print(f"set {DEBUG_ENV}=1 for the traceback", highlight=False)
    return 1


CALLS_MODULE = "personalign.inference.calls"
"""The call layer, whose caches `resume_hint` reports when the command imported it."""


def caches_in_use() -> dict[str, int]:
    """The call cache folders this process has used, with the completions written to each
    (`personalign.inference.calls.caches_in_use`); empty when the call layer was not imported (the map imports
    nothing)."""
    calls = sys.modules.get(CALLS_MODULE)
    return calls.caches_in_use() if calls is not None else {}


def resume_hint(before: dict[str, int] | None = None) -> str:
    """For a command that used the call cache (`generate`, `judge`, `eval roleplay`, ...): that the calls answered
    so far are cached and the same command resumes; `""` otherwise.

    Args:
        before (`dict[str, int]`, *optional*): `caches_in_use()` when the command started (in-process callers run
            several commands): only what this command used counts.

    Returns:
        `str`: `"; the calls answered so far (N in this run) are in the call cache ...: run the same command again
        to resume ..."` or `""`.
    """
    before = before or {}
    in_use = {folder: count - before.get(folder, 0) for folder, count in caches_in_use().items()}
    in_use = {folder: count for folder, count in in_use.items() if folder not in before or count > 0}
    if not in_use:
        return ""
    written = sum(in_use.values())
    return (
        f"; the calls answered so far ({written:,} in this run) are in the call cache {', '.join(in_use)}: run the "
        "same command again to resume (cached calls are not sent again)"
    )


def report_interrupt(before: dict[str, int] | None = None) -> int:
    """Print the one line for Ctrl-C (with `resume_hint(before)`).

    Args:
        before (`dict[str, int]`, *optional*): `caches_in_use()` when the command started.

    Returns:
        `int`: 130, the shell's code for a command ended by SIGINT.
    """
    print_error("interrupted" + resume_hint(before))
    return INTERRUPTED_EXIT_CODE


def report_terminated(before: dict[str, int] | None = None) -> int:
    """Print the one line for SIGTERM (with `resume_hint(before)`).

    Args:
        before (`dict[str, int]`, *optional*): `caches_in_use()` when the command started.

    Returns:
        `int`: 143, the shell's code for a command ended by SIGTERM.
    """
    print_error("terminated (SIGTERM)" + resume_hint(before))
    return TERMINATED_EXIT_CODE
