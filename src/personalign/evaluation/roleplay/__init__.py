"""Role-play evaluation (`personalign eval roleplay`): a simulated user with a persona talks with each model under
test for K turns and a judge scores every turn for alignment with that persona (the DPORE paper, §4.1-4.2, Table 1;
the lambda sweep of its Table 3 is the same evaluation with one model per lambda).

- `prompts`: the user simulator's prompt, each role's view of a conversation, the reading of a simulator prompt back;
- `personas`: `load_personas` (a build-dataset aloe folder, a persona table, released ALOE records);
- `conversation`: `Conversation` (one model, persona and run: the messages, scores and judge outputs);
- `engine`: `RoleplayConfig`, `run_roleplay` (batched per turn, every call through the call cache: resumable, and
  priced by a dry run);
- `summary`: `summary.json`'s statistics (per turn mean and spread, the average over turns);
- `results`: the Table 1 layout, the plot, the transcripts, the model-card results.
"""

from __future__ import annotations

from .conversation import JUDGE, USER_SIMULATOR, Conversation
from .engine import (
    RoleplayConfig,
    RoleplayResult,
    call_counts,
    describe_calls,
    describe_plans,
    model_label,
    model_labels,
    run_roleplay,
)
from .personas import PERSONA_COLUMNS, PERSONAS_CONFIG, LoadedPersonas, RoleplayPersona, load_personas, persona_key
from .prompts import (
    OPENING_MESSAGE,
    USER_SIMULATOR_PROMPT,
    SimulatorView,
    check_conversation,
    model_messages,
    parse_user_simulator_prompt,
    user_simulator_messages,
)
from .results import (
    JUDGMENTS_FILE,
    PLOT_FILE,
    SUMMARY_FILE,
    TABLE_FILE,
    TRANSCRIPTS_FILE,
    plot_roleplay,
    roleplay_card_results,
    roleplay_table,
    update_model_card_with_roleplay,
    write_roleplay,
)
from .summary import model_statistics, summarize, turn_statistics

__all__ = [
    "JUDGE",
    "JUDGMENTS_FILE",
    "OPENING_MESSAGE",
    "PERSONAS_CONFIG",
    "PERSONA_COLUMNS",
    "PLOT_FILE",
    "SUMMARY_FILE",
    "TABLE_FILE",
    "TRANSCRIPTS_FILE",
    "USER_SIMULATOR",
    "USER_SIMULATOR_PROMPT",
    "Conversation",
    "LoadedPersonas",
    "RoleplayConfig",
    "RoleplayPersona",
    "RoleplayResult",
    "SimulatorView",
    "call_counts",
    "check_conversation",
    "describe_calls",
    "describe_plans",
    "load_personas",
    "model_label",
    "model_labels",
    "model_messages",
    "model_statistics",
    "parse_user_simulator_prompt",
    "persona_key",
    "plot_roleplay",
    "roleplay_card_results",
    "roleplay_table",
    "run_roleplay",
    "summarize",
    "turn_statistics",
    "update_model_card_with_roleplay",
    "user_simulator_messages",
    "write_roleplay",
]
