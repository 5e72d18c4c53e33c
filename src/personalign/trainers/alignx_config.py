"""Persona rendering settings shared by the AlignX trainers (ICA and PBA; the AlignX paper, §5 and Appendix B)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

from ..data.alignx import AlignXBuildConfig


@dataclass
class AlignXRenderingConfig(DPOConfig):
    r"""[`~trl.DPOConfig`] plus how AlignX rows with raw persona columns become prompts.

    Rows that already carry a rendered `prompt` (TRL's standard columns) are used as they are.

    Args:
        history_seed (`int`, *optional*):
            Seed of the history draws (defaults to `seed`). Epoch 0 draws row i's history exactly as
            `personalign build-dataset alignx` does; later epochs redraw it from the same seed.
        max_history_items (`int`, *optional*, defaults to `4`):
            AlignX's rule: `min(randint(0, 4), len)` comments and pairs, and 4 of each when both draws are 0.
        keep_full_history (`bool`, *optional*, defaults to `False`):
            Use every history item instead of drawing.
        redraw_history_each_epoch (`bool`, *optional*, defaults to `True`):
            Draw a new history subset for every training epoch (evaluation always uses the epoch-0 draw). With
            `precompute_ref_log_probs=True` and rows with raw persona columns, set it to `False` (the reference
            log-probs are computed once, for the epoch-0 prompts); data with ready prompts is never redrawn.
    """

    history_seed: int | None = field(default=None, metadata={"help": "Seed of the history draws (default: seed)."})
    max_history_items: int = field(default=4, metadata={"help": "Upper bound of the per-kind history draw."})
    keep_full_history: bool = field(default=False, metadata={"help": "Use every history item."})
    redraw_history_each_epoch: bool = field(
        default=True, metadata={"help": "Draw a new history subset each training epoch."}
    )

    def redraws_history(self) -> bool:
        """Whether training epochs after the first draw new histories for rows with raw persona columns (rows with a
        ready prompt are never redrawn)."""
        return self.redraw_history_each_epoch and not self.keep_full_history

    def rendering(self) -> AlignXBuildConfig:
        """The `AlignXBuildConfig` these arguments describe (chat-format prompts)."""
        return AlignXBuildConfig(
            seed=self.seed if self.history_seed is None else self.history_seed,
            keep_full_history=self.keep_full_history,
            max_history_items=self.max_history_items,
        )
