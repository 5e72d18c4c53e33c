"""Configuration of preference-bridged alignment (PBA; the AlignX paper, eq. 2)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..data.alignx import AlignXBuildConfig
from .alignx_config import AlignXRenderingConfig


@dataclass
class PBAConfig(AlignXRenderingConfig):
    r"""Configuration for [`PBATrainer`]: DPO on prompts that state the persona's preference direction as text.

    During training the direction is the AlignX aggregation of the drawn history items' gold vectors (mean per
    dimension, then positive at `>= upper`, negative at `<= lower`, with the release's fallback); at inference a
    `PreferenceInferencer` supplies it.

    Args:
        upper (`float`, *optional*, defaults to `0.6`): Positive threshold of the aggregation.
        lower (`float`, *optional*, defaults to `0.4`): Negative threshold of the aggregation.
        arithmetic (`str`, *optional*, defaults to `"exact"`): `"exact"` or `"float32"` (the release's numbers).
    """

    upper: float = field(default=0.6, metadata={"help": "Aggregation: positive at mean >= upper."})
    lower: float = field(default=0.4, metadata={"help": "Aggregation: negative at mean <= lower."})
    arithmetic: str = field(default="exact", metadata={"help": "Aggregation arithmetic: 'exact' or 'float32'."})

    def rendering(self) -> AlignXBuildConfig:
        return replace(super().rendering(), upper=self.upper, lower=self.lower, arithmetic=self.arithmetic)
