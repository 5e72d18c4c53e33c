"""A batch sampler that keeps false negatives out of InfoNCE batches."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import DefaultBatchSampler

from ..errors import InputError
from .data import NEGATIVE_PERSONAS_COLUMN, PERSONA_ID_COLUMN, text_columns

logger = logging.getLogger(__name__)

ROW_INDEX_COLUMN = "row_index"
"""The index `PersonaEncoderTrainer` adds to each training row: augmentation is a function of (seed, epoch, row)."""


def persona_batches(
    order: Sequence[int],
    anchor_personas: Sequence[str],
    negative_personas: Sequence[Sequence[str]],
    batch_size: int,
    row_texts: Sequence[Sequence[str]] | None = None,
) -> list[list[int]]:
    """Group row indices into batches in which no persona appears twice, except as a row's own anchor and positive,
    and no text appears twice.

    A row shows its anchor persona (anchor and positive) and the personas of its explicit negatives, and, with
    `row_texts`, its texts. A row fits a batch only if none of those personas and texts is already shown there: then
    no in-batch negative of any anchor is a false one, neither by persona nor by a text two personas share ("thanks,
    very helpful"), and no two negatives share a persona either (which keeps symmetric or document-to-document
    InfoNCE variants clean too). Rows that do not fit wait for a later batch, ahead of the rest of `order`, so the
    pass is deterministic and nothing is dropped.

    Args:
        order (`Sequence[int]`): Row indices in the order to place them.
        anchor_personas (`Sequence[str]`): Each row's persona.
        negative_personas (`Sequence[Sequence[str]]`): Each row's explicit negatives' personas.
        batch_size (`int`): Most rows per batch.
        row_texts (`Sequence[Sequence[str]]`, *optional*): Each row's texts (anchor, positive, negatives).

    Returns:
        `list[list[int]]`: The batches, every index of `order` in exactly one.
    """
    pending = deque(order)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        shown: set[str] = set()
        shown_texts: set[str] = set()
        deferred: deque[int] = deque()
        while pending and len(batch) < batch_size:
            index = pending.popleft()
            personas = {anchor_personas[index], *negative_personas[index]}
            texts = set(row_texts[index]) if row_texts is not None else set()
            if personas & shown or texts & shown_texts:
                deferred.append(index)
                continue
            batch.append(index)
            shown |= personas
            shown_texts |= texts
        batches.append(batch)
        deferred.extend(pending)
        pending = deferred
    return batches


class PersonaBatchSampler(DefaultBatchSampler):
    """sentence-transformers batch sampler over `contrastive_rows`: shuffled per epoch (seed + epoch), and no two
    items of one persona in a batch other than a row's anchor and positive, and no text twice (see
    [`persona_batches`]).

    Batches come out smaller than `batch_size` when the remaining rows conflict (few personas: a batch holds at most
    one row per persona, fewer with explicit negatives; texts shared between personas); the first epoch that has
    such batches is reported once (a warning with counts). A batch that shows fewer than two personas gives no
    InfoNCE loss (its anchor has no negative) and is dropped; a row whose own negative repeats its anchor's or
    positive's text (two personas share it) is a false negative in itself and is left out; both are counted in that
    warning.

    Args:
        dataset (`Dataset`): Rows with `persona_id`, text columns and, optionally, `negative_persona_ids`.
        batch_size (`int`): Rows per batch (fewer when the remaining rows conflict, e.g. at the end of an epoch).
        drop_last (`bool`): Drop a last batch smaller than `batch_size`.
        valid_label_columns, generator, seed: As in sentence-transformers' `DefaultBatchSampler`.

    Raises:
        `InputError`: Without a `persona_id` column, or when no batch can give a loss (fewer than two personas).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if PERSONA_ID_COLUMN not in dataset.column_names:
            raise InputError(
                f"PersonaBatchSampler needs a {PERSONA_ID_COLUMN!r} column (see personalign.encoder.contrastive_rows); "
                f"the columns are {dataset.column_names}."
            )
        self.anchor_personas = [str(p) for p in dataset[PERSONA_ID_COLUMN]]
        if NEGATIVE_PERSONAS_COLUMN in dataset.column_names:
            self.negative_personas = [[str(p) for p in ids] for ids in dataset[NEGATIVE_PERSONAS_COLUMN]]
        else:
            self.negative_personas = [[] for _ in self.anchor_personas]
        ignored = {ROW_INDEX_COLUMN, *(valid_label_columns or ())}
        columns = [c for c in text_columns(dataset.column_names) if c not in ignored]
        values = [dataset[c] for c in columns]
        self.row_texts = [list(texts) for texts in zip(*values, strict=True)] if values else [[]] * len(dataset)
        # A row whose own negative carries its anchor's or positive's text: a false negative no batch can avoid.
        self.self_conflicting = {i for i, texts in enumerate(self.row_texts) if _repeats_across_personas(texts)}
        self._cache: tuple[int, list[list[int]]] | None = None
        self._reported = False

    def _epoch_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            generator = self.generator if self.generator is not None else torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.anchor_personas), generator=generator).tolist()
            order = [i for i in order if i not in self.self_conflicting]
            placed = persona_batches(
                order, self.anchor_personas, self.negative_personas, self.batch_size, self.row_texts
            )
            batches = [batch for batch in placed if len(self._personas(batch)) >= 2]
            if not batches and placed:
                raise InputError(
                    f"no batch of {len(self.anchor_personas)} contrastive rows shows two personas: InfoNCE needs a "
                    "negative of another persona for every anchor (more personas, or num_negatives >= 1)."
                )
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            self._report(placed, batches)
            self._cache = (self.epoch, batches)
        return self._cache[1]

    def _personas(self, batch: list[int]) -> set[str]:
        return {p for i in batch for p in (self.anchor_personas[i], *self.negative_personas[i])}

    def _report(self, placed: list[list[int]], batches: list[list[int]]) -> None:
        # Once per sampler: the first epoch whose batches are not all full, or that dropped or left out rows.
        kept = {id(batch) for batch in batches}
        dropped = [batch for batch in placed if id(batch) not in kept and len(self._personas(batch)) < 2]
        small = [batch for batch in batches if len(batch) < self.batch_size]
        if self._reported or not (small or dropped or self.self_conflicting):
            return
        self._reported = True
        parts = []
        if small:
            mean = sum(len(batch) for batch in small) / len(small)
            parts.append(
                f"{len(small)} of {len(batches)} batches hold fewer than the {self.batch_size} rows asked for (mean "
                f"{mean:.1f}): their other rows share a persona or a text with rows in them "
                f"({len(set(self.anchor_personas))} personas, {1 + len(self.negative_personas[0])} shown per row)"
            )
        if dropped:
            parts.append(
                f"{len(dropped)} batches ({sum(map(len, dropped))} rows) that show one persona were dropped (no loss)"
            )
        if self.self_conflicting:
            parts.append(
                f"{len(self.self_conflicting)} rows whose negative repeats their own text (shared by two personas) "
                "were left out"
            )
        logger.warning("PersonaBatchSampler (epoch %d): %s.", self.epoch, "; ".join(parts))

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        return len(self._epoch_batches())


def _repeats_across_personas(texts: Sequence[str]) -> bool:
    # texts = (anchor, positive, negative_1, ...): the first two are the row's persona, each negative another one.
    own = set(texts[:2])
    return any(text in own for text in texts[2:]) or len(set(texts[2:])) < len(texts[2:])
