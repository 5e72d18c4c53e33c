"""The counterfactual paper's personalized reward model at use time (§3.3, §4.1, §4.3): loading a trained one and
scoring both responses of every row given the user's feedback history.

- `load_reward_model`: the model, its tokenizer and the rendering it was trained with (`RENDERING_FILE`).
- `score_rewards`: r(chosen) and r(rejected) of every row, rendered exactly as `PersonalizedRewardTrainer` trains
  (history, instruction, response; oldest pairs dropped to fit), in length-sorted batches with a progress bar.

Both serve the reward model's evaluation (`personalign.reward.evaluation`) and rejection sampling
(`personalign.reward.rejection_sampling`). torch and transformers are imported inside the two functions, so that
importing `personalign.reward` (as the CLI does to build its commands) stays free of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import InputError
from ..io import check_model_folder, require_local_path
from ..row_names import RowNames
from .feedback import FeedbackRendering, attach_history_texts, read_rendering_file, render_reward_example

logger = logging.getLogger(__name__)


def load_reward_model(path: str | Path, device: str | None = None, **model_kwargs: Any) -> tuple[Any, Any, dict]:
    """A personalized reward model, its tokenizer and the rendering it was trained with.

    Args:
        path (`str` or `Path`): A folder saved by `PersonalizedRewardTrainer` (or any sequence-classification model
            with one label), or a Hub id.
        device (`str`, *optional*): Where to put the model; the first GPU if there is one, else the CPU.
        **model_kwargs: More arguments of `AutoModelForSequenceClassification.from_pretrained`.

    Returns:
        `(model, tokenizer, rendering_settings)`: the settings of `personalign_reward.json` (empty when absent; build
        the rendering with `FeedbackRendering.from_dict`).

    Raises:
        `InputError`: If a local `path` does not exist, the model is not a sequence-classification model or does not
            output a single score (`num_labels != 1`), or its rendering file is malformed.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    require_local_path(str(path), "reward model")
    check_model_folder(path, "reward model")
    # A policy (e.g. a `...ForCausalLM`) would load with a fresh, random score head: refuse it by its architecture.
    architectures = AutoConfig.from_pretrained(str(path)).architectures or []
    if architectures and not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise InputError(
            f"{path}: a {architectures[0]} is not a reward model (a sequence-classification model with one score); "
            "train one with `personalign train reward`."
        )
    model = AutoModelForSequenceClassification.from_pretrained(str(path), **model_kwargs)
    if model.config.num_labels != 1:
        raise InputError(
            f"{path}: a reward model outputs one score (num_labels=1), this one has {model.config.num_labels}."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model, tokenizer, read_rendering_file(path)


def score_rewards(
    model: Any,
    tokenizer: Any,
    rows: Iterable[Mapping[str, Any]],
    rendering: FeedbackRendering | None = None,
    batch_size: int = 16,
    progress: bool = True,
    responses: Any = None,
    chunk_rows: int = 2048,
    names: Callable[[int], str] | None = None,
) -> dict[str, list]:
    """Score both responses of every row with a personalized reward model.

    Inputs are rendered by `personalign.reward.feedback.render_reward_example`, exactly as `PersonalizedRewardTrainer`
    trains. A row whose target alone exceeds `max_length` is scored whole, never cut (counted in `over_length`).
    Rows are processed `chunk_rows` at a time, each chunk's sequences longest first in batches of `batch_size`
    (right-padded, as TRL's collator pads), so memory stays flat on large datasets.

    Args:
        model: A sequence-classification model with one label (`load_reward_model`).
        tokenizer: Its tokenizer.
        rows (`Iterable[Mapping]` or `Dataset`): Rows with instruction, both responses and the history.
        rendering (`FeedbackRendering`, *optional*): Columns, T, the ablation switch and the token budget.
        batch_size (`int`, *optional*, defaults to `16`): Sequences per forward pass.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar.
        responses (`Dataset`, *optional*): The `responses` table, for rows whose history is response ids.
        chunk_rows (`int`, *optional*, defaults to `2048`): Rows rendered and sorted together.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `dict`: `chosen_rewards`, `rejected_rewards` (floats, one per row), `history_pairs` (pairs kept per row) and
        `over_length` (rows longer than `max_length` even without history).

    Raises:
        `InputError`: If `batch_size` is below 1, the model has no pad token id, or a row is malformed (named by
            row and column).
    """
    import torch

    rendering = rendering or FeedbackRendering()
    names = names or RowNames.of("rows")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}.")
    rows = attach_history_texts(rows, responses)
    pad_id = model.config.pad_token_id
    pad_id = tokenizer.pad_token_id if pad_id is None else pad_id
    if pad_id is None:
        raise InputError(
            "The reward model needs a pad token id (set tokenizer.pad_token or model.config.pad_token_id)."
        )
    device = next(model.parameters()).device
    out: dict[str, list] = {"chosen_rewards": [], "rejected_rewards": [], "history_pairs": [], "over_length": 0}
    total = len(rows) if hasattr(rows, "__len__") else None
    bar = tqdm(total=total, desc="Scoring with the reward model", unit="row", disable=not progress)

    def flush(chunk: list[dict[str, Any]]) -> None:
        sequences = [(c["chosen_ids"], i, 0) for i, c in enumerate(chunk)] + [
            (c["rejected_ids"], i, 1) for i, c in enumerate(chunk)
        ]
        sequences.sort(key=lambda s: -len(s[0]))
        scores = [[0.0, 0.0] for _ in chunk]
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            width = max(len(ids) for ids, _, _ in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for position, (sequence, _, _) in enumerate(batch):
                ids[position, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
                mask[position, : len(sequence)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            for (_, row, side), value in zip(batch, logits[:, 0].float().cpu().tolist(), strict=True):
                scores[row][side] = value
        for rendered, (chosen, rejected) in zip(chunk, scores, strict=True):
            out["chosen_rewards"].append(chosen)
            out["rejected_rewards"].append(rejected)
            out["history_pairs"].append(rendered["history_pairs"])
            limit = rendering.max_length
            if limit is not None and max(len(rendered["chosen_ids"]), len(rendered["rejected_ids"])) > limit:
                out["over_length"] += 1
        bar.update(len(chunk))

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            chunk: list[dict[str, Any]] = []
            for index, row in enumerate(rows):
                chunk.append(render_reward_example(row, tokenizer, rendering, names(index)))
                if len(chunk) == chunk_rows:
                    flush(chunk)
                    chunk = []
            if chunk:
                flush(chunk)
    finally:
        model.train(was_training)
        bar.close()
    if out["over_length"]:
        logger.warning(
            "%d rows exceed max_length=%s even without history; they were scored whole.",
            out["over_length"],
            rendering.max_length,
        )
    return out
