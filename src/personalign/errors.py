"""The errors personalign raises for problems a user can fix, as one hierarchy under `PersonalignError`.

Each user-facing class also subclasses the builtin the code raised before, so a Python caller's `except ValueError`
(or `except FileExistsError`, `except OSError`) keeps working:

- `InputError(PersonalignError, ValueError)`: bad data, config or arguments (defined here);
- `OutputExistsError(PersonalignError, FileExistsError)`: an output exists and overwriting was not asked for
  (`personalign.io`, beside the code that refuses it);
- `HubError(PersonalignError, OSError)`: a Hub operation failed for a reason the user can act on
  (`personalign.hub.auth`).

The command line prints any of them as one `error: <message>` line (exit code 1); any other exception is reported
as an internal error (a bug), see `personalign.cli.error_map`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence


class PersonalignError(Exception):
    """Base class of every error personalign raises for a problem the user can fix."""


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
