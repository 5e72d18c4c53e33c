"""Writing outputs safely: atomically, never over an existing output unless asked, in constant memory."""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from datasets import Features

from .errors import InputError, PersonalignError

SUPPORTED_ROW_FORMATS = (".parquet", ".jsonl")


class OutputExistsError(PersonalignError, FileExistsError):
    """An output already exists and overwriting was not requested."""


def ensure_writable(path: str | Path, overwrite: bool = False) -> Path:
    """Fail early, before any work, if `path` exists and may not be replaced, or cannot be written: its nearest
    existing parent must be a folder this process may create entries in (the missing ones between are created on
    writing). The messages name `path` as the user gave it, never a staging path.

    Args:
        path (`str` or `Path`): The output file or folder.
        overwrite (`bool`, *optional*, defaults to `False`): Whether an existing `path` may be replaced.

    Returns:
        `Path`: `path`.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False.
        `InputError`: If a parent of `path` is a file, or the nearest existing parent is not writable.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write there, {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write there, no permission to write in {parent}.")
    return path


STAGING_SUFFIX = ".partial"
"""The suffix of the hidden staging folders of `atomic_output` (`.<name>.<pid>.<random>.partial`)."""


def staging_prefix(path: Path) -> str:
    """The start of the name of `path`'s staging folders, up to the owner's process id."""
    return f".{path.name}."


def remove_stale_staging(path: str | Path) -> list[Path]:
    """Remove the staging folders of `path` that an earlier run left behind (killed before it could clean up): those
    named `.<name>.<pid>.<random>.partial` whose process `<pid>` is gone. Folders of a live process (another run
    writing the same output) and names of another form are left alone.

    Args:
        path (`str` or `Path`): The output whose staging folders to look for (beside it).

    Returns:
        `list[Path]`: The folders removed.
    """
    path = Path(path)
    prefix = staging_prefix(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*{STAGING_SUFFIX}"):
        owner, _, random_part = candidate.name[len(prefix) : -len(STAGING_SUFFIX)].partition(".")
        if not (owner.isdigit() and random_part and "." not in random_part) or process_alive(int(owner)):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (one of another user's counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_umask() -> int:
    """This process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give `path` and everything under it the modes a new file or folder gets under the umask: folders `0o777`,
    files `0o666` (`0o777` when any execute bit is set), less the umask. Writers that stage through a private
    temporary file (safetensors writes a 0600 file and renames it) otherwise leave outputs readable by their owner
    only. Links are left alone.

    Args:
        path (`str` or `Path`): A file or folder this process wrote.
    """
    mask = current_umask()
    path = Path(path)
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if entry.is_symlink():
            continue
        mode = entry.stat().st_mode
        full = 0o777 if entry.is_dir() or mode & 0o111 else 0o666
        if stat.S_IMODE(mode) != full & ~mask:
            os.chmod(entry, full & ~mask)


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on failure it is removed.

    Works for files and folders alike: whatever the body writes at the yielded path is what lands, with the modes the
    umask gives new files and folders (`follow_umask`). The temporary path lies in a hidden staging folder
    `.<name>.<pid>.<random>.partial`; staging folders of `path` left by a run that was killed are removed first
    (`remove_stale_staging`).

    Args:
        path (`str` or `Path`): The output file or folder.
        overwrite (`bool`, *optional*, defaults to `False`): Whether an existing `path` may be replaced.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False (checked before any work is done).
        `InputError`: If `path` cannot be written (`ensure_writable`), checked before any work is done.
    """
    path = ensure_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path)
    staging = Path(
        tempfile.mkdtemp(prefix=f"{staging_prefix(path)}{os.getpid()}.", suffix=STAGING_SUFFIX, dir=path.parent)
    )
    temporary = staging / path.name
    try:
        yield temporary
        if not temporary.exists():
            raise RuntimeError(f"Nothing was written for {path}.")
        follow_umask(temporary)
        if path.exists():
            # Move the old output aside first, so a crash between the two renames leaves one of them whole.
            backup = staging / f"{path.name}.previous"
            os.replace(path, backup)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def write_rows(
    rows: Iterable[dict[str, Any]],
    path: str | Path,
    features: Features | None = None,
    overwrite: bool = False,
    batch_size: int = 10_000,
    total: int | None = None,
    progress: bool = True,
) -> int:
    """Stream rows to a `.parquet` or `.jsonl` file, batch by batch, atomically.

    Args:
        rows (`Iterable[dict]`): The rows; consumed once, never held whole in memory.
        path (`str` or `Path`): Output file; its suffix picks the format.
        features (`datasets.Features`, *optional*): Schema for parquet (required there, so types never depend on
            the first batch); also embedded as the Hugging Face schema metadata, as `Dataset.to_parquet` does.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing output.
        batch_size (`int`, *optional*, defaults to `10000`): Rows per parquet row group / write.
        total (`int`, *optional*): Expected row count, for the progress bar.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar.

    Returns:
        `int`: The number of rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.progress import Progress

    path = Path(path)
    if path.suffix not in SUPPORTED_ROW_FORMATS:
        raise InputError(
            f"{path}: unsupported output format {path.suffix!r}; use one of {', '.join(SUPPORTED_ROW_FORMATS)}."
        )
    if path.suffix == ".parquet" and features is None:
        raise InputError(f"{path}: writing parquet needs the dataset features.")
    written = 0
    with atomic_output(path, overwrite=overwrite) as temporary, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"writing {path.name}", total=total)
        if path.suffix == ".parquet":
            schema = features.arrow_schema.with_metadata(
                {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}
            )
            with pq.ParquetWriter(temporary, schema) as writer:
                for batch in _batches(rows, batch_size):
                    table = pa.Table.from_pylist([features.encode_example(row) for row in batch], schema=schema)
                    writer.write_table(table)
                    written += len(batch)
                    bar.update(task, advance=len(batch))
        else:
            with temporary.open("w", encoding="utf-8") as handle:
                for batch in _batches(rows, batch_size):
                    handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in batch)
                    written += len(batch)
                    bar.update(task, advance=len(batch))
    return written


def require_local_path(name: str, kind: str, suffixes: tuple[str, ...] = ()) -> None:
    """Fail, naming `name`, when it was meant as a local path but does not exist. A Hub repo id is `name` or
    `owner/name`; something starting with `.`, `/` or `~`, with more than one `/`, or ending in one of `suffixes`
    is a path. Without this check a missing local folder reaches the Hub client, whose message is about repo ids.

    Args:
        name (`str`): A local path or a Hub repo id.
        kind (`str`): What it is, for the message (`"dataset"`, `"model"`, ...).
        suffixes (`tuple[str, ...]`, *optional*): File suffixes that mark a path (e.g. `(".json", ".parquet")`).

    Raises:
        `InputError`: `"<kind> <name>: no such file or folder."`.
    """
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).suffix in suffixes
    if looks_local and not Path(name).expanduser().exists():
        raise InputError(f"{kind} {name}: no such file or folder.")
