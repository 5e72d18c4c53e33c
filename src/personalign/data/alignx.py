"""AlignX: read the release (Hub id or local files), validate and normalise it, and render ICA / PBA rows for TRL.

Configs:

- `raw`: the release normalised: snake_case columns, explicit typed features (`RAW_FEATURES`), every vector
  validated. Benchmark rows (the released test files: a ready `profile`, a `ground_truth_persona`, feedback items
  without vectors) are accepted as they are; their missing fields are null.
- `ica`, `pba`: conversational rows for TRL's `DPOTrainer` (`prompt` messages, `chosen` / `rejected` assistant
  turns) rendered by `personalign.personas.persona`. The history subset follows AlignX's 0-4 / 0-4 rule with a generator
  seeded by `(seed, row index)`, so the output is the same for any `num_proc`; `keep_full_history=True` keeps
  every item. PBA's preference text is the aggregate of the sampled items' gold vectors (or the row's `profile`).

All processing is `Dataset.map(batched=True)` over memory-mapped Arrow files, so memory does not grow with the
number of rows, and `num_proc` spreads the work over cores.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import datasets
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, List, Value, concatenate_datasets
from datasets.exceptions import DatasetGenerationError

from ..errors import InputError
from ..hub.cards import DatasetCardSpec
from ..papers import ALIGNX_CITATION
from ..personas.persona import (
    ALIGNX_COLUMN_ALIASES,
    CHOSEN_COLUMN,
    DIRECTION_COLUMN,
    PROMPT_COLUMN,
    REJECTED_COLUMN,
    Persona,
    alignx_column,
)
from ..personas.prompts import ica_messages, pba_messages, preference_example, to_alignx_release_prompt
from ..personas.space import PreferenceSpace
from .loading import RowNames, batch_rows, json_file_rows, load_source, require_columns, value_kind

ALIGNX_HUB_ID = "JinaLeejnl/AlignX"
ALIGNX_TEST_HUB_ID = "JinaLeejnl/AlignX-test"
ALIGNX_CONFIGS = ("raw", "ica", "pba")

_VECTOR = List(Value("float64"))
RAW_FEATURES = Features(
    {
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "preference_direction": _VECTOR,
        "demographic_information": Value("string"),
        "user_generated_content": List(
            {"prompt": Value("string"), "comment": Value("string"), "preference_direction": _VECTOR}
        ),
        "pairwise_comparative_feedback": List(
            {
                "prompt": Value("string"),
                "chosen": Value("string"),
                "rejected": Value("string"),
                "preference_direction": _VECTOR,
            }
        ),
        "profile": Value("string"),
        "ground_truth_persona": Value("string"),
    }
)
"""The `raw` config: the release's columns in snake_case, typed explicitly; absent fields are null."""

_MESSAGES = List({"role": Value("string"), "content": Value("string")})
CHAT_FEATURES = Features(
    {
        "prompt": _MESSAGES,
        "chosen": _MESSAGES,
        "rejected": _MESSAGES,
        "profile": Value("string"),
        "preference_direction": _VECTOR,
    }
)
"""The `ica` / `pba` configs: TRL's conversational preference format, plus the preference text used (PBA) and the
row's gold direction (for per-dimension evaluation)."""

RELEASE_FORMAT_FEATURES = Features(
    {
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "profile": Value("string"),
        "preference_direction": _VECTOR,
    }
)
"""The `ica` / `pba` configs with `prompt_format="alignx_release"`: the release's exact prompt strings."""


@dataclass
class AlignXBuildConfig:
    """How `build_alignx` renders the `ica` and `pba` configs.

    Args:
        seed (`int`, *optional*, defaults to `0`): Seed of the history sampling (combined with each row's index).
        keep_full_history (`bool`, *optional*, defaults to `False`): Keep every history item instead of sampling.
        max_history_items (`int`, *optional*, defaults to `4`): Upper bound of AlignX's per-kind sample size.
        include_demographics (`bool`, *optional*, defaults to `True`): ICA: append the demographic description.
        upper (`float`, *optional*, defaults to `0.6`): PBA aggregation: positive threshold.
        lower (`float`, *optional*, defaults to `0.4`): PBA aggregation: negative threshold.
        arithmetic (`str`, *optional*, defaults to `"exact"`): PBA aggregation arithmetic (`"exact"` or
            `"float32"`, the release's; see `PreferenceSpace.aggregate`).
        prompt_format (`str`, *optional*, defaults to `"chat"`): `"chat"` (message lists, rendered later by the
            tokenizer's chat template) or `"alignx_release"` (the release's exact Llama-3 prompt strings).
    """

    seed: int = 0
    keep_full_history: bool = False
    max_history_items: int = 4
    include_demographics: bool = True
    upper: float = 0.6
    lower: float = 0.4
    arithmetic: Literal["exact", "float32"] = "exact"
    prompt_format: Literal["chat", "alignx_release"] = "chat"

    def __post_init__(self) -> None:
        if self.prompt_format not in ("chat", "alignx_release"):
            raise InputError(
                f"prompt_format must be 'chat' or 'alignx_release', got {self.prompt_format!r} (CLI: --prompt-format)."
            )
        if self.arithmetic not in ("exact", "float32"):
            raise InputError(f"arithmetic must be 'exact' or 'float32', got {self.arithmetic!r} (CLI: --arithmetic).")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (in the dataset card's provenance)."""
        return asdict(self)


# ----------------------------------------------------------------------------------------------------- reading
def normalize_row(
    row: Mapping[str, Any],
    where: str,
    space: PreferenceSpace | None = None,
    require_preference: bool = False,
    numeric: bool = False,
) -> dict[str, Any]:
    """One release row (release column names or snake_case) as a `RAW_FEATURES` row.

    Args:
        row (`Mapping[str, Any]`): The row.
        where (`str`): The row for messages: its file and line or row (`personalign.data.loading.RowNames`).
        space (`PreferenceSpace`, *optional*): The space of the vectors; AlignX's by default.
        require_preference (`bool`, *optional*, defaults to `False`): Refuse a persona PBA cannot turn into a
            preference text (no `profile`, no item with a direction vector and no gold direction).
        numeric (`bool`, *optional*, defaults to `False`): The row's vectors come from numeric Arrow columns
            (`numeric_vectors`), so they hold no booleans (see `PreferenceSpace.validate`).

    Returns:
        `dict`: The row with the columns of `RAW_FEATURES`.

    Raises:
        `InputError`: Naming `where`, the column and the item: a turn that is not text (null when absent), a bad
            persona item or vector, or (with `require_preference`) a persona without a preference.
    """
    for column in (PROMPT_COLUMN, CHOSEN_COLUMN, REJECTED_COLUMN):
        if not isinstance(row.get(column), str):
            raise InputError(f"{where}, column {column!r}: expected text, got {value_kind(row.get(column))}.")
    persona = Persona.from_alignx_row(row, space=space, where=where, numeric=numeric)
    if require_preference:
        require_persona_preference(persona, where)
    truth = row.get("ground_truth_persona")
    return {
        "prompt": row[PROMPT_COLUMN],
        "chosen": row[CHOSEN_COLUMN],
        "rejected": row[REJECTED_COLUMN],
        "preference_direction": persona.direction,
        "demographic_information": persona.demographics,
        "user_generated_content": [
            {"prompt": i.prompt, "comment": i.comment, "preference_direction": i.direction} for i in persona.ugc
        ],
        "pairwise_comparative_feedback": [
            {"prompt": i.prompt, "chosen": i.chosen, "rejected": i.rejected, "preference_direction": i.direction}
            for i in persona.pairs
        ],
        "profile": persona.profile,
        "ground_truth_persona": truth if truth is None or isinstance(truth, str) else str(truth),
    }


def require_persona_preference(persona: Persona, where: str) -> None:
    """Fail, naming the row, when PBA cannot derive a preference text from `persona`: no ready `profile`, no
    history item with a direction vector and no gold direction (`Persona.profile_text` would fail without naming
    the row).

    Raises:
        `InputError`: `"<where>: the persona is empty: ..."`.
    """
    if persona.profile is None and persona.direction is None and not persona.item_directions():
        raise InputError(
            f"{where}: the persona is empty: no 'profile', no history item with a {DIRECTION_COLUMN!r} vector and "
            f"no gold {DIRECTION_COLUMN!r}; a PBA prompt needs one of them to derive the preference text."
        )


def _columns(rows: list[dict[str, Any]], features: Features) -> dict[str, list]:
    return {name: [row[name] for row in rows] for name in features}


def _normalize_batch(
    batch: Mapping[str, list], indices: list[int], names: RowNames, require_preference: bool, numeric: bool
) -> dict[str, list]:
    space = PreferenceSpace.alignx()
    rows = [
        normalize_row(row, names(index), space, require_preference, numeric)
        for row, index in zip(batch_rows(batch), indices, strict=True)
    ]
    return _columns(rows, RAW_FEATURES)


_READ_COLUMNS = frozenset(
    (PROMPT_COLUMN, CHOSEN_COLUMN, REJECTED_COLUMN, *(a for names in ALIGNX_COLUMN_ALIASES.values() for a in names))
)


def _holds(feature: Any, kind: Callable[[Any], bool]) -> bool:
    if kind(feature):
        return True
    if isinstance(feature, List):
        return _holds(feature.feature, kind)
    return isinstance(feature, Mapping) and any(_holds(inner, kind) for inner in feature.values())


def numeric_vectors(dataset: Dataset) -> bool:
    """Whether the AlignX columns of `dataset` can hold no boolean: none is a `datasets.Json` column (mixed JSON
    types) or holds booleans. Then every vector entry is a number and `PreferenceSpace.validate` may skip its type
    pass (`numeric=True`)."""
    return not any(
        _holds(feature, lambda f: isinstance(f, datasets.Json) or (isinstance(f, Value) and f.dtype == "bool"))
        for column, feature in dataset.features.items()
        if column in _READ_COLUMNS
    )


def lossy_json_file(dataset: Dataset, names: RowNames) -> Path | None:
    """The local JSON file `dataset` was read from when `datasets` read an AlignX column of it lossily, else `None`.

    A column whose values mix JSON types (a vector holding `"1"` or `true` among numbers, a comment that is
    sometimes a number, history items with different keys) becomes a `datasets.Json` column, and its encoding
    (`datasets.utils.json.json_encode_field`, internal) stores a string that is valid JSON as that JSON: `"1"` reads
    back as the number 1, so no check of the loaded rows can tell it from a number. Such a file's rows are checked as
    the file spells them (`personalign.data.loading.json_file_rows`). Pinned by
    `tests/test_alignx_builder.py::test_string_in_a_vector_is_refused_although_datasets_reads_it_as_a_number`.

    Args:
        dataset (`Dataset`): The rows of one part (file or Hub split).
        names (`RowNames`): Their names (`DatasetSource.part_row_names`): one local file, or none.
    """
    if len(names.files) != 1 or Path(names.files[0][0]).suffix not in (".json", ".jsonl"):
        return None
    json_columns = (
        _holds(feature, lambda f: isinstance(f, datasets.Json))
        for column, feature in dataset.features.items()
        if column in _READ_COLUMNS
    )
    if not any(json_columns):
        return None
    return Path(names.files[0][0])


def _normalized_file_rows(
    path: str, names: RowNames, require_preference: bool, stamp: tuple[int, int]
) -> Iterator[dict]:
    # `stamp` (mtime, size) only keys `Dataset.from_generator`'s cache to this version of the file.
    space = PreferenceSpace.alignx()
    for index, row in enumerate(json_file_rows(path)):
        yield normalize_row(row, names(index), space, require_preference)


def _normalize(
    dataset: Dataset, where: str, names: RowNames, num_proc: int | None, batch_size: int, require_preference: bool
) -> Dataset:
    require_columns(dataset, (PROMPT_COLUMN, CHOSEN_COLUMN, REJECTED_COLUMN), where, "an AlignX")
    lossy = lossy_json_file(dataset, names)
    if lossy is not None:  # the rows as the file spells them (see `lossy_json_file`)
        stat = lossy.stat()
        try:
            return Dataset.from_generator(
                _normalized_file_rows,
                features=RAW_FEATURES,
                gen_kwargs={
                    "path": str(lossy),
                    "names": names,
                    "require_preference": require_preference,
                    "stamp": (stat.st_mtime_ns, stat.st_size),
                },
            )
        except DatasetGenerationError as error:  # `datasets` wraps what the generator raises
            if isinstance(error.__cause__, InputError):
                raise error.__cause__ from None
            raise
    return dataset.map(
        _normalize_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        fn_kwargs={"names": names, "require_preference": require_preference, "numeric": numeric_vectors(dataset)},
        features=RAW_FEATURES,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=f"Validating {where}",
    )


def read_alignx(
    source: str | Path = ALIGNX_HUB_ID,
    num_proc: int | None = None,
    batch_size: int = 1000,
    require_preference: bool = False,
    **load_kwargs: Any,
) -> DatasetDict:
    """The `raw` config: read AlignX from a local folder / file or a Hub id, validate every row, normalise it.

    Args:
        source (`str` or `Path`, *optional*, defaults to `"JinaLeejnl/AlignX"`): Any source
            `personalign.data.loading.load_source` reads: a local folder of parquet / jsonl / json files (splits by
            file name, as `load_dataset(folder)`), a single such file (a benchmark file's JSON list too), a built
            folder (its `raw` config) or a Hub dataset id.
        num_proc (`int`, *optional*): Processes for the batched validation.
        batch_size (`int`, *optional*, defaults to `1000`): Rows per `map` batch.
        require_preference (`bool`, *optional*, defaults to `False`): Refuse a row whose persona PBA cannot turn
            into a preference text (see `normalize_row`); set when the `pba` config will be rendered.
        **load_kwargs: Passed to `datasets.load_dataset` for a Hub id (e.g. `revision`, `token`).

    Returns:
        `DatasetDict` with `RAW_FEATURES`.

    Raises:
        `InputError`: On a bad source (see `load_source`) or row, naming the file (or Hub split), the row (a
            JSON-lines file's line, 1-based; else the 0-based row, see `RowNames`) and column.
    """
    loaded = load_source(source, **load_kwargs)
    splits = {}
    for split, parts in loaded.parts.items():
        normalized = [
            _normalize(data, where, loaded.part_row_names(where), num_proc, batch_size, require_preference)
            for where, data in parts
        ]
        splits[split] = normalized[0] if len(normalized) == 1 else concatenate_datasets(normalized)
    return DatasetDict(splits)


# --------------------------------------------------------------------------------------------------- rendering
def history_rng(seed: int, index: int, epoch: int = 0) -> random.Random:
    """The random stream of row `index`'s history draw in `epoch`: the built configs are epoch 0; the trainers redraw
    with the same seed in later epochs."""
    return random.Random(f"{seed}:{index}" if epoch == 0 else f"{seed}:{index}:{epoch}")


def render_row(
    row: Mapping[str, Any], index: int, style: Literal["ica", "pba"], config: AlignXBuildConfig, epoch: int = 0
) -> dict:
    """One `raw` row as an `ica` or `pba` training row (see `AlignXBuildConfig`), with the history drawn for `epoch`."""
    persona = Persona.from_alignx_row(row, space=PreferenceSpace.alignx(), validate=False)  # `raw` rows are validated
    if not config.keep_full_history:
        persona = persona.sample_history(history_rng(config.seed, index, epoch), config.max_history_items)
    profile = None
    if style == "ica":
        prompt = ica_messages(row["prompt"], persona, include_demographics=config.include_demographics)
    else:
        profile = persona.profile_text(
            PreferenceSpace.alignx(), upper=config.upper, lower=config.lower, arithmetic=config.arithmetic
        )
        prompt = pba_messages(row["prompt"], profile)
    if config.prompt_format == "alignx_release":
        example = {"prompt": to_alignx_release_prompt(prompt), "chosen": row["chosen"], "rejected": row["rejected"]}
    else:
        example = preference_example(prompt, row["chosen"], row["rejected"])
    direction = alignx_column(row, DIRECTION_COLUMN)  # the release's spelling as well as the normalised one
    return {**example, "profile": profile, "preference_direction": None if direction is None else row[direction]}


def render_batch(
    batch: Mapping[str, list], indices: list[int], style: str, config: AlignXBuildConfig, epoch: int = 0
) -> dict:
    """`render_row` over a `Dataset.map` batch (with indices), as `CHAT_FEATURES` / `RELEASE_FORMAT_FEATURES` columns."""
    features = RELEASE_FORMAT_FEATURES if config.prompt_format == "alignx_release" else CHAT_FEATURES
    rows = [
        render_row(row, index, style, config, epoch) for row, index in zip(batch_rows(batch), indices, strict=True)
    ]
    return _columns(rows, features)


def render_alignx(
    raw: DatasetDict,
    style: Literal["ica", "pba"],
    config: AlignXBuildConfig | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
) -> DatasetDict:
    """Render a `raw` DatasetDict (from `read_alignx`) as the `ica` or `pba` config."""
    if style not in ("ica", "pba"):
        raise InputError(f"style must be 'ica' or 'pba', got {style!r}.")
    config = config or AlignXBuildConfig()
    features = RELEASE_FORMAT_FEATURES if config.prompt_format == "alignx_release" else CHAT_FEATURES
    return DatasetDict(
        {
            split: data.map(
                render_batch,
                batched=True,
                batch_size=batch_size,
                with_indices=True,
                fn_kwargs={"style": style, "config": config},
                features=features,
                remove_columns=data.column_names,
                num_proc=num_proc,
                desc=f"Rendering {style} {split}",
            )
            for split, data in raw.items()
        }
    )


def build_alignx_configs(
    source: str | Path = ALIGNX_HUB_ID,
    config_names: tuple[str, ...] = ALIGNX_CONFIGS,
    config: AlignXBuildConfig | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
    **load_kwargs: Any,
) -> dict[str, DatasetDict]:
    """Build several AlignX configs from one read of the source: `{config name: DatasetDict}`."""
    unknown = [name for name in config_names if name not in ALIGNX_CONFIGS]
    if unknown or not config_names:
        raise InputError(
            f"unknown AlignX config {unknown[0] if unknown else ''!r}; choose from {', '.join(ALIGNX_CONFIGS)}."
        )
    raw = read_alignx(
        source, num_proc=num_proc, batch_size=batch_size, require_preference="pba" in config_names, **load_kwargs
    )
    return {
        name: raw if name == "raw" else render_alignx(raw, name, config, num_proc=num_proc, batch_size=batch_size)
        for name in config_names
    }


def build_alignx(
    source: str | Path = ALIGNX_HUB_ID,
    config_name: Literal["raw", "ica", "pba"] = "pba",
    config: AlignXBuildConfig | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
    **load_kwargs: Any,
) -> DatasetDict:
    """Build one AlignX config from a local folder / file or a Hub id.

    Example:

    ```python
    >>> from personalign.data.alignx import AlignXBuildConfig, build_alignx
    >>> pba = build_alignx("path/to/alignx", "pba", AlignXBuildConfig(seed=0), num_proc=2)
    >>> pba["train"][0]["prompt"][1]["content"]  # the user message, ending with the preference text
    ```
    """
    configs = build_alignx_configs(source, (config_name,), config, num_proc, batch_size, **load_kwargs)
    return configs[config_name]


def alignx_card(source: str | Path, config: AlignXBuildConfig | None = None) -> DatasetCardSpec:
    """The dataset card of a built AlignX dataset."""
    config = config or AlignXBuildConfig()
    return DatasetCardSpec(
        pretty_name="AlignX (personalign build)",
        summary=(
            "AlignX (Li et al., 2025): personalized preference pairs with user personas (comments, pairwise "
            "feedback, demographic descriptions) over a 90-dimension preference space, normalised and rendered "
            "for training with TRL by personalign."
        ),
        source=str(source),
        descriptions={
            "raw": "the release normalised: snake_case columns, typed features, every preference vector validated.",
            "ica": "in-context alignment: conversational prompts with the sampled history and demographics.",
            "pba": "preference-bridged alignment: conversational prompts with the aggregated preference text.",
        },
        provenance={"personalign_settings": config.to_dict(), "history_rule": "AlignX: 0-4 comments, 0-4 pairs"},
        citations=[ALIGNX_CITATION],
        tags=["alignx"],
    )


# ------------------------------------------------------------------------------------------- datasets builder
@dataclass
class AlignXBuilderConfig(datasets.BuilderConfig):
    """`datasets` builder config: which AlignX config, from which source, with which `AlignXBuildConfig` settings.

    Args:
        source (`str`, *optional*, defaults to `"JinaLeejnl/AlignX"`): The AlignX release: a Hub id, a local folder
            or a file.
        seed (`int`, *optional*, defaults to `0`): Seed of the history sampling (`AlignXBuildConfig.seed`).
        keep_full_history (`bool`, *optional*, defaults to `False`): Keep every history item instead of sampling.
        prompt_format (`str`, *optional*, defaults to `"chat"`): `"chat"` (message lists) or `"alignx_release"`
            (the release's exact Llama-3 prompt strings).
        arithmetic (`str`, *optional*, defaults to `"exact"`): PBA aggregation arithmetic (`"exact"` or
            `"float32"`, the release's).
        num_proc (`int`, *optional*): Processes for the build (the output is the same for any number).
    """

    source: str = ALIGNX_HUB_ID
    seed: int = 0
    keep_full_history: bool = False
    prompt_format: str = "chat"
    arithmetic: str = "exact"
    num_proc: int | None = None

    def build_config(self) -> AlignXBuildConfig:
        """The `AlignXBuildConfig` of these builder settings."""
        return AlignXBuildConfig(
            seed=self.seed,
            keep_full_history=self.keep_full_history,
            prompt_format=self.prompt_format,
            arithmetic=self.arithmetic,
        )


class AlignX(datasets.ArrowBasedBuilder):
    """AlignX as a `datasets` builder (loading scripts are gone from `datasets` >= 4; builder classes remain).

    Example:

    ```python
    >>> builder = AlignX(config_name="pba", source="path/to/alignx", seed=0)
    >>> builder.download_and_prepare()
    >>> pba = builder.as_dataset()
    ```
    """

    BUILDER_CONFIG_CLASS = AlignXBuilderConfig
    BUILDER_CONFIGS: ClassVar[list[AlignXBuilderConfig]] = [AlignXBuilderConfig(name=name) for name in ALIGNX_CONFIGS]
    DEFAULT_CONFIG_NAME = "pba"

    def _info(self) -> datasets.DatasetInfo:
        if self.config.name == "raw":
            features = RAW_FEATURES
        else:
            features = RELEASE_FORMAT_FEATURES if self.config.prompt_format == "alignx_release" else CHAT_FEATURES
        return datasets.DatasetInfo(description=alignx_card(self.config.source).summary, features=features)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        built = build_alignx(self.config.source, self.config.name, self.config.build_config(), self.config.num_proc)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"dataset": data}) for split, data in built.items()]

    def _generate_tables(self, dataset: Dataset) -> Iterator[tuple[tuple[int, int], pa.Table]]:
        for index, batch in enumerate(dataset.data.to_batches(max_chunksize=10_000)):
            yield (0, index), pa.Table.from_batches([batch])


# ------------------------------------------------------------------------------------------- validation only
def _check_batch(
    batch: Mapping[str, list], indices: list[int], names: RowNames, require_preference: bool, numeric: bool
) -> None:
    # Raises on the first bad row; the normalised rows are not kept.
    _normalize_batch(batch, indices, names, require_preference, numeric)


def check_alignx_rows(
    dataset: Dataset,
    names: RowNames,
    require_preference: bool = False,
    num_proc: int | None = None,
    batch_size: int = 1000,
) -> None:
    """Validate AlignX rows exactly as `read_alignx` (`personalign build-dataset alignx`) does, with the same
    messages, without writing the normalised rows: for the trainers, which render the rows as they are.

    One batched pass (`Dataset.map` whose function returns nothing, so no cache file is written).

    Args:
        dataset (`Dataset`): AlignX rows (release column names or snake_case) of one file or Hub split.
        names (`RowNames`): The names of its rows for messages (`DatasetSource.part_row_names`: a JSON-lines row
            by its 1-based line, any other by its 0-based row).
        require_preference (`bool`, *optional*, defaults to `False`): Refuse a row whose persona PBA cannot turn
            into a preference text, as the `pba` config does (see `normalize_row`).
        num_proc (`int`, *optional*): Processes for the pass.
        batch_size (`int`, *optional*, defaults to `1000`): Rows per batch.

    Raises:
        `InputError`: If a column is missing or a row is bad (a prompt that is not text, a vector of the wrong
            length or with a value outside {0, 0.5, 1}, an item without its fields), naming `where`, the row and the
            column.
    """
    require_columns(dataset, (PROMPT_COLUMN, CHOSEN_COLUMN, REJECTED_COLUMN), names.where, "an AlignX")
    lossy = lossy_json_file(dataset, names)
    if lossy is not None:  # the rows as the file spells them (see `lossy_json_file`)
        space = PreferenceSpace.alignx()
        for index, row in enumerate(json_file_rows(lossy)):
            normalize_row(row, names(index), space, require_preference)
        return
    dataset.map(
        _check_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        fn_kwargs={"names": names, "require_preference": require_preference, "numeric": numeric_vectors(dataset)},
        num_proc=num_proc,
        desc=f"Validating {names.where}",
    )
