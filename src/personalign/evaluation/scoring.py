"""Sequence log-probs of preference pairs: the inputs of alignment accuracy, computed fast.

`score_pairs` returns, for each (prompt, chosen, rejected) row, the summed log-probs of the chosen and of the rejected
response tokens (EOS included) given the prompt: the `logps/chosen` and `logps/rejected` of TRL's `DPOTrainer`, with
the same tokenization (`tokenize_preference_example`). What makes it faster than `DPOTrainer.evaluate()` on persona
data, whose prompts are long and responses short:

- each prompt is encoded once per pair, and its KV cache is repeated for the two responses, instead of encoding
  prompt+chosen and prompt+rejected in full;
- the LM head runs on the response positions only (the prompt pass keeps one position's logits);
- pairs are batched by length (longest first), so padding stays small;
- log-probs of a frozen model (the reference) can be cached on disk, keyed by the model's weights and the tokenized
  data.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from trl import extract_prompt, is_conversational
from trl.data_utils import common_prefix_length

from ..errors import InputError
from ..io import atomic_output
from ..row_names import RowNames

logger = logging.getLogger(__name__)

CACHE_FORMAT = "personalign.score_pairs/1"
"""Version of the cached log-probs; part of every cache key, bumped whenever the computation changes."""

TokenizedPair = tuple[list[int], list[int], list[int]]


def tokenize_preference_example(
    example: Mapping[str, Any],
    tokenizer: Any,
    max_length: int | None = None,
) -> dict[str, list[int]]:
    """Tokenize a preference row exactly as TRL 1.16's `DPOTrainer` does, into `prompt_ids`, `chosen_ids` and
    `rejected_ids` (the completions include EOS).

    - Rows without a `prompt` get it extracted from `chosen` / `rejected` (`trl.extract_prompt`).
    - Conversational rows (`prompt` messages, `chosen` / `rejected` assistant messages) go through the tokenizer's chat
      template: the prompt with the generation prompt, then prompt+chosen and prompt+rejected in full (the template
      closes the assistant turn, with EOS). The row's `tools` and `chat_template_kwargs` are passed along.
    - Plain-text rows get the EOS token appended to `chosen` / `rejected` unless they already end with it.
    - The completions start where the tokenized prompt and prompt+completion diverge (`trl.data_utils.
      common_prefix_length`, the minimum over chosen and rejected), so the prompt ids are a prefix of both.
    - With `max_length`, prompt+completion is cut to `max_length` tokens keeping the start (TRL's `"keep_start"`).

    Args:
        example (`Mapping[str, Any]`): The row.
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer; it needs a chat template for conversational rows.
        max_length (`int`, *optional*): Maximum length of prompt+completion, as `DPOConfig.max_length`.

    Returns:
        `dict[str, list[int]]`: `prompt_ids`, `chosen_ids`, `rejected_ids`.

    Raises:
        `InputError`: If the prompt tokenizes to nothing, or fills `max_length` (TRL drops such rows; a score is
            needed for every row here).
    """
    if "prompt" not in example:
        example = {**example, **extract_prompt(example)}
    tools = example.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    template_kwargs = {"tools": tools, **(example.get("chat_template_kwargs") or {})}
    prompt = example["prompt"]
    if is_conversational(example):

        def encode(messages: list, **kwargs: Any) -> list[int]:
            encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
            return list(encoded["input_ids"])

        prompt_ids = encode(prompt, add_generation_prompt=True, **template_kwargs)
        prompt_chosen_ids = encode(prompt + example["chosen"], **template_kwargs)
        prompt_rejected_ids = encode(prompt + example["rejected"], **template_kwargs)
    else:
        eos = tokenizer.eos_token
        chosen, rejected = example["chosen"], example["rejected"]
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
        prompt_ids = list(tokenizer(text=prompt)["input_ids"])
        prompt_chosen_ids = list(tokenizer(text=prompt + chosen)["input_ids"])
        prompt_rejected_ids = list(tokenizer(text=prompt + rejected)["input_ids"])
    prompt_length = min(
        common_prefix_length(prompt_ids, prompt_chosen_ids), common_prefix_length(prompt_ids, prompt_rejected_ids)
    )
    if prompt_length == 0:
        raise InputError(
            "The prompt tokenizes to no token shared with the prompt+completion, so nothing conditions the first "
            "response token; prepend a BOS token or use a chat template."
        )
    chosen_ids, rejected_ids = prompt_chosen_ids[prompt_length:], prompt_rejected_ids[prompt_length:]
    if max_length is not None:
        if prompt_length >= max_length:
            raise InputError(
                f"The prompt has {prompt_length} tokens, which fills max_length={max_length}: no response token "
                "would be scored (DPOTrainer drops such rows). Raise max_length or pass max_length=None."
            )
        keep = max_length - prompt_length
        chosen_ids, rejected_ids = chosen_ids[:keep], rejected_ids[:keep]
    return {"prompt_ids": prompt_ids[:prompt_length], "chosen_ids": chosen_ids, "rejected_ids": rejected_ids}


# ------------------------------------------------------------------------------------------------------ forward
def _device(model: torch.nn.Module) -> torch.device:
    device = getattr(model, "device", None)
    return device if isinstance(device, torch.device) else next(model.parameters()).device


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    # PEFT wrappers take **kwargs and hand them to the base model, which decides.
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(target.forward).parameters
    except (TypeError, ValueError):
        return False


def _attention_window(model: torch.nn.Module) -> int | None:
    """The sliding-window (or chunked) attention span of the model, if any layer has one."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and not any(kind != "full_attention" for kind in layer_types):
        return None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    spans = [getattr(config, name, None) for name in ("sliding_window", "attention_chunk_size")]
    spans = [span for span in spans if isinstance(span, int) and span > 0]
    return min(spans) if spans else None


def _padded(sequences: list[list[int]], pad_token_id: int, min_length: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask, at least `min_length` columns."""
    width = max(min_length, *(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


def _target_logps(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over positions of `log_softmax(logits)[target]` where `mask`: per token in float32, summed in float64."""
    logits = logits.float()
    per_token = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (per_token.double() * mask).sum(dim=-1)


def _score_batch_shared_prompt(
    model: torch.nn.Module, pairs: list[TokenizedPair], pad_token_id: int, logits_to_keep: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward over the prompts minus their last token (keeping the KV cache), then one over the 2B continuations
    `[last prompt token] + response` on the cache repeated twice: every response token, the first included, is
    predicted from a position of the second pass, so the LM head runs on response positions only."""
    device = _device(model)
    prefixes = [prompt[:-1] for prompt, _, _ in pairs]
    prefix_ids, prefix_mask = _padded(prefixes, pad_token_id)
    width = prefix_ids.size(1)
    kwargs = {"logits_to_keep": 1} if logits_to_keep else {}
    # No attention mask: the padding is on the right, so under the causal mask no real token sees a pad, and the
    # pads' keys are masked in the second pass. Without a padding mask, attention takes its fast causal path.
    outputs = model(
        input_ids=prefix_ids.to(device),
        position_ids=torch.arange(width, device=device).expand(len(pairs), -1),
        use_cache=True,
        **kwargs,
    )
    # transformers 5.24 renamed the KV cache `past_key_values` -> `cache` (the old name still works, with a warning
    # on every run); use whichever name this version's outputs carry, in both directions.
    cache_name = "cache" if "cache" in outputs else "past_key_values"
    cache = outputs.get(cache_name)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        raise RuntimeError(
            f"{type(model).__name__} returned no expandable KV cache; score with reuse_prompt=False instead."
        )
    cache.batch_repeat_interleave(2)  # rows 2i and 2i+1 continue prompt i (chosen, rejected)

    continuations, starts = [], []
    for (prompt, chosen, rejected), prefix in zip(pairs, prefixes, strict=True):
        for completion in (chosen, rejected):
            continuations.append([prompt[-1], *completion])
            starts.append(len(prefix))
    ids, mask = _padded(continuations, pad_token_id)
    positions = torch.tensor(starts).unsqueeze(1) + torch.arange(ids.size(1)).unsqueeze(0)
    logits = model(
        input_ids=ids.to(device),
        attention_mask=torch.cat([prefix_mask.repeat_interleave(2, dim=0), mask], dim=1).to(device),
        position_ids=positions.to(device),
        use_cache=True,
        **{cache_name: cache},
    ).logits
    logps = _target_logps(logits[:, :-1], ids[:, 1:].to(device), mask[:, 1:].to(device))
    return logps[0::2], logps[1::2]


def _score_batch_full(
    model: torch.nn.Module, pairs: list[TokenizedPair], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain computation, as `DPOTrainer` batches it: prompt+chosen and prompt+rejected encoded in full."""
    device = _device(model)
    sequences = [p + c for p, c, _ in pairs] + [p + r for p, _, r in pairs]
    ids, mask = _padded(sequences, pad_token_id)
    completion = torch.zeros_like(mask)
    for row, (prompt, chosen, rejected) in enumerate(pairs):
        completion[row, len(prompt) : len(prompt) + len(chosen)] = 1
        completion[len(pairs) + row, len(prompt) : len(prompt) + len(rejected)] = 1
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
    logps = _target_logps(logits[:, :-1], ids[:, 1:].to(device), completion[:, 1:].to(device))
    return logps[: len(pairs)], logps[len(pairs) :]


def _score_tokenized(
    model: torch.nn.Module,
    pairs: list[TokenizedPair],
    pad_token_id: int,
    batch_size: int,
    reuse_prompt: bool,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    from tqdm.auto import tqdm

    # Longest first: similar lengths share a batch (little padding), and an out-of-memory error shows up at once.
    order = sorted(
        range(len(pairs)), key=lambda i: (len(pairs[i][0]), max(len(pairs[i][1]), len(pairs[i][2]))), reverse=True
    )
    chosen_logps = np.zeros(len(pairs), dtype=np.float64)
    rejected_logps = np.zeros(len(pairs), dtype=np.float64)
    logits_to_keep = _accepts_logits_to_keep(model)
    # The shared-prompt pass right-pads the prompts, so a continuation's cache index runs ahead of its position by the
    # padding. Sliding-window layers mask by index: a batch whose padded prompts and responses outgrow the window is
    # encoded in full instead (where index and position agree), which stays exact.
    window = _attention_window(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="Scoring pairs", disable=not progress):
                indices = order[start : start + batch_size]
                batch = [pairs[i] for i in indices]
                span = max(len(p) for p, _, _ in batch) + max(max(len(c), len(r)) for _, c, r in batch)
                if reuse_prompt and (window is None or span < window):
                    chosen, rejected = _score_batch_shared_prompt(model, batch, pad_token_id, logits_to_keep)
                else:
                    chosen, rejected = _score_batch_full(model, batch, pad_token_id)
                chosen_logps[indices] = chosen.double().cpu().numpy()
                rejected_logps[indices] = rejected.double().cpu().numpy()
    finally:
        model.train(was_training)
    return chosen_logps, rejected_logps


# -------------------------------------------------------------------------------------------------------- cache
def _model_fingerprint(model: torch.nn.Module) -> str:
    """A digest of the model's weights and dtypes (`trl.trainer.utils.hash_module`, as `DPOTrainer` keys its
    precomputed reference log-probs). Reads every parameter once."""
    from trl.trainer.utils import hash_module

    return hash_module(model)


def _tokens_fingerprint(pairs: list[TokenizedPair]) -> str:
    digest = hashlib.sha256()
    for row in pairs:
        for ids in row:
            digest.update(np.int64(len(ids)).tobytes())
            digest.update(np.asarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _cache_path(cache_dir: str | os.PathLike, model_key: str, pairs: list[TokenizedPair]) -> Path:
    key = hashlib.sha256(f"{CACHE_FORMAT}\n{model_key}\n{_tokens_fingerprint(pairs)}".encode()).hexdigest()[:32]
    return Path(cache_dir) / f"logps-{key}.safetensors"


def _load_cached(path: Path, num_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    from safetensors.numpy import load_file

    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        chosen, rejected = tensors["chosen_logps"], tensors["rejected_logps"]
    except Exception as error:  # a damaged file is recomputed and replaced, never trusted
        logger.warning("Ignoring the unreadable log-prob cache %s: %s", path, error)
        return None
    if chosen.shape != (num_rows,) or rejected.shape != (num_rows,):
        logger.warning("Ignoring the log-prob cache %s: it holds %s rows, not %d.", path, chosen.shape, num_rows)
        return None
    return chosen, rejected


def _save_cached(path: Path, chosen: np.ndarray, rejected: np.ndarray, model_key: str) -> None:
    from safetensors.numpy import save_file

    metadata = {"format": CACHE_FORMAT, "model": model_key, "num_rows": str(len(chosen))}
    with atomic_output(path, overwrite=True) as temporary:
        save_file({"chosen_logps": chosen, "rejected_logps": rejected}, str(temporary), metadata=metadata)


# ---------------------------------------------------------------------------------------------------------- API
def _tokenize_all(
    tokenizer: Any,
    dataset: Iterable[Mapping[str, Any]],
    max_length: int | None,
    names: Callable[[int], str] | None,
) -> list[TokenizedPair]:
    names = names or RowNames.of("dataset")
    pairs = []
    for index, example in enumerate(dataset):
        try:
            tokenized = tokenize_preference_example(example, tokenizer, max_length)
        except ValueError as error:
            raise InputError(f"{names(index)}: {error}") from None
        pairs.append((tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"]))
    if not pairs:
        raise InputError("The dataset is empty: there is no pair to score.")
    return pairs


def _pad_token_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return 0 if pad is None else pad  # padded positions are masked: the id only has to exist


def _score(
    model: torch.nn.Module,
    pairs: list[TokenizedPair],
    pad_token_id: int,
    batch_size: int,
    reuse_prompt: bool,
    cache_dir: str | os.PathLike | None,
    fingerprint: str | None,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    path = None
    if cache_dir is not None:
        model_key = fingerprint or _model_fingerprint(model)
        path = _cache_path(cache_dir, model_key, pairs)
        cached = _load_cached(path, len(pairs))
        if cached is not None:
            return cached
    chosen, rejected = _score_tokenized(model, pairs, pad_token_id, batch_size, reuse_prompt, progress)
    if path is not None:
        _save_cached(path, chosen, rejected, model_key)
    return chosen, rejected


def score_pairs(
    model: torch.nn.Module,
    tokenizer: Any,
    dataset: Iterable[Mapping[str, Any]],
    batch_size: int = 8,
    max_length: int | None = None,
    reuse_prompt: bool = True,
    cache_dir: str | os.PathLike | None = None,
    model_fingerprint: str | None = None,
    progress: bool = False,
    names: Callable[[int], str] | None = None,
) -> dict[str, list[float]]:
    """Summed log-probs of the chosen and rejected responses (tokens plus EOS, no length normalisation) given the
    prompt, for every row of a preference dataset.

    Rows are TRL preference rows: conversational (`prompt` messages, `chosen` / `rejected` assistant messages, as
    `personalign.preference_example` builds them) or plain strings, tokenized as `DPOTrainer` tokenizes them (see
    `tokenize_preference_example`). The values are the per-row `logps/chosen` and `logps/rejected` of
    `DPOTrainer` with the same model, tokenizer and `max_length` (to float32 rounding).

    Args:
        model (`PreTrainedModel`): A causal LM (PEFT models included). Put in eval mode while scoring, and restored.
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer (with a chat template for conversational rows).
        dataset (`datasets.Dataset` or iterable of dicts): The rows; extra columns are ignored.
        batch_size (`int`, *optional*, defaults to `8`): Pairs per forward pass. The prompt pass holds `batch_size`
            prompts and the response pass `2 * batch_size` responses (with their logits).
        max_length (`int`, *optional*): Cut prompt+response to this many tokens, keeping the start, as
            `DPOConfig.max_length` does (pass the trainer's value to reproduce its numbers; DPOConfig defaults to
            1024). A prompt that fills `max_length` is an error. `None` scores everything.
        reuse_prompt (`bool`, *optional*, defaults to `True`): Encode each prompt once and reuse its KV cache for both
            responses. `False` encodes prompt+chosen and prompt+rejected in full, for models whose cache cannot be
            repeated along the batch. With sliding-window attention, batches longer than the window are encoded in
            full either way.
        cache_dir (`str` or `os.PathLike`, *optional*): Cache the log-probs in this folder (one safetensors file per
            model and tokenized dataset, written atomically) and reuse them on the next call. Meant for frozen models
            such as the reference.
        model_fingerprint (`str`, *optional*): The model part of the cache key. By default a digest of the weights,
            which reads every parameter; pass e.g. the Hub revision to skip that.
        progress (`bool`, *optional*, defaults to `False`): Show a progress bar.
        names (`Callable[[int], str]`, *optional*): Names row `i` in error messages: a
            `personalign.row_names.RowNames` (a JSON-lines row by its 1-based line, any other by its 0-based row)
            or any callable; by default `"dataset, row <i> (0-based)"`.

    Returns:
        `dict[str, list[float]]`: `chosen_logps` and `rejected_logps`, one value per row, in the dataset's order.

    Raises:
        `InputError`: If the dataset is empty or a row cannot be tokenized (named by `names`).

    Example:

    ```python
    >>> from personalign.evaluation import compute_alignment_metrics, score_pairs
    >>> policy = score_pairs(model, tokenizer, dataset)
    >>> reference = score_pairs(ref_model, tokenizer, dataset, cache_dir="logps-cache")
    >>> compute_alignment_metrics(
    ...     policy["chosen_logps"], policy["rejected_logps"], reference["chosen_logps"], reference["rejected_logps"]
    ... )["alignment_accuracy"]
    ```
    """
    pairs = _tokenize_all(tokenizer, dataset, max_length, names)
    chosen, rejected = _score(
        model, pairs, _pad_token_id(tokenizer), batch_size, reuse_prompt, cache_dir, model_fingerprint, progress
    )
    return {"chosen_logps": chosen.tolist(), "rejected_logps": rejected.tolist()}


def score_policy_and_reference(
    model: torch.nn.Module,
    ref_model: torch.nn.Module,
    tokenizer: Any,
    dataset: Iterable[Mapping[str, Any]],
    batch_size: int = 8,
    max_length: int | None = None,
    reuse_prompt: bool = True,
    reference_cache_dir: str | os.PathLike | None = None,
    reference_fingerprint: str | None = None,
    suffix: str = "",
    progress: bool = False,
    names: Callable[[int], str] | None = None,
) -> dict[str, list[float]]:
    """`score_pairs` under the policy and the reference (tokenizing once), named as the inputs of
    `compute_alignment_metrics` and of the `alignment_accuracy` metric.

    Args:
        model (`PreTrainedModel`): The policy.
        ref_model (`PreTrainedModel`): The reference model.
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer both share.
        dataset (`datasets.Dataset` or iterable of dicts): Preference rows (see `score_pairs`).
        batch_size (`int`, *optional*, defaults to `8`): Pairs per forward pass.
        max_length (`int`, *optional*): As in `score_pairs`.
        reuse_prompt (`bool`, *optional*, defaults to `True`): As in `score_pairs`.
        reference_cache_dir (`str` or `os.PathLike`, *optional*): Cache the reference log-probs there (the policy's
            are always computed).
        reference_fingerprint (`str`, *optional*): The reference part of the cache key (see `score_pairs`).
        suffix (`str`, *optional*, defaults to `""`): Appended to the keys; `"_reversed"` for the reversed-persona
            dataset, whose rows have `chosen` and `rejected` swapped.
        progress (`bool`, *optional*, defaults to `False`): Show progress bars.
        names (`Callable[[int], str]`, *optional*): Names row `i` in error messages: a
            `personalign.row_names.RowNames` (a JSON-lines row by its 1-based line, any other by its 0-based row)
            or any callable; by default `"dataset, row <i> (0-based)"`.

    Returns:
        `dict[str, list[float]]`: `policy_chosen_logps`, `policy_rejected_logps`, `reference_chosen_logps` and
        `reference_rejected_logps` (each followed by `suffix`).

    Example:

    ```python
    >>> scores = score_policy_and_reference(model, ref_model, tokenizer, dataset)
    >>> scores |= score_policy_and_reference(model, ref_model, tokenizer, reversed_dataset, suffix="_reversed")
    >>> compute_alignment_metrics(**scores, beta=0.1)["flip_rate"]
    ```
    """
    pairs = _tokenize_all(tokenizer, dataset, max_length, names)
    pad = _pad_token_id(tokenizer)
    policy = _score(model, pairs, pad, batch_size, reuse_prompt, None, None, progress)
    reference = _score(
        ref_model, pairs, pad, batch_size, reuse_prompt, reference_cache_dir, reference_fingerprint, progress
    )
    return {
        f"policy_chosen_logps{suffix}": policy[0].tolist(),
        f"policy_rejected_logps{suffix}": policy[1].tolist(),
        f"reference_chosen_logps{suffix}": reference[0].tolist(),
        f"reference_rejected_logps{suffix}": reference[1].tolist(),
    }
