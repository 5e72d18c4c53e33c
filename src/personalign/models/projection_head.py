"""DPORE's projection head h_phi: persona embedding -> the policy's hidden space (the DPORE paper, §3.3).

Saved and loaded on personalign's one convention for small modules (`HubModule`): a folder with `config.json` and
`model.safetensors`. A trained DPORE folder (and each of its checkpoints) carries the head in its `projection_head/`
subfolder:

```python
from personalign.models.projection_head import PersonaProjectionHead

head = PersonaProjectionHead.from_pretrained("my-org/dpore-llama3-8b", subfolder="projection_head")
```
"""

from __future__ import annotations

import torch
from torch import nn

from .hub_mixin import HubModule


class PersonaProjectionHead(HubModule):
    r"""h_phi: maps persona embeddings G into the policy's hidden space, where DPORE compares them with the policy's
    pooled representation of each response. One linear layer, or a 2-layer MLP with a GELU when `intermediate_size`
    is set.

    Args:
        embedding_dim (`int`):
            Size D of the persona embeddings (the persona encoder's output).
        hidden_size (`int`):
            Size H of the policy's hidden states.
        intermediate_size (`int`, *optional*):
            Hidden size of a 2-layer head; `None` (the default) is one linear layer.

    Attributes:
        config (`dict`): The three arguments above, as saved in `config.json`.
    """

    def __init__(self, embedding_dim: int, hidden_size: int, intermediate_size: int | None = None) -> None:
        super().__init__()
        self.config = {
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "intermediate_size": intermediate_size,
        }
        if intermediate_size:
            self.layers = nn.Sequential(
                nn.Linear(embedding_dim, intermediate_size), nn.GELU(), nn.Linear(intermediate_size, hidden_size)
            )
        else:
            self.layers = nn.Sequential(nn.Linear(embedding_dim, hidden_size))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Project persona embeddings.

        Args:
            embeddings (`torch.Tensor`): `(N, D)` persona embeddings, in the head's dtype.

        Returns:
            `torch.Tensor`: `(N, H)` targets in the policy's hidden space.
        """
        return self.layers(embeddings)
