"""Excerpt tables for persona-encoder training, contrastive rows, and random truncation.

An *excerpt* is a piece of one persona's history: `{"persona_id": str, "text": str}`. Three sources turn into
excerpt tables: AlignX rows (each comment and each chosen/rejected pair is one excerpt, rendered as the AlignX
history sections are), ALOE dialogue rows (`{profile, personality, conversations}`: each dialogue is one excerpt of
what the user said; rejected replies never enter one), and any table with a persona column and a text column.
`contrastive_rows` pairs excerpts of one persona (anchor, positive) and adds excerpts of other personas as explicit
negatives, keeping the persona ids so that `PersonaBatchSampler` can keep false negatives out of every batch.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from datasets import Dataset, Features, Value
from datasets import Sequence as SequenceFeature

from ..data.aloe import aloe_persona_id, dialogue_excerpt
from ..errors import InputError
from ..personas.persona import Persona
from ..personas.prompts import render_history
from ..row_names import RowNames

PERSONA_ID_COLUMN = "persona_id"
TEXT_COLUMN = "text"
NEGATIVE_PERSONAS_COLUMN = "negative_persona_ids"
EXCERPT_FEATURES = Features({PERSONA_ID_COLUMN: Value("string"), TEXT_COLUMN: Value("string")})
_WORD = re.compile(r"\S+")


def contrastive_features(num_negatives: int) -> Features:
    """Columns of `contrastive_rows`: texts in the order MultipleNegativesRankingLoss reads them, then persona ids."""
    texts = {"anchor": Value("string"), "positive": Value("string")}
    texts.update({f"negative_{k}": Value("string") for k in range(1, num_negatives + 1)})
    ids = {PERSONA_ID_COLUMN: Value("string"), NEGATIVE_PERSONAS_COLUMN: SequenceFeature(Value("string"))}
    return Features({**texts, **ids})


def _excerpt_table(rows: Iterable[tuple[str, str]]) -> Dataset:
    seen: set[tuple[str, str]] = set()
    unique = []
    for persona_id, text in rows:
        # Rows of one persona repeat its history (AlignX pools, dialogue re-use): an excerpt counts once.
        if text.strip() and (persona_id, text) not in seen:
            seen.add((persona_id, text))
            unique.append((persona_id, text))
    return Dataset.from_dict(
        {PERSONA_ID_COLUMN: [p for p, _ in unique], TEXT_COLUMN: [t for _, t in unique]}, features=EXCERPT_FEATURES
    )


def alignx_excerpts(
    rows: Iterable[Mapping[str, Any]],
    persona_column: str | None = PERSONA_ID_COLUMN,
    include_demographics: bool = False,
    where: str = "AlignX rows",
    names: RowNames | None = None,
) -> Dataset:
    """Excerpts from AlignX rows: each comment and each chosen/rejected pair of a row's persona is one excerpt.

    Args:
        rows (iterable of `dict`): AlignX rows (release column names or snake_case).
        persona_column (`str`, *optional*, defaults to `"persona_id"`): Column naming the persona when several rows
            share one (the synthetic generator's metadata). Without it in the rows, every row is its own persona
            (the release has one user per row), named `"<where>#<row>"`.
        include_demographics (`bool`, *optional*, defaults to `False`): Add the demographic description as one more
            excerpt.
        where (`str`, *optional*): Names the source in error messages.
        names (`RowNames`, *optional*): Names its rows in error messages (`DatasetSource.part_row_names` for a file:
            a JSON-lines row by its 1-based line); by default `RowNames.of(where)` (`"<where>, row <i> (0-based)"`).

    Returns:
        `Dataset` with `persona_id` and `text` (each text rendered by `personas.render_history` for one item).
    """
    names = names or RowNames.of(where)

    def excerpts() -> Iterable[tuple[str, str]]:
        for index, row in enumerate(rows):
            persona_id = str(row[persona_column]) if persona_column and persona_column in row else f"{where}#{index}"
            persona = Persona.from_alignx_row(row, where=names(index), validate=False)
            for item in persona.ugc:
                yield persona_id, render_history(Persona(ugc=[item], pairs=[], demographics=""))
            for item in persona.pairs:
                yield persona_id, render_history(Persona(ugc=[], pairs=[item], demographics=""))
            if include_demographics and persona.demographics:
                yield persona_id, persona.demographics

    return _excerpt_table(excerpts())


def aloe_excerpts(
    rows: Iterable[Mapping[str, Any]],
    persona_columns: Sequence[str] = ("profile", "personality"),
    conversations_column: str = "conversations",
    include_preferred_replies: bool = False,
    where: str = "ALOE rows",
    names: RowNames | None = None,
) -> Dataset:
    """Excerpts from ALOE dialogues: each row's conversation is one excerpt of the persona that its `profile` and
    `personality` texts describe (the DPORE paper generates ten dialogues per persona).

    An excerpt holds what the persona said: by default only the user's messages, one per line. The encoder is to
    learn who the user is from what the user says (the DPORE paper, §3.2: "based on their historical prompts"); the
    preferred replies were written *for* the persona by a model that read its profile, so they would let the encoder
    match the generator's tailoring instead. `include_preferred_replies=True` adds them, as `User: ...` /
    `Assistant: ...` lines. Rejected replies never enter an excerpt.

    Turns may be:
    - ALOE turns `{"user": str, "assistant": {"preferred": str, "rejected": str | list[str]}, "chosen": "preferred"}`
      (the release's schema): `user` is required, `preferred` is the chosen reply, `rejected` must be a string or a
      list of strings and never enters an excerpt; `chosen` may be absent but, when given, must be `"preferred"` (the
      release always says so, and a list of rejected replies cannot be the one chosen reply);
    - simplified turns `{"user": str, "assistant": str}` (the one reply is the chosen one; `assistant` may be absent,
      `user` may not);
    - `{role, content}` messages (`user`, `assistant`; `system` messages are skipped), or a turn given as a list of
      them. Keys holding `None` (Arrow fills absent keys so) count as absent.

    Args:
        rows (iterable of `dict`): `profile`, `personality` and `conversations` rows.
        persona_columns (`Sequence[str]`, *optional*): Columns whose values identify the persona: its `persona_id`
            is `personalign.data.aloe.aloe_persona_id` of them (with the default columns, the id `build-dataset
            aloe` gives the persona).
        conversations_column (`str`, *optional*, defaults to `"conversations"`): The list of turns.
        include_preferred_replies (`bool`, *optional*, defaults to `False`): Add the chosen assistant replies.
        where (`str`, *optional*): Names the source in error messages.
        names (`RowNames`, *optional*): Names its rows in error messages (`DatasetSource.part_row_names` for a file:
            a JSON-lines row by its 1-based line); by default `RowNames.of(where)` (`"<where>, row <i> (0-based)"`).

    Returns:
        `Dataset` with `persona_id` and `text`; dialogues with no text (e.g. no turns) give no excerpt.

    Raises:
        `InputError`: On a missing column, a conversation that is not a list, or a malformed turn (naming the row, the
            turn (1-based) and the expected form), e.g. a bare string (whose speaker is unknown), an ALOE turn without
            a non-empty `user` string, an empty reply, a `rejected` that is not a string or a list of strings, or a
            `chosen` other than `"preferred"` (the checks of `build-dataset aloe`, `personalign.data.aloe`).
    """
    names = names or RowNames.of(where)

    def excerpts() -> Iterable[tuple[str, str]]:
        for index, row in enumerate(rows):
            here = names(index)
            missing = [c for c in (*persona_columns, conversations_column) if c not in row]
            if missing:
                raise InputError(
                    f"{here}: missing column(s) {missing}; expected {[*persona_columns, conversations_column]}."
                )
            turns = row[conversations_column]
            if not isinstance(turns, (list, tuple)):
                raise InputError(
                    f"{here}, column {conversations_column!r}: expected a list of turns, got {type(turns).__name__}."
                )
            persona_id = aloe_persona_id(*(str(row[c]) for c in persona_columns))
            yield (
                persona_id,
                dialogue_excerpt(turns, f"{here}, column {conversations_column!r}", include_preferred_replies),
            )

    return _excerpt_table(excerpts())


def table_excerpts(
    table: Dataset | Iterable[Mapping[str, Any]],
    persona_column: str = PERSONA_ID_COLUMN,
    text_column: str = TEXT_COLUMN,
    where: str = "table",
    names: RowNames | None = None,
) -> Dataset:
    """Excerpts from any (persona id, text) table: a `Dataset` or rows with the two named columns.

    Args:
        table (`Dataset` or iterable of `dict`): The rows.
        persona_column (`str`, *optional*, defaults to `"persona_id"`): The column naming each row's persona.
        text_column (`str`, *optional*, defaults to `"text"`): The column holding the excerpt.
        where (`str`, *optional*, defaults to `"table"`): Names the source in error messages.
        names (`RowNames`, *optional*): Names its rows in error messages (`DatasetSource.part_row_names` for a file:
            a JSON-lines row by its 1-based line); by default `RowNames.of(where)` (`"<where>, row <i> (0-based)"`).

    Returns:
        `Dataset` with `persona_id` and `text`.

    Raises:
        `InputError`: If a column is missing, or a row's persona or text is null or its text is not a string (naming
            the row and the column).
    """
    names = names or RowNames.of(where)
    if isinstance(table, Dataset):
        missing = [c for c in (persona_column, text_column) if c not in table.column_names]
        if missing:
            raise InputError(f"{where}: missing column(s) {missing}; the columns are {table.column_names}.")
        table = table.select_columns([persona_column, text_column])

    def excerpts() -> Iterable[tuple[str, str]]:
        for index, row in enumerate(table):
            for column in (persona_column, text_column):
                if row.get(column) is None:
                    raise InputError(f"{names(index)}, column {column!r}: expected a value, found none.")
            if not isinstance(row[text_column], str):
                got = type(row[text_column]).__name__
                raise InputError(f"{names(index)}, column {text_column!r}: expected a string, got {got}.")
            yield str(row[persona_column]), row[text_column]

    return _excerpt_table(excerpts())


def split_personas(excerpts: Dataset, test_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split an excerpt table by persona (held-out personas never appear in training).

    Args:
        excerpts (`Dataset`): `persona_id` and `text` columns.
        test_fraction (`float`): Share of the personas held out, in (0, 1) (at least one is held out).
        seed (`int`, *optional*, defaults to `0`): Seed of the draw.

    Returns:
        `tuple[Dataset, Dataset]`: The training excerpts and the held-out ones.

    Raises:
        `InputError`: If `test_fraction` is not in (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction (the share of personas held out) must be in (0, 1), got {test_fraction}.")
    personas = sorted(set(excerpts[PERSONA_ID_COLUMN]))
    random.Random(seed).shuffle(personas)
    held_out = set(personas[: max(1, round(len(personas) * test_fraction))])
    is_test = [p in held_out for p in excerpts[PERSONA_ID_COLUMN]]
    return (
        excerpts.select([i for i, t in enumerate(is_test) if not t]),
        excerpts.select([i for i, t in enumerate(is_test) if t]),
    )


def check_retrieval_split(train: Dataset, held_out: Dataset | None, where: str) -> None:
    """Refuse, before any training, a persona split the run cannot use: contrastive training takes its positives from
    personas with at least two excerpts, and retrieval is scored on such personas only.

    Args:
        train (`Dataset`): The training excerpts (`persona_id` and `text` columns).
        held_out (`Dataset`, *optional*): The held-out excerpts (`None` when none are held out).
        where (`str`): The dataset, for the message.

    Raises:
        `InputError`: `"<where>: no held-out persona has two excerpts (1 held-out persona, 1 excerpt); ..."`.
    """
    for part, role in ((train, "training"), (held_out, "held-out")):
        if part is None:
            continue
        counts = defaultdict(int)
        for persona_id in part[PERSONA_ID_COLUMN]:
            counts[persona_id] += 1
        if not any(count >= 2 for count in counts.values()):
            hint = ", or --eval_fraction 0 to hold none out" if role == "held-out" else ""
            raise InputError(
                f"{where}: no {role} persona has two excerpts ({len(counts)} {role} persona(s), {len(part)} "
                f"excerpt(s)); the encoder learns from, and is scored on, personas with at least two. Use data with "
                f"more excerpts per persona{hint}."
            )


def contrastive_rows(excerpts: Dataset, num_negatives: int = 1, seed: int = 0) -> Dataset:
    """(anchor, positive, negatives) rows for InfoNCE from an excerpt table.

    Every excerpt of a persona with at least two excerpts is an anchor once; its positive is another excerpt of the
    same persona; its `num_negatives` explicit negatives are excerpts of distinct other personas. Persona ids are
    kept (`persona_id`, `negative_persona_ids`) for the batch sampler and stripped by the collator.

    Args:
        excerpts (`Dataset`): `persona_id` and `text` columns.
        num_negatives (`int`, *optional*, defaults to `1`): Explicit negatives per row (0 for in-batch only).
        seed (`int`, *optional*, defaults to `0`): Seed of the positive and negative draws.
    """
    by_persona: dict[str, list[str]] = defaultdict(list)
    for persona_id, text in zip(excerpts[PERSONA_ID_COLUMN], excerpts[TEXT_COLUMN], strict=True):
        by_persona[persona_id].append(text)
    personas = sorted(by_persona)
    if num_negatives < 0 or num_negatives > len(personas) - 1:
        raise InputError(
            f"num_negatives must be between 0 and the number of other personas ({len(personas) - 1}), "
            f"got {num_negatives}."
        )
    if not any(len(texts) >= 2 for texts in by_persona.values()):
        raise InputError("no persona has two excerpts: contrastive training needs positive pairs.")
    rng = random.Random(seed)
    columns: dict[str, list] = defaultdict(list)
    for persona_id in personas:
        texts = by_persona[persona_id]
        if len(texts) < 2:
            continue
        for index, anchor in enumerate(texts):
            positive = texts[rng.choice([i for i in range(len(texts)) if i != index])]
            others = rng.sample([p for p in personas if p != persona_id], num_negatives)
            columns["anchor"].append(anchor)
            columns["positive"].append(positive)
            for k, other in enumerate(others, start=1):
                columns[f"negative_{k}"].append(rng.choice(by_persona[other]))
            columns[PERSONA_ID_COLUMN].append(persona_id)
            columns[NEGATIVE_PERSONAS_COLUMN].append(others)
    features = contrastive_features(num_negatives)
    return Dataset.from_dict({name: columns[name] for name in features}, features=features)


def truncate_text(text: str, rng: random.Random, min_fraction: float = 0.5) -> str:
    """A random contiguous window of `text`'s words, at least `min_fraction` of them (whitespace kept as is).

    The DPORE paper's augmentation: truncated excerpts stop the encoder keying on length and layout.
    """
    words = list(_WORD.finditer(text))
    if len(words) < 2:
        return text
    keep = rng.randint(max(1, math.ceil(min_fraction * len(words))), len(words))
    start = rng.randint(0, len(words) - keep)
    return text[words[start].start() : words[start + keep - 1].end()]


def text_columns(column_names: Sequence[str]) -> list[str]:
    """The text columns of contrastive rows (everything but the persona id columns), in order."""
    return [c for c in column_names if c not in (PERSONA_ID_COLUMN, NEGATIVE_PERSONAS_COLUMN)]
