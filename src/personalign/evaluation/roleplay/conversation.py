"""One role-play conversation (a model under test, a persona, a run) and the role keys the results use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .personas import RoleplayPersona

USER_SIMULATOR, JUDGE = "user_simulator", "judge"
"""The two shared roles' keys (in `summary.json`'s `calls` and the dry run's plans); the models are keyed by label."""


@dataclass
class Conversation:
    """One conversation: a model under test, a persona, a run.

    Attributes:
        model (`str`): The model's label.
        persona (`RoleplayPersona`): The simulated user.
        run (`int`): The run (0-based); its seed is `seed + run`.
        seed (`int`): That seed.
        messages (`list[dict]`): The conversation from the model's side (`user` / `assistant`, the user first).
        scores (`list[int | None]`): The judge's score of each turn's reply (`None`: unparsable).
        judge_outputs (`list[str]`): The judge's raw output of each turn.
    """

    model: str
    persona: RoleplayPersona
    run: int
    seed: int
    messages: list[dict[str, str]] = field(default_factory=list)
    scores: list[int | None] = field(default_factory=list)
    judge_outputs: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The conversation as one line of `transcripts.jsonl`."""
        return {
            "model": self.model,
            "persona_id": self.persona.persona_id,
            "profile": self.persona.profile,
            "personality": self.persona.personality,
            "run": self.run,
            "seed": self.seed,
            "messages": self.messages,
            "scores": self.scores,
            "judge_outputs": self.judge_outputs,
        }

    def judgments(self) -> list[dict[str, Any]]:
        """One line of `judgments.jsonl` per turn: the user's message, the reply, the score and the raw output."""
        return [
            {
                "model": self.model,
                "persona_id": self.persona.persona_id,
                "run": self.run,
                "turn": turn,
                "message": self.messages[2 * turn - 2]["content"],
                "response": self.messages[2 * turn - 1]["content"],
                "score": score,
                "output": output,
                "unparsable": score is None,
            }
            for turn, (score, output) in enumerate(zip(self.scores, self.judge_outputs, strict=True), start=1)
        ]
