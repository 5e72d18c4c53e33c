"""Training arguments of the persona encoder (the DPORE paper, §3.2 and Table 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from transformers.trainer_utils import SchedulerType

from ..errors import InputError
from .sampler import PersonaBatchSampler


@dataclass
class PersonaEncoderTrainingArguments(SentenceTransformerTrainingArguments):
    r"""Arguments of [`PersonaEncoderTrainer`]: sentence-transformers' training arguments plus the contrastive
    objective's own. Defaults follow the DPORE paper's Table 7 (learning rate 2e-5, batch size 30, 100 warmup steps,
    cosine schedule; the DPORE paper trains 30 epochs on ten dialogues per persona).

    Args:
        temperature (`float`, *optional*, defaults to `0.05`):
            InfoNCE temperature tau of the DPORE paper's eq. 1 (MultipleNegativesRankingLoss scale = 1 / tau).
        num_negatives (`int`, *optional*, defaults to `1`):
            Explicit negatives per anchor (excerpts of other personas) when the trainer builds contrastive rows from
            an excerpt table; the rest of the batch adds in-batch negatives.
        truncation_probability (`float`, *optional*, defaults to `0.5`):
            Chance that a training text is randomly truncated (the DPORE paper's augmentation). Never applied in
            evaluation.
        min_truncation_fraction (`float`, *optional*, defaults to `0.5`):
            A truncated text keeps a contiguous window of at least this share of its words.
    """

    temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature tau (loss scale 1 / tau)."})
    num_negatives: int = field(
        default=1, metadata={"help": "Explicit negatives (other personas' excerpts) per anchor."}
    )
    truncation_probability: float = field(
        default=0.5, metadata={"help": "Chance that a training text is randomly truncated (augmentation)."}
    )
    min_truncation_fraction: float = field(
        default=0.5, metadata={"help": "Smallest share of a text's words a truncation keeps."}
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW learning rate (DPORE paper: 2e-5)."})
    per_device_train_batch_size: int = field(default=30, metadata={"help": "Batch size (DPORE paper: 30)."})
    warmup_steps: float = field(default=100, metadata={"help": "Linear warmup steps (DPORE paper: 100)."})
    lr_scheduler_type: SchedulerType | str = field(
        default="cosine", metadata={"help": "Learning-rate schedule (DPORE paper: cosine)."}
    )
    batch_sampler: Any = field(
        default=PersonaBatchSampler,
        metadata={"help": "Batch sampler; the default keeps other items of a row's persona out of its batch."},
    )

    def __post_init__(self) -> None:
        import torch

        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns
        super().__post_init__()
        if self.temperature <= 0:
            raise InputError(f"temperature must be positive, got {self.temperature}.")
        if not 0 <= self.truncation_probability <= 1:
            raise InputError(f"truncation_probability must be in [0, 1], got {self.truncation_probability}.")
        if not 0 < self.min_truncation_fraction <= 1:
            raise InputError(f"min_truncation_fraction must be in (0, 1], got {self.min_truncation_fraction}.")
        if self.num_negatives < 0:
            raise InputError(f"num_negatives must be >= 0, got {self.num_negatives}.")
