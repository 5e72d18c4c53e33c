"""PersonaEncoderTrainer: InfoNCE over persona excerpts on sentence-transformers' trainer."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from sentence_transformers import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from transformers import TrainerCallback

from ..errors import InputError
from .data import (
    NEGATIVE_PERSONAS_COLUMN,
    PERSONA_ID_COLUMN,
    TEXT_COLUMN,
    contrastive_rows,
    text_columns,
    truncate_text,
)
from .modeling_persona_encoder import PersonaEncoder
from .sampler import ROW_INDEX_COLUMN
from .training_args import PersonaEncoderTrainingArguments

ID_COLUMNS = (PERSONA_ID_COLUMN, NEGATIVE_PERSONAS_COLUMN, ROW_INDEX_COLUMN)


@dataclass
class PersonaContrastiveCollator(SentenceTransformerDataCollator):
    """sentence-transformers' collator for contrastive rows: randomly truncates texts (with
    `truncation_probability`), drops the persona id and row index columns (they steer the sampler and the
    augmentation, they are not inputs), then tokenizes every text column in order (anchor, positive, negatives).

    The truncation of a row is a function of (`seed`, epoch, the row's `row_index`; its anchor text when it has
    none) only, not of a generator's state: DataLoader workers, epochs and a resumed run all draw the same cuts. The
    epoch sits in shared memory (`set_epoch`, called by the trainer in the training process), so persistent workers
    see it.
    """

    truncation_probability: float = 0.0
    min_truncation_fraction: float = 0.5
    seed: int = 0
    _epoch: torch.Tensor = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The training epoch whose augmentation draws are used."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch`'s augmentation draws from now on (in this process and its DataLoader workers)."""
        self._epoch.fill_(epoch)

    def augment(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows with each text truncated with probability `truncation_probability`; ids untouched."""
        if not self.truncation_probability:
            return features
        augmented = []
        epoch = self.epoch
        for row in features:
            row = dict(row)
            key = row.get(ROW_INDEX_COLUMN, row.get("anchor"))
            rng = random.Random(f"{self.seed}:{epoch}:{key}")  # str seeds hash the same in every process
            for column in text_columns([c for c in row if c != ROW_INDEX_COLUMN]):
                if isinstance(row[column], str) and rng.random() < self.truncation_probability:
                    row[column] = truncate_text(row[column], rng, self.min_truncation_fraction)
            augmented.append(row)
        return augmented

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [{k: v for k, v in row.items() if k not in ID_COLUMNS} for row in self.augment(features)]
        return super().__call__(rows)


class AugmentationEpochCallback(TrainerCallback):
    """Moves a `PersonaContrastiveCollator` to the epoch the training loop starts (also after resuming mid-epoch)."""

    def __init__(self, collator: PersonaContrastiveCollator) -> None:
        self.collator = collator

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.collator.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))


class PersonaEncoderTrainer(SentenceTransformerTrainer):
    r"""Trains a [`PersonaEncoder`] with the DPORE paper's InfoNCE (eq. 1) on sentence-transformers' trainer.

    The loss is `MultipleNegativesRankingLoss` with scale 1 / tau: each anchor against its positive (another excerpt
    of its persona), the row's explicit negatives and every other text of the batch. [`PersonaBatchSampler`] keeps any
    other excerpt of an anchor's persona out of its batch, so no in-batch negative is a false one; the collator
    truncates texts at random as augmentation. Training updates the given encoder in place: the trainer drives
    `model.to_sentence_transformer()`, a `SentenceTransformer` over the encoder's own modules (nothing is copied).
    Checkpoints are sentence-transformers folders, which `PersonaEncoder.from_pretrained` and `resume_from_checkpoint`
    both read.

    An encoder with a default prompt (`config.default_prompt_name`) trains on prompted texts, as `encode` embeds
    them, unless `args.prompts` says otherwise (sentence-transformers' own trainer applies only `args.prompts`).

    ```python
    from personalign.encoder import PersonaEncoder, PersonaEncoderTrainer, PersonaEncoderTrainingArguments, alignx_excerpts

    encoder = PersonaEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    trainer = PersonaEncoderTrainer(
        model=encoder, args=PersonaEncoderTrainingArguments(output_dir="out"), train_dataset=alignx_excerpts(rows)
    )
    trainer.train()
    encoder.save_pretrained("out/final")
    ```

    Args:
        model ([`PersonaEncoder`]): The encoder to train.
        args ([`PersonaEncoderTrainingArguments`], *optional*): Training arguments.
        train_dataset (`Dataset`, *optional*): An excerpt table (`persona_id`, `text`), turned into contrastive rows
            with `args.num_negatives` and `args.seed`, or ready rows from `contrastive_rows`.
        eval_dataset (`Dataset` or `dict[str, Dataset]`, *optional*): The same kinds, for the evaluation loss.
        loss (`nn.Module`, *optional*): Replaces the default `MultipleNegativesRankingLoss(scale=1/temperature)`.
        **kwargs: Passed to `SentenceTransformerTrainer` (`evaluator`, `callbacks`, ...).
    """

    def __init__(
        self,
        model: PersonaEncoder,
        args: PersonaEncoderTrainingArguments | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        loss: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, PersonaEncoder):
            raise TypeError(f"PersonaEncoderTrainer trains a PersonaEncoder, got {type(model).__name__}.")
        args = args if args is not None else PersonaEncoderTrainingArguments(output_dir="persona-encoder")
        self.persona_encoder = model
        sentence_model = model.to_sentence_transformer()  # the encoder's own modules, so training trains it
        train_dataset = _as_contrastive(train_dataset, args)
        if train_dataset is not None and ROW_INDEX_COLUMN not in train_dataset.column_names:
            train_dataset = train_dataset.add_column(ROW_INDEX_COLUMN, list(range(len(train_dataset))))
        if isinstance(eval_dataset, (dict, DatasetDict)):
            eval_dataset = DatasetDict({name: _as_contrastive(ds, args) for name, ds in eval_dataset.items()})
        else:
            eval_dataset = _as_contrastive(eval_dataset, args)
        if loss is None:
            loss = MultipleNegativesRankingLoss(sentence_model, scale=1.0 / args.temperature)
        super().__init__(
            model=sentence_model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            loss=loss,
            **kwargs,
        )
        if isinstance(self.data_collator, PersonaContrastiveCollator):
            self.add_callback(AugmentationEpochCallback(self.data_collator))

    def get_data_collator(self, model: Any, args: Any, processing_class: Any = None) -> PersonaContrastiveCollator:
        """A `PersonaContrastiveCollator` with the encoder's prompts (its default one when `args.prompts` is unset)."""
        prompts = args.prompts
        if not prompts:
            # Train on what encode() embeds: the encoder's default prompt, on every text column.
            prompts = self.persona_encoder.resolve_prompt() or None
        return PersonaContrastiveCollator(
            preprocess_fn=model.preprocess,
            router_mapping=args.router_mapping,
            prompts=prompts,
            truncation_probability=getattr(args, "truncation_probability", 0.0),
            min_truncation_fraction=getattr(args, "min_truncation_fraction", 0.5),
            seed=args.seed,
        )

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """As sentence-transformers' `evaluate`, on whole texts: the truncation augmentation is off while it runs."""
        # Augmentation is for training only: the evaluation loss sees whole texts.
        probability = self.data_collator.truncation_probability
        self.data_collator.truncation_probability = 0.0
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.data_collator.truncation_probability = probability


def _as_contrastive(dataset: Dataset | None, args: PersonaEncoderTrainingArguments) -> Dataset | None:
    if dataset is None or "anchor" in dataset.column_names:
        return dataset
    if {PERSONA_ID_COLUMN, TEXT_COLUMN} <= set(dataset.column_names):
        return contrastive_rows(dataset, num_negatives=args.num_negatives, seed=args.seed)
    raise InputError(
        f"expected an excerpt table ({PERSONA_ID_COLUMN!r}, {TEXT_COLUMN!r}) or contrastive rows ('anchor', "
        f"'positive', ...); got columns {dataset.column_names}."
    )
