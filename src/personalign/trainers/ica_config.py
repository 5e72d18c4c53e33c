"""Configuration of in-context alignment (ICA; the AlignX paper, eq. 1)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..data.alignx import AlignXBuildConfig
from .alignx_config import AlignXRenderingConfig


@dataclass
class ICAConfig(AlignXRenderingConfig):
    r"""Configuration for [`ICATrainer`]: DPO on prompts that carry the persona's history in the context window.

    Args:
        include_demographics (`bool`, *optional*, defaults to `True`):
            Append the demographic description to the rendered history.
    """

    include_demographics: bool = field(
        default=True, metadata={"help": "Append the demographic description to the history."}
    )

    def rendering(self) -> AlignXBuildConfig:
        return replace(super().rendering(), include_demographics=self.include_demographics)
