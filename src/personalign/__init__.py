"""personalign: user-level (personalized) alignment of LLMs, Hugging Face-native."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# Public names and the modules that define them. Imported on first use, so `import personalign` (and the CLI's
# start-up) stays light: torch, transformers and TRL load only when something needs them.
_LAZY = {
    "PreferenceSpace": "personalign.preference_space",
    "PreferenceDimension": "personalign.preference_space",
    "Persona": "personalign.personas",
    "UGCItem": "personalign.personas",
    "PairItem": "personalign.personas",
    "ica_messages": "personalign.personas",
    "pba_messages": "personalign.personas",
    "feedback_generation_messages": "personalign.personas",
    "feedback_judge_messages": "personalign.personas",
    "to_alignx_release_prompt": "personalign.personas",
    "preference_example": "personalign.personas",
    "PersonaEncoder": "personalign.encoder",
    "PersonaEncoderConfig": "personalign.encoder",
    "PersonaEncoderTrainer": "personalign.encoder",
    "PersonaEncoderTrainingArguments": "personalign.encoder",
    "load_metric": "personalign.evaluation",
    "DPOREConfig": "personalign.trainers",
    "DPORETrainer": "personalign.trainers",
    "ICAConfig": "personalign.trainers",
    "ICATrainer": "personalign.trainers",
    "PBAConfig": "personalign.trainers",
    "PBATrainer": "personalign.trainers",
    "PersonalizedRewardConfig": "personalign.trainers",
    "PersonalizedRewardTrainer": "personalign.trainers",
    "PreferenceInferencer": "personalign.preference_inference",
    "LearnedPreferenceInferencer": "personalign.learned_inference",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from .encoder import PersonaEncoder, PersonaEncoderConfig, PersonaEncoderTrainer, PersonaEncoderTrainingArguments
    from .evaluation import load_metric
    from .learned_inference import LearnedPreferenceInferencer
    from .personas import (
        PairItem,
        Persona,
        UGCItem,
        feedback_generation_messages,
        feedback_judge_messages,
        ica_messages,
        pba_messages,
        preference_example,
        to_alignx_release_prompt,
    )
    from .preference_inference import PreferenceInferencer
    from .preference_space import PreferenceDimension, PreferenceSpace
    from .trainers import DPOREConfig, DPORETrainer, ICAConfig, ICATrainer, PBAConfig, PBATrainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'personalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
