"""What ICATrainer and PBATrainer share: AlignX persona rendering inside `_prepare_dataset`, and a history redrawn
each training epoch (deterministic under the seed, also in persistent DataLoader workers)."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import textwrap
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
from datasets import Dataset, Features, IterableDataset, Value
from transformers import TrainerCallback
from trl import DPOTrainer

from ..data.alignx import CHAT_FEATURES, AlignXBuildConfig, render_batch
from ..errors import InputError
from ..papers import ALIGNX_CITATION
from ..personas.persona import ALIGNX_COLUMN_ALIASES, PAIRS_COLUMN, UGC_COLUMN
from .alignx_config import AlignXRenderingConfig
from .kept_rows import DPO_DROP_REASON, data_label, report_kept_rows

ROW_COLUMN = "alignx_row"
RAW_PERSONA_COLUMNS = frozenset(ALIGNX_COLUMN_ALIASES[UGC_COLUMN] + ALIGNX_COLUMN_ALIASES[PAIRS_COLUMN])
RENDERED_FEATURES = Features({**CHAT_FEATURES, ROW_COLUMN: Value("int64")})
logger = logging.getLogger(__name__)


def has_raw_personas(column_names: Iterable[str]) -> bool:
    """Whether rows carry AlignX persona columns (comments / pairs) to render, rather than a ready prompt."""
    return bool(RAW_PERSONA_COLUMNS & set(column_names))


def _render_with_rows(batch: dict, indices: list[int], style: str, config: AlignXBuildConfig, epoch: int) -> dict:
    return {**render_batch(batch, indices, style, config, epoch), ROW_COLUMN: list(indices)}


def render_for_training(
    dataset: Dataset | IterableDataset,
    style: str,
    config: AlignXBuildConfig,
    epoch: int = 0,
    dataset_name: str = "train",
) -> Dataset | IterableDataset:
    """AlignX rows (raw persona columns) as TRL conversational rows for `style` ("ica" or "pba"), with each row's
    history drawn for `epoch` and its index kept in `alignx_row`. An `IterableDataset` is rendered lazily, row i
    drawn as row i of a map-style dataset."""
    progress = (
        {}
        if isinstance(dataset, IterableDataset)
        else {"desc": f"Rendering {style.upper()} prompts of the {dataset_name} dataset (epoch {epoch})"}
    )
    return dataset.map(
        _render_with_rows,
        batched=True,
        with_indices=True,
        fn_kwargs={"style": style, "config": config, "epoch": epoch},
        features=RENDERED_FEATURES,
        remove_columns=dataset.column_names,
        **progress,
    )


def _remove_handoff(folder: Path, owner: int) -> None:
    # Runs in the process that made the folder only: a forked DataLoader worker holds a copy of the finalizer too.
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


class EpochRedrawDataset(torch.utils.data.Dataset):
    """The tokenized training rows of the current epoch: epoch 0's prepared dataset, or, after `set_epoch(e)`, the
    rows rendered with epoch e's history draw (prepared on first use). Length and indices stay those of epoch 0, so
    samplers are unaffected; a row that a later draw makes too long for `max_length` falls back to its epoch-0 form.

    `set_epoch` runs in the training process (where TRL's dataset preparation may synchronise with other processes).
    The epoch lives in shared memory, so DataLoader workers see it; a worker started before the epoch began (a
    persistent worker) cannot see the rows prepared after it started, so with `handoff=True` `set_epoch` also saves
    them to a temporary folder (removed with this object) that such a worker loads, memory-mapped, on its first row
    of the epoch. Every process thus reads epoch e's draw in epoch e, as a run without workers does.

    Args:
        base (`Dataset`): The prepared rows of epoch 0 (with `alignx_row`).
        prepare_epoch (`Callable[[int], Dataset]`): Prepares the rows of an epoch.
        handoff (`bool`, *optional*, defaults to `False`): Save each later epoch's rows for persistent workers.
    """

    def __init__(self, base: Dataset, prepare_epoch: Callable[[int], Dataset], handoff: bool = False) -> None:
        self.base = base
        self.prepare_epoch = prepare_epoch
        self._shared_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._loaded = 0  # the epoch whose rows this copy (this process) holds
        self._rows = base[ROW_COLUMN]
        self._view: Dataset | None = None
        self._positions: dict[int, int] = {}
        self._handoff: Path | None = None
        if handoff:
            self._handoff = Path(tempfile.mkdtemp(prefix="personalign-redraw-"))
            weakref.finalize(self, _remove_handoff, self._handoff, os.getpid())

    @property
    def epoch(self) -> int:
        """The current training epoch (as the training process set it)."""
        return int(self._shared_epoch)

    def set_epoch(self, epoch: int) -> None:
        """Move to `epoch`'s history draw: prepare its rows (and save them for persistent workers)."""
        if epoch == self.epoch and epoch == self._loaded:
            return
        view = None if epoch == 0 else self.prepare_epoch(epoch)
        if view is not None and self._handoff is not None:
            folder = self._handoff / f"epoch-{epoch}"
            if not folder.exists():
                view.save_to_disk(str(folder))
            for earlier in self._handoff.glob("epoch-*"):
                if earlier != folder:  # a worker still reading it keeps its open files (POSIX)
                    shutil.rmtree(earlier, ignore_errors=True)
        self._show(epoch, view)
        self._shared_epoch.fill_(epoch)  # last: a worker that sees the new epoch finds its rows saved

    def _show(self, epoch: int, view: Dataset | None) -> None:
        self._loaded, self._view = epoch, view
        self._positions = {} if view is None else {row: position for position, row in enumerate(view[ROW_COLUMN])}

    def _follow(self) -> None:
        # A persistent DataLoader worker whose copy is behind the training process's epoch loads the saved rows.
        epoch = self.epoch
        if epoch == self._loaded:
            return
        if epoch != 0 and self._handoff is None:
            raise RuntimeError(
                f"this copy of the training rows holds epoch {self._loaded} but training is in epoch {epoch}, and no "
                "rows were saved for it (EpochRedrawDataset(handoff=True) is needed with persistent workers)."
            )
        self._show(epoch, None if epoch == 0 else Dataset.load_from_disk(str(self._handoff / f"epoch-{epoch}")))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self._follow()
        position = self._positions.get(self._rows[index]) if self._view is not None else None
        return self.base[index] if position is None else self._view[position]


class HistoryRedrawCallback(TrainerCallback):
    """Moves an `EpochRedrawDataset` to the epoch the training loop starts (also after resuming mid-epoch)."""

    def __init__(self, dataset: EpochRedrawDataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))


class AlignXPersonaTrainer(DPOTrainer):
    """Base of [`ICATrainer`] and [`PBATrainer`]: TRL's DPOTrainer whose `_prepare_dataset` first renders AlignX rows
    (raw persona columns, release or snake_case names) into persona-conditioned prompts with the foundation's
    renderers; the tokenizer's chat template then applies as for any conversational row. Rows with a ready prompt
    pass through unchanged. With `redraw_history_each_epoch`, training epoch e uses history draw e.

    Rows that TRL drops for `max_length` (their prompt alone fills it) are counted and reported; a dataset of which
    none is left is refused (`personalign.trainers.kept_rows`). `data_sources=` (`{"train": ..., "eval": ...}`)
    names the data in those messages, e.g. by file."""

    _style: ClassVar[str] = ""
    _config_class: ClassVar[type[AlignXRenderingConfig]] = AlignXRenderingConfig
    _paper: ClassVar[dict[str, Any]] = {
        "title": "From 1,000,000 Users to Every User: Scaling Up Personalized Preference for User-level Alignment",
        "id": "2503.15463",
        "citation": textwrap.dedent(ALIGNX_CITATION),
    }

    def __init__(self, model: Any, ref_model: Any = None, args: AlignXRenderingConfig | None = None, **kwargs: Any):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = self._config_class(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-{self._name}")
        if not isinstance(args, self._config_class):
            raise TypeError(f"{type(self).__name__} needs a {self._config_class.__name__}, got {type(args).__name__}.")
        train_dataset = kwargs.get("train_dataset")
        redrawn = isinstance(train_dataset, Dataset) and has_raw_personas(train_dataset.column_names)
        if redrawn and args.redraws_history() and args.precompute_ref_log_probs:
            raise InputError(
                "precompute_ref_log_probs=True computes the reference log-probs once, for the epoch-0 prompts, but "
                "redraw_history_each_epoch=True draws new persona histories each epoch (these rows have raw persona "
                "columns): set redraw_history_each_epoch=False (every epoch trains on the epoch-0 draw) or "
                "keep_full_history=True, or precompute_ref_log_probs=False."
            )
        streamed = isinstance(train_dataset, IterableDataset) and has_raw_personas(train_dataset.column_names or [])
        if streamed and args.redraws_history():
            logger.warning(
                "%s: an IterableDataset's persona histories are drawn once (epoch 0's draw) and not redrawn "
                "each epoch; use a map-style Dataset for per-epoch redraws.",
                type(self).__name__,
            )
        self._raw_train_dataset: Dataset | None = None
        self.data_sources: dict[str, str] = dict(kwargs.pop("data_sources", None) or {})
        super().__init__(model, ref_model=ref_model, args=args, **kwargs)
        if self._raw_train_dataset is not None and args.redraws_history():
            handoff = args.dataloader_num_workers > 0 and args.dataloader_persistent_workers
            self.train_dataset = EpochRedrawDataset(self.train_dataset, self._prepare_epoch, handoff=handoff)
            self.add_callback(HistoryRedrawCallback(self.train_dataset))

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if has_raw_personas(getattr(dataset, "column_names", None) or []):
            if dataset_name == "train" and isinstance(dataset, Dataset):
                self._raw_train_dataset = dataset
            dataset = render_for_training(dataset, self._style, args.rendering(), 0, dataset_name)
        prepared = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        source = data_label(self.data_sources, dataset_name)
        report_kept_rows(dataset, prepared, args.max_length, source, DPO_DROP_REASON)
        return prepared

    def _prepare_epoch(self, epoch: int) -> Dataset:
        rendered = render_for_training(self._raw_train_dataset, self._style, self.args.rendering(), epoch, "train")
        return super()._prepare_dataset(rendered, self.processing_class, self.args, f"train (epoch {epoch})")
