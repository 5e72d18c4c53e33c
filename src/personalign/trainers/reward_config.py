"""Configuration of the personalized in-context reward model (the counterfactual paper, §3.3 and Appendix A)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import RewardConfig

from ..reward.feedback import HISTORY_TEXT_COLUMN, FeedbackRendering


@dataclass
class PersonalizedRewardConfig(RewardConfig):
    r"""[`~trl.RewardConfig`] plus how rows with a feedback history become reward-model inputs.

    The input of the Bradley-Terry reward model is the user's feedback history (T pairs in the Appendix B.3 format),
    then the instruction, then the response (`personalign.reward.feedback`). When it is longer than `max_length`, the
    oldest history pairs are dropped first; the instruction and the response are never cut, and a row that does not
    fit even with no history is filtered out, as TRL does with any over-long row.

    Defaults that differ from `RewardConfig`: `max_length=12800` (the counterfactual paper's input budget, about 10
    pairs) and `learning_rate=5e-6` (the counterfactual paper's, with an effective batch of 256 for 3 epochs).

    Args:
        history_column (`str`, *optional*, defaults to `"history_text"`):
            The feedback history, a list of `{prompt, chosen, rejected}` (oldest first). Rows with history ids
            instead (`history`) need the trainer's `responses=` table.
        prompt_column (`str`, *optional*, defaults to `"prompt"`):
            The instruction.
        chosen_column (`str`, *optional*, defaults to `"chosen"`):
            The preferred response.
        rejected_column (`str`, *optional*, defaults to `"rejected"`):
            The other response.
        history_size (`int`, *optional*, defaults to `10`):
            T, the most recent history pairs used (`None`: all).
        include_history (`bool`, *optional*, defaults to `True`):
            `False` trains and evaluates with every history removed: the "without history" ablation.
        truncate_history (`bool`, *optional*, defaults to `True`):
            Drop the oldest pairs until the input fits `max_length`. `False` keeps the whole history and lets TRL
            filter out the rows that are too long.
    """

    learning_rate: float = field(
        default=5e-6, metadata={"help": "AdamW learning rate (the counterfactual paper's 5e-6)."}
    )
    max_length: int | None = field(
        default=12800,
        metadata={
            "help": "Token budget of history + instruction + response; the oldest history pairs are dropped to fit, "
            "and rows too long even without history are filtered out (TRL's behaviour). None: no limit."
        },
    )
    history_column: str = field(
        default=HISTORY_TEXT_COLUMN, metadata={"help": "Feedback-history column: [{prompt, chosen, rejected}]."}
    )
    prompt_column: str = field(default="prompt", metadata={"help": "Instruction column."})
    chosen_column: str = field(default="chosen", metadata={"help": "Preferred-response column."})
    rejected_column: str = field(default="rejected", metadata={"help": "Rejected-response column."})
    history_size: int | None = field(
        default=10, metadata={"help": "T: the most recent history pairs used (None: all)."}
    )
    include_history: bool = field(
        default=True, metadata={"help": "False removes the history (the 'without history' ablation)."}
    )
    truncate_history: bool = field(default=True, metadata={"help": "Drop the oldest history pairs to fit max_length."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rendering()  # validates history_size and max_length

    def rendering(self) -> FeedbackRendering:
        """The `FeedbackRendering` these arguments describe (also what scoring and rejection sampling use)."""
        return FeedbackRendering(
            history_column=self.history_column,
            prompt_column=self.prompt_column,
            chosen_column=self.chosen_column,
            rejected_column=self.rejected_column,
            history_size=self.history_size,
            include_history=self.include_history,
            max_length=self.max_length if self.truncate_history else None,
        )
