"""Synthetic ALOE: multi-turn persona dialogues in the ALOE release's schema, with styles a tiny model can learn.

ALOE (the DPORE paper's data) pairs a persona's `profile` and `personality` texts with conversations whose every
assistant turn has a preferred reply (tailored to the persona) and rejected ones. The persona is *not* in the
prompt: a model has to infer it from what the user says. This module makes such data offline and deterministically:

- every persona has one **style** of `ALOE_STYLES` (enthusiastic, formal, concise, humorous, gentle) and two or three
  **interests** (gardening, chess, jazz, ...);
- its **user messages** (`simulated_user_message`) carry a cue of its style ("I am so excited!", "Good day.", ...)
  and name one of its interests, so the conversation says who the user is;
- a **preferred reply** opens and closes with the style's marker phrases ("Wow! ... This is amazing!") and gives a
  tip about the interest the user named; the **rejected replies** are a generic reply (no marker, no interest) and
  an off-style reply (another style's markers, the right interest);
- `style_agreement_score` is the scripted judge's rule (1-5): own style markers present, other styles' absent, an
  interest named. Preferred replies score 5, rejected ones 1 (generic) or 2 (off-style), random text 1.

Texts are short (replies of 15-30 words) so that ten-turn conversations fit a tiny model's context.
`general_preference_rows` makes general (non-personal) preference rows in UltraFeedback-binarized's schema, the
general data the DPORE paper mixes into training.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from datasets import Features, List, Value

from .aloe import aloe_persona_id

ALOE_FEATURES = Features(
    {
        "profile": Value("string"),
        "personality": Value("string"),
        "conversations": List(
            {
                "user": Value("string"),
                "assistant": {"preferred": Value("string"), "rejected": List(Value("string"))},
                "chosen": Value("string"),
            }
        ),
    }
)
"""The ALOE release's record (`rejected` always a list here, so that one Arrow type holds every turn)."""

_MESSAGE = List({"role": Value("string"), "content": Value("string")})
GENERAL_FEATURES = Features(
    {
        "prompt": Value("string"),
        "prompt_id": Value("string"),
        "chosen": _MESSAGE,
        "rejected": _MESSAGE,
        "messages": _MESSAGE,
        "score_chosen": Value("float64"),
        "score_rejected": Value("float64"),
    }
)
"""UltraFeedback-binarized's columns (`HuggingFaceH4/ultrafeedback_binarized`)."""


@dataclass(frozen=True)
class _Style:
    name: str
    opener: str  # the reply's first words
    closers: tuple[str, ...]  # one of them ends the reply
    markers: tuple[str, ...]  # what the judge looks for (opener and closers, as phrases)
    user_cues: tuple[str, ...]  # what this persona's user messages sound like
    personality: str  # the personality text, "{name}" filled in


_STYLES = (
    _Style(
        "enthusiastic",
        "Wow!",
        ("This is amazing!", "So fantastic!"),
        ("wow", "amazing", "fantastic"),
        ("I am so excited!", "This is the best hobby ever!", "I cannot wait!"),
        "{name} is cheerful and energetic, and likes answers full of enthusiasm and exclamation marks.",
    ),
    _Style(
        "formal",
        "Certainly.",
        ("Kind regards.", "I would recommend it."),
        ("certainly", "kind regards", "i would recommend"),
        ("Good day.", "I would appreciate your advice.", "Thank you in advance."),
        "{name} is polite and reserved, and likes answers written in a formal, respectful tone.",
    ),
    _Style(
        "concise",
        "In short:",
        ("Bottom line: keep going.", "That is all."),
        ("in short", "bottom line", "that is all"),
        ("Quick question.", "Keep it brief.", "Short answer please."),
        "{name} is busy and practical, and likes answers that are short and to the point.",
    ),
    _Style(
        "humorous",
        "Haha!",
        ("No joke!", "Silly but true."),
        ("haha", "no joke", "silly"),
        ("lol.", "Make me laugh.", "I love a good pun."),
        "{name} is playful and witty, and likes answers with a joke and a light touch.",
    ),
    _Style(
        "gentle",
        "No worries.",
        ("Go gently.", "You are doing great."),
        ("no worries", "gently", "doing great"),
        ("I feel a bit nervous.", "Please be patient with me.", "I am still learning."),
        "{name} is shy and careful, and likes answers that are warm, calm and encouraging.",
    ),
)
_STYLE_BY_NAME = {style.name: style for style in _STYLES}
ALOE_STYLES = tuple(style.name for style in _STYLES)
"""The styles a synthetic persona can have; each has its own marker phrases (see `style_agreement_score`)."""

_TIPS = {
    "gardening": ("water gardening beds early in the morning", "start gardening with herbs in small pots"),
    "chess": ("study one chess opening at a time", "solve a few chess puzzles every day"),
    "jazz": ("listen to one jazz album closely each week", "learn a simple jazz standard by ear"),
    "hiking": ("pick short hiking trails and bring plenty of water", "break in hiking boots before long walks"),
    "cooking": ("master a few cooking basics like rice and eggs", "keep cooking simple with fresh ingredients"),
    "astronomy": ("find the moon and planets first in astronomy", "use an astronomy app on clear dark nights"),
    "photography": ("shoot photography in soft morning light", "learn one photography setting at a time"),
    "cycling": ("check cycling tyres before every ride", "build cycling distance slowly each week"),
    "painting": ("mix painting colours on a small palette first", "sketch before painting to plan the scene"),
    "baking": ("weigh baking ingredients instead of using cups", "let baking dough rest before shaping it"),
    "birdwatching": ("take binoculars for birdwatching at dawn", "keep a birdwatching notebook of every sighting"),
    "football": ("practise football passing against a wall", "watch football matches to learn positioning"),
}
ALOE_INTERESTS = tuple(_TIPS)
"""The interests a synthetic persona can have (two or three each)."""

_NAMES = (
    "Alice", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Iris", "Jack", "Kate", "Leo", "Maya",
    "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tara", "Victor", "Wendy", "Yusuf", "Zoe", "Omar",
)  # fmt: skip
_OCCUPATIONS = (
    "teacher", "nurse", "engineer", "student", "baker", "librarian", "farmer", "designer", "driver", "accountant",
    "chef", "doctor", "writer", "mechanic", "pilot", "lawyer",
)  # fmt: skip
_QUESTIONS = (
    "Any tips for {interest} this week?",
    "How do I get better at {interest}?",
    "What should I try next in {interest}?",
)
_GENERIC = (
    "Here is some general information. It depends on many factors, so consider your options and choose what works "
    "for you.",
    "There are many ways to approach this. Think about your goals, compare a few options and decide step by step.",
    "It is hard to say in general. You could search online, ask other people and see what fits your situation.",
)
_PROFILE = re.compile(
    r"(?P<name>[A-Z][a-z]+) is a (?P<age>\d+)-year-old (?P<occupation>[a-z]+) who loves (?P<rest>.+)\."
)


@dataclass(frozen=True)
class SyntheticALOEPersona:
    """A synthetic ALOE persona: its released texts and the hidden traits they describe.

    Args:
        persona_id (`str`): The stable id of its texts (`data.aloe.aloe_persona_id(profile, personality)`), the id the
            `build-dataset aloe` rows carry.
        profile (`str`): The profile text, e.g. `"Maya is a 34-year-old teacher who loves chess and jazz."`.
        personality (`str`): The personality text; it describes the style in words.
        style (`str`): One of `ALOE_STYLES`.
        interests (`tuple[str, ...]`): Two or three of `ALOE_INTERESTS`.
    """

    persona_id: str
    profile: str
    personality: str
    style: str
    interests: tuple[str, ...]


def _rng(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256(repr(parts).encode()).hexdigest())


def _interest_list(interests: Sequence[str]) -> str:
    return ", ".join(interests[:-1]) + " and " + interests[-1]


def _persona(name: str, age: int, occupation: str, style: str, interests: Sequence[str]) -> SyntheticALOEPersona:
    profile = f"{name} is a {age}-year-old {occupation} who loves {_interest_list(interests)}."
    personality = _STYLE_BY_NAME[style].personality.format(name=name)
    return SyntheticALOEPersona(aloe_persona_id(profile, personality), profile, personality, style, tuple(interests))


def aloe_personas(num_personas: int, seed: int = 0) -> list[SyntheticALOEPersona]:
    """Distinct synthetic personas, styles in turn (so every style has as many personas, give or take one).

    Args:
        num_personas (`int`): How many.
        seed (`int`, *optional*, defaults to `0`): Seeds names, ages, occupations and interests.

    Returns:
        `list[SyntheticALOEPersona]`: The same list for the same arguments; the first `n` personas of a longer list
        are the list of `n`.
    """
    personas: list[SyntheticALOEPersona] = []
    seen: set[str] = set()
    for index in range(num_personas):
        style = ALOE_STYLES[index % len(ALOE_STYLES)]
        for attempt in range(1000):
            rng = _rng("aloe-persona", seed, index, attempt)
            interests = rng.sample(ALOE_INTERESTS, rng.choice((2, 3)))
            persona = _persona(rng.choice(_NAMES), rng.randint(18, 80), rng.choice(_OCCUPATIONS), style, interests)
            if persona.persona_id not in seen:
                break
        seen.add(persona.persona_id)
        personas.append(persona)
    return personas


def persona_from_texts(profile: str, personality: str) -> SyntheticALOEPersona | None:
    """The synthetic persona whose texts these are, or `None` for any other text.

    Args:
        profile (`str`): A profile text.
        personality (`str`): A personality text.

    Returns:
        `SyntheticALOEPersona` or `None`: The persona, when both texts are exactly as `aloe_personas` writes them.
    """
    match = _PROFILE.fullmatch(profile.strip())
    if not match:
        return None
    head, _, last = match["rest"].rpartition(" and ")
    interests = [*head.split(", "), last]
    if not head or any(interest not in _TIPS for interest in interests):
        return None
    for style in _STYLES:
        if style.personality.format(name=match["name"]) == personality.strip():
            persona = _persona(match["name"], int(match["age"]), match["occupation"], style.name, interests)
            if persona.profile == profile.strip():
                return persona
    return None


def _turn_interest(persona: SyntheticALOEPersona, turn: int, seed: int) -> str:
    return _rng("aloe-interest", persona.persona_id, turn, seed).choice(persona.interests)


def simulated_user_message(persona: SyntheticALOEPersona, turn: int, last_reply: str | None, seed: int) -> str:
    """The rule-based user of `persona`: a short message with a cue of its style and one of its interests.

    Args:
        persona (`SyntheticALOEPersona`): Who is talking.
        turn (`int`): The turn, 1-based. The first turn opens the conversation; later ones react to `last_reply`.
        last_reply (`str` or `None`): The assistant's previous reply (`None` on the first turn).
        seed (`int`): Seeds the choice of cue, interest and question (one conversation, one seed).

    Returns:
        `str`: The message; the same for the same arguments.
    """
    rng = _rng("aloe-user", persona.persona_id, turn, seed)
    cue = rng.choice(_STYLE_BY_NAME[persona.style].user_cues)
    question = rng.choice(_QUESTIONS).format(interest=_turn_interest(persona, turn, seed))
    if turn <= 1 or last_reply is None:
        return f"{cue} I love {_interest_list(persona.interests)}. {question}"
    if style_agreement_score(persona, last_reply) >= 4:
        return f"{cue} Thanks, that helps. {question}"
    return f"{cue} Hmm, that is not quite what I hoped for. {question}"


def _styled_reply(style: _Style, interest: str, rng: random.Random) -> str:
    tip = rng.choice(_TIPS[interest])
    return f"{style.opener} For {interest}, {tip}. {rng.choice(style.closers)}"


def preferred_reply(persona: SyntheticALOEPersona, interest: str, rng: random.Random) -> str:
    """A reply in the persona's style about `interest` (what `style_agreement_score` scores 5).

    Args:
        persona (`SyntheticALOEPersona`): Whom the reply is for.
        interest (`str`): One of its interests, the one the user asked about.
        rng (`random.Random`): Draws the tip and the closing phrase.

    Returns:
        `str`: `"<opener> For <interest>, <tip>. <closer>"`.
    """
    return _styled_reply(_STYLE_BY_NAME[persona.style], interest, rng)


def rejected_replies(persona: SyntheticALOEPersona, interest: str, rng: random.Random) -> list[str]:
    """The rejected replies of a turn: a generic reply (no marker, no interest), then one about `interest` in
    another style.

    Args:
        persona (`SyntheticALOEPersona`): Whom the replies fail.
        interest (`str`): The interest the user asked about.
        rng (`random.Random`): Draws the texts and the other style.

    Returns:
        `list[str]`: Two replies, the generic one first.
    """
    other = rng.choice([style for style in _STYLES if style.name != persona.style])
    return [rng.choice(_GENERIC), _styled_reply(other, interest, rng)]


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text, flags=re.IGNORECASE) is not None


def style_agreement_score(persona: SyntheticALOEPersona, response: str) -> int:
    """The scripted judge's score (1-5) of how well `response` suits `persona`'s style.

    1, plus one point per marker phrase of the persona's style present (at most two), plus one when no other
    style's marker is present (and one of its own is), plus one when one of its interests is named. A preferred
    reply scores 5, a generic one 1, one in another style about the right interest 2, and any text without markers
    or interests 1.

    Args:
        persona (`SyntheticALOEPersona`): Whom the response is for.
        response (`str`): The assistant's reply.

    Returns:
        `int`: In 1..5.
    """
    own = sum(_mentions(response, marker) for marker in _STYLE_BY_NAME[persona.style].markers)
    other = any(
        _mentions(response, marker) for style in _STYLES if style.name != persona.style for marker in style.markers
    )
    interest = any(_mentions(response, interest) for interest in persona.interests)
    return 1 + min(own, 2) + int(own > 0 and not other) + int(interest)


def aloe_rows(num_personas: int, conversations_per_persona: int = 4, turns: int = 10, seed: int = 0) -> Iterator[dict]:
    """ALOE records of `aloe_personas(num_personas, seed)`: one per conversation, in the release's schema.

    Each turn's user message is `simulated_user_message` (reacting to the previous preferred reply); its assistant
    replies are the preferred reply about the interest the user asked about, and `rejected_replies`.

    Args:
        num_personas (`int`): Personas.
        conversations_per_persona (`int`, *optional*, defaults to `4`): Conversations each.
        turns (`int`, *optional*, defaults to `10`): Turns per conversation.
        seed (`int`, *optional*, defaults to `0`): Seeds everything; the same arguments give the same records.

    Yields:
        `dict`: `{"profile", "personality", "conversations": [{"user", "assistant": {"preferred", "rejected"},
        "chosen": "preferred"}, ...]}` (`ALOE_FEATURES`).
    """
    for persona in aloe_personas(num_personas, seed):
        for conversation in range(conversations_per_persona):
            user_seed = int(hashlib.sha256(f"{seed}-{conversation}".encode()).hexdigest()[:8], 16)
            rng = _rng("aloe-replies", persona.persona_id, conversation, seed)
            last_reply, records = None, []
            for turn in range(1, turns + 1):
                user = simulated_user_message(persona, turn, last_reply, user_seed)
                interest = _turn_interest(persona, turn, user_seed)
                last_reply = preferred_reply(persona, interest, rng)
                assistant = {"preferred": last_reply, "rejected": rejected_replies(persona, interest, rng)}
                records.append({"user": user, "assistant": assistant, "chosen": "preferred"})
            yield {"profile": persona.profile, "personality": persona.personality, "conversations": records}


_GENERAL_TASKS = (
    ("What is {a} plus {b}?", lambda a, b: f"{a} plus {b} is {a + b}.", lambda a, b: f"{a} plus {b} is {a + b + 1}."),
    ("What is {a} times {b}?", lambda a, b: f"{a} times {b} is {a * b}.", lambda a, b: "I am not sure about that."),
    (
        "Which is larger, {a} or {b}?",
        lambda a, b: f"{b} is larger than {a}.",
        lambda a, b: f"{a} is larger than {b}.",
    ),
    (
        "Count from {a} to {b}.",
        lambda a, b: ", ".join(str(n) for n in range(a, b + 1)) + ".",
        lambda a, b: "Counting is easy, you can do it yourself.",
    ),
)


def general_preference_rows(num_rows: int, seed: int = 0) -> Iterator[dict]:
    """General (non-personal) preference rows in UltraFeedback-binarized's schema: small factual and arithmetic
    questions whose chosen answer is right and whose rejected one is wrong or unhelpful. No style marker of
    `ALOE_STYLES` appears in them, so mixing them in teaches no style.

    Args:
        num_rows (`int`): Rows.
        seed (`int`, *optional*, defaults to `0`): Seeds the questions and scores.

    Yields:
        `dict`: `prompt`, `prompt_id` (SHA-256 of the prompt), `chosen` / `rejected` (user then assistant message),
        `messages` (the chosen conversation), `score_chosen`, `score_rejected` (`GENERAL_FEATURES`).
    """
    for index in range(num_rows):
        rng = _rng("general", seed, index)
        template, good, bad = rng.choice(_GENERAL_TASKS)
        a = rng.randint(2, 12)
        b = a + rng.randint(1, 9)  # distinct and ascending: "which is larger" and "count from a to b" make sense
        prompt = template.format(a=a, b=b)
        user = {"role": "user", "content": prompt}
        chosen = [user, {"role": "assistant", "content": good(a, b)}]
        yield {
            "prompt": prompt,
            "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
            "chosen": chosen,
            "rejected": [user, {"role": "assistant", "content": bad(a, b)}],
            "messages": chosen,
            "score_chosen": float(rng.randint(7, 10)),
            "score_rejected": float(rng.randint(1, 5)),
        }
