"""Loading a personalign dataset: one reader for every source a builder, trainer or command takes.

A source is any of:

- a Hub dataset id, read with `datasets.load_dataset(name, config)`;
- a local `.parquet` / `.jsonl` / `.json` file (JSON lines, or a JSON list of rows as AlignX's benchmark files:
  P-Soups, UF-P-4, PRISM): the `train` split;
- a local folder of such files, split by file name as `datasets.load_dataset(folder)` splits it; each row keeps its
  file, so that messages name a bad row by its file and its row in that file, and results can be broken down by
  file (benchmark);
- a folder written by `personalign build-dataset` (or any folder whose card declares configs): its card's configs
  resolved as `datasets.load_dataset(folder, config)` resolves them, each data file then read on its own (see
  `_read_config` for why);
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`.

`load_source` reads every split of one config, keeping where each row comes from (`DatasetSource`); `load_rows`
returns one split; `load_configs` every config. Without a config, a source that declares several takes its primary
one (`PRIMARY_CONFIGS`). Bad input fails with one line naming the file (or the Hub split), the row and the column.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import (
    Dataset,
    DatasetDict,
    concatenate_datasets,
    get_dataset_config_names,
    load_dataset,
    load_dataset_builder,
    load_from_disk,
)
from datasets.data_files import DataFilesDict, EmptyDatasetError, get_data_patterns
from datasets.exceptions import DatasetGenerationError

from ..errors import InputError
from ..io import require_local_path
from ..personas.space import json_kind
from ..row_names import RowNames

DATA_FILE_SUFFIXES = (".parquet", ".jsonl", ".json")
"""The local data files a source may hold."""
PRIMARY_CONFIGS = ("counterfactual", "raw", "pba", "ica", "preference")
"""The config read when none is asked for, the first one a source declares: the rows of a `personalign
build-dataset multifacet-cf` build (`counterfactual`), the validated rows of an AlignX build (`raw`), else its
ready-rendered rows (`pba`, then `ica`), the per-turn rows of an ALOE build (`preference`). A source that declares none of them gets `datasets`' choice: the config its
card marks `default`, or its only one."""
SAVE_TO_DISK_FILES = ("dataset_dict.json", "state.json")
"""The files that mark a folder written by `DatasetDict.save_to_disk` / `Dataset.save_to_disk`."""


# -------------------------------------------------------------------------------------------- naming rows
# `RowNames` lives in `personalign.row_names` (light, for modules that must not import `datasets`).


def value_kind(value: Any) -> str:
    """What a value is, for "expected ..., got <kind>" messages: `"null (no value)"` for a missing or null one (a
    column some rows or files lack reads as null), else its type name."""
    return "null (no value)" if value is None else type(value).__name__


def require_columns(dataset: Dataset, required: Sequence[str], where: str, row_kind: str) -> None:
    """Fail with the file (or Hub split) and the missing columns when a source lacks what its rows need.

    Args:
        dataset (`Dataset`): The rows.
        required (`Sequence[str]`): The columns the rows need.
        where (`str`): The file or Hub split, for the message.
        row_kind (`str`): What a row is, for the message (`"an AlignX"`).

    Raises:
        `InputError`: If a column is missing, naming `where`, the missing and the found columns.
    """
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(repr(c) for c in missing)}; {row_kind} row needs "
            f"{', '.join(required)} (found: {', '.join(dataset.column_names)})."
        )


def batch_rows(batch: Mapping[str, list]) -> list[dict[str, Any]]:
    """The rows of a column batch (as `Dataset.map(batched=True)` and `Dataset.iter` give them)."""
    size = len(next(iter(batch.values())))
    return [{key: values[i] for key, values in batch.items()} for i in range(size)]


# ------------------------------------------------------------------------------------------- local files
def data_files(folder: str | Path) -> dict[str, list[Path]]:
    """The data files of a local folder by split, with the split rules of `datasets.load_dataset(folder)` (file
    names containing `train`, `test`, `validation`, ...; everything is `train` otherwise).

    Uses `datasets.data_files.get_data_patterns` / `DataFilesDict.from_patterns` (not exported at the package top),
    the functions `load_dataset` itself resolves a folder with; pinned by
    `tests/test_alignx_builder.py::test_data_files_follow_the_datasets_split_rules`.

    Raises:
        `InputError`: If the folder holds no `.parquet` / `.jsonl` / `.json` file.
    """
    folder = Path(folder)
    try:
        patterns = get_data_patterns(str(folder))
    except EmptyDatasetError:
        raise InputError(f"{folder}: no {', '.join(DATA_FILE_SUFFIXES)} files found.") from None
    resolved = DataFilesDict.from_patterns(patterns, base_path=str(folder))
    splits = {
        str(split): sorted(Path(f) for f in files if Path(f).suffix in DATA_FILE_SUFFIXES)
        for split, files in resolved.items()
    }
    splits = {split: files for split, files in splits.items() if files}
    if not splits:
        raise InputError(f"{folder}: no {', '.join(DATA_FILE_SUFFIXES)} files found.")
    return splits


def json_syntax_error(path: str | Path) -> str | None:
    """Why a local `.json` / `.jsonl` file is not rows, as one message naming the file and the line (1-based, as
    an editor shows it) and what was expected; `None` if every row parses (the trouble is elsewhere). Read only after
    `datasets` failed on the file: its own messages give a character offset ("position 1376") or a row of one
    block, not the line.

    A file opening with `[` is read as a JSON list of objects (whole); any other as JSON lines (one object per line,
    blank lines skipped), line by line.

    Args:
        path (`str` or `Path`): The file.

    Returns:
        `str` or `None`: `"<file>, line <n>, column <c>: not valid JSON (<reason>); expected ..."`, the same for
        bytes that are not UTF-8 (`"...: not UTF-8 text (byte 0xff at byte offset <o> of the file: ...)"`), or the
        line or item that is not an object, or `None`.
    """
    path = Path(path)
    data = path.read_bytes()
    raw = data.removeprefix(codecs.BOM_UTF8)
    list_file = raw.lstrip().startswith(b"[")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        # Line and column (in bytes, 1-based) as an editor shows them, and the offset for `cmp` / `hexdump`.
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        return (
            f"{path}, line {line}, column {column}: not UTF-8 text (byte 0x{data[error.start]:02x} at byte offset "
            f"{error.start} of the file: {error.reason}); expected a UTF-8 text file (save it as UTF-8)."
        )
    if list_file:
        expected = "expected a JSON list of objects (one per row)"
        try:
            rows = json.loads(raw)
        except json.JSONDecodeError as error:
            return f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); {expected}."
        for index, row in enumerate(rows if isinstance(rows, list) else []):
            if not isinstance(row, dict):
                return f"{path}: item {index} (0-based) of the JSON list is a {json_kind(row)}; {expected}."
        return f"{path}: holds no rows (an empty JSON list); expected rows." if rows == [] else None
    expected = "expected one JSON object (a row) per line"
    if not raw.strip():  # blank lines only: `datasets` says its split "corresponds to no data"
        return f"{path}: holds no rows (only blank lines); {expected}."
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            return f"{path}, line {number}, column {error.colno}: not valid JSON ({error.msg}); {expected}."
        if not isinstance(row, dict):
            return f"{path}, line {number}: a JSON {json_kind(row)}; {expected}."
    return None


def json_file_rows(path: str | Path) -> Iterator[Any]:
    """The rows of a local `.json` / `.jsonl` file as Python's `json` parses them, in the order `datasets` reads
    them: a JSON list's items, or one row per line with text (blank lines skipped, a leading BOM dropped).

    For a second look at a file `datasets` read lossily: a column of mixed JSON types becomes a `datasets.Json`
    column, whose encoding stores a string that is itself valid JSON (`"1"`, `"true"`) as that JSON, so it reads
    back as the number or boolean. Here each value keeps its JSON type. Assumes the file parses (it was loaded).

    Args:
        path (`str` or `Path`): The file.

    Returns:
        `Iterator`: The rows (objects, as `dict`).
    """
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(1 << 16).removeprefix(codecs.BOM_UTF8)
        if head.lstrip().startswith(b"["):
            yield from json.loads(head + handle.read())
            return
        handle.seek(0)
        for number, line in enumerate(handle):
            line = line.removeprefix(codecs.BOM_UTF8) if number == 0 else line
            if line.strip():
                yield json.loads(line)


DATASETS_JSON_LOGGER = "datasets.packaged_modules.json.json"
"""The logger of `datasets`' JSON builder, which logs "Failed to load JSON from file ..." before raising; `_reading`
silences it, since our own error line names the file, the line and the reason."""


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn `datasets`' failure to parse a data file (bad JSON, no rows, ...) into one line naming the file (and,
    for bad JSON, the line), without `datasets`' own log line about it (`DATASETS_JSON_LOGGER`)."""
    builder_logger = logging.getLogger(DATASETS_JSON_LOGGER)
    level = builder_logger.level
    builder_logger.setLevel(logging.CRITICAL)
    try:
        yield
    except (DatasetGenerationError, ValueError) as error:
        # ValueError: `datasets` refuses a file with no rows (`[]`, an empty file) with "corresponds to no data".
        located = json_syntax_error(path) if path.suffix in (".json", ".jsonl") else None
        if located:
            raise InputError(located) from None
        reason = " ".join(str(error.__cause__ or error).split())
        raise InputError(
            f"{path}: cannot read it as a {', '.join(DATA_FILE_SUFFIXES)} data file ({reason})."
        ) from None
    finally:
        builder_logger.setLevel(level)


def read_data_file(path: str | Path) -> Dataset:
    """One local `.parquet` / `.jsonl` / `.json` file (JSON lines or a JSON list of rows) as a memory-mapped
    `Dataset`.

    Raises:
        `InputError`: If the file has another suffix or cannot be parsed, naming the file (and for bad JSON the line,
            1-based, and what was expected); a parquet file whose footer cannot be read (truncated, or another
            format) before `datasets` sees it.
    """
    path = Path(path)
    if path.suffix not in DATA_FILE_SUFFIXES:
        raise InputError(f"{path}: expected a {', '.join(DATA_FILE_SUFFIXES)} file.")
    if path.is_file() and path.stat().st_size == 0:  # `datasets` fails on it with a bare StopIteration
        raise InputError(f"{path}: the file is empty; expected rows.")
    small_json = path.suffix == ".json" and path.is_file() and path.stat().st_size <= 64
    if small_json and "".join(path.read_text(encoding="utf-8", errors="replace").split()) in ("[]", "{}"):
        raise InputError(f"{path}: holds no rows (an empty JSON list); expected rows.")
    if path.suffix == ".parquet":
        require_parquet(path)
    with _reading(path):
        if path.suffix == ".parquet":
            return Dataset.from_parquet(str(path))
        dataset = Dataset.from_json(str(path))
        # pyarrow's JSON reader keeps bytes that are not UTF-8 in text columns, which then fail only when a row is
        # read (UnicodeDecodeError); a full validation (C++, over the memory-mapped table) finds them here.
        dataset.data.table.validate(full=True)
        return dataset


def require_parquet(path: str | Path) -> None:
    """Fail with one line naming `path` when it is not a readable parquet file (garbage, another format, or cut
    short: its footer, the file's last bytes, is missing). Reads only the footer (`pyarrow.parquet.read_metadata`).

    Raises:
        `InputError`: `"<file>: not a readable parquet file (<reason>); ..."`.
    """
    try:
        pq.read_metadata(path)
    except (pa.ArrowException, OSError) as error:
        reason = " ".join(str(error).split())
        raise InputError(
            f"{path}: not a readable parquet file ({reason}); expected a complete .parquet file (truncated by an "
            "interrupted copy or download?)."
        ) from None


def _file_name(file: Path, folder: Path) -> str:
    """A data file for messages: the folder as given joined with the file's path in it (`"bench/prism.json"`)."""
    try:
        return str(folder / file.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(file)


def _benchmark_name(file: Path, folder: Path) -> str:
    """A data file's path in its folder without the suffix (`"p_soups"`, `"prism/test"`): its benchmark's name."""
    try:
        return file.resolve().relative_to(folder.resolve()).with_suffix("").as_posix()
    except ValueError:
        return file.stem


def _concatenate(parts: Sequence[tuple[str, Dataset]]) -> Dataset:
    """The parts of one split as one `Dataset`. A column that some files lack (benchmark files differ in their
    optional columns) is null in their rows; columns of conflicting types are an error naming the files."""
    if len(parts) == 1:
        return parts[0][1]
    features: dict[str, Any] = {}
    for _, part in parts:
        for name, feature in part.features.items():
            features.setdefault(name, feature)
    filled = []
    for _, part in parts:
        for name in features:
            if name not in part.column_names:
                part = part.add_column(name, [None] * len(part), feature=features[name])
        filled.append(part.select_columns(list(features)))
    try:
        return concatenate_datasets(filled)
    except ValueError as error:
        reason = " ".join(str(error).split())
        raise InputError(
            f"the files {', '.join(name for name, _ in parts)} cannot form one split: their columns differ in type "
            f"({reason}); pass them one at a time."
        ) from None


# ---------------------------------------------------------------------------------------------- the loader
@dataclass
class DatasetSource:
    """One config of a dataset as `load_source` reads it: every split, as the parts (files, or the Hub split) it
    was read from, in order.

    Args:
        name (`str`): The source as given: a Hub id, a file or a folder.
        config (`str` or `None`): The config read (`None` for a source that declares none).
        configs (`tuple[str, ...]`): The configs the source declares in its card (`"default"` left out).
        parts (`dict[str, list[tuple[str, Dataset]]]`): Each split's parts as `(where, rows)`: `where` names the
            file (or the Hub split) for messages.
        folder (`Path`, *optional*): The folder of data files the splits were read from, where they were: its rows
            keep their files (`files`, `benchmarks`).
        benchmarks_by_split (`dict[str, list[str]]`): For a folder, each split's files as benchmark names (their
            path in the folder without the suffix).
        load_kwargs (`dict`): What was passed on to `datasets.load_dataset` (e.g. `revision`, `token`).
    """

    name: str
    config: str | None
    configs: tuple[str, ...]
    parts: dict[str, list[tuple[str, Dataset]]]
    folder: Path | None = None
    benchmarks_by_split: dict[str, list[str]] = field(default_factory=dict)
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    _joined: dict[str, Dataset] = field(default_factory=dict, init=False, repr=False)

    @property
    def splits(self) -> list[str]:
        """The split names, in the source's order."""
        return list(self.parts)

    def where(self, split: str) -> str:
        """The split for messages: `"<source> [<split>]"`."""
        return f"{self.name} [{split}]"

    def split(self, split: str) -> Dataset:
        """The rows of one split, its files concatenated (a column some files lack is null in their rows).

        Raises:
            `InputError`: If there is no such split (naming those there are), or the files' columns conflict.
        """
        if split not in self.parts:
            raise InputError(f"dataset {self.name} has no split {split!r}; its splits: {', '.join(self.parts)}.")
        if split not in self._joined:
            self._joined[split] = _concatenate(self.parts[split])
        return self._joined[split]

    def all_parts(self) -> list[tuple[str, Dataset]]:
        """Every part of every split, as `(where, rows)`."""
        return [part for parts in self.parts.values() for part in parts]

    def files(self, split: str) -> list[tuple[str, int]] | None:
        """For a folder of data files: the split's files in order as `(path, first row)` (see `personalign.row_names.file_row`);
        `None` for other sources."""
        if self.folder is None:
            return None
        parts = self.parts[split]
        starts = accumulate((len(data) for _, data in parts[:-1]), initial=0)
        return [(where, start) for (where, _), start in zip(parts, starts, strict=True)]

    @property
    def is_file(self) -> bool:
        """Whether the source is one local data file (its `train` split)."""
        return self.folder is None and not self.configs and Path(self.name).is_file()

    def row_names(self, split: str) -> RowNames:
        """The names of a split's rows for messages (`RowNames`): by file and line (JSON lines, 1-based) or 0-based
        row for a local file or folder, else by split and 0-based row."""
        files = self.files(split) or ([(self.name, 0)] if self.is_file else None)
        return RowNames.of(self.where(split), files)

    def part_row_names(self, where: str) -> RowNames:
        """The names of the rows of one part (as `all_parts` gives it: `(where, rows)`) for messages: by its file
        and line or row when it is a local file, else by `where` and 0-based row."""
        return RowNames.of(where, [(where, 0)] if self.folder is not None or self.is_file else None)

    def benchmarks(self, split: str) -> list[str] | None:
        """For a split of several files of a folder: the benchmark of each row (its file's path in the folder,
        without the suffix, e.g. `"p_soups"`); `None` otherwise."""
        names = self.benchmarks_by_split.get(split)
        if not names or len(names) < 2:
            return None
        return [name for name, (_, data) in zip(names, self.parts[split], strict=True) for _ in range(len(data))]

    def to_dataset_dict(self) -> DatasetDict:
        """Every split as a `DatasetDict`."""
        return DatasetDict({split: self.split(split) for split in self.parts})

    def with_config(self, config: str) -> DatasetSource:
        """Another config of the same dataset, read with the same `load_kwargs`.

        Raises:
            `InputError`: If the dataset does not declare `config`.
        """
        if config not in self.configs:
            raise InputError(
                f"dataset {self.name} has no config {config!r}; its configs: {', '.join(self.configs) or 'none'}."
            )
        return _read_config(self.name, config, self.configs, self.load_kwargs)


def dataset_configs(name_or_path: str | Path, **load_kwargs: Any) -> tuple[str, ...]:
    """The configs a dataset declares in its card (`"default"` left out): those of a folder written by `personalign
    build-dataset` (or any folder with a card) or of a Hub dataset; none for a local file or a folder without a card.

    Args:
        name_or_path (`str` or `Path`): The source.
        **load_kwargs: `revision` and `token` are passed on for a Hub dataset.

    Raises:
        `InputError`: For a local path that does not exist.
    """
    require_local_path(str(name_or_path), "dataset", DATA_FILE_SUFFIXES)
    path = Path(name_or_path)
    if path.is_file() or (path.is_dir() and not (path / "README.md").is_file()):
        return ()
    hub = {key: load_kwargs[key] for key in ("revision", "token") if key in load_kwargs}
    return tuple(name for name in get_dataset_config_names(str(name_or_path), **hub) if name != "default")


def _read_config(
    name: str, config: str | None, configs: tuple[str, ...], load_kwargs: dict[str, Any]
) -> DatasetSource:
    """A card folder or Hub dataset: one config (`None`: `datasets`' choice).

    A Hub dataset is read by `datasets.load_dataset`. A local card folder is not: `datasets` keys its cache of a
    card folder by the folder's name and the card's file patterns, not by the folder's path or its files, so a
    rebuilt folder (or another folder of the same name) would be read from the first one's cache, stale rows and
    all. Its config is resolved by `datasets.load_dataset_builder` (the card's `configs`, as `load_dataset` resolves
    them) and each data file read by `read_data_file`, whose cache follows the file's path and modification time;
    a split's files are concatenated in the card's order, one part per split as for a Hub dataset. Parquet shards
    are checked first (footers only), so that a damaged one is named."""
    local = Path(name).is_dir()
    if local:
        for shard in sorted(Path(name).rglob("*.parquet")):
            require_parquet(shard)
    try:
        if local:
            builder = load_dataset_builder(name, config, **load_kwargs)
            loaded = {
                str(split): _concatenate([(str(file), read_data_file(file)) for file in files])
                for split, files in (builder.config.data_files or {}).items()
            }
            chosen = builder.config.name
        else:
            loaded = dict(load_dataset(name, config, **load_kwargs))
            chosen = next(iter(loaded.values())).info.config_name if loaded else None
    except DatasetGenerationError as error:
        reason = " ".join(str(error.__cause__ or error).split())
        raise InputError(f"dataset {name}: cannot read config {config!r} ({reason}).") from None
    except ValueError as error:
        if config is None and len(configs) > 1:  # no default config: `datasets` asks for a name
            raise InputError(f"dataset {name} has configs {', '.join(configs)}: pick one.") from None
        reason = " ".join(str(error).split())
        raise InputError(f"dataset {name}: cannot load config {config!r} ({reason}).") from None
    parts = {str(split): [(f"{name} [{split}]", data)] for split, data in loaded.items()}
    if config is None and configs:
        config = chosen  # the one `datasets` chose
    return DatasetSource(name, config, configs, parts, load_kwargs=dict(load_kwargs))


def load_source(name_or_path: str | Path, config: str | None = None, **load_kwargs: Any) -> DatasetSource:
    """Read every split of one config of a dataset, keeping where each row comes from.

    Args:
        name_or_path (`str` or `Path`): A Hub dataset id, a local `.parquet` / `.jsonl` / `.json` file (the `train`
            split), a local folder of such files (split by file name, as `datasets.load_dataset(folder)`), a folder
            written by `personalign build-dataset` (or any folder whose card declares configs), or a folder written
            by `save_to_disk`.
        config (`str`, *optional*): The config, for a source that declares configs; by default the first of
            `PRIMARY_CONFIGS` it declares, else the one its card marks `default`, else its only one.
        **load_kwargs: Passed to `datasets.load_dataset` for a Hub dataset or a card folder (e.g. `revision`,
            `token`).

    Returns:
        `DatasetSource`: The splits, each as its parts (files, or the Hub split) with names for messages.

    Raises:
        `InputError`: For a local path that does not exist, a file of another format or that cannot be parsed, a
            folder without data files, a config the source does not declare, or a source of several configs and
            none asked for (naming them).
    """
    name = str(name_or_path)
    path = Path(name_or_path)
    require_local_path(name, "dataset", DATA_FILE_SUFFIXES)
    if path.is_dir() and any((path / marker).exists() for marker in SAVE_TO_DISK_FILES):
        if config is not None:
            raise InputError(f"dataset {name}: a folder written by save_to_disk has no configs (asked: {config!r}).")
        saved = load_from_disk(str(path))
        splits = {"train": saved} if isinstance(saved, Dataset) else dict(saved)
        return DatasetSource(name, None, (), {split: [(f"{name} [{split}]", data)] for split, data in splits.items()})
    configs = dataset_configs(name, **load_kwargs)
    if path.is_file() or (path.is_dir() and not configs):
        if config is not None:
            raise InputError(
                f"dataset {name}: a data file or a folder of data files has no configs (asked: {config!r})."
            )
        if path.is_file():
            return DatasetSource(name, None, (), {"train": [(name, read_data_file(path))]})
        parts, benchmarks = {}, {}
        for split, files in data_files(path).items():
            parts[split] = [(_file_name(file, path), read_data_file(file)) for file in files]
            benchmarks[split] = [_benchmark_name(file, path) for file in files]
        return DatasetSource(name, None, (), parts, folder=path, benchmarks_by_split=benchmarks)
    if config is None:
        config = next((c for c in PRIMARY_CONFIGS if c in configs), None)
    elif configs and config not in configs:
        raise InputError(f"dataset {name} has no config {config!r}; its configs: {', '.join(configs)}.")
    return _read_config(name, config, configs, load_kwargs)


def load_rows(
    name_or_path: str | Path, config: str | None = None, split: str = "train", **load_kwargs: Any
) -> Dataset:
    """One split of a dataset (see `load_source` for the sources and the config rule).

    Example:

    ```python
    >>> from personalign.data.loading import load_rows
    >>> train = load_rows("alignx-build", "pba", split="train")  # a `personalign build-dataset alignx` folder
    >>> bench = load_rows("benchmark/p_soups.json")  # an AlignX benchmark file: its `train` split
    ```

    Raises:
        `InputError`: As `load_source`, and if the split does not exist (naming those that do).
    """
    return load_source(name_or_path, config, **load_kwargs).split(split)


def load_configs(name_or_path: str | Path, **load_kwargs: Any) -> dict[str, DatasetDict]:
    """Every config of a dataset folder (`personalign build-dataset` output) or Hub dataset, by name; a source
    without declared configs is one config, `"default"`."""
    name = str(name_or_path)
    configs = dataset_configs(name, **load_kwargs)
    if not configs:
        return {"default": load_source(name, **load_kwargs).to_dataset_dict()}
    return {config: _read_config(name, config, configs, load_kwargs).to_dataset_dict() for config in configs}
