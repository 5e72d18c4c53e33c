"""Writing outputs safely: atomically, never over an existing output unless asked, in constant memory."""

from __future__ import annotations

import json
import os
import shutil
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
    """Fail early, before any work, if `path` exists and may not be replaced.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    return path


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on failure it is removed.

    Works for files and folders alike: whatever the body writes at the yielded path is what lands.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False (checked before any work is done).
    """
    path = ensure_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    temporary = staging / path.name
    try:
        yield temporary
        if not temporary.exists():
            raise RuntimeError(f"Nothing was written for {path}.")
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
