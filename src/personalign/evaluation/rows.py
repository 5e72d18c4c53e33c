"""The rows `personalign eval policy` scores: AlignX or counterfactual MultiFacet rows from any source
`personalign.data.loading.load_source` reads (a file, a folder, a `personalign build-dataset` folder or the Hub),
recognised by their columns, validated, and rendered as persona-conditioned TRL preference rows.

Besides release rows, it scores AlignX's benchmark files (P-Soups, UF-P-4, PRISM: `.json` files holding a JSON list of
rows with a ready `profile`, a `ground_truth_persona` and feedback pairs without vectors), and the ready-rendered `pba`
/ `ica` configs of a `personalign build-dataset alignx` folder (scored as they are). A folder of several files keeps
the name of each row's file, for per-benchmark results, and where each file's rows start, so that messages name a bad
row by its file and its row in that file (`EvalRows.row_name`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from datasets import Dataset, LargeList, List

from ..data.alignx import AlignXBuildConfig, normalize_row, render_row
from ..data.loading import DatasetSource, RowNames, batch_rows, load_source, require_columns, value_kind
from ..data.multifacet import attach_history, multifacet_cf_responses
from ..errors import InputError
from ..personas.persona import ALIGNX_COLUMN_ALIASES, CHOSEN_COLUMN, PROMPT_COLUMN, REJECTED_COLUMN, PairItem
from ..personas.prompts import feedback_generation_messages, preference_example
from ..personas.space import PreferenceSpace
from ..row_names import file_row
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
    """The rows `personalign eval policy` scores, as `load_eval_rows` reads them.

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
        files (`list[tuple[str, int]]`, *optional*): For the rows of a local file or folder: each file of the split,
            in order, as `(path, first row)`: the file as given, or the folder as given joined with the file's path in
            it (`"bench/prism.json"`), and the split position of the file's first row (see
            `personalign.data.loading.file_row`).
    """

    data_format: str
    data: Any
    where: str
    split: str | None
    rendered: str | None = None
    sources: list[str] | None = None
    files: list[tuple[str, int]] | None = None

    @cached_property
    def row_names(self) -> RowNames:
        """The names of the split's rows for messages (`personalign.data.loading.RowNames`: a JSON-lines row by its
        file and line, 1-based; any other by its file, or the split, and 0-based row)."""
        return RowNames.of(self.where, self.files)

    def row_name(self, index: int) -> str:
        """The split's row `index` for messages (see `row_names`)."""
        return self.row_names(index)

    def row_id(self, index: int) -> str:
        """A stable id of the split's row `index`, for the files that refer to rows (generated responses, inferred
        preferences): `"<file>:<0-based row in that file>"` for the rows of local files (a single file by its name, the
        files of a folder by their path in it without the suffix, as in `sources`), else
        `"<split or 'rows'>:<0-based row>"`. Unlike `row_name` it does not depend on how the files are laid out
        (blank lines), only on the rows.

        Args:
            index (`int`): The row's 0-based position in the split.

        Returns:
            `str`: e.g. `"p_soups.json:17"`.
        """
        if self.files:
            path, position = file_row(self.files, index)
            # A folder's files by their path in it (unique), a single file by its name.
            return f"{self.sources[index] if self.sources else Path(path).name}:{position}"
        return f"{self.split or 'rows'}:{index}"


# ------------------------------------------------------------------------------------------------------- reading
def _read(source: str, persona_format: str | None) -> DatasetSource:
    """The config `personalign eval policy` scores: a build's `counterfactual` or `raw` config (the loader's primary one),
    else its ready-rendered `pba` / `ica` config (`persona_format` picks between the two)."""
    loaded = load_source(source)
    if loaded.config not in RENDERED_CONFIGS:
        return loaded
    rendered = [name for name in RENDERED_CONFIGS if name in loaded.configs]
    if persona_format is not None and persona_format not in rendered:
        raise InputError(
            f"dataset {source} holds only the ready-rendered {' and '.join(rendered)} config of "
            f"`personalign build-dataset alignx` (no raw config): --persona-format {persona_format} cannot "
            "re-render it; drop --persona-format, or evaluate the source file or a folder built with --config raw."
        )
    return loaded if persona_format in (None, loaded.config) else loaded.with_config(persona_format)


def _has_message_prompts(data: Any) -> bool:
    """Whether the rows' `prompt` is a list (of messages): a rendered config, not release rows."""
    return isinstance(data.features.get(PROMPT_COLUMN), (List, LargeList, list))


def detect_format(columns: Sequence[str], where: str) -> str:
    """`"multifacet"` for counterfactual MultiFacet rows, `"alignx"` for AlignX rows, from the column names."""
    if all(column in columns for column in MULTIFACET_KEY_COLUMNS):
        return "multifacet"
    if any(column in columns for column in _ALIGNX_MARKERS):
        return "alignx"
    raise InputError(
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
        `InputError`: For a missing file, an unknown split, unrecognised columns, rows that lack what their format
            needs, or MultiFacet rows without histories.
    """
    loaded = None
    if isinstance(source, Dataset):
        data, where = source, "dataset"
    else:
        loaded = _read(str(source), persona_format)
        splits = loaded.splits
        if split is None:
            if len(splits) != 1 and "test" not in splits:
                raise InputError(f"dataset {source} has splits {', '.join(splits)}: pick one with --split.")
            split = splits[0] if len(splits) == 1 else "test"
        data, where = loaded.split(split), loaded.where(split)
    rendered = loaded.config if loaded is not None and loaded.config in RENDERED_CONFIGS else None
    if rendered is None and data_format != "multifacet" and _has_message_prompts(data):
        rendered = RENDERED
        if persona_format is not None:
            raise InputError(
                f"{where}: the rows hold ready-rendered prompts (message lists, as a `personalign build-dataset "
                f"alignx` pba / ica config); --persona-format {persona_format} cannot re-render them: drop it, or "
                "evaluate the release rows."
            )
    if rendered is not None:
        if data_format not in (None, "alignx"):
            raise InputError(
                f"{where}: --format {data_format} was given, but the rows are ready-rendered AlignX rows."
            )
        found = "alignx"
    else:
        found = data_format or detect_format(data.column_names, where)
    if not len(data):
        raise InputError(f"{where}: no rows to evaluate.")
    # A column one file of a folder lacks reads as null in its rows once the files are joined: name the file.
    parts = loaded.parts[split] if loaded is not None else []
    if found == "alignx":
        for part, rows in parts if len(parts) > 1 else []:
            require_columns(rows, _TURN_COLUMNS, part, "an AlignX")
        require_columns(data, _TURN_COLUMNS, where, "an AlignX")
        if rendered is None and not any(column in data.column_names for column in _ALIGNX_MARKERS):
            raise InputError(
                f"{where}: no persona column in ({', '.join(data.column_names)}); AlignX rows need at least one of "
                f"{', '.join(repr(c) for c in _ALIGNX_MARKERS)}."
            )
    if found == "multifacet":
        for part, rows in parts if len(parts) > 1 else [(where, data)]:
            missing = [c for c in MULTIFACET_COLUMNS if c not in rows.column_names]
            if missing:
                raise InputError(
                    f"{part}: missing column(s) {', '.join(repr(c) for c in missing)} of MultiFacet rows."
                )
        if HISTORY_TEXT_COLUMN not in data.column_names:
            responses = None if loaded is None else multifacet_cf_responses(loaded)
            if responses is None:
                raise InputError(
                    f"{where}: the rows hold history ids but no 'history_text'; evaluate the folder written by "
                    "`personalign build-dataset multifacet-cf` (it has the `responses` config the ids point into), "
                    "or rows from `attach_history(..., lazy=False)`."
                )
            data = attach_history(data, responses, lazy=False)
    sources = None if loaded is None else loaded.benchmarks(split)
    files = None if loaded is None else loaded.files(split) or ([(loaded.name, 0)] if loaded.is_file else None)
    return EvalRows(found, data, where, split, rendered, sources, files)


def normalize_alignx_rows(
    data: Any, where: str, files: Sequence[tuple[str, int]] | None = None, require_preference: bool = False
) -> list[dict[str, Any]]:
    """AlignX rows (release or snake_case columns) validated into `raw`-config rows.

    Args:
        data (`datasets.Dataset`): The rows.
        where (`str`): The split for messages.
        files (`Sequence[tuple[str, int]]`, *optional*): The split's files (`EvalRows.files`): errors name a row by
            its file and line or row (`personalign.data.loading.RowNames`).
        require_preference (`bool`, *optional*, defaults to `False`): Refuse a persona PBA cannot turn into a
            preference text (see `personalign.data.alignx.normalize_row`).

    Returns:
        `list[dict]`: The rows, with the columns of the `raw` config.

    Raises:
        `InputError`: Naming the row and column of the first bad value.
    """
    space = PreferenceSpace.alignx()
    names = RowNames.of(where, files)
    rows = []
    for offset, batch in enumerate(data.iter(batch_size=1000)):
        for index, row in enumerate(batch_rows(batch)):
            rows.append(normalize_row(row, names(1000 * offset + index), space, require_preference))
    return rows


def _check_turns(value: Any, where: str, conversational: bool) -> None:
    if not conversational:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected text (as the row's 'prompt'), got {value_kind(value)}.")
        return
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: expected a non-empty list of messages, got {value_kind(value)}.")
    for number, message in enumerate(value):
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise InputError(f"{where}, message {number}: expected an object with text 'role' and 'content'.")


def rendered_alignx_rows(
    data: Any, where: str, files: Sequence[tuple[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Ready-rendered AlignX rows (a `personalign build-dataset alignx` `pba` / `ica` config) validated for scoring
    as they are: `prompt`, `chosen`, `rejected` (message lists, or texts in the release's prompt format), and the
    `profile`, `preference_direction` and `ground_truth_persona` they carry (`None` where absent). Errors name the
    row (by its file with `files`, see `personalign.data.loading.RowNames`) and column."""
    space = PreferenceSpace.alignx()
    names = RowNames.of(where, files)
    rows = []
    for offset, batch in enumerate(data.iter(batch_size=1000)):
        for number, row in enumerate(batch_rows(batch)):
            at = names(1000 * offset + number)
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
        raise InputError(
            f"persona format {persona_format!r} is for other rows; {data_format} rows take {', '.join(allowed)}."
        )
    if data_format == "multifacet":
        return lambda row, index: multifacet_preference_example(row)
    build = AlignXBuildConfig(keep_full_history=True, include_demographics=include_demographics)

    def render(row: dict, index: int) -> dict:
        rendered = render_row(row, index, persona_format, build)
        return {key: rendered[key] for key in ("prompt", "chosen", "rejected")}

    return render
