"""Synthetic personalized preference data in the real release schemas, generated offline and deterministically.

**AlignX rows** (`alignx_rows`) carry the release's exact columns. Each simulated user has a hidden direction over a
handful of AlignX dimensions that text can express (concise vs detailed, humorous vs serious, direct vs
conciliatory, casual vs deep, ...). Their comments, pairwise choices and demographic description follow that
direction, and so does the target pair's `chosen` response. Each response phrase opens with the AlignX label of the
pole it expresses ("Concise communication style: ..."), so that a tiny model can learn the persona-to-response
mapping by copying within a few hundred DPO steps; without that echo a 2-layer model barely moves in the same budget. Rows come in *counterfactual pairs*: the same prompt and the same two
responses appear once under a user and once under their mirror (every active dimension reversed) with `chosen` and
`rejected` swapped, so a model that ignores the persona scores exactly chance on alignment accuracy.

**Multifaceted-Collection rows** (`multifaceted_rows`) carry the SFT release's columns: three rows per instruction,
each with a `preference_set` over style, background knowledge, informativeness and harmlessness, and an `output`
that expresses those preferences. The three rows of an instruction differ on every dimension.

Everything is a generator: rows are derived from `(seed, index)` alone, so any size (a dozen rows for unit tests,
millions for benchmarks) streams in constant memory, and the same arguments always give the same rows.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from datasets import Dataset, Features, List, Value

from ..errors import InputError
from ..personas.persona import (
    CHOSEN_COLUMN,
    DEMOGRAPHICS_COLUMN,
    DIRECTION_COLUMN,
    PAIRS_COLUMN,
    PROMPT_COLUMN,
    REJECTED_COLUMN,
    UGC_COLUMN,
)
from ..personas.space import PreferenceSpace

_VECTOR = List(Value("float64"))
ALIGNX_FEATURES = Features(
    {
        PROMPT_COLUMN: Value("string"),
        CHOSEN_COLUMN: Value("string"),
        REJECTED_COLUMN: Value("string"),
        DIRECTION_COLUMN: _VECTOR,
        DEMOGRAPHICS_COLUMN: Value("string"),
        UGC_COLUMN: List({"prompt": Value("string"), "comment": Value("string"), DIRECTION_COLUMN: _VECTOR}),
        PAIRS_COLUMN: List(
            {
                "prompt": Value("string"),
                "chosen": Value("string"),
                "rejected": Value("string"),
                DIRECTION_COLUMN: _VECTOR,
            }
        ),
    }
)
"""The AlignX release's columns, names verbatim."""

ALIGNX_METADATA_FEATURES = Features(
    {
        **ALIGNX_FEATURES,
        "persona_id": Value("string"),
        "counterfactual_id": Value("string"),
        "target_dimensions": List(Value("int32")),
    }
)
"""`ALIGNX_FEATURES` plus the simulation's ground truth, with `with_metadata=True`."""

MULTIFACETED_FEATURES = Features(
    {
        "main_source": Value("string"),
        "original_source": Value("string"),
        "preference_set": List(
            {
                "dimension": Value("string"),
                "subdimension": Value("string"),
                "preference": Value("string"),
                "description": Value("string"),
            }
        ),
        "system": Value("string"),
        "prompt": Value("string"),
        "output": Value("string"),
    }
)
"""The Multifaceted-Collection (SFT) release's columns."""


# ---------------------------------------------------------------------------------------------------- text banks
@dataclass(frozen=True)
class ExpressedDimension:
    """An AlignX dimension the synthetic text expresses: phrases for each pole (with a `{topic}` slot, opening with
    the pole's AlignX label) and the trait wording used in demographic descriptions."""

    index: int
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    positive_trait: str
    negative_trait: str

    def phrases(self, value: float) -> tuple[str, ...]:
        return self.positive if value == 1 else self.negative


EXPRESSED_DIMENSIONS: tuple[ExpressedDimension, ...] = (
    ExpressedDimension(
        16,
        ("Concise communication style: {topic} is fine.",),
        ("Detailed communication style: let me walk through {topic} step by step, covering every option.",),
        "keeps every conversation concise",
        "enjoys long and detailed explanations",
    ),
    ExpressedDimension(
        73,
        ("Likes humor: {topic} is like a cat wearing a tie!",),
        ("Dislikes humor: {topic} deserves careful thought.",),
        "laughs at every joke",
        "prefers a serious tone",
    ),
    ExpressedDimension(
        15,
        ("Prefers direct communication to handle conflict: confront {topic} head on.",),
        ("Prefers avoidance, mediation, compromise to handle conflict: discuss {topic} calmly.",),
        "speaks up directly in any conflict",
        "avoids confrontation and seeks compromise",
    ),
    ExpressedDimension(
        12,
        ("Concerned about physical safety: wear protective gear for {topic}.",),
        ("Not concerned about physical safety: just dive into {topic}.",),
        "is concerned about physical safety",
        "shrugs off safety precautions",
    ),
    ExpressedDimension(
        10,
        ("Aggressive investment: put growth stocks behind {topic}.",),
        ("Conservative investment: keep the money for {topic} in savings.",),
        "invests aggressively",
        "invests conservatively",
    ),
    ExpressedDimension(
        3,
        ("High Extraversion: invite a big crowd of friends to {topic}.",),
        ("Low Extraversion: enjoy {topic} quietly on your own.",),
        "loves being around people",
        "recharges alone",
    ),
    ExpressedDimension(
        11,
        ("Good at saving: set aside a fixed budget for {topic}.",),
        ("Bad at saving: spend freely on {topic}.",),
        "saves money carefully",
        "spends money freely",
    ),
    ExpressedDimension(
        14,
        ("Prefers superficial interaction (casual, stress-free chat): no stress about {topic}, just chill.",),
        (
            "Prefers deep interaction (discussing interests, emotional topics, etc.): reflect on what {topic} means to you.",
        ),
        "likes light, casual chats",
        "seeks deep conversations",
    ),
)
_BY_INDEX = {dimension.index: dimension for dimension in EXPRESSED_DIMENSIONS}

TOPICS = (
    "the weekend plan",
    "the birthday party",
    "the garden project",
    "the monthly budget",
    "the job interview",
    "the camping trip",
    "the new apartment",
    "the wedding speech",
    "the family dinner",
    "the school project",
    "the car repair",
    "the holiday season",
    "the team meeting",
    "the fitness routine",
    "the book club",
    "the home office",
    "the cooking class",
    "the neighbour dispute",
    "the retirement savings",
    "the first date",
    "the moving day",
    "the music lesson",
    "the photo album",
    "the charity run",
)
POST_TEMPLATES = (
    "Any advice on {topic}?",
    "I am stuck with {topic}. What would you do?",
    "How should I handle {topic}?",
    "My friend asked me about {topic}. Thoughts?",
    "What is the best way to approach {topic}?",
    "Need help with {topic}, please share ideas.",
)
OCCUPATIONS = (
    "teacher",
    "nurse",
    "software engineer",
    "student",
    "chef",
    "accountant",
    "artist",
    "farmer",
    "lawyer",
    "mechanic",
    "librarian",
    "designer",
)


# --------------------------------------------------------------------------------------------------------- AlignX
@dataclass(frozen=True)
class SyntheticUser:
    """A simulated user: the hidden direction over expressed dimensions, and a description."""

    persona_id: str
    values: dict[int, float]
    age: int
    occupation: str

    def direction(self, space: PreferenceSpace, dimensions: Sequence[int] | None = None) -> list[float]:
        """The user's vector restricted to `dimensions` (all active ones by default), neutral elsewhere."""
        keep = self.values if dimensions is None else {d: self.values[d] for d in dimensions}
        return space.vector(keep)

    def demographics(self) -> str:
        traits = [
            _BY_INDEX[d].positive_trait if value == 1 else _BY_INDEX[d].negative_trait
            for d, value in sorted(self.values.items())
        ]
        listed = traits[0] if len(traits) == 1 else ", ".join(traits[:-1]) + " and " + traits[-1]
        article = "An" if str(self.age).startswith("8") or self.age in (11, 18) else "A"
        return f"{article} {self.age}-year-old {self.occupation} who {listed}."


def _rng(*parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so the stream is stable across runs and platforms.
    return random.Random(":".join(str(part) for part in parts))


def make_user_pair(
    seed: int, pair_index: int, active_dimensions: tuple[int, int] = (1, 3)
) -> tuple[SyntheticUser, SyntheticUser]:
    """A user and their mirror (every active dimension reversed), with independent descriptions."""
    rng = _rng(seed, "user", pair_index)
    count = rng.randint(*active_dimensions)
    dims = sorted(rng.sample([d.index for d in EXPRESSED_DIMENSIONS], count))
    values = {d: float(rng.randint(0, 1)) for d in dims}
    user = SyntheticUser(f"u{pair_index}a", values, rng.randint(18, 75), rng.choice(OCCUPATIONS))
    mirror_values = {d: 1.0 - v for d, v in values.items()}
    mirror = SyntheticUser(f"u{pair_index}b", mirror_values, rng.randint(18, 75), rng.choice(OCCUPATIONS))
    return user, mirror


def _responses(rng: random.Random, topic: str, poles: dict[int, float], contrast: Sequence[int]) -> tuple[str, str]:
    """Two responses sharing phrase choices and order, identical except on the `contrast` dimensions, where the
    second takes the opposite pole. The first follows `poles`."""
    dims = list(poles)
    rng.shuffle(dims)
    variants = {d: rng.randrange(len(_BY_INDEX[d].positive)) for d in dims}

    def render(flip: bool) -> str:
        parts = []
        for d in dims:
            value = 1.0 - poles[d] if flip and d in contrast else poles[d]
            phrases = _BY_INDEX[d].phrases(value)
            parts.append(phrases[variants[d] % len(phrases)].format(topic=topic))
        return " ".join(parts)

    return render(False), render(True)


def _with_distractors(rng: random.Random, poles: dict[int, float], count: int) -> dict[int, float]:
    others = [d.index for d in EXPRESSED_DIMENSIONS if d.index not in poles]
    extra = {d: float(rng.randint(0, 1)) for d in rng.sample(others, min(count, len(others)))}
    return {**poles, **extra}


def _post(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(TOPICS)
    return rng.choice(POST_TEMPLATES).format(topic=topic), topic


def _history(
    user: SyntheticUser,
    seed: int,
    space: PreferenceSpace,
    history_size: tuple[int, int],
    item_noise: float,
) -> tuple[list[dict], list[dict]]:
    rng = _rng(seed, "history", user.persona_id)
    active = sorted(user.values)

    def expressed() -> dict[int, float]:
        # Each item shows a non-empty subset of the user's dimensions; with `item_noise`, a shown pole may flip
        # (the item's own annotation follows its text, as the release's per-item annotation does).
        shown = rng.sample(active, rng.randint(1, len(active)))
        return {d: (1.0 - user.values[d]) if rng.random() < item_noise else user.values[d] for d in sorted(shown)}

    ugc = []
    for _ in range(rng.randint(*history_size)):
        prompt, topic = _post(rng)
        poles = expressed()
        comment, _unused = _responses(rng, topic, _with_distractors(rng, poles, 1), contrast=())
        ugc.append({"prompt": prompt, "comment": comment, DIRECTION_COLUMN: space.vector(poles)})
    pairs = []
    for _ in range(rng.randint(*history_size)):
        prompt, topic = _post(rng)
        poles = expressed()
        chosen, rejected = _responses(rng, topic, _with_distractors(rng, poles, 1), contrast=list(poles))
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, DIRECTION_COLUMN: space.vector(poles)})
    return ugc, pairs


def alignx_rows(
    num_rows: int,
    seed: int = 0,
    *,
    num_personas: int | None = None,
    history_size: tuple[int, int] = (4, 8),
    active_dimensions: tuple[int, int] = (1, 3),
    max_target_dimensions: int = 2,
    distractors: int = 1,
    item_noise: float = 0.0,
    with_metadata: bool = False,
) -> Iterator[dict]:
    """Stream AlignX rows (release schema) from simulated users, in counterfactual pairs.

    Rows `2k` and `2k + 1` share the prompt and the two responses: row `2k` belongs to a user, row `2k + 1` to that
    user's mirror, with `chosen` / `rejected` swapped and the target direction reversed.

    Args:
        num_rows (`int`): Number of rows; even, since rows come in counterfactual pairs.
        seed (`int`, *optional*, defaults to `0`): Everything is a function of the seed and the row index.
        num_personas (`int`, *optional*): Draw users from a fixed pool of this many personas (even; a persona keeps
            the same history in every row), for tasks that need several rows per persona. By default every pair of
            rows has its own user and mirror.
        history_size (`tuple[int, int]`, *optional*, defaults to `(4, 8)`): Inclusive range of the number of
            comments, and of pairs, in a persona's history (the release has up to 16 of each).
        active_dimensions (`tuple[int, int]`, *optional*, defaults to `(1, 3)`): Inclusive range of the number of
            expressed dimensions a user has a direction on.
        max_target_dimensions (`int`, *optional*, defaults to `2`): The target pair differs on 1 to this many of the
            user's dimensions.
        distractors (`int`, *optional*, defaults to `1`): Dimensions outside the user's that the target responses
            also express, identically in both.
        item_noise (`float`, *optional*, defaults to `0.0`): Probability that a history item shows the opposite pole
            on one of its dimensions.
        with_metadata (`bool`, *optional*, defaults to `False`): Add `persona_id`, `counterfactual_id` and
            `target_dimensions` (see `ALIGNX_METADATA_FEATURES`).

    Yields:
        `dict`: One row per iteration, with the columns of `ALIGNX_FEATURES` (or `ALIGNX_METADATA_FEATURES`).
    """
    if num_rows < 2 or num_rows % 2:  # no rows would be a file every reader refuses
        raise InputError(
            f"num_rows must be a positive even number (rows come in counterfactual pairs), got {num_rows} "
            "(CLI: --rows)."
        )
    if num_personas is not None and (num_personas < 2 or num_personas % 2):
        raise InputError(
            f"num_personas must be an even number >= 2 (users come with their mirror), got {num_personas} "
            "(CLI: --num-personas)."
        )
    if not 0 <= item_noise < 0.5:
        raise InputError(f"item_noise must be in [0, 0.5), got {item_noise} (CLI: --item-noise).")
    low, high = active_dimensions
    if not 1 <= low <= high <= len(EXPRESSED_DIMENSIONS):
        raise InputError(
            f"active_dimensions must satisfy 1 <= low <= high <= {len(EXPRESSED_DIMENSIONS)}, got {active_dimensions}."
        )
    if history_size[0] < 0 or history_size[0] > history_size[1]:
        raise InputError(
            f"history_size must be an inclusive range (low, high) with 0 <= low <= high, got {history_size} "
            "(CLI: --min-history, --max-history)."
        )
    space = PreferenceSpace.alignx()
    for group in range(num_rows // 2):
        rng = _rng(seed, "group", group)
        pair_index = rng.randrange(num_personas // 2) if num_personas else group
        user, mirror = make_user_pair(seed, pair_index, active_dimensions)
        active = sorted(user.values)
        target = sorted(rng.sample(active, rng.randint(1, min(max_target_dimensions, len(active)))))
        prompt, topic = _post(rng)
        poles = _with_distractors(rng, {d: user.values[d] for d in target}, distractors)
        user_choice, mirror_choice = _responses(rng, topic, poles, contrast=target)
        for who, chosen, rejected in ((user, user_choice, mirror_choice), (mirror, mirror_choice, user_choice)):
            ugc, pairs = _history(who, seed, space, history_size, item_noise)
            row = {
                PROMPT_COLUMN: prompt,
                CHOSEN_COLUMN: chosen,
                REJECTED_COLUMN: rejected,
                DIRECTION_COLUMN: who.direction(space, target),
                DEMOGRAPHICS_COLUMN: who.demographics(),
                UGC_COLUMN: ugc,
                PAIRS_COLUMN: pairs,
            }
            if with_metadata:
                row.update(persona_id=who.persona_id, counterfactual_id=f"g{group}", target_dimensions=target)
            yield row


def pair_adjacent_epochs(rows: Sequence[dict], epochs: int, seed: int = 0) -> list[dict]:
    """`epochs` passes over counterfactual rows (rows 2k and 2k + 1 are a pair), each pass shuffled by pair with the
    two rows of a pair kept adjacent.

    With a sequential sampler and an even batch size, both sides of every pair share a batch: the persona-independent
    parts of their gradients cancel, and a small model learns the persona mapping at once instead of after ~100 steps
    of noise (tiny model: held-out accuracy 0.57 after 32 DPO steps, against 0.50 with shuffled rows).
    """
    if len(rows) % 2:
        raise InputError(f"counterfactual rows come in pairs; got an odd number of rows ({len(rows)}).")
    rng, ordered = random.Random(seed), []
    for _ in range(epochs):
        pairs = list(range(len(rows) // 2))
        rng.shuffle(pairs)
        ordered += [rows[2 * pair + side] for pair in pairs for side in (0, 1)]
    return ordered


def text_banks_fingerprint() -> str:
    """A digest of the text the generators draw from. `Dataset.from_generator` caches by the generator's code and
    arguments, not by the module-level banks it reads, so the digest is passed along as an argument: any change to
    the generated text is a new cache entry. The test kit keys its cached tokenizers on it for the same reason."""
    banks = (EXPRESSED_DIMENSIONS, TOPICS, POST_TEMPLATES, OCCUPATIONS, MULTIFACETED_PREFERENCES, _TASKS)
    return hashlib.sha256(repr(banks).encode()).hexdigest()[:16]


def _fingerprinted(rows: Callable[..., Iterator[dict]], text_banks: str, **kwargs) -> Iterator[dict]:
    yield from rows(**kwargs)


def _as_dataset(rows: Callable[..., Iterator[dict]], features: Features, keep_in_memory: bool, **kwargs) -> Dataset:
    # Written through Arrow batch by batch, never held as Python objects.
    gen_kwargs = {"rows": rows, "text_banks": text_banks_fingerprint(), **kwargs}
    return Dataset.from_generator(
        _fingerprinted, features=features, gen_kwargs=gen_kwargs, keep_in_memory=keep_in_memory
    )


def alignx_dataset(num_rows: int, seed: int = 0, keep_in_memory: bool = False, **kwargs) -> Dataset:
    """`alignx_rows` as a `datasets.Dataset` with explicit features; `kwargs` go to `alignx_rows`."""
    features = ALIGNX_METADATA_FEATURES if kwargs.get("with_metadata") else ALIGNX_FEATURES
    return _as_dataset(alignx_rows, features, keep_in_memory, num_rows=num_rows, seed=seed, **kwargs)


# ------------------------------------------------------------------------------------------ Multifaceted-Collection
@dataclass(frozen=True)
class MultifacetedPreference:
    """One preference option of a Multifaceted-Collection dimension, and how an output shows it."""

    dimension: str
    subdimension: str
    preference: str
    description: str
    marker: str


def _options(dimension: str, *entries: tuple[str, str, str, str]) -> tuple[MultifacetedPreference, ...]:
    return tuple(MultifacetedPreference(dimension, *entry) for entry in entries)


MULTIFACETED_PREFERENCES: dict[str, tuple[MultifacetedPreference, ...]] = {
    "style": _options(
        "style",
        ("conciseness", "succinct", "The user wants short, to-the-point answers without elaboration.", "Briefly put:"),
        (
            "vividness",
            "vivid storytelling",
            "The user enjoys colourful, imaginative language and stories.",
            "Picture this vividly:",
        ),
        (
            "formality",
            "formal tone",
            "The user expects a polite, formal and professional register.",
            "Respectfully stated:",
        ),
        ("formality", "casual tone", "The user likes a relaxed, chatty and friendly register.", "Hey, no worries:"),
    ),
    "background_knowledge": _options(
        "background_knowledge",
        (
            "novice",
            "basic terminology",
            "The user is new to the subject and needs plain words.",
            "In plain words for beginners,",
        ),
        (
            "intermediate",
            "some familiarity",
            "The user knows the basics and wants the next level.",
            "Building on the basics,",
        ),
        (
            "expert",
            "technical depth",
            "The user is an expert who wants precise technical vocabulary.",
            "In technical terms,",
        ),
    ),
    "informativeness": _options(
        "informativeness",
        (
            "practicality",
            "practical steps",
            "The user wants actionable steps they can follow now.",
            "Step one, do it now.",
        ),
        (
            "depth",
            "theoretical insight",
            "The user wants the principles and the reasons behind them.",
            "The underlying principle explains why.",
        ),
        (
            "creativity",
            "creative examples",
            "The user likes novel examples and analogies.",
            "An unusual analogy helps here.",
        ),
    ),
    "harmlessness": _options(
        "harmlessness",
        (
            "safety",
            "safety-conscious",
            "The user wants risks and precautions flagged.",
            "Safety note: mind the risks.",
        ),
        (
            "sensitivity",
            "culturally sensitive",
            "The user wants inclusive, respectful wording.",
            "With respect for every background.",
        ),
        (
            "accuracy",
            "fact-checked",
            "The user wants only verified, accurate claims.",
            "Every claim here is verified.",
        ),
    ),
}
MULTIFACETED_DIMENSIONS = tuple(MULTIFACETED_PREFERENCES)
_TASKS = (
    "plan {topic}",
    "explain the costs of {topic}",
    "organise {topic}",
    "write a short note about {topic}",
    "prepare for {topic}",
    "compare two options for {topic}",
)
_MAIN_SOURCES = ("Nectar", "OpenHermesPreferences", "UltraFeedback", "Anthropic-HH")
_ORIGINAL_SOURCES = ("sharegpt", "evol_instruct", "ultrachat", "flan_v2_niv2", "false_qa")


def multifaceted_rows(num_instructions: int, seed: int = 0) -> Iterator[dict]:
    """Stream Multifaceted-Collection SFT rows: three per instruction (same `prompt`, different `system`,
    `preference_set` and `output`), with the three preference sets pairwise different on every dimension.

    Args:
        num_instructions (`int`): Number of instructions; the stream has three times as many rows.
        seed (`int`, *optional*, defaults to `0`): Everything is a function of the seed and the instruction index.
    """
    if num_instructions < 1:  # no rows would be a file every reader refuses
        raise InputError(f"num_instructions must be at least 1, got {num_instructions} (CLI: --instructions).")
    for index in range(num_instructions):
        rng = _rng(seed, "multifaceted", index)
        topic = rng.choice(TOPICS)
        # Real instructions are unique; the case number keeps synthetic ones unique too (rows are grouped by prompt).
        prompt = f"Please help me {rng.choice(_TASKS).format(topic=topic)} (case {index})."
        main_source, original_source = rng.choice(_MAIN_SOURCES), rng.choice(_ORIGINAL_SOURCES)
        # A distinct option per row on every dimension, so each output is the preferred one under its own set.
        chosen = {dim: rng.sample(MULTIFACETED_PREFERENCES[dim], 3) for dim in MULTIFACETED_DIMENSIONS}
        for position in range(3):
            options = [chosen[dim][position] for dim in MULTIFACETED_DIMENSIONS]
            system = "You are an assistant tailored to this user. " + " ".join(o.description for o in options)
            body = f"Here is how to handle {topic}."
            output = " ".join([options[0].marker, options[1].marker, body, options[2].marker, options[3].marker])
            yield {
                "main_source": main_source,
                "original_source": original_source,
                "preference_set": [
                    {
                        "dimension": o.dimension,
                        "subdimension": o.subdimension,
                        "preference": o.preference,
                        "description": o.description,
                    }
                    for o in options
                ],
                "system": system,
                "prompt": prompt,
                "output": output,
            }


def multifaceted_dataset(num_instructions: int, seed: int = 0, keep_in_memory: bool = False) -> Dataset:
    """`multifaceted_rows` as a `datasets.Dataset` with `MULTIFACETED_FEATURES`."""
    return _as_dataset(
        multifaceted_rows, MULTIFACETED_FEATURES, keep_in_memory, num_instructions=num_instructions, seed=seed
    )


def corpus(seed: int = 0, num_rows: int = 64) -> Iterator[str]:
    """Text in the style of the synthetic data and the prompt templates, for training test tokenizers."""
    space = PreferenceSpace.alignx()
    for dimension in space.dimensions:
        yield f"{dimension.name}: {dimension.positive_label}, {dimension.negative_label}"
    for row in alignx_rows(num_rows, seed):
        yield row[PROMPT_COLUMN]
        yield row[CHOSEN_COLUMN]
        yield row[REJECTED_COLUMN]
        yield row[DEMOGRAPHICS_COLUMN]
        for item in row[UGC_COLUMN]:
            yield item["comment"]
    for row in multifaceted_rows(max(1, num_rows // 8), seed):
        yield row["system"]
        yield row["output"]
