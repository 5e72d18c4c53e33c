"""The counterfactual MultiFacet benchmark (the counterfactual paper, §3.1 and Figure 2) from Multifaceted-Collection.

Multifaceted-Collection has three rows per instruction: the same `prompt`, three `system` / `preference_set` /
`output` triples, each output the preferred answer under its own preference set. The builder:

1. groups rows by `prompt` (one instruction id per group) and holds out `test_instructions` groups as the test split
   (the paper's 307 by default, or a tenth of the instructions when the source has fewer than 3,070);
2. gives every response a **preference key** per dimension (style, background_knowledge, informativeness,
   harmlessness) from its `preference_set` entry: by default `"<subdimension>: <preference>"`, lower-cased with
   punctuation folded (`match="preference"`); `match="subdimension"` keys on the subdimension alone. Dimension names
   are matched after folding case, spaces, hyphens and underscores (`fold_dimension`: the card's "background
   knowledge", the project page's "Background knowledge" and `background_knowledge` are one dimension); entries on
   any other dimension are ignored and counted in the report, and a requested dimension that ends with no row is an
   error (a warning with `allow_missing_dimensions=True`);
3. makes preference pairs inside an instruction: `chosen` beats `rejected` on dimension `d` when their keys on `d`
   differ; the user of that row is "prefers `key_d(chosen)`";
4. gives each row a feedback history of `history_size` (T, default 10) train pairs whose chosen response has the
   user's key on `d` and whose rejected one does not, never from the row's own instruction, drawn through an
   index from key to pairs (no scan per row), seeded per row.

Pairing: `"counterfactual"` keeps both orientations of every pair on every dimension where the two responses
differ, so each pair appears under opposite users and a persona-blind model scores exactly chance (the test split
default); `"seed"` makes the counterfactual paper's three pairs per instruction (each response chosen once, against
a random other response, on a random dimension where they differ; the train split default).

Histories are stored as response ids into the `responses` config (the validated source, one row per response), not
as text: ten pairs of long answers per row would multiply the 197k-row source into tens of gigabytes.
`attach_history` turns the ids into `{prompt, chosen, rejected}` texts, lazily (`with_transform`) or eagerly.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import datasets
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, List, Value, concatenate_datasets

from ..errors import InputError
from ..hub.cards import DatasetCardSpec
from ..papers import COUNTERFACTUAL_CITATION, MULTIFACETED_CITATION
from .loading import DatasetSource, batch_rows, load_source, require_columns, value_kind
from .synthetic import MULTIFACETED_FEATURES

MULTIFACET_HUB_ID = "kaist-ai/Multifaceted-Collection"
MULTIFACET_DIMENSIONS = ("style", "background_knowledge", "informativeness", "harmlessness")
REQUIRED_COLUMNS = ("prompt", "output", "preference_set")
PAPER_TEST_INSTRUCTIONS = 307
"""The counterfactual paper's test split: 307 held-out instructions."""
SMALL_SOURCE_TEST_FRACTION = 10
"""Below `PAPER_TEST_INSTRUCTIONS * SMALL_SOURCE_TEST_FRACTION` instructions, the default holds out 1 in 10."""

logger = logging.getLogger(__name__)

RESPONSE_FEATURES = Features(
    {"response_id": Value("int64"), "instruction_id": Value("int64"), **MULTIFACETED_FEATURES}
)
"""The `responses` config: the validated source, one row per response, addressed by `response_id`."""

COUNTERFACTUAL_FEATURES = Features(
    {
        "instruction_id": Value("int64"),
        "dimension": Value("string"),
        "preference": Value("string"),
        "preference_key": Value("string"),
        "chosen_id": Value("int64"),
        "rejected_id": Value("int64"),
        "candidate_ids": List(Value("int64")),
        "history": List({"chosen_id": Value("int64"), "rejected_id": Value("int64")}),
        "rubric": Value("string"),
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
    }
)
"""The `counterfactual` config: one row per (user, target pair); `history` holds response ids (see
`attach_history`)."""

HISTORY_TEXT = List({"prompt": Value("string"), "chosen": Value("string"), "rejected": Value("string")})
MULTIFACET_CF_CONFIGS = ("counterfactual", "responses")
"""The configs of a `personalign build-dataset multifacet-cf` build: the rows, and the response table their history
ids point into."""


@dataclass
class MultifacetBuildConfig:
    """How `build_multifacet_cf` builds the counterfactual benchmark.

    Args:
        history_size (`int`, *optional*, defaults to `10`): T, the number of feedback pairs per user.
        min_history (`int`, *optional*, defaults to `1`): Rows whose user has fewer available pairs are dropped
            (and counted).
        match (`str`, *optional*, defaults to `"preference"`): What makes two responses "the same preference" on a
            dimension: `"preference"` (subdimension and preference text) or `"subdimension"`.
        train_pairing (`str`, *optional*, defaults to `"seed"`): `"seed"` or `"counterfactual"` (module docstring).
        test_pairing (`str`, *optional*, defaults to `"counterfactual"`): The same, for the test split.
        dimensions (`tuple[str, ...]`, *optional*): Dimensions users are defined on; all four by default. Names are
            matched after folding case, spaces, hyphens and underscores (`"Background knowledge"` is
            `"background_knowledge"`) and stored folded.
        test_instructions (`int` or `None`, *optional*, defaults to `None`): Instructions held out for the test split
            (at least 1: there is no build without a test split). `None` is the counterfactual paper's 307 when the
            source has at least 3,070 instructions (the full Multifaceted-Collection has about 65,000, so a full build
            is the paper's), else a tenth of them (at least one): `min(307, max(1, num_instructions // 10))`, see
            `default_test_instructions`. A build whose train or test split would end with no row is an error.
        allow_missing_dimensions (`bool`, *optional*, defaults to `False`): A requested dimension that ends with no
            row (no response has it, or no pair differs on it) is an error naming the dimension and the dimension
            values of the source; with `True` it is a warning (and a line of the report) instead.
        seed (`int`, *optional*, defaults to `0`): Seeds the split, the pairing and the history draws.
    """

    history_size: int = 10
    min_history: int = 1
    match: Literal["preference", "subdimension"] = "preference"
    train_pairing: Literal["seed", "counterfactual"] = "seed"
    test_pairing: Literal["seed", "counterfactual"] = "counterfactual"
    dimensions: tuple[str, ...] = MULTIFACET_DIMENSIONS
    test_instructions: int | None = None
    allow_missing_dimensions: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.match not in ("preference", "subdimension"):
            raise InputError(f"match must be 'preference' or 'subdimension', got {self.match!r} (CLI: --match).")
        for name in ("train_pairing", "test_pairing"):
            if getattr(self, name) not in ("seed", "counterfactual"):
                raise InputError(f"{name} must be 'seed' or 'counterfactual', got {getattr(self, name)!r}.")
        if isinstance(self.dimensions, str):
            self.dimensions = (self.dimensions,)
        folded = tuple(dict.fromkeys(fold_dimension(d) for d in self.dimensions))
        unknown = [d for d in self.dimensions if fold_dimension(d) not in MULTIFACET_DIMENSIONS]
        if unknown or not folded:
            raise InputError(
                f"dimensions must be a non-empty subset of {', '.join(MULTIFACET_DIMENSIONS)} (case, spaces, hyphens "
                f"and underscores are folded), got {', '.join(repr(d) for d in unknown) or 'none'}."
            )
        if self.history_size < 1 or not 0 <= self.min_history <= self.history_size:
            raise InputError(
                f"need history_size >= 1 and 0 <= min_history <= history_size, got history_size={self.history_size} "
                f"(CLI: --history-size), min_history={self.min_history}."
            )
        if self.test_instructions is not None and self.test_instructions < 1:
            raise InputError(
                f"test_instructions must be >= 1 (the benchmark is scored on its held-out test split), or None for the "
                f"default, got {self.test_instructions} (CLI: --test-instructions)."
            )
        self.dimensions = folded

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (in the dataset card's provenance and the build's cache key)."""
        return asdict(self)


@dataclass
class MultifacetBuildReport:
    """What the builder made: rows per split and dimension, and what it dropped and why.

    Args:
        rows (`dict[str, Counter]`): Rows per split, per dimension.
        instructions (`dict[str, int]`): Instructions per split.
        dropped_short_history (`Counter`): Rows dropped per dimension for a history shorter than `min_history`.
        dropped_single_response_instructions (`int`): Instructions with a single response (no pair).
        source_dimensions (`Counter`): Every `preference_set` dimension value of the source as written, with counts.
        unknown_dimensions (`Counter`): The values among them that fold to no known dimension (ignored).
        missing_dimensions (`dict[str, str]`): Requested dimensions without a row and why (only with
            `allow_missing_dimensions=True`; otherwise they are an error).
    """

    rows: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    instructions: dict[str, int] = field(default_factory=dict)
    dropped_short_history: Counter = field(default_factory=Counter)
    dropped_single_response_instructions: int = 0
    source_dimensions: Counter = field(default_factory=Counter)
    unknown_dimensions: Counter = field(default_factory=Counter)
    missing_dimensions: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The report, one line per split and then what was dropped (printed by `personalign build-dataset`)."""
        out = []
        for split, counts in self.rows.items():
            per_dimension = ", ".join(f"{d} {n:,}" for d, n in sorted(counts.items()))
            out.append(
                f"{split}: {self.instructions.get(split, 0):,} instructions, {sum(counts.values()):,} rows ({per_dimension})"
            )
        if self.dropped_short_history:
            out.append(
                "dropped for too short a history: "
                + ", ".join(f"{d} {n:,}" for d, n in sorted(self.dropped_short_history.items()))
            )
        if self.dropped_single_response_instructions:
            out.append(f"instructions with a single response (no pair): {self.dropped_single_response_instructions:,}")
        if self.unknown_dimensions:
            out.append(
                "preference_set entries on an unknown dimension (ignored): "
                + _counts(self.unknown_dimensions)
                + f"; known: {', '.join(MULTIFACET_DIMENSIONS)}"
            )
        for dimension, why in self.missing_dimensions.items():
            out.append(f"no row on dimension {dimension!r} ({why})")
        return out


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{value!r} {count:,}" for value, count in sorted(counter.items(), key=lambda kv: -kv[1]))


def fold_dimension(name: str) -> str:
    """A `preference_set` dimension name folded for matching: lower case, runs of spaces, hyphens and underscores
    as one `_`.

    Example:

    ```python
    >>> fold_dimension("Background knowledge"), fold_dimension("background-knowledge")
    ('background_knowledge', 'background_knowledge')
    ```
    """
    return _DIMENSION_SEPARATORS.sub("_", str(name).strip().lower()).strip("_")


def default_test_instructions(num_instructions: int) -> int:
    """The default test split size: the paper's 307, or a tenth of the instructions (at least one) when the source
    has fewer than `307 * 10`."""
    return min(PAPER_TEST_INSTRUCTIONS, max(1, num_instructions // SMALL_SOURCE_TEST_FRACTION))


# ----------------------------------------------------------------------------------------------------- reading
_FOLD = re.compile(r"[^a-z0-9]+")
_DIMENSION_SEPARATORS = re.compile(r"[\s_\-]+")


def preference_key(item: Mapping[str, Any], match: str = "preference") -> str:
    """The key that decides "the same preference" on a dimension (see the module docstring)."""

    def fold(text: Any) -> str:
        return _FOLD.sub(" ", str(text or "").lower()).strip()

    if match == "subdimension":
        return fold(item.get("subdimension"))
    return f"{fold(item.get('subdimension'))}: {fold(item.get('preference'))}"


def _check_row(row: Mapping[str, Any], where: str) -> None:
    for column in ("prompt", "output"):
        if not isinstance(row.get(column), str):
            raise InputError(f"{where}, column {column!r}: expected text, got {value_kind(row.get(column))}.")
    items = row.get("preference_set")
    if not isinstance(items, list):
        raise InputError(f"{where}, column 'preference_set': expected a list of preferences, got {value_kind(items)}.")
    for index, item in enumerate(items):
        missing = [
            k for k in ("dimension", "subdimension", "preference") if not isinstance(item, Mapping) or k not in item
        ]
        if missing:
            raise InputError(
                f"{where}, column 'preference_set' item {index}: missing {', '.join(repr(m) for m in missing)}."
            )
        if not isinstance(item["dimension"], str):
            raise InputError(
                f"{where}, column 'preference_set' item {index}: expected a dimension name (text) in 'dimension', "
                f"got {value_kind(item['dimension'])}."
            )


def read_responses(source: str | Path = MULTIFACET_HUB_ID, **load_kwargs: Any) -> Dataset:
    """Read Multifaceted-Collection SFT rows (every split / file of a source `personalign.data.loading.load_source`
    reads) and validate them; errors name the file, the row (a JSON-lines file's line, 1-based; else the 0-based
    row, see `personalign.data.loading.RowNames`) and the column."""
    checked = []
    loaded = load_source(source, **load_kwargs)
    for where, data in loaded.all_parts():
        require_columns(data, REQUIRED_COLUMNS, where, "a Multifaceted-Collection")
        names = loaded.part_row_names(where)
        offset = 0
        for batch in data.select_columns(list(REQUIRED_COLUMNS)).iter(batch_size=10_000):
            for index, row in enumerate(batch_rows(batch)):
                _check_row(row, names(offset + index))
            offset += len(batch["prompt"])
        for column in ("main_source", "original_source", "system"):
            if column not in data.column_names:
                data = data.add_column(column, [None] * len(data))
        checked.append(
            data.select_columns(["main_source", "original_source", "preference_set", "system", "prompt", "output"])
        )
    return checked[0] if len(checked) == 1 else concatenate_datasets(checked)


# ------------------------------------------------------------------------------------------------------ building
class _PairIndex:
    """Train pairs by (dimension, preference key of the chosen response): interleaved (chosen, rejected) ids."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], array] = defaultdict(lambda: array("q"))

    def add(self, dimension: str, key: str, chosen: int, rejected: int) -> None:
        entries = self._pairs[(dimension, key)]
        entries.append(chosen)
        entries.append(rejected)

    def sample(
        self, dimension: str, key: str, size: int, exclude_group: int, group_of: array, rng: random.Random
    ) -> list[tuple[int, int]]:
        entries = self._pairs.get((dimension, key))
        if not entries:
            return []
        count = len(entries) // 2
        # Draw a few extra positions and drop the ones from the row's own instruction; fall back to a full pass only
        # when the key is so rare that the draw could not fill the history.
        positions = rng.sample(range(count), min(count, size + 8))
        chosen = [p for p in positions if group_of[entries[2 * p]] != exclude_group][:size]
        if len(chosen) < size and len(positions) < count:
            drawn = set(positions)
            rest = [p for p in range(count) if p not in drawn and group_of[entries[2 * p]] != exclude_group]
            rng.shuffle(rest)
            chosen += rest[: size - len(chosen)]
        return [(entries[2 * p], entries[2 * p + 1]) for p in chosen]


def _ordered_pairs(members: Sequence[int], keys: Mapping[str, list], dimension: str) -> list[tuple[int, int]]:
    # A response without an entry for the dimension (empty key) has no preference there: it pairs with nothing.
    own = keys[dimension]
    return [(c, r) for c in members for r in members if c != r and own[c] and own[r] and own[c] != own[r]]


def _row_pairs(
    members: Sequence[int], keys: Mapping[str, list], dimensions: Sequence[str], pairing: str, rng: random.Random
) -> list[tuple[str, int, int]]:
    if pairing == "counterfactual":
        return [(d, c, r) for d in dimensions for c, r in _ordered_pairs(members, keys, d)]
    # The counterfactual paper's pairing: each response chosen once, on a random dimension where some other response
    # differs.
    out = []
    for c in members:
        options = [(d, r) for d in dimensions for cc, r in _ordered_pairs(members, keys, d) if cc == c]
        if options:
            d, r = rng.choice(options)
            out.append((d, c, r))
    return out


def build_multifacet_cf(
    source: str | Path = MULTIFACET_HUB_ID, config: MultifacetBuildConfig | None = None, **load_kwargs: Any
) -> tuple[dict[str, DatasetDict], MultifacetBuildReport]:
    """Build the counterfactual MultiFacet benchmark.

    Returns:
        `(configs, report)`: `configs["counterfactual"]` (train / test `DatasetDict`) and `configs["responses"]`
        (the response table the ids point into), and a `MultifacetBuildReport` with counts per split and dimension.

    Raises:
        `InputError`: On a malformed source, a requested dimension without a row (see `allow_missing_dimensions`), a
            test split that leaves no training instruction, or a train or test split that would have no row (e.g.
            a single train instruction: a train row's history never comes from its own instruction). The message
            names the split, its counts and the option to change.
    """
    config = config or MultifacetBuildConfig()
    responses = read_responses(source, **load_kwargs)
    # One pass over the two light columns: instruction ids and preference keys, no texts held.
    group_ids: dict[str, int] = {}
    group_of = array("q")
    keys: dict[str, list[str]] = {d: [] for d in MULTIFACET_DIMENSIONS}
    preference_text: dict[str, list[str]] = {d: [] for d in MULTIFACET_DIMENSIONS}
    interned: dict[str, str] = {}
    report = MultifacetBuildReport()
    folded: dict[str, str] = {}  # raw dimension value -> canonical name ("" when unknown)
    for batch in responses.select_columns(["prompt", "preference_set"]).iter(batch_size=10_000):
        for prompt, items in zip(batch["prompt"], batch["preference_set"], strict=True):
            group_of.append(group_ids.setdefault(prompt, len(group_ids)))
            by_dimension = {}
            for item in items:
                raw = item["dimension"]
                report.source_dimensions[raw] += 1
                if raw not in folded:
                    name = fold_dimension(raw)
                    folded[raw] = name if name in MULTIFACET_DIMENSIONS else ""
                if folded[raw]:
                    by_dimension[folded[raw]] = item
                else:
                    report.unknown_dimensions[raw] += 1
            for d in MULTIFACET_DIMENSIONS:
                item = by_dimension.get(d)
                key = preference_key(item, config.match) if item else ""
                keys[d].append(interned.setdefault(key, key))
                text = str(item.get("preference") or "") if item else ""
                preference_text[d].append(interned.setdefault(text, text))
    members_of: list[list[int]] = [[] for _ in range(len(group_ids))]
    for response_id, group in enumerate(group_of):
        members_of[group].append(response_id)

    # A requested dimension that no response has is known now: fail (or warn) before the long part of the build.
    _check_dimensions(
        {d: "no response's preference_set has an entry on it" for d in config.dimensions if not any(keys[d])},
        source,
        config,
        report,
    )
    report.dropped_single_response_instructions = sum(len(m) < 2 for m in members_of)
    order = [g for g in range(len(members_of)) if len(members_of[g]) >= 2]
    random.Random(f"{config.seed}:split").shuffle(order)
    num_test = default_test_instructions(len(order)) if config.test_instructions is None else config.test_instructions
    if num_test >= len(order):
        raise InputError(
            f"test_instructions={num_test} (CLI: --test-instructions) leaves no training instruction ({len(order)} "
            f"instructions with two or more responses in all); hold out fewer"
            + ("." if config.test_instructions is None else ", or leave it unset for the default.")
        )
    splits = {"train": sorted(order[num_test:]), "test": sorted(order[:num_test])}

    index = _PairIndex()
    for group in splits["train"]:
        for d in config.dimensions:
            for c, r in _ordered_pairs(members_of[group], keys, d):
                index.add(d, keys[d][c], c, r)

    candidates: Counter = Counter()  # target pairs per split, before the min_history filter

    def id_rows(split: str) -> Iterator[dict[str, Any]]:
        pairing = config.train_pairing if split == "train" else config.test_pairing
        for group in splits[split]:
            rng = random.Random(f"{config.seed}:{split}:{group}")
            members = members_of[group]
            for d, c, r in _row_pairs(members, keys, config.dimensions, pairing, rng):
                candidates[split] += 1
                history = index.sample(d, keys[d][c], config.history_size, group, group_of, rng)
                if len(history) < config.min_history:
                    report.dropped_short_history[d] += 1
                    continue
                report.rows[split][d] += 1
                yield {
                    "instruction_id": group,
                    "dimension": d,
                    "preference": preference_text[d][c],
                    "preference_key": keys[d][c],
                    "chosen_id": c,
                    "rejected_id": r,
                    "candidate_ids": list(members),
                    "history": [{"chosen_id": hc, "rejected_id": hr} for hc, hr in history],
                    "rubric": None,
                }

    fingerprint = _fingerprint(source, config)
    id_features = Features(
        {k: v for k, v in COUNTERFACTUAL_FEATURES.items() if k not in ("prompt", "chosen", "rejected")}
    )
    tables = {}
    for split in ("train", "test"):
        report.instructions[split] = len(splits[split])
        report.rows[split] = Counter()
        # Id-only rows are small (a few ints per row), so they are collected as Arrow batches; the texts are then
        # taken from the memory-mapped response table batch by batch, straight into an on-disk cache file.
        batches = [
            pa.RecordBatch.from_pylist(chunk, schema=id_features.arrow_schema)
            for chunk in _chunks(id_rows(split), 10_000)
        ]
        tables[split] = pa.Table.from_batches(batches, schema=id_features.arrow_schema)
    # An empty split would be written as a folder `load_dataset` cannot read: refuse it, naming the split.
    for split in ("train", "test"):
        if not tables[split].num_rows:
            raise InputError(_empty_split_message(split, splits, candidates[split], config))
    rows_of = Counter()
    for counts in report.rows.values():
        rows_of.update(counts)
    _check_dimensions(
        {
            d: (
                f"all {report.dropped_short_history[d]:,} of its rows had fewer than min_history="
                f"{config.min_history} history pairs"
                if report.dropped_short_history[d]
                else "no two responses of an instruction differ on it"
            )
            for d in config.dimensions
            if not rows_of[d] and d not in report.missing_dimensions
        },
        source,
        config,
        report,
    )
    built = {
        split: _with_target_texts(Dataset(tables[split]), responses, f"{fingerprint}-{split}")
        for split in ("train", "test")
    }
    responses = responses.map(
        lambda batch, indices: {"response_id": indices, "instruction_id": [group_of[i] for i in indices]},
        batched=True,
        with_indices=True,
        features=RESPONSE_FEATURES,
        new_fingerprint=f"{fingerprint}-responses",
        desc="Indexing responses",
    )
    configs = {"counterfactual": DatasetDict(built), "responses": DatasetDict({"train": responses})}
    return configs, report


def _empty_split_message(
    split: str, splits: Mapping[str, Sequence[int]], candidates: int, config: MultifacetBuildConfig
) -> str:
    """Why a split of the `counterfactual` config would have no row, and which option to change."""
    counts = (
        f"the {split} split of the 'counterfactual' config would have 0 rows ({len(splits['train']):,} train and "
        f"{len(splits['test']):,} test instructions; test_instructions={len(splits['test'])}, CLI: "
        "--test-instructions)"
    )
    fewer_or_more = "fewer" if split == "train" else "more"
    if not candidates:
        why = f"no two responses of its instructions differ on the requested dimension(s) (match={config.match!r})"
        fixes = [f"hold out {fewer_or_more} instructions (--test-instructions)"]
        if config.match == "subdimension":
            fixes.append("match on the preference text too (--match preference)")
    else:
        why = (
            f"all {candidates:,} of its target pairs had fewer than min_history={config.min_history} history pairs "
            "(a history comes from train pairs of other instructions whose chosen response has the user's key)"
        )
        fixes = [
            "hold out fewer instructions, leaving more train instructions to draw histories from (--test-instructions)"
        ]
        if config.match == "preference":
            fixes.append("key users on the subdimension alone (--match subdimension)")
        fixes.append("lower min_history (Python only: MultifacetBuildConfig(min_history=0) keeps short histories)")
    return f"{counts}: {why}. To build it, {', or '.join(fixes)}."


def _check_dimensions(
    missing: Mapping[str, str], source: str | Path, config: MultifacetBuildConfig, report: MultifacetBuildReport
) -> None:
    """Raise on the requested dimensions without a row (`{dimension: why}`), naming the source's dimension values;
    with `allow_missing_dimensions`, log a warning and record them in the report instead."""
    if not missing:
        return
    seen = _counts(report.source_dimensions) if report.source_dimensions else "none"
    details = "; ".join(f"{d!r}: {why}" for d, why in missing.items())
    message = (
        f"{source}, column 'preference_set': requested dimension(s) {', '.join(repr(d) for d in missing)} have no "
        f"user / pair ({details}). Dimension values in the source, with counts: {seen} (names match after folding "
        "case, spaces, hyphens and underscores)."
    )
    if not config.allow_missing_dimensions:
        raise InputError(
            f"{message} Pass allow_missing_dimensions=True (CLI: --allow-missing-dimensions) to build without them."
        )
    logger.warning("%s Building without them (allow_missing_dimensions=True).", message)
    report.missing_dimensions.update(missing)


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fingerprint(source: str | Path, config: MultifacetBuildConfig) -> str:
    return hashlib.sha256(repr((str(source), sorted(config.to_dict().items()))).encode()).hexdigest()[:16]


def _take(responses: Dataset, column: str, ids: Sequence[int]) -> list[str]:
    # Ids are positions in the response table (== `response_id`); Arrow's take reads them without a Python loop.
    return responses.data.column(column).take(pa.array(ids, type=pa.int64())).to_pylist()


def _with_target_texts(rows: Dataset, responses: Dataset, name: str) -> Dataset:

    def add_texts(batch: Mapping[str, list]) -> dict[str, list]:
        return {
            "prompt": _take(responses, "prompt", batch["chosen_id"]),
            "chosen": _take(responses, "output", batch["chosen_id"]),
            "rejected": _take(responses, "output", batch["rejected_id"]),
        }

    cache = Path(datasets.config.HF_DATASETS_CACHE) / "personalign_multifacet"
    cache.mkdir(parents=True, exist_ok=True)
    with_texts = rows.map(
        add_texts,
        batched=True,
        batch_size=2_000,
        cache_file_name=str(cache / f"{name}.arrow"),
        load_from_cache_file=False,
        new_fingerprint=name,  # not a hash of the closure: that would try to pickle the response table
        features=COUNTERFACTUAL_FEATURES,
        desc="Adding texts",
    )
    return with_texts


def attach_history(rows: Dataset, responses: Dataset, lazy: bool = True) -> Dataset:
    """Add `history_text`: the row's feedback history as `[{prompt, chosen, rejected}, ...]`, taken from the
    `responses` config by id. `lazy=True` resolves it on access (`with_transform`: no copy, for training);
    `lazy=False` materialises the column (for small sets, e.g. the test split).

    Ids address the rows of `responses` as given (the built `responses` config: its `response_id`). The texts are
    read from its Arrow table, so a `select` / `shuffle` view is flattened first; that test reads `datasets`'
    internal `Dataset._indices` (set on such a view), as `push_to_hub` does, pinned by
    `tests/test_multifacet_builder.py::test_attach_history_reads_a_view_of_the_responses_as_given`.

    Args:
        rows (`Dataset`): Rows of the `counterfactual` config (their `history` ids).
        responses (`Dataset`): The `responses` config's rows the ids point into.
        lazy (`bool`, *optional*, defaults to `True`): Resolve on access instead of materialising the column.

    Returns:
        `Dataset`: `rows` with `history_text`.
    """
    if responses._indices is not None:  # a view: the Arrow table beneath holds other rows, or in another order
        responses = responses.flatten_indices()

    def resolve(batch: Mapping[str, list]) -> dict[str, list]:
        flat = [pair for history in batch["history"] for pair in history]
        chosen_ids = [pair["chosen_id"] for pair in flat]
        rejected_ids = [pair["rejected_id"] for pair in flat]
        prompts = _take(responses, "prompt", chosen_ids)
        chosen = _take(responses, "output", chosen_ids)
        rejected = _take(responses, "output", rejected_ids)
        out, position = [], 0
        for history in batch["history"]:
            out.append(
                [
                    {"prompt": prompts[i], "chosen": chosen[i], "rejected": rejected[i]}
                    for i in range(position, position + len(history))
                ]
            )
            position += len(history)
        return {**batch, "history_text": out}

    if lazy:
        return rows.with_transform(resolve)
    return rows.map(
        resolve, batched=True, batch_size=1_000, features=Features({**rows.features, "history_text": HISTORY_TEXT})
    )


def multifacet_cf_responses(dataset: DatasetSource) -> Dataset | None:
    """The `responses` table of a counterfactual MultiFacet build (the texts its rows' history ids point into), or
    `None` when `dataset` is not one. The one test of "is this a `personalign build-dataset multifacet-cf` dataset"
    (a built folder or its Hub push): it declares both `MULTIFACET_CF_CONFIGS`.

    Args:
        dataset (`DatasetSource`): A dataset as `personalign.data.loading.load_source` reads it.

    Returns:
        `Dataset` or `None`: The `responses` config's `train` split, for `attach_history`.
    """
    if not all(config in dataset.configs for config in MULTIFACET_CF_CONFIGS):
        return None
    return dataset.with_config("responses").split("train")


def multifacet_card(
    source: str | Path, config: MultifacetBuildConfig, report: MultifacetBuildReport
) -> DatasetCardSpec:
    """The dataset card of a built counterfactual MultiFacet dataset."""
    return DatasetCardSpec(
        pretty_name="Counterfactual MultiFacet (personalign build)",
        summary=(
            "Counterfactual in-context personalization data (Jin et al., 2025) built from Multifaceted-Collection "
            "(Lee et al., 2024): each row is a user with a consistent preference on one dimension, a feedback history "
            "of T preference pairs that reflect it, and a target pair from a held-out instruction whose preferred "
            "response depends on that user. Histories are response ids into the `responses` config."
        ),
        source=str(source),
        descriptions={
            "counterfactual": "users, histories (response ids) and target pairs; train / test by instruction.",
            "responses": "the validated source, one row per response, addressed by `response_id`.",
        },
        provenance={"personalign_settings": config.to_dict(), "counts": "; ".join(report.lines())},
        license="cc-by-4.0",
        license_text="Multifaceted-Collection is released under CC BY 4.0; this derived dataset keeps that license.",
        citations=[COUNTERFACTUAL_CITATION, MULTIFACETED_CITATION],
        tags=["multifaceted-collection", "counterfactual"],
    )


# ------------------------------------------------------------------------------------------- datasets builder
@dataclass
class MultifacetCFBuilderConfig(datasets.BuilderConfig):
    """`datasets` builder config: which config (`counterfactual` or `responses`), from which source, with which
    `MultifacetBuildConfig` settings.

    Args:
        source (`str`, *optional*, defaults to `"kaist-ai/Multifaceted-Collection"`): The Multifaceted-Collection
            release: a Hub id, a local folder or a file.
        seed (`int`, *optional*, defaults to `0`): Seeds the split, the pairing and the history draws.
        history_size (`int`, *optional*, defaults to `10`): T, the number of feedback pairs per user.
        match (`str`, *optional*, defaults to `"preference"`): What makes two responses "the same preference" on a
            dimension: `"preference"` (subdimension and preference text) or `"subdimension"`.
        test_instructions (`int`, *optional*): Instructions held out for the test split; by default the
            counterfactual paper's 307, or a tenth of a smaller source (`MultifacetBuildConfig.test_instructions`).
        dimensions (`tuple[str, ...]`, *optional*): Dimensions users are defined on; all four by default.
        allow_missing_dimensions (`bool`, *optional*, defaults to `False`): A requested dimension that ends with no
            row is a warning instead of an error.
    """

    source: str = MULTIFACET_HUB_ID
    seed: int = 0
    history_size: int = 10
    match: str = "preference"
    test_instructions: int | None = None
    dimensions: tuple[str, ...] = MULTIFACET_DIMENSIONS
    allow_missing_dimensions: bool = False

    def build_config(self) -> MultifacetBuildConfig:
        """The `MultifacetBuildConfig` of these builder settings."""
        return MultifacetBuildConfig(
            seed=self.seed,
            history_size=self.history_size,
            match=self.match,
            test_instructions=self.test_instructions,
            dimensions=tuple(self.dimensions),
            allow_missing_dimensions=self.allow_missing_dimensions,
        )


class MultifacetCF(datasets.ArrowBasedBuilder):
    """The counterfactual MultiFacet benchmark as a `datasets` builder.

    Example:

    ```python
    >>> builder = MultifacetCF(config_name="counterfactual", source="path/to/multifaceted-collection")
    >>> builder.download_and_prepare()
    >>> rows = builder.as_dataset()
    ```
    """

    BUILDER_CONFIG_CLASS = MultifacetCFBuilderConfig
    BUILDER_CONFIGS: ClassVar[list[MultifacetCFBuilderConfig]] = [
        MultifacetCFBuilderConfig(name=name) for name in ("counterfactual", "responses")
    ]
    DEFAULT_CONFIG_NAME = "counterfactual"

    def _info(self) -> datasets.DatasetInfo:
        features = COUNTERFACTUAL_FEATURES if self.config.name == "counterfactual" else RESPONSE_FEATURES
        return datasets.DatasetInfo(description=__doc__.split("\n\n")[0], features=features)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        configs, _ = build_multifacet_cf(self.config.source, self.config.build_config())
        built = configs[self.config.name]
        return [datasets.SplitGenerator(name=split, gen_kwargs={"dataset": data}) for split, data in built.items()]

    def _generate_tables(self, dataset: Dataset) -> Iterator[tuple[tuple[int, int], pa.Table]]:
        for index, batch in enumerate(dataset.data.to_batches(max_chunksize=10_000)):
            yield (0, index), pa.Table.from_batches([batch])
