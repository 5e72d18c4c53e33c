"""The role-play prompts: the simulated user's instruction, the three roles' views of one conversation, and the
reading of a user-simulator prompt back into its persona and turn (for scripted simulators).

One conversation is a list of messages from the model's side: `user` (the simulated user) and `assistant` (the model
under test) alternating, the user first. Each role sees it differently (the DPORE paper, §4.1-4.2: "role-playing
experiments where GPT-based agents interact with our trained models", following ALOE):

- the user simulator (`user_simulator_messages`): a system message with the persona's profile and personality
  (`USER_SIMULATOR_PROMPT`), a first message asking it to open the conversation (`OPENING_MESSAGE`), then the
  conversation with the roles flipped: its own earlier messages as `assistant`, the model's replies as `user`, so it
  writes the next user message as its own completion;
- the model under test (`model_messages`): the conversation as it is, ending with the user's message of the turn; it
  is never told the persona and must infer it from the conversation;
- the judge: the DPORE paper's Appendix A prompt (`personalign.evaluation.judges.prompts.PERSONA_TAILORING_PROMPT`)
  with the profile, the personality, the user's message of the turn and the model's reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import InputError
from ...personas.persona import Messages
from ..judges.prompts import fill_template

USER_SIMULATOR_PROMPT = """You are role-playing a human user who is chatting with an AI assistant. You are this user, with the profile and personality below.

Here is your profile: {profile}

Here is your personality: {personality}

Talk with the assistant as this user would. Open the conversation with something this user would naturally bring up (a question, a plan, an experience or a problem on their mind), then keep it going, reacting to what the assistant says as this user would: follow up, share more about yourself when it fits, ask for what you want. Let your background, interests and personality show in what you talk about and in how you write, but never state your profile or personality outright, and never reveal or hint that you are role-playing, simulated or an AI. Write only the user's next message: one message, in the first person, as the user would type it, without quotation marks, labels or explanations."""
"""The user simulator's system message (fields `{profile}`, `{personality}`), in the setting of ALOE's and the DPORE
paper's role-play: an LLM plays a user with the persona's profile and personality, opens a conversation naturally,
continues it, and never reveals that it is simulated. The profile and the personality sit between fixed lines of the
template, so `parse_user_simulator_prompt` reads them back (a scripted simulator recovers the persona from them)."""

OPENING_MESSAGE = "(The conversation starts now. Write your first message to the assistant.)"
"""The first message the user simulator receives (in its flipped view, from its interlocutor): asks it to open the
conversation. It is not part of the conversation the model under test sees."""


@dataclass(frozen=True)
class SimulatorView:
    """What a user-simulator prompt holds, read back by `parse_user_simulator_prompt`.

    Attributes:
        profile (`str`): The persona's profile.
        personality (`str`): The persona's personality.
        turn (`int`): The 1-based turn whose user message is asked for.
        last_reply (`str` or `None`): The model's reply of the previous turn (`None` at turn 1).
    """

    profile: str
    personality: str
    turn: int
    last_reply: str | None


def user_simulator_messages(profile: str, personality: str, conversation: Sequence[dict]) -> Messages:
    """The user simulator's prompt for the next user message: `USER_SIMULATOR_PROMPT` as the system message, the
    opening request, then the conversation with the roles flipped (the simulator's own messages as `assistant`, the
    model's replies as `user`).

    Args:
        profile (`str`): The persona's profile.
        personality (`str`): The persona's personality.
        conversation (`Sequence[dict]`): The conversation so far from the model's side (`user` / `assistant`
            messages alternating, the user first, ending with an assistant reply, or empty at turn 1).

    Returns:
        `list[dict]`: The chat prompt; its last message is a `user` message (the model's last reply, or the opening
        request).

    Raises:
        `InputError`: If the conversation does not alternate user / assistant from a user message, or ends with a
            user message.
    """
    check_conversation(conversation, ends_with="assistant")
    flipped = {"user": "assistant", "assistant": "user"}
    system = fill_template(USER_SIMULATOR_PROMPT, profile=profile, personality=personality)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": OPENING_MESSAGE},
        *({"role": flipped[message["role"]], "content": message["content"]} for message in conversation),
    ]


def model_messages(conversation: Sequence[dict]) -> Messages:
    """The prompt of the model under test: the conversation as it is (no system message, no persona), ending with the
    user's message of the turn; the model's chat template renders it.

    Args:
        conversation (`Sequence[dict]`): The conversation so far, ending with a user message.

    Returns:
        `list[dict]`: A copy of the messages.

    Raises:
        `InputError`: If the conversation does not alternate user / assistant from a user message, or does not end
            with a user message.
    """
    check_conversation(conversation, ends_with="user")
    return [{"role": message["role"], "content": message["content"]} for message in conversation]


def check_conversation(conversation: Sequence[dict], ends_with: str) -> None:
    """Refuse a conversation that is not `user`, `assistant`, `user`, ... ending with a `ends_with` message (an empty
    conversation ends with `"assistant"`: turn 1 has no message yet).

    Raises:
        `InputError`: Naming the first message out of place.
    """
    for index, message in enumerate(conversation):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected or not isinstance(message.get("content"), str):
            raise InputError(f"conversation message {index}: expected a {expected} message, got {message!r:.80}")
    last = conversation[-1]["role"] if conversation else "assistant"
    if last != ends_with:
        raise InputError(f"the conversation ends with a {last} message; expected it to end with a {ends_with} one.")


_PROFILE_MARK, _PERSONALITY_MARK = "\x00profile\x00", "\x00personality\x00"


def _layout() -> tuple[str, str, str]:
    """The text before the profile, between the profile and the personality, and after the personality in a filled
    `USER_SIMULATOR_PROMPT`, read off the template itself."""
    filled = fill_template(USER_SIMULATOR_PROMPT, profile=_PROFILE_MARK, personality=_PERSONALITY_MARK)
    before, _, rest = filled.partition(_PROFILE_MARK)
    between, _, after = rest.partition(_PERSONALITY_MARK)
    return before, between, after


def parse_user_simulator_prompt(messages: Sequence[dict]) -> SimulatorView | None:
    """Read a user-simulator prompt (`user_simulator_messages`) back: the persona's profile and personality from the
    system message, the turn from the simulator's own earlier messages (its `assistant` messages), the model's last
    reply from the last `user` message after the opening request.

    Args:
        messages (`Sequence[dict]`): A chat prompt.

    Returns:
        `SimulatorView`, or `None` when the prompt is not a user-simulator prompt.
    """
    if len(messages) < 2 or messages[0].get("role") != "system" or messages[1].get("content") != OPENING_MESSAGE:
        return None
    before, between, after = _layout()
    system = str(messages[0].get("content", ""))
    if not (system.startswith(before) and system.endswith(after)):
        return None
    middle = system[len(before) : len(system) - len(after)]
    profile, found, personality = middle.rpartition(between)
    if not found:
        return None
    conversation = list(messages[2:])
    turn = sum(message.get("role") == "assistant" for message in conversation) + 1
    last_reply = str(conversation[-1]["content"]) if conversation and conversation[-1].get("role") == "user" else None
    return SimulatorView(profile, personality, turn, last_reply)
