"""TRL trainers for personalized alignment."""

from .dpore_config import DPOREConfig
from .dpore_trainer import (
    DPORETrainer,
    PersonaEmbeddingCollator,
    PersonaProjectionHead,
    dpore_margin_losses,
    embed_personas,
    pool_response_states,
    representation_similarities,
)

__all__ = [
    "DPOREConfig",
    "DPORETrainer",
    "PersonaEmbeddingCollator",
    "PersonaProjectionHead",
    "dpore_margin_losses",
    "embed_personas",
    "pool_response_states",
    "representation_similarities",
]
