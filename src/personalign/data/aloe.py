"""ALOE (the DPORE paper's data) as training rows: the `personalign build-dataset aloe` builder.

An ALOE record is `{"profile": str, "personality": str, "conversations": [turn, ...]}`, a turn `{"user": str,
"assistant": {"preferred": str, "rejected": str | list[str]}, "chosen": "preferred"}` (`ALOE_TURN`). The builder
validates every record (one-line errors naming the file, the line or row, the turn and the field), splits the
personas into train and test (held-out personas: the DPORE paper's 100, or a tenth of a source with fewer than
1,000), and writes three configs:

- `preference`: one row per (conversation, turn, rejected reply), in TRL's conversational preference format: the
  `prompt` is the conversation so far (user 1, preferred 1, ..., user k), `chosen` / `rejected` that turn's replies;
  with the persona's `persona_id`, `profile`, `personality`, the `conversation_id` and the 1-based `turn`
  (`persona_text` too with `persona_text="description"`);
- `personas`: one row per persona;
- `excerpts`: one excerpt per conversation (what the user said, as `personalign.encoder.aloe_excerpts` renders it),
  the persona encoder's `table` format.

The turn checks here are the ones `personalign.encoder.aloe_excerpts` applies (`turn_parts`, `chosen_reply`): the
encoder imports them from this module.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, DatasetDict, Features, Json, List, Value

from ..errors import InputError
from ..hub.cards import DatasetCardSpec, render_dataset_card
from ..hub.datasets import write_dataset_folder
from ..papers import DPORE_CITATION
from ..row_names import RowNames
from .loading import DatasetSource, json_file_rows, load_source

ALOE_HUB_ID = "ShujinWu-0814/ALOE"
"""The ALOE release on the Hub (the default source)."""
ALOE_TURN = '{"user": str, "assistant": str | {"preferred": str, "rejected": str | list[str]}, "chosen": "preferred"}'
"""The turn forms read (the release's, and simplified turns with one assistant string), for messages."""
RELEASED_TURN = '{"user": str, "assistant": {"preferred": str, "rejected": str | list[str]}, "chosen": "preferred"}'
"""The release's turn, which `build-dataset aloe` requires (a preference pair needs a rejected reply)."""
ALOE_COLUMNS = ("profile", "personality", "conversations")
"""The columns of a released ALOE record."""
ALOE_CONFIGS = ("preference", "personas", "excerpts")
"""The configs of a `personalign build-dataset aloe` build; `preference` is the one read by default."""
PAPER_TEST_PERSONAS = 100
"""The DPORE paper's held-out personas."""
SMALL_SOURCE_PERSONAS = 1000
"""Below this many personas, the default holds out a tenth of them."""
MESSAGE_ROLES = ("user", "assistant", "system")
"""The roles of a `{role, content}` message that `turn_parts` reads."""

_MESSAGES = List({"role": Value("string"), "content": Value("string")})
PREFERENCE_FEATURES = Features(
    {
        "prompt": _MESSAGES,
        "chosen": _MESSAGES,
        "rejected": _MESSAGES,
        "persona_id": Value("string"),
        "profile": Value("string"),
        "personality": Value("string"),
        "conversation_id": Value("int64"),
        "turn": Value("int64"),
    }
)
"""The `preference` config (plus `persona_text` with `persona_text="description"`)."""
PERSONA_FEATURES = Features(
    {"persona_id": Value("string"), "profile": Value("string"), "personality": Value("string")}
)
"""The `personas` config."""
EXCERPT_FEATURES = Features({"persona_id": Value("string"), "text": Value("string")})
"""The `excerpts` config (the persona encoder's `table` format)."""


def aloe_persona_id(*texts: str) -> str:
    """The stable id of an ALOE persona: the first 16 hex digits of the SHA-256 of the JSON list of its texts
    (`aloe_persona_id(profile, personality)`). The JSON encoding keeps the texts apart, so `("a\\nb", "c")` and
    `("a", "b\\nc")` are two personas. The one persona id of the library: the builder's rows, the encoder's ALOE
    excerpts (`personalign.encoder.aloe_excerpts`) and the role-play personas all use it.

    Args:
        *texts (`str`): The persona's texts in order: its profile, then its personality.

    Returns:
        `str`: The id; the same texts always give the same id.
    """
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- turn checks
def _present(turn: Mapping[str, Any], key: str) -> bool:
    # Arrow-loaded rows give every turn every key seen in the file, absent ones as None.
    return turn.get(key) is not None


def _text(value: Any, where: str, field: str, expected: str) -> str:
    # One check for every text of a turn (the user message, the preferred and each rejected reply): a string with
    # something in it, as `check_record` asks of `profile` and `personality`. An empty reply would train as a real one.
    if not isinstance(value, str):
        got = f"no {field}" if value is None else f"{type(value).__name__} {str(value)[:80]!r}"
        raise InputError(f"{where}: expected {field} to be a string, got {got}; expected {expected}.")
    if not value.strip():
        raise InputError(f"{where}: expected {field} to be a non-empty string, got {value!r}; expected {expected}.")
    return value


def turn_parts(turn: Any, where: str) -> list[tuple[str, str]]:
    """The (speaker, text) parts of one turn that may enter an excerpt: `("user", text)` and the chosen reply as
    `("assistant", text)`. Rejected replies are never returned.

    Args:
        turn (`dict` or `list`): An ALOE turn, a simplified turn `{"user": str, "assistant": str}`, a `{role,
            content}` message (`system` ones give nothing), or a list of messages.
        where (`str`): Names the turn in error messages.

    Returns:
        `list[tuple[str, str]]`: The parts, in order.

    Raises:
        `InputError`: For a turn of no known form, a message with an unknown role or a content that is not a string,
            an ALOE turn whose `user` is not a non-empty string, or one that `chosen_reply` refuses.
    """
    if isinstance(turn, (list, tuple)):  # one turn given as its list of messages
        return [part for message in turn for part in turn_parts(message, where)]
    if isinstance(turn, Mapping) and _present(turn, "role"):
        role, content = turn["role"], turn.get("content")
        if role not in MESSAGE_ROLES or not isinstance(content, str):
            raise InputError(
                f"{where}: expected a message {{role: one of {list(MESSAGE_ROLES)}, content: str}}, "
                f"got role {role!r} and content {type(content).__name__}."
            )
        # A system message is the application's, not the persona's.
        return [] if role == "system" else [(role, content)]
    if isinstance(turn, Mapping) and (_present(turn, "user") or _present(turn, "assistant")):
        parts = [("user", _text(turn.get("user"), where, "'user'", ALOE_TURN))]
        reply = chosen_reply(turn, where)
        if reply is not None:
            parts.append(("assistant", reply))
        return parts
    raise InputError(
        f"{where}: expected an ALOE turn {ALOE_TURN} or a {{role, content}} message (or a list of them), "
        f"got {type(turn).__name__} {str(turn)[:80]!r}."
    )


def chosen_reply(turn: Mapping[str, Any], where: str, expected: str = ALOE_TURN) -> str | None:
    """The assistant reply of an ALOE turn that enters an excerpt: `assistant["preferred"]` (or the one `assistant`
    string), after checking the turn. The release's turns always say `"chosen": "preferred"`; any other value is an
    error (the DPORE paper trains on `preferred` as the chosen reply, and a list of rejected replies is no one
    reply). Every reply must be a non-empty string (the rejected ones too, although they never enter an excerpt: the
    encoder and `build-dataset aloe` accept and refuse the same records).

    Args:
        turn (`dict`): An ALOE turn.
        where (`str`): Names the turn in error messages.
        expected (`str`, *optional*, defaults to `ALOE_TURN`): The turn form the caller reads, for error messages
            (`preference_turn` passes `RELEASED_TURN`: the builder needs a dict of replies).

    Returns:
        `str` or `None`: The chosen reply; `None` when the turn has no `assistant`.

    Raises:
        `InputError`: For a `chosen` other than `"preferred"`, an `assistant` that is neither a string nor a dict, a
            `rejected` that is not a string or a list of strings, a `preferred` that is not one string, or an empty
            (or whitespace-only) reply.
    """
    if _present(turn, "chosen") and turn["chosen"] != "preferred":
        raise InputError(
            f"{where}: 'chosen' is {turn['chosen']!r}, expected 'preferred' (the key of the chosen reply in "
            f"'assistant'; the ALOE release always says 'preferred'); expected {expected}."
        )
    assistant = turn.get("assistant")
    if assistant is None:
        return None
    if isinstance(assistant, str):  # simplified rows: one reply, nothing rejected
        return _text(assistant, where, "'assistant'", expected)
    if not isinstance(assistant, Mapping):
        raise InputError(
            f"{where}: expected 'assistant' to be a string or a dict of replies, got {type(assistant).__name__}; "
            f"expected {expected}."
        )
    rejected = assistant.get("rejected")
    if rejected is not None and not (
        isinstance(rejected, str)
        or (isinstance(rejected, (list, tuple)) and all(isinstance(r, str) for r in rejected))
    ):
        raise InputError(
            f"{where}: expected 'assistant'['rejected'] to be a string or a list of strings, got "
            f"{type(rejected).__name__} {str(rejected)[:80]!r}; expected {expected}."
        )
    if isinstance(rejected, str):
        _text(rejected, where, "'assistant'['rejected']", expected)
    for index, reply in enumerate(rejected if isinstance(rejected, (list, tuple)) else ()):
        _text(reply, where, f"'assistant'['rejected'][{index}]", expected)
    preferred = assistant.get("preferred")
    if not isinstance(preferred, str):
        got = "no 'preferred' reply" if preferred is None else type(preferred).__name__
        raise InputError(
            f"{where}: the chosen reply 'assistant'['preferred'] must be one string, got {got}; expected {expected}."
        )
    return _text(preferred, where, "'assistant'['preferred']", expected)


def dialogue_excerpt(turns: Sequence[Any], where: str, include_preferred_replies: bool = False) -> str:
    """One conversation as a persona excerpt: what the user said, one message a line (with
    `include_preferred_replies`, `User: ...` / `Assistant: ...` lines with the chosen replies). Rejected replies
    never enter it.

    Args:
        turns (`Sequence`): The conversation's turns (any form `turn_parts` reads).
        where (`str`): Names the conversation in error messages (`", turn <k>"` is added, 1-based as the built rows'
            `turn`).
        include_preferred_replies (`bool`, *optional*, defaults to `False`): Add the chosen assistant replies.

    Returns:
        `str`: The excerpt (empty for a conversation with no text).

    Raises:
        `InputError`: As `turn_parts`, naming the turn.
    """
    lines = []
    for turn_number, turn in enumerate(turns, start=1):
        parts = turn_parts(turn, f"{where}, turn {turn_number}")
        if include_preferred_replies:
            lines.extend(f"{speaker.capitalize()}: {text}" for speaker, text in parts if text.strip())
        else:
            lines.extend(text for speaker, text in parts if speaker == "user" and text.strip())
    return "\n".join(lines)


def preference_turn(turn: Any, where: str) -> tuple[str, str, list[str]]:
    """One released ALOE turn as `(user, preferred, rejected replies)`, checked as the builder requires.

    Args:
        turn (`dict`): `{"user": str, "assistant": {"preferred": str, "rejected": str | list[str]}, "chosen":
            "preferred"}` (`chosen` may be absent).
        where (`str`): Names the turn in error messages.

    Returns:
        `tuple[str, str, list[str]]`: The user message, the preferred reply and the rejected replies (a string
        `rejected` as a list of one).

    Raises:
        `InputError`: As `chosen_reply`, and for a turn that is not a dict, a `user` that is not a non-empty string,
            an `assistant` that is not a dict of replies, or no (or an empty list of) rejected replies.
    """
    if not isinstance(turn, Mapping):
        raise InputError(f"{where}: expected a turn {RELEASED_TURN}, got {type(turn).__name__} {str(turn)[:80]!r}.")
    user = _text(turn.get("user"), where, "'user'", RELEASED_TURN)
    if not isinstance(turn.get("assistant"), Mapping):
        got = "no 'assistant'" if not _present(turn, "assistant") else type(turn["assistant"]).__name__
        raise InputError(
            f"{where}: expected 'assistant' to be a dict of replies, got {got}; expected {RELEASED_TURN}."
        )
    preferred = chosen_reply(turn, where, RELEASED_TURN)
    rejected = turn["assistant"].get("rejected")
    rejected = [rejected] if isinstance(rejected, str) else list(rejected or [])
    if not rejected:
        raise InputError(
            f"{where}: expected 'assistant'['rejected'] to be a string or a non-empty list of strings, got "
            f"{'none' if turn['assistant'].get('rejected') is None else 'an empty list'}; expected {RELEASED_TURN}."
        )
    return user, preferred, rejected


# ----------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class ALOEConversation:
    """One validated ALOE conversation.

    Args:
        persona_id (`str`): `aloe_persona_id(profile, personality)`.
        profile (`str`): The persona's profile text.
        personality (`str`): Its personality text.
        turns (`tuple[tuple[str, str, tuple[str, ...]], ...]`): `(user, preferred, rejected replies)` per turn.
        excerpt (`str`): What the user said, one message a line (`dialogue_excerpt`).
    """

    persona_id: str
    profile: str
    personality: str
    turns: tuple[tuple[str, str, tuple[str, ...]], ...]
    excerpt: str


def check_record(row: Any, where: str) -> ALOEConversation:
    """One released ALOE record, validated.

    Args:
        row (`dict`): `{"profile": str, "personality": str, "conversations": [turn, ...]}`.
        where (`str`): Names the record in error messages (file and line, or source and row).

    Returns:
        `ALOEConversation`

    Raises:
        `InputError`: For a record that is not an object, a missing or non-string `profile` / `personality`, a
            `conversations` that is not a non-empty list, or a bad turn (`preference_turn`), naming the field.
    """
    if not isinstance(row, Mapping):
        raise InputError(f"{where}: expected an ALOE record {{profile, personality, conversations}}, got {row!r:.80}.")
    for column in ("profile", "personality"):
        if not isinstance(row.get(column), str) or not row[column].strip():
            got = "nothing" if row.get(column) is None else repr(row[column])[:80]
            raise InputError(f"{where}, column {column!r}: expected a non-empty string, got {got}.")
    turns = row.get("conversations")
    if not isinstance(turns, (list, tuple)) or not turns:
        got = "nothing" if turns is None else "an empty list" if isinstance(turns, list) else type(turns).__name__
        raise InputError(
            f"{where}, column 'conversations': expected a non-empty list of turns {RELEASED_TURN}, got {got}."
        )
    here = f"{where}, column 'conversations'"
    checked = tuple(
        (user, preferred, tuple(rejected))
        for user, preferred, rejected in (
            preference_turn(turn, f"{here}, turn {k}") for k, turn in enumerate(turns, start=1)
        )
    )
    return ALOEConversation(
        aloe_persona_id(row["profile"], row["personality"]),
        row["profile"],
        row["personality"],
        checked,
        dialogue_excerpt(turns, here),
    )


def _holds_json(feature: Any) -> bool:
    if isinstance(feature, Json):
        return True
    if isinstance(feature, Mapping):
        return any(_holds_json(value) for value in feature.values())
    inner = getattr(feature, "feature", None)
    return inner is not None and _holds_json(inner)


def _part_rows(loaded: DatasetSource, where: str, data: Dataset) -> Iterator[Any]:
    # `rejected` is a string in some turns and a list in others: `datasets` then reads turns as `Json`, whose
    # encoding turns a string that is valid JSON ("1") into that JSON. A local JSON file's rows are read as the file
    # spells them (as the AlignX builder does, `alignx.lossy_json_file`).
    names = loaded.part_row_names(where)
    path = Path(names.files[0][0]) if len(names.files) == 1 else None
    if path is not None and path.suffix in (".json", ".jsonl") and _holds_json(data.features):
        yield from json_file_rows(path)
    else:
        yield from data


def read_aloe(source: str | Path = ALOE_HUB_ID, **load_kwargs: Any) -> list[ALOEConversation]:
    """Read and validate ALOE records from every split / file of a source (`personalign.data.loading.load_source`).

    Args:
        source (`str` or `Path`, *optional*, defaults to `"ShujinWu-0814/ALOE"`): A Hub id, a local `.jsonl` /
            `.json` / `.parquet` file or a folder of them.
        **load_kwargs: Passed on to `load_source` (e.g. `revision`).

    Returns:
        `list[ALOEConversation]`: One per record, in order.

    Raises:
        `InputError`: For a missing column (a folder that `build-dataset aloe` wrote is named as such), or a bad
            record or turn, naming the file, the line (JSON lines, 1-based) or row, the turn (1-based, as the built
            rows' `turn`) and the field.
    """
    loaded = load_source(source, **load_kwargs)
    conversations = []
    for where, data in loaded.all_parts():
        missing = [column for column in ALOE_COLUMNS if column not in data.column_names]
        if missing and (loaded.config in ALOE_CONFIGS or "persona_id" in data.column_names):
            raise InputError(
                f"{source} is already a built ALOE dataset (a `build-dataset aloe` output: configs "
                f"{', '.join(ALOE_CONFIGS)}); --source takes released ALOE records {list(ALOE_COLUMNS)}. Train on "
                f"the built dataset directly (--dataset_name {source})."
            )
        if missing:
            raise InputError(f"{where}: missing column(s) {missing}; expected ALOE records {list(ALOE_COLUMNS)}.")
        names: RowNames = loaded.part_row_names(where)
        conversations.extend(check_record(row, names(i)) for i, row in enumerate(_part_rows(loaded, where, data)))
    if not conversations:
        raise InputError(f"{source}: no ALOE records.")
    return conversations


# ------------------------------------------------------------------------------------------------- building
@dataclass
class ALOEBuildConfig:
    """Settings of an ALOE build.

    Args:
        seed (`int`, *optional*, defaults to `0`): Seeds the persona split.
        test_personas (`int`, *optional*): Personas held out for the test split; by default the DPORE paper's 100, or
            a tenth of the personas (at least one) when the source has fewer than 1,000. `0` builds a train-only
            dataset (no `test` split), e.g. from a source of one persona.
        rejected (`str`, *optional*, defaults to `"all"`): `"all"`: one `preference` row per rejected reply of a
            turn; `"first"`: only the first rejected reply.
        persona_text (`str`, *optional*, defaults to `"dialogue"`): `"dialogue"`: no persona text column (DPORE
            embeds the conversation, the paper's G(m, p) / G(m, r)); `"description"`: a `persona_text` column,
            `profile + "\\n" + personality`.
    """

    seed: int = 0
    test_personas: int | None = None
    rejected: Literal["all", "first"] = "all"
    persona_text: Literal["dialogue", "description"] = "dialogue"

    def __post_init__(self) -> None:
        if self.rejected not in ("all", "first"):
            raise InputError(f"--rejected must be 'all' or 'first', got {self.rejected!r}.")
        if self.persona_text not in ("dialogue", "description"):
            raise InputError(f"--persona-text must be 'dialogue' or 'description', got {self.persona_text!r}.")
        if self.test_personas is not None and self.test_personas < 0:
            raise InputError(
                f"--test-personas must be at least 0 (0 builds a train-only dataset), got {self.test_personas}."
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for the card)."""
        return asdict(self)


def default_test_personas(num_personas: int) -> int:
    """The DPORE paper's 100 held-out personas, or a tenth (at least one) of a source with fewer than 1,000."""
    return PAPER_TEST_PERSONAS if num_personas >= SMALL_SOURCE_PERSONAS else max(1, num_personas // 10)


def split_personas(persona_ids: Sequence[str], config: ALOEBuildConfig) -> dict[str, str]:
    """`{persona_id: "train" | "test"}`: `config.test_personas` personas (see `default_test_personas`) drawn with
    `config.seed` are held out (none with `test_personas=0`).

    Args:
        persona_ids (`Sequence[str]`): Every conversation's persona id (repeats are fine).
        config (`ALOEBuildConfig`): `test_personas` and `seed` are read.

    Returns:
        `dict[str, str]`: Each persona's split.

    Raises:
        `InputError`: If the test split would leave no training persona, saying what is possible.
    """
    unique = sorted(set(persona_ids))
    num_test = config.test_personas if config.test_personas is not None else default_test_personas(len(unique))
    if num_test >= len(unique):
        possible = (
            "a test split needs at least 2 personas (one held out, one to train on); pass"
            if len(unique) < 2
            else f"pass --test-personas {len(unique) - 1} or fewer, or"
        )
        raise InputError(
            f"the source has {len(unique)} persona(s): holding out {num_test} for the test split leaves none to train "
            f"on; {possible} --test-personas 0 for a train-only dataset (no test split)."
        )
    test = set(random.Random(f"{config.seed}:aloe-split").sample(unique, num_test))
    return {persona_id: "test" if persona_id in test else "train" for persona_id in unique}


@dataclass
class ALOEBuildReport:
    """What `build_aloe` read, held out and left out (printed by `personalign build-dataset aloe`, kept in the card).

    Args:
        records (`int`, *optional*, defaults to `0`): ALOE records (conversations) read.
        personas (`int`, *optional*, defaults to `0`): Distinct personas among them.
        test_personas (`int`, *optional*, defaults to `0`): Personas held out for the test split (the number the
            default or `--test-personas` gave).
        duplicate_records (`int`, *optional*, defaults to `0`): Records that repeat an earlier record verbatim. They
            are kept (as their own conversations, with their own `conversation_id`): the release may repeat a
            dialogue on purpose, and dropping it would change the weights silently.
        zero_signal_pairs (`int`, *optional*, defaults to `0`): Rejected replies equal to their turn's preferred
            reply. They give no `preference` row: such a pair carries no preference (its DPO loss is the constant
            log 2, a gradient of zero), while the turn itself still counts (its preferred reply enters the next
            turns' prompts and the excerpt).
        zero_signal_turns (`int`, *optional*, defaults to `0`): Turns left with no `preference` row because every
            rejected reply of theirs equals the preferred one.
    """

    records: int = 0
    personas: int = 0
    test_personas: int = 0
    duplicate_records: int = 0
    zero_signal_pairs: int = 0
    zero_signal_turns: int = 0

    def lines(self) -> list[str]:
        """The report, one line per fact (the skipped and the repeated ones only when there are some)."""
        out = [
            f"read {_count(self.records, 'ALOE record')} of {_count(self.personas, 'persona')}; held out "
            f"{_count(self.test_personas, 'persona')} for the test split"
            + (" (none: a train-only dataset)" if not self.test_personas else "")
        ]
        if self.zero_signal_pairs:
            out.append(
                f"skipped {_count(self.zero_signal_pairs, '(turn, rejected reply) pair')} whose rejected reply equals "
                f"the preferred one (no preference to learn; {_count(self.zero_signal_turns, 'turn')} left with no row)"
            )
        if self.duplicate_records:
            out.append(
                f"kept {_count(self.duplicate_records, 'verbatim repeat')} of an earlier record as their own "
                "conversations"
            )
        return out


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def preference_rows(
    conversations: Iterable[tuple[int, ALOEConversation]],
    config: ALOEBuildConfig,
    report: ALOEBuildReport | None = None,
) -> Iterator[dict[str, Any]]:
    """The `preference` rows of conversations: one per (conversation, turn, rejected reply), except a rejected reply
    equal to the preferred one (no preference; counted in `report.zero_signal_pairs`).

    The prompt of turn k is user 1, preferred 1, ..., user k (the preferred replies, the chosen ones, make the
    history).

    Args:
        conversations (`Iterable[tuple[int, ALOEConversation]]`): Validated conversations with their ids (their
            positions in the source, as `read_aloe` returns them).
        config (`ALOEBuildConfig`): `rejected` and `persona_text` are read.
        report (`ALOEBuildReport`, *optional*): Counts the skipped pairs and turns.

    Yields:
        `dict`: `PREFERENCE_FEATURES` rows (plus `persona_text` with `persona_text="description"`).
    """
    for conversation_id, conversation in conversations:
        history: list[dict[str, str]] = []
        for turn, (user, preferred, rejected) in enumerate(conversation.turns, start=1):
            prompt = [*history, {"role": "user", "content": user}]
            replies = rejected if config.rejected == "all" else rejected[:1]
            signal = [reply for reply in replies if reply != preferred]
            if report is not None:
                report.zero_signal_pairs += len(replies) - len(signal)
                report.zero_signal_turns += not signal
            for reply in signal:
                row = {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": preferred}],
                    "rejected": [{"role": "assistant", "content": reply}],
                    "persona_id": conversation.persona_id,
                    "profile": conversation.profile,
                    "personality": conversation.personality,
                    "conversation_id": conversation_id,
                    "turn": turn,
                }
                if config.persona_text == "description":
                    row["persona_text"] = f"{conversation.profile}\n{conversation.personality}"
                yield row
            history = [*prompt, {"role": "assistant", "content": preferred}]


def build_aloe(
    source: str | Path = ALOE_HUB_ID,
    config: ALOEBuildConfig | None = None,
    configs: Sequence[str] = ALOE_CONFIGS,
    report: ALOEBuildReport | None = None,
    **load_kwargs: Any,
) -> dict[str, DatasetDict]:
    """Build the ALOE configs `configs` (all three by default) from released records.

    Args:
        source (`str` or `Path`, *optional*, defaults to `"ShujinWu-0814/ALOE"`): The records (see `read_aloe`).
        config (`ALOEBuildConfig`, *optional*): The settings; the defaults when not given.
        configs (`Sequence[str]`, *optional*): Which of `ALOE_CONFIGS` to build, in that order.
        report (`ALOEBuildReport`, *optional*): Filled in with what was read, held out and skipped (see
            `ALOEBuildReport`).
        **load_kwargs: Passed on to `load_source`.

    Returns:
        `dict[str, DatasetDict]`: Each config's `train` and `test` splits, split by persona (`train` only with
        `test_personas=0`).

    Raises:
        `InputError`: For an unknown config, a bad record (see `read_aloe`) or a split with no persona left.
    """
    config = config or ALOEBuildConfig()
    unknown = [name for name in configs if name not in ALOE_CONFIGS]
    if unknown:
        raise InputError(f"ALOE has no config {unknown[0]!r}; choose from {', '.join(ALOE_CONFIGS)}.")
    report = report if report is not None else ALOEBuildReport()
    conversations = read_aloe(source, **load_kwargs)
    split_of = split_personas([c.persona_id for c in conversations], config)
    report.records, report.personas = len(conversations), len(split_of)
    report.test_personas = sum(split == "test" for split in split_of.values())
    report.duplicate_records = len(conversations) - len(set(conversations))
    by_split = {
        split: [(i, c) for i, c in enumerate(conversations) if split_of[c.persona_id] == split]
        for split in ("train", "test")
        if split == "train" or report.test_personas
    }
    features = Features(
        {**PREFERENCE_FEATURES, **({"persona_text": Value("string")} if config.persona_text == "description" else {})}
    )
    built = {}
    for name in ALOE_CONFIGS:
        if name not in configs:
            continue
        splits = {}
        for split, rows in by_split.items():
            if name == "preference":
                splits[split] = Dataset.from_dict(
                    _columns(preference_rows(rows, config, report), features), features=features
                )
            elif name == "personas":
                seen = dict.fromkeys((c.persona_id, c.profile, c.personality) for _, c in rows)
                splits[split] = Dataset.from_dict(
                    _columns(
                        ({"persona_id": p, "profile": f, "personality": q} for p, f, q in seen), PERSONA_FEATURES
                    ),
                    features=PERSONA_FEATURES,
                )
            else:
                unique = dict.fromkeys((c.persona_id, c.excerpt) for _, c in rows if c.excerpt.strip())
                splits[split] = Dataset.from_dict(
                    _columns(({"persona_id": p, "text": t} for p, t in unique), EXCERPT_FEATURES),
                    features=EXCERPT_FEATURES,
                )
        built[name] = DatasetDict(splits)
    return built


def _columns(rows: Iterator[dict[str, Any]], features: Features) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name in features}
    for row in rows:
        for name in features:
            columns[name].append(row[name])
    return columns


def aloe_card(
    source: str | Path,
    config: ALOEBuildConfig,
    configs: Mapping[str, DatasetDict],
    report: ALOEBuildReport | None = None,
) -> DatasetCardSpec:
    """The dataset card of a built ALOE dataset.

    Args:
        source (`str` or `Path`): Where the records came from.
        config (`ALOEBuildConfig`): The build's settings.
        configs (`Mapping[str, DatasetDict]`): The built configs (their sizes go into the card).
        report (`ALOEBuildReport`, *optional*): The build's report: its lines go into the provenance, and its
            `test_personas` (the number held out) replaces the setting's `None` (the default).

    Returns:
        `DatasetCardSpec`
    """
    settings = config.to_dict()
    if report is not None:
        settings["test_personas"] = report.test_personas
    counts = "; ".join(
        f"{name}: " + ", ".join(f"{split} {len(rows):,}" for split, rows in splits.items())
        for name, splits in configs.items()
    )
    return DatasetCardSpec(
        pretty_name="ALOE (personalign build)",
        summary=(
            "Multi-turn persona dialogues (ALOE, the DPORE paper's data) as per-turn preference rows in TRL's "
            "conversational format: the prompt is the conversation so far (user turns and the preferred replies), "
            "chosen and rejected are that turn's replies. Train and test hold different personas; the persona's "
            "profile and personality, and an excerpt table for the persona encoder, come with them."
        ),
        source=str(source),
        descriptions={
            "preference": "one row per (conversation, turn, rejected reply): prompt, chosen, rejected, persona.",
            "personas": "one row per persona: persona_id, profile, personality.",
            "excerpts": "one excerpt per conversation (what the user said): the persona encoder's table format.",
        },
        provenance={
            "personalign_settings": settings,
            "counts": counts,
            **({"build": "; ".join(report.lines())} if report is not None else {}),
        },
        citations=[DPORE_CITATION],
        tags=["aloe", "multi-turn", "dpore"],
    )


def write_aloe_folder(
    source: str | Path,
    output: str | Path,
    config: ALOEBuildConfig | None = None,
    configs: Sequence[str] = ALOE_CONFIGS,
    overwrite: bool = False,
) -> Path:
    """Build ALOE from `source` and write the folder `personalign build-dataset aloe` writes (parquet shards per
    config and the card), atomically.

    Args:
        source (`str` or `Path`): The records (see `read_aloe`).
        output (`str` or `Path`): The folder to write.
        config (`ALOEBuildConfig`, *optional*): The settings; the defaults when not given.
        configs (`Sequence[str]`, *optional*): Which of `ALOE_CONFIGS` to build.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.

    Returns:
        `Path`: The folder; `personalign.data.loading.load_source(output)` reads its `preference` config.

    Raises:
        `InputError`: As `build_aloe`.
        `OutputExistsError`: If `output` exists and `overwrite` is False.
    """
    config, report = config or ALOEBuildConfig(), ALOEBuildReport()
    built = build_aloe(source, config, configs, report)
    card = render_dataset_card(built, aloe_card(source, config, built, report))
    return write_dataset_folder(built, output, card, overwrite)
