"""The alignment evaluation behind `personalign eval policy`: read persona rows (AlignX or counterfactual MultiFacet), render
them as persona-conditioned prompts, score them under one or more policies and a reference, and compute alignment
accuracy overall, per dimension, per persona (`ground_truth_persona`), per benchmark (source file), per persona size
and, with `flip`, under the reversed persona.

`evaluate_alignment` returns a JSON-ready dict; `write_alignment_results` writes it with its plots, and
`update_model_card` puts the overall numbers into a model card's `model-index`.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import EvalResult

from .. import __version__
from ..errors import InputError
from ..hub.cards import add_results_to_card
from ..inference.generation import public_spec
from ..inference.preferences_file import InferredPreferences, load_inferred_preferences
from ..io import atomic_output, check_model_folder, require_local_path
from ..personas.prompts import pba_messages, preference_example
from ..personas.space import PreferenceSpace
from .metrics import compute_alignment_metrics
from .plots import plot_per_group, plot_persona_size
from .reversal import reverse_alignx_row, reverse_multifacet
from .robustness import (
    DEFAULT_PERSONA_SIZES,
    alignx_row_dimension_labels,
    history_length,
    parse_persona_sizes,
    rows_with_target_in_history,
    subset_alignx_history,
    subset_multifacet_history,
)
from .rows import (
    DATA_FORMATS,
    PERSONA_FORMATS,
    EvalRows,
    load_eval_rows,
    normalize_alignx_rows,
    rendered_alignx_rows,
    row_renderer,
)
from .scoring import score_pairs

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
PERSONA_SIZE_PLOT = "persona_size.png"
PER_DIMENSION_PLOT = "per_dimension.png"
GROUP_PLOTS = {
    "per_dimension": PER_DIMENSION_PLOT,
    "per_persona": "per_persona.png",
    "per_benchmark": "per_benchmark.png",
}
"""The breakdowns of a model's results and the bar plot each gets (when it has groups)."""
_GROUPS = {"dimension": "per_dimension", "persona": "per_persona", "benchmark": "per_benchmark"}
CARD_METRICS = ("alignment_accuracy", "flip_rate", "reversed_alignment_accuracy", "strict_flip_rate")


@dataclass
class AlignmentEvalConfig:
    """Settings of `evaluate_alignment` (the options of `personalign eval policy`).

    Args:
        data_format (`str`, *optional*): `"alignx"` or `"multifacet"` (counterfactual MultiFacet rows); detected from
            the columns by default.
        split (`str`, *optional*): The split to evaluate; by default the only one, else `"test"`.
        persona_format (`str`, *optional*): How the persona enters the prompt: AlignX rows `"pba"` (default; the
            row's ready `profile`, else the preference text aggregated from the history) or `"ica"` (the history
            itself); MultiFacet rows `"feedback"` (the counterfactual paper's feedback-history prompt, the only
            choice). Ready-rendered rows (a build folder's `pba` / `ica` config) are scored as they are: it can only
            pick that config.
        flip (`bool`, *optional*, defaults to `False`): Also score every pair under the reversed persona (flip rate).
            Refused for ready-rendered rows, and for PBA rows whose `profile` is not a list of AlignX labels.
        persona_sizes (`tuple[int, ...]`, *optional*, defaults to `(2, 4, 8, 16)`): History sizes of the robustness
            run, on the rows that have at least the largest size; `()` skips it. Skipped with a notice where the
            prompt cannot change with the size: ready-rendered rows, and PBA rows with a ready `profile` (left out).
        skip_unavailable_sizes (`bool`, *optional*, defaults to `False`): Leave out (and record) sizes larger than
            every row's history instead of failing.
        beta (`float`, *optional*, defaults to `0.1`): The DPO temperature of the implicit reward.
        batch_size (`int`, *optional*, defaults to `8`): Pairs per forward pass.
        max_length (`int`, *optional*): Cut prompt+response to this many tokens, as `DPOConfig.max_length`.
        limit (`int`, *optional*): Evaluate the first `limit` rows only (after pairing opposite users).
        seed (`int`, *optional*, defaults to `0`): Seed of the persona-size history orders.
        include_demographics (`bool`, *optional*, defaults to `True`): ICA: show the demographic description.
        dtype (`str`, *optional*, defaults to `"auto"`): Weights dtype: `"auto"` (the checkpoint's), `"float32"`,
            `"bfloat16"` or `"float16"`.
        reference_cache_dir (`str`, *optional*): Cache the reference log-probs there (`score_pairs`).
        preferences (`str`, *optional*): A folder written by `personalign infer-preferences`: every row is also
            scored with its PBA prompt stating the profile inferred from its history instead of the gold one (as the
            AlignX paper evaluates PBA, §5), reported beside the gold results (`models[name]["inferred"]`). AlignX
            rows with PBA prompts only; the persona-size run stays gold-only.
        progress (`bool`, *optional*, defaults to `True`): Show progress bars.
    """

    data_format: str | None = field(default=None, metadata={"help": "alignx or multifacet; auto by default."})
    split: str | None = field(default=None, metadata={"help": "Split to evaluate."})
    persona_format: str | None = field(default=None, metadata={"help": "pba / ica (AlignX), feedback (MultiFacet)."})
    flip: bool = field(default=False, metadata={"help": "Score under the reversed persona too."})
    persona_sizes: tuple[int, ...] = field(default=DEFAULT_PERSONA_SIZES, metadata={"help": "Robustness sizes."})
    skip_unavailable_sizes: bool = field(default=False, metadata={"help": "Drop sizes no row reaches."})
    beta: float = field(default=0.1, metadata={"help": "DPO temperature."})
    batch_size: int = field(default=8, metadata={"help": "Pairs per forward pass."})
    max_length: int | None = field(default=None, metadata={"help": "Max prompt+response tokens."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate the first N rows."})
    seed: int = field(default=0, metadata={"help": "Seed of the persona-size subsets."})
    include_demographics: bool = field(default=True, metadata={"help": "ICA: include demographics."})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16."})
    reference_cache_dir: str | None = field(default=None, metadata={"help": "Reference log-prob cache folder."})
    preferences: str | None = field(default=None, metadata={"help": "Inferred preferences folder (PBA)."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self) -> None:
        if self.data_format is not None and self.data_format not in DATA_FORMATS:
            raise InputError(f"unknown data format {self.data_format!r}; use {' or '.join(DATA_FORMATS)}.")
        known = {f for formats in PERSONA_FORMATS.values() for f in formats}
        if self.persona_format is not None and self.persona_format not in known:
            raise InputError(f"unknown persona format {self.persona_format!r}; use one of {', '.join(sorted(known))}.")
        self.persona_sizes = parse_persona_sizes(self.persona_sizes)
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}.")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit must be >= 1, got {self.limit}.")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise InputError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}.")
        if not (isinstance(self.beta, (int, float)) and self.beta > 0):
            raise InputError(f"beta must be > 0, got {self.beta!r}.")


_SEGMENTS = {
    "main": "pairs",
    "main_reversed": "reversed-persona pairs",
    "sizes": "persona-size pairs (sizes in order, rows in order within each)",
    "sizes_reversed": "reversed persona-size pairs",
}


@dataclass
class _Plan:
    """What gets scored: rendered rows per segment, and the labels and counts the results need."""

    segments: dict[str, list[dict[str, Any]]]
    groups: dict[str, list[Any]]
    size_labels: list[int]
    dataset: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    pair_rows: dict[str, list[int]] = field(default_factory=dict)
    """The split position of the row behind each pair of each segment."""
    name_row: Callable[[int], str] | None = None
    """`EvalRows.row_name`: scoring errors name the row behind a pair (by its file and line or row, when the rows'
    files are known)."""


@dataclass
class _Rows:
    """The rows to evaluate, their opposite users (with `flip`), their positions in the dataset (history seeds) and
    their group labels per breakdown (`dimension`, `persona`, `benchmark`)."""

    originals: list[dict[str, Any]]
    reversed: list[dict[str, Any]]
    indices: list[int]
    reversed_indices: list[int]
    groups: dict[str, list[Any]]
    info: dict[str, Any]


def _reverse_alignx(row: dict[str, Any], at: str, persona_format: str) -> dict[str, Any]:
    """`reverse_alignx_row` for the eval: the ICA prompt drops the text that cannot be reversed; a PBA `profile` must
    be a list of AlignX labels (errors name the row: `at`, from `EvalRows.row_name`)."""
    space = PreferenceSpace.alignx()
    profile = row.get("profile")
    if persona_format == "pba" and profile:
        try:
            space.from_text(profile)
        except ValueError:
            raise InputError(
                f"{at}, column 'profile': --flip reverses the PBA preference text, but this one "
                f"({profile[:60]!r}{'...' if len(profile) > 60 else ''}) is not a list of {space.name} preference "
                "labels, so it cannot be reversed; drop --flip, or pass --persona-format ica (it reverses the "
                "feedback pairs instead)."
            ) from None
    try:
        # Comments and demographics are free text that cannot be reversed: the reversed ICA prompt leaves them out.
        return reverse_alignx_row(row, space, drop_irreversible_text=persona_format == "ica")
    except ValueError as error:
        raise InputError(f"{at}: {error}") from None


def _alignx_groups(
    originals: list[dict[str, Any]], breakdowns: dict[str, Any], rendered: str | None
) -> dict[str, list[Any]]:
    """The per-dimension and per-persona labels of AlignX rows, and in `breakdowns` what each is grouped by or why it
    is absent."""
    labels, counts = alignx_row_dimension_labels(originals)
    groups: dict[str, list[Any]] = {"dimension": labels}
    if counts["preference_direction"] or counts["profile"]:
        breakdowns["per_dimension"] = {"rows_by_source": counts}
        if counts["profile"]:
            breakdowns["per_dimension"]["note"] = (
                "rows without a gold 'Preference Direction' count in the dimensions of their 'profile' text (the "
                "persona's preferences, read with PreferenceSpace.from_text), not of the target pair."
            )
    else:
        breakdowns["per_dimension"] = {
            "absent": "no row has a gold 'Preference Direction', and no 'profile' is a list of AlignX preference "
            "labels (PreferenceSpace.from_text)."
        }
    personas = [row.get("ground_truth_persona") for row in originals]
    known = [persona for persona in personas if persona is not None]
    if known:
        groups["persona"] = personas
        breakdowns["per_persona"] = {
            "column": "ground_truth_persona",
            "num_personas": len(set(known)),
            "num_rows": len(known),
        }
    elif rendered:
        breakdowns["per_persona"] = {
            "absent": "the ready-rendered rows carry no 'ground_truth_persona' (a build-dataset pba / ica config keeps "
            "prompt, chosen, rejected, profile and preference_direction); evaluate the source file for it."
        }
    else:
        breakdowns["per_persona"] = {"absent": "the rows carry no 'ground_truth_persona'."}
    return groups


def _select_rows(loaded: EvalRows, persona_format: str, config: AlignmentEvalConfig) -> _Rows:
    data_format, data, where = loaded.data_format, loaded.data, loaded.where
    info: dict[str, Any] = {}
    breakdowns: dict[str, Any] = {}
    if data_format == "multifacet":
        if config.flip:
            # Pairs are found over the whole split, before --limit, so a limited run keeps every counterpart.
            pairing = reverse_multifacet(data, on_missing="drop", names=loaded.row_name)
            info["num_unpaired_dropped"] = pairing.num_dropped
            indices, partners = pairing.kept, pairing.counterparts
            if not indices:
                raise InputError(f"{where}: no row has an opposite user (build the rows with counterfactual pairing).")
        else:
            indices, partners = list(range(len(data))), []
        if config.limit is not None:
            indices, partners = indices[: config.limit], partners[: config.limit]
        originals = data.select(indices).to_list()
        reversed_rows = data.select(partners).to_list() if partners else []
        groups: dict[str, list[Any]] = {"dimension": [row["dimension"] for row in originals]}
        breakdowns["per_dimension"] = {"column": "dimension"}
        breakdowns["per_persona"] = {"absent": "MultiFacet rows carry no 'ground_truth_persona'."}
    else:
        if loaded.rendered and config.flip:
            raise InputError(
                f"{where}: --flip reverses each row's persona, but these rows hold ready-rendered prompts "
                f"({loaded.rendered}); evaluate the source file, or a `personalign build-dataset alignx` folder with "
                "the raw config (--config raw)."
            )
        if config.limit is not None:
            data = data.select(range(min(config.limit, len(data))))
        if loaded.rendered:
            originals = rendered_alignx_rows(data, where, loaded.files)
        else:
            originals = normalize_alignx_rows(data, where, loaded.files, require_preference=persona_format == "pba")
            info["num_rows_target_in_history"] = rows_with_target_in_history(originals)
        indices = list(range(len(originals)))
        partners = indices if config.flip else []
        reversed_rows = (
            [_reverse_alignx(row, loaded.row_name(i), persona_format) for i, row in enumerate(originals)]
            if config.flip
            else []
        )
        groups = _alignx_groups(originals, breakdowns, loaded.rendered)
    if loaded.sources is not None:
        groups["benchmark"] = [loaded.sources[index] for index in indices]
        breakdowns["per_benchmark"] = {"column": "source file", "num_benchmarks": len(set(groups["benchmark"]))}
    else:
        breakdowns["per_benchmark"] = {
            "absent": "the rows come from one file, or from a source that does not record each row's file (a Hub "
            "dataset, a build-dataset folder, rows in memory)."
        }
    info["breakdowns"] = breakdowns
    return _Rows(originals, reversed_rows, indices, partners, groups, info)


def _fixed_prompt_rows(
    loaded: EvalRows, persona_format: str, rows: _Rows, sizes: tuple[int, ...], info: dict[str, Any]
) -> tuple[list[int], list[str]]:
    """The rows whose prompt cannot change with the persona size (ready-rendered rows; PBA rows with a ready
    `profile`, which is the whole PBA persona), and the notices that say so. When that is every row, the notice and
    `info["persona_sizes_not_applicable"]["sizes"]` list the sizes that would have been run: those some row's
    history reaches (for ready-rendered rows, whose history is not known, the sizes asked for)."""
    if not sizes or loaded.data_format != "alignx":
        return [], []
    if loaded.rendered:
        reason = "the rows hold ready-rendered prompts, whose history cannot be cut"
        info["persona_sizes_not_applicable"] = {"sizes": list(sizes), "reason": reason}
        asked = ", ".join(map(str, sizes))
        return list(range(len(rows.originals))), [f"persona sizes skipped: {reason} (sizes asked: {asked})."]
    if persona_format != "pba":
        return [], []
    fixed = [position for position, row in enumerate(rows.originals) if row.get("profile")]
    if len(fixed) == len(rows.originals):
        reason = (
            "every row's PBA prompt is its ready 'profile' text, which does not change with the history size "
            "(--persona-format ica renders the history items, whose number does)"
        )
        longest = max((history_length(row) for row in rows.originals), default=0)
        reached = [size for size in sizes if size <= longest]
        info["persona_sizes_not_applicable"] = {"sizes": reached, "reason": reason}
        listed = f" {', '.join(map(str, reached))}" if reached else ""
        return fixed, [f"persona sizes{listed} skipped: {reason}."]
    if fixed:
        info["persona_size_rows_fixed_profile"] = len(fixed)
        return fixed, [
            f"{len(fixed)} rows with a ready 'profile' left out of the persona-size run: their PBA prompt does not "
            "change with the history size."
        ]
    return [], []


def _plan(loaded: EvalRows, persona_format: str, config: AlignmentEvalConfig, rows: _Rows) -> _Plan:
    data_format = loaded.data_format
    info = {**rows.info, "num_rows": len(rows.originals)}
    if loaded.rendered:

        def render(row: Mapping[str, Any], index: int) -> dict[str, Any]:
            return {key: row[key] for key in ("prompt", "chosen", "rejected")}

    else:
        render = row_renderer(data_format, persona_format, config.include_demographics)
    segments = {"main": [render(row, i) for row, i in zip(rows.originals, rows.indices, strict=True)]}
    pair_rows = {"main": rows.indices}
    if config.flip:
        segments["main_reversed"] = [
            render(row, i) for row, i in zip(rows.reversed, rows.reversed_indices, strict=True)
        ]
        pair_rows["main_reversed"] = rows.reversed_indices

    sizes, size_labels = config.persona_sizes, []
    fixed, notices = _fixed_prompt_rows(loaded, persona_format, rows, sizes, info)
    if len(fixed) == len(rows.originals):
        sizes = ()
    lengths = [history_length(row) for row in rows.originals]
    if sizes and data_format == "multifacet" and config.flip:  # both users need that many items
        lengths = [min(a, history_length(b)) for a, b in zip(lengths, rows.reversed, strict=True)]
    for position in fixed:
        lengths[position] = 0
    unavailable = [size for size in sizes if size > max(lengths)]
    if unavailable and not config.skip_unavailable_sizes:
        raise InputError(
            f"{loaded.where}: persona size {unavailable[0]} is larger than every row's history (at most "
            f"{max(lengths)} items); pass smaller --persona-sizes, or none."
        )
    sizes = tuple(size for size in sizes if size not in unavailable)
    info.update(persona_sizes=list(sizes), persona_sizes_skipped=unavailable)
    if sizes:
        # The same rows at every size (those with at least the largest), so the curve measures the history alone.
        eligible = [position for position, length in enumerate(lengths) if length >= max(sizes)]
        info.update(persona_size_rows=len(eligible), persona_size_rows_skipped=len(lengths) - len(eligible))
        jobs = [(position, size) for size in sizes for position in eligible]
        size_labels = [size for _, size in jobs]
        originals, reversed_rows = [], []
        for position, size in jobs:
            index = rows.indices[position]
            if data_format == "multifacet":
                originals.append(
                    subset_multifacet_history(rows.originals[position], size, config.seed, index, loaded.row_name)
                )
                if config.flip:
                    partner = rows.reversed_indices[position]
                    subset = subset_multifacet_history(
                        rows.reversed[position], size, config.seed, partner, loaded.row_name
                    )
                    reversed_rows.append((subset, partner))
            else:
                subset = subset_alignx_history(rows.originals[position], size, config.seed, index, loaded.row_name)
                originals.append(subset)
                if config.flip:  # subset first, then reverse: both personas hold the same items
                    reversed_rows.append((_reverse_alignx(subset, loaded.row_name(index), persona_format), index))
        segments["sizes"] = [render(row, rows.indices[p]) for row, (p, _) in zip(originals, jobs, strict=True)]
        pair_rows["sizes"] = [rows.indices[position] for position, _ in jobs]
        if config.flip:
            segments["sizes_reversed"] = [render(row, index) for row, index in reversed_rows]
            pair_rows["sizes_reversed"] = [index for _, index in reversed_rows]
    if info.get("num_rows_target_in_history") and persona_format == "ica":
        notices.append(
            f"{info['num_rows_target_in_history']} rows hold their own target prompt in their history (as released): "
            "their ICA prompt shows it."
        )
    if "absent" in info["breakdowns"]["per_dimension"]:
        notices.append(f"no per-dimension results: {info['breakdowns']['per_dimension']['absent']}")
    info["notices"] = notices
    return _Plan(segments, rows.groups, size_labels, info, notices, pair_rows, loaded.row_name)


# --------------------------------------------------------------------------------------------- inferred preferences
INFERRED = "inferred"
"""`models[name][INFERRED]`: a model's results with the inferred preferences (`AlignmentEvalConfig.preferences`)."""
INFERRED_LABEL = " (inferred preferences)"
"""Appended to a model's name for its inferred-preferences panel in the breakdown plots."""


def check_preferences_rows(loaded: EvalRows, persona_format: str) -> None:
    """Refuse inferred preferences where no PBA prompt states a profile: MultiFacet rows, ready-rendered rows, ICA.

    Raises:
        `InputError`: One line saying why.
    """
    if loaded.data_format != "alignx":
        raise InputError(
            f"{loaded.where}: --preferences replaces the profile of PBA prompts, but these are {loaded.data_format} "
            "rows (feedback-history prompts, no profile); drop --preferences."
        )
    if loaded.rendered:
        raise InputError(
            f"{loaded.where}: --preferences replaces the profile of the PBA prompts rendered here, but these rows hold "
            f"ready-rendered prompts ({loaded.rendered}); evaluate the source rows."
        )
    if persona_format != "pba":
        raise InputError(
            f"--preferences states the inferred profile in PBA prompts; --persona-format {persona_format} shows the "
            "history itself: drop one of them."
        )


def pba_profile_example(row: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """A row's PBA preference example stating `profile` (the empty string for an all-neutral one) instead of the
    row's own: `pba_messages` and `preference_example`, as `render_row` renders a row with that `profile`."""
    return preference_example(pba_messages(row["prompt"], profile), row["chosen"], row["rejected"])


def _inferred_plan(
    loaded: EvalRows, rows: _Rows, plan: _Plan, profiles: Sequence[str], config: AlignmentEvalConfig
) -> _Plan:
    """The pairs scored with the inferred profiles: every row (and with `flip` its reversed persona: the inferred
    profile reversed, the pair swapped, as `reverse_alignx_row` reverses a row's `profile`), grouped as the gold
    pairs."""
    inferred = [{**row, "profile": profile} for row, profile in zip(rows.originals, profiles, strict=True)]
    segments = {"main": [pba_profile_example(row, row["profile"]) for row in inferred]}
    pair_rows = {"main": rows.indices}
    if config.flip:
        reversed_rows = [
            _reverse_alignx(row, loaded.row_name(index), "pba")
            for row, index in zip(inferred, rows.indices, strict=True)
        ]
        segments["main_reversed"] = [pba_profile_example(row, row["profile"]) for row in reversed_rows]
        pair_rows["main_reversed"] = rows.reversed_indices
    return _Plan(segments, plan.groups, [], {}, [], pair_rows, loaded.row_name)


def _inferred_info(preferences: InferredPreferences, profiles: Sequence[str]) -> dict[str, Any]:
    """`dataset["inferred_preferences"]`: where the inferred profiles come from and what was left gold-only."""
    meta = preferences.meta
    return {
        "folder": str(preferences.folder),
        "inferencer": meta.get("inferencer"),
        # inference.json written before the spec was recorded in its public form may hold a URL's credentials
        "model": public_spec(meta["model"]) if isinstance(meta.get("model"), str) else meta.get("model"),
        "num_rows": len(profiles),
        "num_empty_profiles": sum(not profile for profile in profiles),
        "persona_size": "not run with inferred preferences (each history size would need its own inference); the "
        "persona-size results are the gold profiles'.",
    }


def side_by_side(models: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """`results["models"]` with each model's inferred-preferences results as one more entry (its name plus
    `INFERRED_LABEL`) right after it, for the breakdown plots."""
    shown: dict[str, Mapping[str, Any]] = {}
    for name, result in models.items():
        shown[name] = result
        if result.get(INFERRED):
            shown[f"{name}{INFERRED_LABEL}"] = result[INFERRED]
    return shown


# ------------------------------------------------------------------------------------------------------- scoring
def _load_model(name: str, dtype: str) -> Any:
    """A policy or reference by name (its local folder checked by `evaluate_alignment` before any is loaded): only
    safetensors weights load, also from the Hub (`use_safetensors=True`: transformers never falls back to a pickled
    `pytorch_model.bin`)."""
    import torch
    from transformers import AutoModelForCausalLM

    require_local_path(name, "model")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(
        name, dtype="auto" if dtype == "auto" else getattr(torch, dtype), use_safetensors=True
    )
    return model.to(device)


def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    require_local_path(name, "model")
    return AutoTokenizer.from_pretrained(name)


def _check_same_tokenizer(tokenizer: Any, name: str, reference_name: str) -> None:
    other = _load_tokenizer(name)
    if other.get_vocab() != tokenizer.get_vocab() or other.chat_template != tokenizer.chat_template:
        raise InputError(
            f"the tokenizer of {name} differs from that of {reference_name} (vocabulary or chat template): log-probs "
            "under different tokenizations cannot be compared."
        )


def _pair_names(plan: _Plan, segment: str) -> Callable[[int], str]:
    """Names pair `i` of a segment for `score_pairs`' errors by the row behind it (`plan.name_row`: its file and line
    or row) and, in the persona-size segments, its persona size."""

    def name(pair: int) -> str:
        at = plan.name_row(plan.pair_rows[segment][pair]) if plan.name_row else f"pair {pair} (0-based)"
        return f"{at}, persona size {plan.size_labels[pair]}" if segment.startswith("sizes") else at

    return name


def _score_segments(
    model: Any, tokenizer: Any, plan: _Plan, config: AlignmentEvalConfig, cache: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:

    scores = {}
    for name, rows in plan.segments.items():
        try:
            result = score_pairs(
                model,
                tokenizer,
                rows,
                batch_size=config.batch_size,
                max_length=config.max_length,
                cache_dir=config.reference_cache_dir if cache else None,
                progress=config.progress,
                names=_pair_names(plan, name),
            )
        except ValueError as error:
            raise InputError(f"scoring the {_SEGMENTS[name]}: {error}") from None
        scores[name] = (np.asarray(result["chosen_logps"]), np.asarray(result["rejected_logps"]))
    return scores


def _metric_inputs(policy: Mapping, reference: Mapping, segment: str) -> dict[str, np.ndarray]:
    suffix = "_reversed" if segment.endswith("_reversed") else ""
    return {
        f"policy_chosen_logps{suffix}": policy[segment][0],
        f"policy_rejected_logps{suffix}": policy[segment][1],
        f"reference_chosen_logps{suffix}": reference[segment][0],
        f"reference_rejected_logps{suffix}": reference[segment][1],
    }


def _model_results(policy: Mapping, reference: Mapping, plan: _Plan, config: AlignmentEvalConfig) -> dict[str, Any]:
    inputs = _metric_inputs(policy, reference, "main")
    if config.flip:
        inputs |= _metric_inputs(policy, reference, "main_reversed")
    overall = compute_alignment_metrics(**inputs, beta=config.beta, groups=plan.groups)
    result = {"overall": {k: v for k, v in overall.items() if k != "groups"}}
    result |= {_GROUPS[name]: per_label for name, per_label in overall["groups"].items()}
    if "sizes" in policy:
        inputs = _metric_inputs(policy, reference, "sizes")
        if config.flip:
            inputs |= _metric_inputs(policy, reference, "sizes_reversed")
        per_size = compute_alignment_metrics(**inputs, beta=config.beta, groups={"persona_size": plan.size_labels})
        result["persona_size"] = per_size["groups"]["persona_size"]
    return result


def _named_models(models: Any) -> dict[str, Any]:
    if isinstance(models, Mapping):
        named = dict(models)
    elif isinstance(models, (str, Path)) or not isinstance(models, Sequence):
        named = {_model_name(models): models}
    else:
        named = {_model_name(model): model for model in models}
    if not named:
        raise InputError("no model to evaluate.")
    return named


def _model_name(model: Any) -> str:
    if isinstance(model, (str, Path)):
        return str(model)
    return str(getattr(model, "name_or_path", None) or type(model).__name__)


def evaluate_alignment(
    models: Any,
    reference: Any,
    dataset: Any,
    tokenizer: Any = None,
    config: AlignmentEvalConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Alignment accuracy of one or more policies on persona-conditioned preference pairs: overall, per dimension,
    per persona size and, with `config.flip`, under the reversed persona (flip rate).

    Each row is rendered as a persona-conditioned prompt (`config.persona_format`; ready-rendered rows are taken as
    they are), and its two responses are scored with `score_pairs` under every policy and under the reference, which
    is scored once and shared. The numbers are `compute_alignment_metrics`'s (strict `>` of the DPO reward margins,
    as TRL's `rewards/accuracies`):

    - `overall`: every row, with its full history;
    - `per_dimension`: AlignX pairs in every non-neutral dimension of their gold direction (rows without one: of
      their `profile` text, when it is a list of AlignX labels), MultiFacet rows in their `dimension`; empty when no
      row has either, with the reason in `dataset.breakdowns.per_dimension.absent`;
    - `per_persona`: AlignX rows by `ground_truth_persona` (benchmark rows), where the rows carry it;
    - `per_benchmark`: rows by source file, when the split's rows come from several files of a local folder (e.g.
      `p_soups.json` and `prism.json`);
    - `persona_size`: the rows with at least `max(config.persona_sizes)` history items, each rendered with a history
      of exactly each size (`personalign.evaluation.robustness`);
    - with `flip`: the reversed persona is `reverse_alignx_row` (AlignX; the ICA prompt drops the comments and
      demographics, which cannot be reversed) or the opposite user's row (MultiFacet, `reverse_multifacet`; rows
      without one are dropped and counted in `dataset.num_unpaired_dropped`).

    Args:
        models (`str`, `PreTrainedModel`, list or dict of them): The policies: local folders or Hub ids (loaded one
            at a time), or loaded models; a dict names them.
        reference (`str`, `PreTrainedModel` or `None`): The reference model of the DPO reward. `None` scores
            reference-free (reference log-probs 0: a pair is correct iff the policy gives the chosen response the
            higher log-prob), AlignX's protocol for models trained without a reference. (A policy passed as its
            own reference ties on every pair: accuracy 0.)
        dataset (`str`, `Path` or `datasets.Dataset`): See `load_eval_rows`.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): Shared by every model; loaded from the first model given
            by name by default. Tokenizers of models given by name must match it.
        config (`AlignmentEvalConfig`, *optional*): The settings.
        log (`Callable[[str], None]`, *optional*): Receives one line per step (the CLI prints them).

    With `config.preferences` (a folder of `personalign infer-preferences`), every row is scored a second time with
    its PBA prompt stating the profile inferred from its history instead of the gold one (the AlignX paper's
    inference-time PBA, §5): `models[name]["inferred"]` holds those results (`overall`, the same breakdowns, no
    `persona_size`) beside the gold ones, and `dataset["inferred_preferences"]` says where they come from.

    Returns:
        `dict`: `settings`, `dataset` (source, split, format, row counts, `breakdowns`: what each breakdown is
        grouped by or why it is absent, `notices`: what was skipped and why) and `models[name]` with `overall`,
        `per_dimension`, `per_persona` / `per_benchmark` (where available) and (with persona sizes) `persona_size`
        metrics, and with `config.preferences` the `inferred` block; JSON-serialisable.

    Raises:
        `InputError`: On bad settings or data (see `load_eval_rows`), mismatched tokenizers, or inferred preferences
            that do not match the rows or cannot be used with them (`check_preferences_rows`).

    Example:

    ```python
    >>> from personalign.evaluation import AlignmentEvalConfig, evaluate_alignment
    >>> results = evaluate_alignment(
    ...     "my-org/pba-model", "meta-llama/Llama-3.1-8B-Instruct", "JinaLeejnl/AlignX-test",
    ...     config=AlignmentEvalConfig(flip=True, persona_sizes=(2, 4, 8, 16)),
    ... )
    >>> results["models"]["my-org/pba-model"]["overall"]["flip_rate"]
    ```
    """
    config = config or AlignmentEvalConfig()
    log = log or logger.info
    named = _named_models(models)
    loaded = load_eval_rows(dataset, config.split, config.data_format, config.persona_format)
    data_format, split = loaded.data_format, loaded.split
    if loaded.rendered:
        persona_format = loaded.rendered
    else:
        persona_format = config.persona_format or PERSONA_FORMATS[data_format][0]
        row_renderer(data_format, persona_format)  # checks the persona format before any model is loaded
    preferences, profiles = None, None
    if config.preferences is not None:  # read and matched to the rows before any model is loaded
        check_preferences_rows(loaded, persona_format)
        preferences = load_inferred_preferences(config.preferences)
        profiles = preferences.profiles_for(loaded, config.limit)
    by_name = [str(m) for m in [*named.values(), reference] if isinstance(m, (str, Path))]
    for name in by_name:  # a missing folder, a damaged weight file or pickled weights fail before any scoring
        require_local_path(name, "model")
        check_model_folder(name, "model")
    if tokenizer is None:
        if not by_name:
            raise InputError("pass a tokenizer when every model is given as a loaded model.")
        tokenizer = _load_tokenizer(by_name[0])
    for name in by_name[1:]:
        _check_same_tokenizer(tokenizer, name, by_name[0])

    rows = _select_rows(loaded, persona_format, config)
    plan = _plan(loaded, persona_format, config, rows)
    plans = {"gold": plan}
    log(
        f"{plan.dataset['num_rows']} rows ({data_format}, {persona_format} prompts); "
        + ", ".join(f"{name} {len(pairs)} pairs" for name, pairs in plan.segments.items())
    )
    if preferences is not None:
        plans[INFERRED] = _inferred_plan(loaded, rows, plan, profiles, config)
        plan.dataset["inferred_preferences"] = _inferred_info(preferences, profiles)
        log(
            f"and each row with its inferred profile ({preferences.meta.get('inferencer')} inferencer, "
            f"{preferences.folder}): " + ", ".join(f"{n} {len(r)} pairs" for n, r in plans[INFERRED].segments.items())
        )
    for notice in plan.notices:
        log(f"notice: {notice}")
    if reference is None:
        reference_scores = {
            kind: {name: (np.zeros(len(r)), np.zeros(len(r))) for name, r in each.segments.items()}
            for kind, each in plans.items()
        }
    else:
        log(f"scoring the reference {_model_name(reference)}")
        reference_model = (
            _load_model(str(reference), config.dtype) if isinstance(reference, (str, Path)) else reference
        )
        reference_scores = {
            kind: _score_segments(reference_model, tokenizer, each, config, cache=True) for kind, each in plans.items()
        }
        del reference_model
        gc.collect()
    results: dict[str, Any] = {}
    for name, model in named.items():
        log(f"scoring {name}")
        policy = _load_model(str(model), config.dtype) if isinstance(model, (str, Path)) else model
        scored = {
            kind: _model_results(
                _score_segments(policy, tokenizer, each, config), reference_scores[kind], each, config
            )
            for kind, each in plans.items()
        }
        results[name] = scored["gold"]
        if INFERRED in scored:
            results[name][INFERRED] = scored[INFERRED]
        del policy
        gc.collect()

    settings = {
        "models": list(named),
        "reference": None if reference is None else _model_name(reference),
        "dataset": str(dataset) if isinstance(dataset, (str, Path)) else "<in memory>",
        **{k: v for k, v in asdict(config).items() if k not in ("progress", "reference_cache_dir")},
        "split": split,
        "persona_format": persona_format,
        "persona_sizes": list(config.persona_sizes),
        "personalign_version": __version__,
    }
    dataset_info = {"source": settings["dataset"], "where": loaded.where, "format": data_format, **plan.dataset}
    if loaded.rendered:
        dataset_info["rendered"] = loaded.rendered
    return {"settings": settings, "dataset": dataset_info, "models": results}


# ------------------------------------------------------------------------------------------------------- writing
def write_alignment_results(results: Mapping[str, Any], output_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write `results.json` and the plots (`persona_size.png` with persona sizes; `per_dimension.png`,
    `per_persona.png`, `per_benchmark.png` for the breakdowns the results have, with a panel for each model's inferred
    preferences beside its gold one) into `output_dir`, atomically (the folder appears whole or not at all).

    Returns:
        `list[Path]`: The files written.

    Raises:
        `OutputExistsError`: If `output_dir` exists and `overwrite` is False.
    """

    output_dir = Path(output_dir)
    names = [RESULTS_FILE]
    with atomic_output(output_dir, overwrite=overwrite) as folder:
        folder.mkdir()
        (folder / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        models = results["models"]
        if any(r.get("persona_size") for r in models.values()):
            plot_persona_size(models, folder / PERSONA_SIZE_PLOT)
            names.append(PERSONA_SIZE_PLOT)
        shown = side_by_side(models)  # a panel for the inferred preferences beside each model's gold one
        for key, plot in GROUP_PLOTS.items():
            if any(r.get(key) for r in shown.values()):
                plot_per_group(shown, folder / plot, key)
                names.append(plot)
    return [output_dir / name for name in names]


def update_model_card(
    card_path: str | Path, results: Mapping[str, Any], model: str | None = None, inferred: bool = False
) -> Path:
    """Put a model's overall results into a model card's `model-index`, each with its arguments: the dataset's split,
    format, persona format and row limit / length cut (`dataset_args`; ICA also whether demographics were shown) and
    beta and the reference (`metric_args`). A result measured again with the same arguments replaces its old value;
    every other result, the card's text and its other metadata are kept (`personalign.hub.cards`); a missing card is
    created.

    Args:
        card_path (`str` or `Path`): The card (a model folder's `README.md`).
        results (`Mapping`): The output of `evaluate_alignment`.
        model (`str`, *optional*): Whose results; required when `results` holds several models.
        inferred (`bool`, *optional*, defaults to `False`): Put the results with inferred preferences
            (`models[model]["inferred"]`) instead of the gold ones; their `dataset_args` say so (`preferences:
            inferred`, the inferencer and its model), so they sit beside the gold results instead of replacing them.

    Returns:
        `Path`: `card_path`.

    Raises:
        `InputError`: If `model` is missing or unknown, `inferred` is set for results without inferred preferences,
            or the existing card's metadata cannot be read.
    """
    models = results["models"]
    if model is None:
        if len(models) != 1:
            raise InputError(f"results hold {len(models)} models; say which one goes into the card.")
        model = next(iter(models))
    if model not in models:
        raise InputError(f"no results for {model!r}; results hold {', '.join(models)}.")
    data, settings, overall = results["dataset"], results["settings"], models[model]["overall"]
    dataset_args = {
        "format": data["format"],
        "persona_format": settings["persona_format"],
        "limit": settings.get("limit"),
        "max_length": settings.get("max_length"),
    }
    if inferred:
        if not models[model].get(INFERRED):
            raise InputError(f"the results of {model!r} hold no inferred preferences (evaluate with --preferences).")
        overall, source = models[model][INFERRED]["overall"], data["inferred_preferences"]
        dataset_args.update(preferences=INFERRED, inferencer=source["inferencer"], inferencer_model=source["model"])
    if settings["persona_format"] == "ica":
        dataset_args["include_demographics"] = settings.get("include_demographics", True)
    new = [
        EvalResult(
            task_type="text-generation",
            task_name="Personalized alignment (persona-conditioned preference pairs)",
            dataset_type=str(data["source"]),
            dataset_name=str(data["source"]),
            dataset_split=settings.get("split") or None,
            dataset_args=dataset_args,
            metric_type=metric,
            metric_value=round(float(overall[metric]), 4),
            metric_name=metric.replace("_", " "),
            # "none": reference-free (the implicit-reward form), spelled as `--reference none`
            metric_args={"beta": settings["beta"], "reference": settings["reference"] or "none"},
        )
        for metric in CARD_METRICS
        if metric in overall
    ]
    return add_results_to_card(
        card_path, new, Path(model).name, description="Evaluated with `personalign eval policy`."
    )
