"""ALOE training (the DPORE paper's §4.1): general preference data mixed into `sft`, `dpo` and `dpore` (counts and
shares exact, formats accepted and converted, general rows never regularised, numerically), and the paper's
baselines `personalign train sft` (Preferred-SFT) and `personalign train dpo` through the CLI, learning on tiny
ALOE-format rows."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOTrainer

from personalign.cli import app, run
from personalign.scripts.utils import ScriptArguments, mix_general_rows
from personalign.trainers import DPOREConfig, DPORETrainer

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = EXAMPLES / "configs" / "tiny"

# ---------------------------------------------------------------------------------------- rows in K1's schemas
# Each persona has a style the preferred replies carry (and its user messages hint at); rejected replies are generic.
STYLES = {
    "cheerful": ("omg hi!! so excited,", "Wow, {topic} sounds amazing! Let's have fun with it!"),
    "formal": ("Good afternoon. I would like advice:", "Certainly. Regarding {topic}, I would recommend a plan."),
    "terse": ("quick q:", "{topic}: do it. Done."),
    "poetic": ("Dear friend, my heart wonders,", "Ah, {topic}, like a river under the moon, gentle and bright."),
}
TOPICS = ("hiking", "baking", "chess", "jazz", "gardening", "running", "painting", "coding", "sailing", "tea")
GENERIC = "Here is some general information about {topic}."


def aloe_preference_rows(num_personas: int, turns: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """ALOE `preference` rows (contract K1): per persona one conversation of `turns` turns, one row per turn with
    the conversation so far (user turns and preferred replies) as the prompt."""
    rng = random.Random(seed)
    rows = []
    for p in range(num_personas):
        style = list(STYLES)[p % len(STYLES)]
        cue, reply = STYLES[style]
        persona_id = f"persona-{seed}-{p}"
        prompt: list[dict[str, str]] = []
        for turn in range(1, turns + 1):
            topic = rng.choice(TOPICS)
            prompt = [*prompt, {"role": "user", "content": f"{cue} tell me about {topic}?"}]
            chosen = reply.format(topic=topic)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": GENERIC.format(topic=topic)}],
                    "persona_id": persona_id,
                    "profile": f"A person who loves {topic}.",
                    "personality": f"{style.capitalize()} in every message.",
                    "conversation_id": p,
                    "turn": turn,
                }
            )
            prompt = [*prompt, {"role": "assistant", "content": chosen}]
    return rows


def general_rows(num_rows: int, seed: int = 0, conversational: bool = True) -> list[dict[str, Any]]:
    """General preference rows in UltraFeedback-binarized's schema (implicit prompt in chosen / rejected), or, with
    `conversational=False`, standard text rows with an explicit prompt."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        question = f"What is {rng.randint(2, 99)} plus {rng.randint(2, 99)}? (general {i})"
        good, bad = "Let me add them step by step.", "No idea."
        if not conversational:
            rows.append({"prompt": question, "chosen": good, "rejected": bad})
            continue
        user = {"role": "user", "content": question}
        chosen = [user, {"role": "assistant", "content": good}]
        rejected = [user, {"role": "assistant", "content": bad}]
        rows.append(
            {
                "prompt": question,
                "prompt_id": f"{i:064x}",
                "chosen": chosen,
                "rejected": rejected,
                "messages": chosen,
                "score_chosen": 8.0,
                "score_rejected": 3.0,
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


CARD = """---
configs:
- config_name: preference
  data_files:
  - split: train
    path: preference/train.jsonl
  - split: test
    path: preference/test.jsonl
---
"""


def write_aloe_folder(folder: Path, train_personas: int, test_personas: int, seed: int = 0) -> Path:
    """A folder laid out as `personalign build-dataset aloe` writes it (config `preference`, split by persona)."""
    write_jsonl(folder / "preference" / "train.jsonl", aloe_preference_rows(train_personas, seed=seed))
    write_jsonl(folder / "preference" / "test.jsonl", aloe_preference_rows(test_personas, seed=seed + 1000))
    (folder / "README.md").write_text(CARD)
    return folder


class Seeded:
    """The config fields the mixing reads."""

    def __init__(self, seed: int = 0, general_row_column: str | None = None) -> None:
        self.seed = seed
        if general_row_column:
            self.general_row_column = general_row_column
