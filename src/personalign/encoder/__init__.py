"""Persona encoders: contrastive persona embeddings (the DPORE paper, §3.2)."""

from .data import (
    alignx_excerpts,
    aloe_excerpts,
    contrastive_rows,
    split_personas,
    table_excerpts,
    truncate_text,
)
from .evaluation import (
    PersonaRetrievalEvaluator,
    evaluate_encoder,
    pair_auc,
    persona_embedding_metrics,
    retrieval_metrics,
)
from .modeling_persona_encoder import (
    PersonaEncoder,
    PersonaEncoderConfig,
    PersonaEncoderOutput,
    persona_document,
)
from .sampler import PersonaBatchSampler, persona_batches
from .trainer import PersonaContrastiveCollator, PersonaEncoderTrainer
from .training_args import PersonaEncoderTrainingArguments

__all__ = [
    "PersonaBatchSampler",
    "PersonaContrastiveCollator",
    "PersonaEncoder",
    "PersonaEncoderConfig",
    "PersonaEncoderOutput",
    "PersonaEncoderTrainer",
    "PersonaEncoderTrainingArguments",
    "PersonaRetrievalEvaluator",
    "alignx_excerpts",
    "aloe_excerpts",
    "contrastive_rows",
    "evaluate_encoder",
    "pair_auc",
    "persona_batches",
    "persona_document",
    "persona_embedding_metrics",
    "retrieval_metrics",
    "split_personas",
    "table_excerpts",
    "truncate_text",
]
