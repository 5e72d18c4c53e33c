"""The learned preference inferencer's classifier: a persona-encoder embedding in, per-dimension class logits out.

Saved and loaded on personalign's one convention for small modules (`HubModule`: `config.json` with the
constructor's arguments + `model.safetensors`), usually in the `preference_head/` subfolder of a
`LearnedPreferenceInferencer` folder.
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .hub_mixin import HubModule


class PreferenceHead(HubModule):
    """Embedding -> logits of shape `(batch, num_dimensions, num_classes)`: standardisation (the training
    embeddings' mean and standard deviation, kept as buffers), then a linear layer or a one-hidden-layer MLP.

    Args:
        input_dim (`int`): The encoder's embedding size.
        num_dimensions (`int`): Dimensions of the preference space.
        hidden_dim (`int`, *optional*, defaults to `0`): Hidden width (GELU); 0 for a linear head.
        num_classes (`int`, *optional*, defaults to `3`): Classes per dimension (positive / negative / neutral for
            the learned inferencer, in `personalign.inference.calibration.CLASS_VALUES` order).

    Raises:
        `InputError`: If a size is not positive (`hidden_dim` may be 0).
    """

    def __init__(self, input_dim: int, num_dimensions: int, hidden_dim: int = 0, num_classes: int = 3) -> None:
        super().__init__()
        if min(input_dim, num_dimensions, num_classes) < 1 or hidden_dim < 0:
            raise InputError(
                f"PreferenceHead needs positive sizes (hidden_dim 0 for a linear head), got input_dim={input_dim}, "
                f"num_dimensions={num_dimensions}, hidden_dim={hidden_dim}, num_classes={num_classes}."
            )
        self.input_dim, self.num_dimensions = input_dim, num_dimensions
        self.hidden_dim, self.num_classes = hidden_dim, num_classes
        self.register_buffer("shift", torch.zeros(input_dim))
        self.register_buffer("scale", torch.ones(input_dim))
        outputs = num_dimensions * num_classes
        if hidden_dim:
            self.net = torch.nn.Sequential(
                torch.nn.Linear(input_dim, hidden_dim), torch.nn.GELU(), torch.nn.Linear(hidden_dim, outputs)
            )
        else:
            self.net = torch.nn.Linear(input_dim, outputs)

    def set_standardization(self, embeddings: torch.Tensor) -> None:
        """Standardise inputs with the mean and standard deviation of these (training) embeddings.

        Args:
            embeddings (`torch.Tensor` of shape `(n, input_dim)`): The training embeddings; with one row, only the
                mean is taken (the scale stays as it was).
        """
        self.shift.copy_(embeddings.mean(dim=0))
        self.scale.copy_(embeddings.std(dim=0).clamp(min=1e-6) if len(embeddings) > 1 else self.scale)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            embeddings (`torch.Tensor` of shape `(batch, input_dim)`): Persona-encoder embeddings.

        Returns:
            `torch.Tensor` of shape `(batch, num_dimensions, num_classes)`.
        """
        logits = self.net((embeddings - self.shift) / self.scale)
        return logits.view(embeddings.shape[0], self.num_dimensions, self.num_classes)
