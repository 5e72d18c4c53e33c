"""A batch sampler that keeps false negatives out of InfoNCE batches."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import DefaultBatchSampler

from ..errors import InputError
from .data import NEGATIVE_PERSONAS_COLUMN, PERSONA_ID_COLUMN


def persona_batches(
    order: Sequence[int],
    anchor_personas: Sequence[str],
    negative_personas: Sequence[Sequence[str]],
    batch_size: int,
) -> list[list[int]]:
    """Group row indices into batches in which no persona appears twice, except as a row's own anchor and positive.

    A row shows its anchor persona (anchor and positive) and the personas of its explicit negatives. A row fits a
    batch only if none of those personas is already shown there: then no in-batch negative of any anchor is a false
    one, and no two negatives share a persona either (which keeps symmetric or document-to-document InfoNCE variants
    clean too). Rows that do not fit wait for a later batch, ahead of the rest of `order`, so the pass is
    deterministic and nothing is dropped.
    """
    pending = deque(order)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        shown: set[str] = set()
        deferred: deque[int] = deque()
        while pending and len(batch) < batch_size:
            index = pending.popleft()
            personas = {anchor_personas[index], *negative_personas[index]}
            if personas & shown:
                deferred.append(index)
                continue
            batch.append(index)
            shown |= personas
        batches.append(batch)
        deferred.extend(pending)
        pending = deferred
    return batches


class PersonaBatchSampler(DefaultBatchSampler):
    """sentence-transformers batch sampler over `contrastive_rows`: shuffled per epoch (seed + epoch), and no two
    items of one persona in a batch other than a row's anchor and positive (see [`persona_batches`]).

    Args:
        dataset (`Dataset`): Rows with `persona_id` and, optionally, `negative_persona_ids` columns.
        batch_size (`int`): Rows per batch (fewer when the remaining rows conflict, e.g. at the end of an epoch).
        drop_last (`bool`): Drop a last batch smaller than `batch_size`.
        valid_label_columns, generator, seed: As in sentence-transformers' `DefaultBatchSampler`.
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
        self._cache: tuple[int, list[list[int]]] | None = None

    def _epoch_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            generator = self.generator if self.generator is not None else torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.anchor_personas), generator=generator).tolist()
            batches = persona_batches(order, self.anchor_personas, self.negative_personas, self.batch_size)
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            self._cache = (self.epoch, batches)
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        return len(self._epoch_batches())
