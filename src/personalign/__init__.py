"""personalign: user-level (personalized) alignment of LLMs, Hugging Face-native."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# Public names and the modules that define them. Imported on first use, so `import personalign` (and the CLI's
# start-up) stays light: torch, transformers and TRL load only when something needs them.
_LAZY = {
    "PreferenceSpace": "personalign.personas.space",
    "PreferenceDimension": "personalign.personas.space",
    "Persona": "personalign.personas.persona",
    "UGCItem": "personalign.personas.persona",
    "PairItem": "personalign.personas.persona",
    "ica_messages": "personalign.personas.prompts",
    "pba_messages": "personalign.personas.prompts",
    "feedback_generation_messages": "personalign.personas.prompts",
    "feedback_judge_messages": "personalign.personas.prompts",
    "to_alignx_release_prompt": "personalign.personas.prompts",
    "preference_example": "personalign.personas.prompts",
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
    "PreferenceInferencer": "personalign.inference.llm",
    "LearnedPreferenceInferencer": "personalign.inference.learned",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from .encoder import PersonaEncoder, PersonaEncoderConfig, PersonaEncoderTrainer, PersonaEncoderTrainingArguments
    from .evaluation import load_metric
    from .inference.learned import LearnedPreferenceInferencer
    from .inference.llm import PreferenceInferencer
    from .personas.persona import PairItem, Persona, UGCItem
    from .personas.prompts import (
        feedback_generation_messages,
        feedback_judge_messages,
        ica_messages,
        pba_messages,
        preference_example,
        to_alignx_release_prompt,
    )
    from .personas.space import PreferenceDimension, PreferenceSpace
    from .trainers import (
        DPOREConfig,
        DPORETrainer,
        ICAConfig,
        ICATrainer,
        PBAConfig,
        PBATrainer,
        PersonalizedRewardConfig,
        PersonalizedRewardTrainer,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'personalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
