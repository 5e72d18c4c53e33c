"""Feedback-history rows (the counterfactual paper, §2-3 and Appendix B): reading a row's history, the personalized
reward model's input with history truncation, and in-context personalized generation.

A row carries an instruction (`prompt`), a target pair (`chosen`, `rejected`) and the user's feedback history: a
list of `{prompt, chosen, rejected}` pairs (`history_text`, as `personalign.data.multifacet.attach_history` makes
it), in chronological order, **oldest first**. The reward model reads the history in the Appendix B.3 format, then
the instruction, then one response: the Appendix B.2 prompt (`feedback_generation_messages`) with the response as
the assistant turn, through the tokenizer's chat template.

When that input is longer than `max_length`, the **oldest** history pairs are dropped first, as few as needed; the
target (instruction and response) is never cut. Chosen and rejected keep the same history, so the two sides of a
pair always see the same user. A row that does not fit even with no history at all is left whole: TRL's
`RewardTrainer` then filters it out, as it does any over-long row.

The rendering a reward model was trained with is saved beside it (`RENDERING_FILE`, `write_rendering_file`) and
read back (`read_rendering_file`), so that scoring and rejection sampling see exactly the training tokens.

Nothing here imports torch; tokenizers are only called.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..data.multifacet import attach_history
from ..errors import InputError
from ..io import atomic_output
from ..personas.persona import Messages, PairItem
from ..personas.prompts import feedback_generation_messages
from ..row_names import RowNames

HISTORY_TEXT_COLUMN = "history_text"
"""The feedback-history column of counterfactual MultiFacet rows (see `attach_history`)."""
HISTORY_IDS_COLUMN = "history"
"""The same history as response ids into the `responses` config."""
RENDERING_FILE = "personalign_reward.json"
"""Written beside every saved personalized reward model (`PersonalizedRewardTrainer.save_model`): the
`FeedbackRendering` it was trained with, as `{"rendering": {...}}`, so that scoring and rejection sampling render
inputs exactly as training did."""


@dataclass
class FeedbackRendering:
    """How rows with a feedback history become reward-model inputs (shared by the trainer, scoring and rejection
    sampling, so that all three see exactly the same tokens).

    Args:
        history_column (`str`, *optional*, defaults to `"history_text"`): The history, `[{prompt, chosen, rejected}]`,
            oldest first.
        prompt_column (`str`, *optional*, defaults to `"prompt"`): The instruction (text).
        chosen_column (`str`, *optional*, defaults to `"chosen"`): The preferred response (text).
        rejected_column (`str`, *optional*, defaults to `"rejected"`): The other response (text).
        history_size (`int`, *optional*, defaults to `10`): T: at most this many pairs, the most recent ones (the
            counterfactual paper uses 10). `None` keeps all.
        include_history (`bool`, *optional*, defaults to `True`): `False` renders every row with an empty history
            (the "without history" ablation).
        max_length (`int`, *optional*, defaults to `12800`): Token budget of one input (history + instruction +
            response); the oldest pairs are dropped to fit. `None`: no limit.
    """

    history_column: str = HISTORY_TEXT_COLUMN
    prompt_column: str = "prompt"
    chosen_column: str = "chosen"
    rejected_column: str = "rejected"
    history_size: int | None = 10
    include_history: bool = True
    max_length: int | None = 12800

    def __post_init__(self) -> None:
        if self.history_size is not None and self.history_size < 0:
            raise InputError(f"history_size must be non-negative or None, got {self.history_size}.")
        if self.max_length is not None and self.max_length < 1:
            raise InputError(f"max_length must be positive or None, got {self.max_length}.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what `RENDERING_FILE` stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> FeedbackRendering:
        """A rendering from saved settings (`to_dict`, `read_rendering_file`); keys that are not settings of this
        version are ignored.

        Args:
            settings (`Mapping[str, Any]`): Setting names and values.

        Returns:
            `FeedbackRendering`

        Raises:
            `InputError`: If `history_size` or `max_length` is out of range.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in settings.items() if name in names})


def write_rendering_file(folder: str | Path, rendering: FeedbackRendering) -> Path:
    """Write `RENDERING_FILE` into a saved reward model's folder, atomically (replacing the one an earlier save of the
    same model wrote).

    Args:
        folder (`str` or `Path`): The model folder.
        rendering (`FeedbackRendering`): The rendering the model was trained with.

    Returns:
        `Path`: The file written.
    """
    path = Path(folder) / RENDERING_FILE
    with atomic_output(path, overwrite=True) as staging:
        staging.write_text(json.dumps({"rendering": rendering.to_dict()}, indent=2) + "\n", encoding="utf-8")
    return path


def read_rendering_file(folder: str | Path) -> dict[str, Any]:
    """The rendering settings saved beside a reward model (`write_rendering_file`); empty when the folder has none
    (a reward model trained elsewhere, or a Hub id: the file is read from local folders only).

    Args:
        folder (`str` or `Path`): The model folder.

    Returns:
        `dict`: The settings, for `FeedbackRendering.from_dict`.

    Raises:
        `InputError`: If the file is not JSON of the form `{"rendering": {...}}`, naming the file.
    """
    path = Path(str(folder)) / RENDERING_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text("utf-8")).get("rendering", {})
    except (json.JSONDecodeError, AttributeError) as error:
        raise InputError(f'{path}: expected JSON of the form {{"rendering": {{...}}}} ({error}).') from error
    if not isinstance(settings, dict):
        raise InputError(f"{path}: 'rendering' must be a mapping of settings, got {type(settings).__name__}.")
    return settings


# ---------------------------------------------------------------------------------------------- pure functions
def keep_recent_pairs(num_pairs: int, fits: Callable[[int], bool]) -> int | None:
    """How many of the most recent history pairs to keep: the largest `k` in `[0, num_pairs]` with `fits(k)`.

    `fits(k)` says whether the input with the `k` most recent pairs fits the budget; it must be monotone (more
    pairs never make the input shorter), which rendering by concatenation guarantees. The full history is tried
    first (one call when it fits), then a binary search finds `k` with about `log2(num_pairs)` more calls.

    Args:
        num_pairs (`int`): Pairs available.
        fits (`Callable[[int], bool]`): Whether the input with the `k` most recent pairs fits.

    Returns:
        `int` or `None`: The number of pairs to keep (the oldest `num_pairs - k` are dropped), or `None` when even
        the target alone (`k = 0`) does not fit.
    """
    if num_pairs < 0:
        raise InputError(f"num_pairs must be non-negative, got {num_pairs}.")
    if fits(num_pairs):
        return num_pairs
    if num_pairs == 0 or not fits(0):
        return None
    low, high = 0, num_pairs  # fits(low) holds, fits(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def most_recent(history: Sequence[Any], count: int | None) -> list[Any]:
    """The `count` most recent (last) items of a chronological history; all of them when `count` is `None`."""
    if count is None:
        return list(history)
    return list(history[len(history) - count :]) if count > 0 else []


def history_pairs(row: Mapping[str, Any], column: str = HISTORY_TEXT_COLUMN, where: str = "row") -> list[PairItem]:
    """A row's feedback history as `PairItem`s (oldest first).

    Raises:
        `InputError`: If the column is missing or an item is not a `{prompt, chosen, rejected}` mapping of texts,
            naming `where`, the column and the item.
    """
    if column not in row:
        raise InputError(
            f"{where}: missing column {column!r} (the feedback history, a list of {{prompt, chosen, rejected}}); "
            "build it with personalign.data.multifacet.attach_history."
        )
    items = row[column]
    if items is None:
        return []
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise InputError(f"{where}, column {column!r}: expected a list of pairs, got {type(items).__name__}.")
    pairs = []
    for index, item in enumerate(items):
        if isinstance(item, PairItem):
            pairs.append(item)
            continue
        bad = [
            key
            for key in ("prompt", "chosen", "rejected")
            if not isinstance(item, Mapping) or not isinstance(item.get(key), str)
        ]
        if bad:
            raise InputError(
                f"{where}, column {column!r}, item {index}: expected text under {', '.join(repr(k) for k in bad)}."
            )
        pairs.append(PairItem(item["prompt"], item["chosen"], item["rejected"]))
    return pairs


def attach_history_texts(rows: Any, responses: Dataset | None = None) -> Any:
    """Rows with their feedback-history texts: a `Dataset` whose history is response ids (`history`) gets
    `history_text` resolved lazily through `responses` (`attach_history`); other rows are returned as they are.

    Args:
        rows (`Dataset` or `Iterable[Mapping]`): Counterfactual rows.
        responses (`Dataset`, *optional*): The `responses` config the history ids point into.

    Returns:
        The rows, with `history_text` attached when `responses` is given and the rows carry history ids.
    """
    if responses is not None and isinstance(rows, Dataset) and HISTORY_IDS_COLUMN in rows.column_names:
        return attach_history(rows, responses, lazy=True)
    return rows


def column_values(rows: Any, name: str) -> list[Any] | None:
    """One column of a `Dataset` or of a list of mappings, as a list; `None` when some row lacks it.

    A `Dataset` is read without its format, so a lazily attached history is not resolved to read another column.

    Args:
        rows (`Dataset` or `Iterable[Mapping]`): The rows.
        name (`str`): The column.

    Returns:
        `list` or `None`
    """
    if isinstance(rows, Dataset):
        return list(rows.with_format(None)[name]) if name in rows.column_names else None
    rows = list(rows)
    return [row.get(name) for row in rows] if rows and all(name in row for row in rows) else None


def _text(row: Mapping[str, Any], column: str, where: str) -> str:
    if column not in row:
        raise InputError(f"{where}: missing column {column!r}.")
    value = row[column]
    if not isinstance(value, str):
        raise InputError(f"{where}, column {column!r}: expected text, got {type(value).__name__}.")
    return value


def row_history(row: Mapping[str, Any], rendering: FeedbackRendering, where: str = "row") -> list[PairItem]:
    """The history a row is rendered with: empty without history, else the `history_size` most recent pairs."""
    if not rendering.include_history:
        return []
    return most_recent(history_pairs(row, rendering.history_column, where), rendering.history_size)


def generation_messages(row: Mapping[str, Any], rendering: FeedbackRendering, where: str = "row") -> Messages:
    """The Appendix B.2 prompt of a row (history capped at `history_size`, not truncated to a token budget)."""
    return feedback_generation_messages(row_history(row, rendering, where), _text(row, rendering.prompt_column, where))


# ------------------------------------------------------------------------------------------------- tokenization
def encode_reward_input(tokenizer: Any, messages: Messages, response: str) -> list[int]:
    """Token ids of a prompt plus one response, exactly as TRL's `RewardTrainer` tokenizes a preference row: through
    the chat template (`messages + [assistant turn]`) when the tokenizer has one, else as plain text (the prompt's
    contents, a blank line, the response) ending with EOS."""
    if getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": response}], tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])
    text = "\n\n".join(message["content"] for message in messages) + "\n\n" + response
    eos = tokenizer.eos_token or ""
    if not text.endswith(eos):
        text += eos
    return list(tokenizer(text=text)["input_ids"])


def render_reward_example(
    row: Mapping[str, Any], tokenizer: Any, rendering: FeedbackRendering, where: str = "row"
) -> dict[str, Any]:
    """One row as reward-model inputs: `chosen_ids`, `rejected_ids` (same history for both), `history_pairs` (pairs
    kept) and `history_dropped` (pairs dropped to fit `max_length`; all of them when even the target alone is too
    long, in which case the ids exceed `max_length` and TRL filters the row out)."""
    pairs = row_history(row, rendering, where)
    instruction = _text(row, rendering.prompt_column, where)
    chosen, rejected = _text(row, rendering.chosen_column, where), _text(row, rendering.rejected_column, where)
    encoded: dict[int, tuple[list[int], list[int]]] = {}

    def encode(count: int) -> tuple[list[int], list[int]]:
        if count not in encoded:
            messages = feedback_generation_messages(most_recent(pairs, count), instruction)
            encoded[count] = (
                encode_reward_input(tokenizer, messages, chosen),
                encode_reward_input(tokenizer, messages, rejected),
            )
        return encoded[count]

    def fits(count: int) -> bool:
        chosen_ids, rejected_ids = encode(count)
        return rendering.max_length is None or max(len(chosen_ids), len(rejected_ids)) <= rendering.max_length

    kept = keep_recent_pairs(len(pairs), fits)
    kept = 0 if kept is None else kept
    chosen_ids, rejected_ids = encode(kept)
    return {
        "chosen_ids": chosen_ids,
        "rejected_ids": rejected_ids,
        "history_pairs": kept,
        "history_dropped": len(pairs) - kept,
    }


def render_reward_batch(
    batch: Mapping[str, list], indices: Sequence[int], tokenizer: Any, rendering: FeedbackRendering, name: str
) -> dict[str, list]:
    """`render_reward_example` over a `datasets` batch (for `Dataset.map(batched=True, with_indices=True)`); a bad row
    is named `"<name>, row <i> (0-based)"` (`personalign.data.loading.RowNames`)."""
    names = RowNames.of(name)
    columns = list(batch)
    out: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "history_pairs": [], "history_dropped": []}
    for position, index in enumerate(indices):
        row = {column: batch[column][position] for column in columns}
        for key, value in render_reward_example(row, tokenizer, rendering, names(index)).items():
            out[key].append(value)
    return out


# ------------------------------------------------------------------------------------------ in-context generation
def generate_personalized(
    backend: Any,
    rows: Sequence[Mapping[str, Any]] | Any,
    rendering: FeedbackRendering | None = None,
    names: Callable[[int], str] | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """In-context personalized generation (the counterfactual paper's Appendix B.2): each row's feedback history and
    instruction in the B.2 prompt, answered by any `personalign.inference.generation` backend.

    Args:
        backend (`GenerationBackend`): The generator (`load_backend("vllm:...")`, a `TransformersBackend`, ...).
        rows (`Sequence[Mapping]` or `datasets.Dataset`): Rows with the instruction and the history (columns as
            in `rendering`).
        rendering (`FeedbackRendering`, *optional*): Columns, `history_size`, and `include_history=False` for the
            counterfactual paper's Table 2 ablation (the same prompt with the history removed). `max_length` is not
            applied here.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.
        **generate_kwargs: Passed to `backend.generate` (`max_new_tokens`, `temperature`, `top_p`, `seed`).

    Returns:
        `list[str]`: One response per row, in order.

    Example:

    ```python
    >>> from personalign.reward.feedback import FeedbackRendering, generate_personalized
    >>> from personalign.inference.generation import load_backend
    >>> responses = generate_personalized(load_backend("vllm:mistralai/Mistral-7B-Instruct-v0.3"), test_rows,
    ...                                   max_new_tokens=512, temperature=0.9)
    ```
    """
    rendering = rendering or FeedbackRendering()
    names = names or RowNames.of("rows")
    prompts = [generation_messages(row, rendering, names(index)) for index, row in enumerate(rows)]
    return backend.generate(prompts, **generate_kwargs)
