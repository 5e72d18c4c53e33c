"""TRL trainers for personalized alignment."""

from ..models.projection_head import PersonaProjectionHead
from .alignx_config import AlignXRenderingConfig
from .alignx_trainer import AlignXPersonaTrainer, EpochRedrawDataset, render_for_training
from .dpore_config import DPOREConfig
from .dpore_trainer import (
    DPORETrainer,
    PersonaEmbeddingCollator,
    dpore_margin_losses,
    embed_personas,
    pool_response_states,
    representation_similarities,
)
from .ica_config import ICAConfig
from .ica_trainer import ICATrainer
from .pba_config import PBAConfig
from .pba_trainer import PBATrainer
from .reward_config import PersonalizedRewardConfig
from .reward_trainer import PersonalizedRewardTrainer, needs_rendering, render_reward_dataset

__all__ = [
    "AlignXPersonaTrainer",
    "AlignXRenderingConfig",
    "DPOREConfig",
    "DPORETrainer",
    "EpochRedrawDataset",
    "ICAConfig",
    "ICATrainer",
    "PBAConfig",
    "PBATrainer",
    "PersonaEmbeddingCollator",
    "PersonaProjectionHead",
    "PersonalizedRewardConfig",
    "PersonalizedRewardTrainer",
    "dpore_margin_losses",
    "embed_personas",
    "needs_rendering",
    "pool_response_states",
    "render_for_training",
    "render_reward_dataset",
    "representation_similarities",
]
