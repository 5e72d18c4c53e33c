"""The rows `personalign eval` scores: reading AlignX or counterfactual MultiFacet rows from a file, a folder, a
`personalign build-dataset` folder or the Hub, and rendering them as persona-conditioned TRL preference rows.

Besides release rows, it reads AlignX's benchmark files (P-Soups, UF-P-4, PRISM: `.json` files holding a JSON list of
rows with a ready `profile`, a `ground_truth_persona` and feedback pairs without vectors), and the ready-rendered `pba`
/ `ica` configs of a `personalign build-dataset alignx` folder (scored as they are). A folder of several files keeps
the name of each row's file, for per-benchmark results, and where each file's rows start, so that messages name a bad
row by its file and its row in that file (`EvalRows.row_name`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.alignx import (
    SOURCE_SUFFIXES,
    AlignXBuildConfig,
    batch_rows,
    load_source_file,
    local_splits,
    normalize_row,
    render_row,
    require_columns,
    source_files,
)
from ..personas.persona import ALIGNX_COLUMN_ALIASES, CHOSEN_COLUMN, PROMPT_COLUMN, REJECTED_COLUMN, PairItem
from ..personas.prompts import feedback_generation_messages, preference_example
from ..personas.space import PreferenceSpace
from .reversal import MULTIFACET_KEY_COLUMNS
from .robustness import HISTORY_TEXT_COLUMN

DATA_FORMATS = ("alignx", "multifacet")
PERSONA_FORMATS = {"alignx": ("pba", "ica"), "multifacet": ("feedback",)}
"""The persona formats of each data format, the default first."""
MULTIFACET_COLUMNS = (*MULTIFACET_KEY_COLUMNS, "prompt", "chosen", "rejected")
_ALIGNX_MARKERS = (
    *(alias for aliases in ALIGNX_COLUMN_ALIASES.values() for alias in aliases),
    "profile",
    "ground_truth_persona",
)
"""Columns only AlignX rows have: the release's persona columns (and snake_case forms), and the benchmark files'
`profile` and `ground_truth_persona`."""
RENDERED_CONFIGS = ("pba", "ica")
"""The configs of a `personalign build-dataset alignx` folder whose prompts are ready (rendered personas)."""
RENDERED = "rendered"
"""`EvalRows.rendered` of rows recognised as ready-rendered by their shape (message lists), config unknown."""
_TURN_COLUMNS = (PROMPT_COLUMN, CHOSEN_COLUMN, REJECTED_COLUMN)


@dataclass
class EvalRows:
    """The rows `personalign eval` scores, as `load_eval_rows` reads them.

    Args:
        data_format (`str`): `"alignx"` or `"multifacet"`.
        data (`datasets.Dataset`): The split's rows (MultiFacet rows with `history_text`).
        where (`str`): The source and split, for messages.
        split (`str` or `None`): The split (`None` for rows in memory).
        rendered (`str`, *optional*): For AlignX rows whose prompts are already rendered: the `personalign
            build-dataset` config they come from (`"pba"` or `"ica"`), or `"rendered"` when they were recognised by
            their shape (message lists) alone. Such rows are scored as they are.
        sources (`list[str]`, *optional*): The benchmark of each row: its file's path in the folder, without the
            suffix (e.g. `"p_soups"`), when the split's rows come from several files of a local folder.
        files (`list[tuple[str, int]]`, *optional*): For the rows of a local folder: each file of the split, in
            order, as `(path, first row)`: the folder as given joined with the file's path in it (`"bench/prism.json"`)
            and the split position of the file's first row (see `file_row`).
    """

    data_format: str
    data: Any
    where: str
    split: str | None
    rendered: str | None = None
    sources: list[str] | None = None
    files: list[tuple[str, int]] | None = None

    def row_name(self, index: int) -> str:
        """The split's row `index` for messages (see `row_name`)."""
        return row_name(self.where, self.files, index)


def file_row(files: Sequence[tuple[str, int]], index: int) -> tuple[str, int]:
    """The file holding a split's row `index` and the row's position in that file, from the split's `(path, first
    row)` list (`EvalRows.files`)."""
    position = max(bisect_right([start for _, start in files], index) - 1, 0)
    path, start = files[position]
    return path, index - start


def row_name(where: str, files: Sequence[tuple[str, int]] | None, index: int) -> str:
    """A split's row `index` for messages: `"<file>, row <n>"` (its file and its row in that file) when the split's
    file boundaries are known (a local folder), else `"<where>, row <index>"`."""
    if not files:
        return f"{where}, row {index}"
    path, row = file_row(files, index)
    return f"{path}, row {row}"


# ------------------------------------------------------------------------------------------------------- reading
def _declared_configs(source: str) -> list[str]:
    """The configs a dataset folder (`personalign build-dataset` output) or Hub repo declares in its card."""
    from datasets import get_dataset_config_names

    path = Path(source)
    if path.is_file() or (path.is_dir() and not (path / "README.md").is_file()):
        return []
    return [name for name in get_dataset_config_names(str(source)) if name != "default"]


def _looks_local(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).suffix in SOURCE_SUFFIXES or source.count("/") > 1


def _concatenate(parts: list[Any], files: list[Path]) -> Any:
    """The files of one split as one `Dataset`. A column that some files lack (benchmark files differ in their
    optional columns) is null in their rows; columns of conflicting types are an error naming the files."""
    from datasets import concatenate_datasets

    features: dict[str, Any] = {}
    for part in parts:
        for name, feature in part.features.items():
            features.setdefault(name, feature)
    filled = []
    for part in parts:
        for name in features:
            if name not in part.column_names:
                part = part.add_column(name, [None] * len(part), feature=features[name])
        filled.append(part.select_columns(list(features)))
    try:
        return concatenate_datasets(filled)
    except ValueError as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"the files {', '.join(map(str, files))} cannot form one split: their columns differ in type ({reason}); "
            "evaluate them one at a time."
        ) from None


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn `datasets`' failure to parse a data file (bad JSON, ...) into one line naming the file."""
    from datasets.exceptions import DatasetGenerationError

    try:
        yield
    except DatasetGenerationError as error:
        reason = " ".join(str(error.__cause__ or error).split())
        raise ValueError(f"{path}: cannot read it as a {', '.join(SOURCE_SUFFIXES)} data file ({reason}).") from None


def _benchmark_name(file: Path, folder: Path) -> str:
    """A data file's path in its folder without the suffix (`"p_soups"`, `"prism/test"`): its benchmark's name."""
    try:
        return file.resolve().relative_to(folder.resolve()).with_suffix("").as_posix()
    except ValueError:
        return file.stem


def _file_name(file: Path, folder: Path) -> str:
    """A data file for messages: the folder as given joined with the file's path in it (`"bench/prism.json"`)."""
    try:
        return str(folder / file.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(file)


def _folder_splits(folder: Path) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, list[tuple[str, int]]]]:
    """A folder of data files split by file name (as `personalign.data.alignx.local_splits`); for each split of
    several files the benchmark of each row (its file's path in the folder, without the suffix); and for each split
    its files as `(path, first row)` (`EvalRows.files`)."""
    splits, sources, boundaries = {}, {}, {}
    for split, files in source_files(folder).items():
        parts = []
        for file in files:
            with _reading(file):
                parts.append(load_source_file(file))
        splits[split] = parts[0] if len(parts) == 1 else _concatenate(parts, files)
        starts = [sum(len(part) for part in parts[:number]) for number in range(len(parts))]
        boundaries[split] = [(_file_name(file, folder), start) for file, start in zip(files, starts, strict=True)]
        if len(parts) > 1:
            names = [_benchmark_name(file, folder) for file in files]
            sources[split] = [name for name, part in zip(names, parts, strict=True) for _ in range(len(part))]
    return splits, sources, boundaries


@dataclass
class _Splits:
    splits: dict[str, Any]
    responses: Any = None
    rendered: str | None = None
    sources: dict[str, list[str]] | None = None
    files: dict[str, list[tuple[str, int]]] | None = None


def _read_splits(source: str, persona_format: str | None = None) -> _Splits:
    """The splits of a local file / folder, a dataset folder or a Hub dataset, with what `EvalRows` records."""
    from datasets import load_dataset

    path = Path(source)
    if not path.exists() and _looks_local(source):
        raise ValueError(f"dataset {source}: no such file or folder.")
    configs = _declared_configs(source)
    if "counterfactual" in configs:
        responses = load_dataset(source, "responses", split="train") if "responses" in configs else None
        return _Splits(dict(load_dataset(source, "counterfactual")), responses)
    if "raw" in configs:
        return _Splits(dict(load_dataset(source, "raw")))
    rendered = [name for name in RENDERED_CONFIGS if name in configs]
    if rendered:
        if persona_format is not None and persona_format not in rendered:
            raise ValueError(
                f"dataset {source} holds only the ready-rendered {' and '.join(rendered)} config of "
                f"`personalign build-dataset alignx` (no raw config): --persona-format {persona_format} cannot "
                "re-render it; drop --persona-format, or evaluate the source file or a folder built with --config raw."
            )
        name = persona_format or rendered[0]
        return _Splits(dict(load_dataset(source, name)), rendered=name)
    if path.is_dir():
        splits, sources, files = _folder_splits(path)
        return _Splits(splits, sources=sources, files=files)
    if path.exists():
        with _reading(path):
            return _Splits(local_splits(path))
    return _Splits(dict(load_dataset(source)))


def _has_message_prompts(data: Any) -> bool:
    """Whether the rows' `prompt` is a list (of messages): a rendered config, not release rows."""
    from datasets import LargeList, List

    return isinstance(data.features.get(PROMPT_COLUMN), (List, LargeList, list))


def detect_format(columns: Sequence[str], where: str) -> str:
    """`"multifacet"` for counterfactual MultiFacet rows, `"alignx"` for AlignX rows, from the column names."""
    if all(column in columns for column in MULTIFACET_KEY_COLUMNS):
        return "multifacet"
    if any(column in columns for column in _ALIGNX_MARKERS):
        return "alignx"
    raise ValueError(
        f"{where}: cannot tell the row format from the columns ({', '.join(columns)}): AlignX rows have "
        f"'Preference Direction' / persona columns; counterfactual MultiFacet rows have "
        f"{', '.join(MULTIFACET_KEY_COLUMNS)} (pass --format to say which)."
    )


def load_eval_rows(
    source: Any, split: str | None = None, data_format: str | None = None, persona_format: str | None = None
) -> EvalRows:
    """The rows to evaluate.

    Args:
        source (`str`, `Path` or `datasets.Dataset`): A parquet / jsonl / json file (a JSON list of rows, as AlignX's
            benchmark files, or JSON lines) or a folder of them (splits by file name; a split of several files keeps
            each row's file as its benchmark), a folder written by `personalign build-dataset` (AlignX: its `raw`
            config, else its ready-rendered `pba` / `ica` config; MultiFacet: its `counterfactual` config with
            histories from `responses`), a Hub dataset id, or rows in memory.
        split (`str`, *optional*): The split; by default the only one, else `"test"`.
        data_format (`str`, *optional*): `"alignx"` or `"multifacet"`; overrides the detection from the columns.
        persona_format (`str`, *optional*): Picks the rendered config of a build folder without `raw` (`"pba"` or
            `"ica"`); refused where the rows hold other ready-rendered prompts.

    Returns:
        `EvalRows`: The format, the split's rows, a name for messages, the split, whether the prompts are ready
        (`rendered`), the benchmark of each row (`sources`) and the split's files (`files`, for a local folder).

    Raises:
        `ValueError`: For a missing file, an unknown split, unrecognised columns, rows that lack what their format
            needs, or MultiFacet rows without histories.
    """
    from datasets import Dataset

    from ..data.multifacet import attach_history

    read = _Splits({})
    if isinstance(source, Dataset):
        data, where = source, "dataset"
    else:
        read = _read_splits(str(source), persona_format)
        splits = read.splits
        if split is None:
            if len(splits) != 1 and "test" not in splits:
                raise ValueError(f"dataset {source} has splits {', '.join(splits)}: pick one with --split.")
            split = next(iter(splits)) if len(splits) == 1 else "test"
        if split not in splits:
            raise ValueError(f"dataset {source} has no split {split!r}; its splits: {', '.join(splits)}.")
        data, where = splits[split], f"{source} [{split}]"
    rendered = read.rendered
    if rendered is None and data_format != "multifacet" and _has_message_prompts(data):
        rendered = RENDERED
        if persona_format is not None:
            raise ValueError(
                f"{where}: the rows hold ready-rendered prompts (message lists, as a `personalign build-dataset "
                f"alignx` pba / ica config); --persona-format {persona_format} cannot re-render them: drop it, or "
                "evaluate the release rows."
            )
    if rendered is not None:
        if data_format not in (None, "alignx"):
            raise ValueError(
                f"{where}: --format {data_format} was given, but the rows are ready-rendered AlignX rows."
            )
        found = "alignx"
    else:
        found = data_format or detect_format(data.column_names, where)
    if not len(data):
        raise ValueError(f"{where}: no rows to evaluate.")
    if found == "alignx":
        require_columns(data, _TURN_COLUMNS, where, "an AlignX")
        if rendered is None and not any(column in data.column_names for column in _ALIGNX_MARKERS):
            raise ValueError(
                f"{where}: no persona column in ({', '.join(data.column_names)}); AlignX rows need at least one of "
                f"{', '.join(repr(c) for c in _ALIGNX_MARKERS)}."
            )
    if found == "multifacet":
        missing = [c for c in MULTIFACET_COLUMNS if c not in data.column_names]
        if missing:
            raise ValueError(f"{where}: missing column(s) {', '.join(repr(c) for c in missing)} of MultiFacet rows.")
        if HISTORY_TEXT_COLUMN not in data.column_names:
            if read.responses is None:
                raise ValueError(
                    f"{where}: the rows hold history ids but no 'history_text'; evaluate the folder written by "
                    "`personalign build-dataset multifacet-cf` (it has the `responses` config the ids point into), "
                    "or rows from `attach_history(..., lazy=False)`."
                )
            data = attach_history(data, read.responses, lazy=False)
    sources = (read.sources or {}).get(split) if split is not None else None
    files = (read.files or {}).get(split) if split is not None else None
    return EvalRows(found, data, where, split, rendered, sources, files)


def normalize_alignx_rows(
    data: Any, where: str, files: Sequence[tuple[str, int]] | None = None
) -> list[dict[str, Any]]:
    """AlignX rows (release or snake_case columns) validated into `raw`-config rows; errors name the row (by its
    file with `files`, see `row_name`) and column."""
    space = PreferenceSpace.alignx()
    rows = []
    for offset, batch in enumerate(data.iter(batch_size=1000)):
        for index, row in enumerate(batch_rows(batch)):
            rows.append(normalize_row(row, row_name(where, files, 1000 * offset + index), space))
    return rows


def _check_turns(value: Any, where: str, conversational: bool) -> None:
    if not conversational:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected text (as the row's 'prompt'), got {type(value).__name__}.")
        return
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of messages, got {type(value).__name__}.")
    for number, message in enumerate(value):
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise ValueError(f"{where}, message {number}: expected an object with text 'role' and 'content'.")


def rendered_alignx_rows(
    data: Any, where: str, files: Sequence[tuple[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Ready-rendered AlignX rows (a `personalign build-dataset alignx` `pba` / `ica` config) validated for scoring
    as they are: `prompt`, `chosen`, `rejected` (message lists, or texts in the release's prompt format), and the
    `profile`, `preference_direction` and `ground_truth_persona` they carry (`None` where absent). Errors name the
    row (by its file with `files`, see `row_name`) and column."""
    space = PreferenceSpace.alignx()
    rows = []
    for offset, batch in enumerate(data.iter(batch_size=1000)):
        for number, row in enumerate(batch_rows(batch)):
            at = row_name(where, files, 1000 * offset + number)
            conversational = not isinstance(row[PROMPT_COLUMN], str)
            for column in _TURN_COLUMNS:
                _check_turns(row[column], f"{at}, column {column!r}", conversational)
            direction = row.get("preference_direction")
            profile, persona = row.get("profile"), row.get("ground_truth_persona")
            rows.append(
                {
                    **{column: row[column] for column in _TURN_COLUMNS},
                    "profile": profile if isinstance(profile, str) and profile else None,
                    "preference_direction": None
                    if direction is None
                    else space.validate(direction, where=f"{at}, column 'preference_direction'"),
                    "ground_truth_persona": None if persona is None else str(persona),
                }
            )
    return rows


# ----------------------------------------------------------------------------------------------------- rendering
def multifacet_preference_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """A counterfactual MultiFacet row as a TRL conversational preference row: the feedback-history prompt of the
    counterfactual paper (Appendix B.2: the user's liked / not liked examples, then the instruction) and the target
    pair as assistant turns. The row needs `history_text` (`attach_history`)."""
    history = [PairItem(item["prompt"], item["chosen"], item["rejected"]) for item in row[HISTORY_TEXT_COLUMN]]
    return preference_example(feedback_generation_messages(history, row["prompt"]), row["chosen"], row["rejected"])


def row_renderer(
    data_format: str, persona_format: str, include_demographics: bool = True
) -> Callable[[Mapping[str, Any], int], dict]:
    """`render(row, index)`: a row (AlignX `raw` row, or MultiFacet row with `history_text`) as a TRL
    conversational preference row, its whole history in the prompt (`persona_format` `"pba"` / `"ica"` for AlignX
    through `personalign.data.alignx.render_row`, `"feedback"` for MultiFacet)."""
    allowed = PERSONA_FORMATS[data_format]
    if persona_format not in allowed:
        raise ValueError(
            f"persona format {persona_format!r} is for other rows; {data_format} rows take {', '.join(allowed)}."
        )
    if data_format == "multifacet":
        return lambda row, index: multifacet_preference_example(row)
    build = AlignXBuildConfig(keep_full_history=True, include_demographics=include_demographics)

    def render(row: dict, index: int) -> dict:
        rendered = render_row(row, index, persona_format, build)
        return {key: rendered[key] for key in ("prompt", "chosen", "rejected")}

    return render
