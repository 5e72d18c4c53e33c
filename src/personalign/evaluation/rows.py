"""The rows `personalign eval` scores: reading AlignX or counterfactual MultiFacet rows from a file, a folder, a
`personalign build-dataset` folder or the Hub, and rendering them as persona-conditioned TRL preference rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.alignx import (
    SOURCE_SUFFIXES,
    AlignXBuildConfig,
    batch_rows,
    local_splits,
    normalize_row,
    render_row,
)
from ..personas import DIRECTION_COLUMN, PairItem, feedback_generation_messages, preference_example
from ..preference_space import PreferenceSpace
from .reversal import MULTIFACET_KEY_COLUMNS
from .robustness import HISTORY_TEXT_COLUMN

DATA_FORMATS = ("alignx", "multifacet")
PERSONA_FORMATS = {"alignx": ("pba", "ica"), "multifacet": ("feedback",)}
"""The persona formats of each data format, the default first."""
MULTIFACET_COLUMNS = (*MULTIFACET_KEY_COLUMNS, "prompt", "chosen", "rejected")
_ALIGNX_MARKERS = (DIRECTION_COLUMN, "preference_direction", "User-Generated Content", "user_generated_content")


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


def _read_splits(source: str) -> tuple[dict[str, Any], Any]:
    """`({split: Dataset}, responses or None)` of a local file / folder, a dataset folder or a Hub dataset."""
    from datasets import load_dataset

    path = Path(source)
    if not path.exists() and _looks_local(source):
        raise ValueError(f"dataset {source}: no such file or folder.")
    configs = _declared_configs(source)
    if "counterfactual" in configs:
        responses = load_dataset(source, "responses", split="train") if "responses" in configs else None
        return dict(load_dataset(source, "counterfactual")), responses
    if "raw" in configs:
        return dict(load_dataset(source, "raw")), None
    if path.exists():
        return local_splits(path), None
    return dict(load_dataset(source)), None


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
    source: Any, split: str | None = None, data_format: str | None = None
) -> tuple[str, Any, str, str | None]:
    """The rows to evaluate: `(format, Dataset, where, split)`.

    Args:
        source (`str`, `Path` or `datasets.Dataset`): A parquet / jsonl / json file or a folder of them (splits by
            file name), a folder written by `personalign build-dataset` (AlignX: its `raw` config; MultiFacet: its
            `counterfactual` config with histories from `responses`), a Hub dataset id, or rows in memory.
        split (`str`, *optional*): The split; by default the only one, else `"test"`.
        data_format (`str`, *optional*): `"alignx"` or `"multifacet"`; detected from the columns by default.

    Returns:
        `tuple`: The format, the split's rows (MultiFacet rows with `history_text`), a name for messages and the
        split (`None` for rows in memory).

    Raises:
        `ValueError`: For a missing file, an unknown split, unrecognised columns, or MultiFacet rows without
            histories.
    """
    from datasets import Dataset

    from ..data.multifacet import attach_history

    responses = None
    if isinstance(source, Dataset):
        data, where = source, "dataset"
    else:
        splits, responses = _read_splits(str(source))
        if split is None:
            if len(splits) != 1 and "test" not in splits:
                raise ValueError(f"dataset {source} has splits {', '.join(splits)}: pick one with --split.")
            split = next(iter(splits)) if len(splits) == 1 else "test"
        if split not in splits:
            raise ValueError(f"dataset {source} has no split {split!r}; its splits: {', '.join(splits)}.")
        data, where = splits[split], f"{source} [{split}]"
    found = detect_format(data.column_names, where)
    if data_format is not None and data_format != found:
        raise ValueError(f"{where}: --format {data_format} was given, but the columns are those of {found} rows.")
    if not len(data):
        raise ValueError(f"{where}: no rows to evaluate.")
    if found == "multifacet":
        missing = [c for c in MULTIFACET_COLUMNS if c not in data.column_names]
        if missing:
            raise ValueError(f"{where}: missing column(s) {', '.join(repr(c) for c in missing)} of MultiFacet rows.")
        if HISTORY_TEXT_COLUMN not in data.column_names:
            if responses is None:
                raise ValueError(
                    f"{where}: the rows hold history ids but no 'history_text'; evaluate the folder written by "
                    "`personalign build-dataset multifacet-cf` (it has the `responses` config the ids point into), "
                    "or rows from `attach_history(..., lazy=False)`."
                )
            data = attach_history(data, responses, lazy=False)
    return found, data, where, split


def normalize_alignx_rows(data: Any, where: str) -> list[dict[str, Any]]:
    """AlignX rows (release or snake_case columns) validated into `raw`-config rows; errors name the row and
    column."""
    space = PreferenceSpace.alignx()
    rows = []
    for offset, batch in enumerate(data.iter(batch_size=1000)):
        for index, row in enumerate(batch_rows(batch)):
            rows.append(normalize_row(row, f"{where}, row {1000 * offset + index}", space))
    return rows


# ----------------------------------------------------------------------------------------------------- rendering
def multifacet_preference_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """A counterfactual MultiFacet row as a TRL conversational preference row: the feedback-history prompt of the
    counterfactual seed (Appendix B.2: the user's liked / not liked examples, then the instruction) and the target
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
