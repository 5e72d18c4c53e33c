"""The one card writer: every model card and dataset card personalign writes is made here.

Metadata is built with huggingface_hub's card classes (`ModelCardData`, `DatasetCardData`) and evaluation results are
`EvalResult`s, so a card reads back with `ModelCard.load` / `DatasetCard.load`. Card bodies are the Jinja templates
of `model_cards/` (installed as `personalign.model_cards`). Callers say what they know: `hub.models` (trained
folders, `push-model`), `encoder.pipeline` (the persona encoder), `evaluation.runner` (`eval policy --model-card`) and the
dataset builders (`DatasetCardSpec`).

Every result keeps its arguments (dataset config, split, dataset args such as the persona format, metric args such as
beta), and merging keys on all of them (`result_identity`): a re-run of the same evaluation replaces its old value,
anything else is kept.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from datasets import DatasetDict
from huggingface_hub import CardData, DatasetCardData, EvalResult, ModelCard, ModelCardData, metadata_load

from .. import __version__
from ..errors import InputError
from ..io import atomic_output
from .datasets import split_num_bytes

_VALUE_FIELDS = ("metric_value", "verify_token")
"""`EvalResult` fields that carry a result's value rather than say what was measured (the Hub derives
`verify_token` from the value)."""

_METRIC_FIELDS = {
    "metric_type": "type",
    "metric_value": "value",
    "metric_name": "name",
    "metric_config": "config",
    "metric_args": "args",
    "verified": "verified",
    "verify_token": "verifyToken",
}
"""`EvalResult` fields that belong to one metric of a `model-index` entry, with their `model-index` keys."""


# ------------------------------------------------------------------------------------------------- templates
def _compact(value: Any) -> Any:
    """`value` without `None` and empty mappings, recursively: what a `model-index` entry keeps of it."""
    if isinstance(value, Mapping):
        kept = {key: _compact(item) for key, item in value.items() if item is not None}
        return {key: item for key, item in kept.items() if item != {}}
    if isinstance(value, (list, tuple)):
        return [_compact(item) for item in value if item is not None]
    return value


def _metadata_yaml(metadata: Mapping[str, Any]) -> str:
    """The YAML between a card's `---` lines, keys in the given order."""
    return yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=True)


def _render(template_name: str, metadata: Mapping[str, Any], **context: Any) -> str:
    """Render a template of `model_cards/` with `metadata` as its YAML front matter (`metadata_yaml`) and the library
    version (`version`); an unknown template variable is an error, not an empty string."""
    template = resources.files("personalign.model_cards").joinpath(template_name).read_text("utf-8")
    environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(template).render(
        metadata_yaml=_metadata_yaml(metadata),
        version=__version__,
        **context,
    )


# ----------------------------------------------------------------------------------------- evaluation results
def result_identity(result: EvalResult) -> str:
    """What a result measured, as a comparable string: every field of the `EvalResult` except its value (task,
    dataset name / type / config / split / revision / args, metric type / name / config / args, source), with
    `None` and empty arguments left out as the `model-index` leaves them out.

    Two results with the same identity are the same evaluation run again; `merge_results` keeps the later value.
    """
    described = {f.name: getattr(result, f.name) for f in fields(EvalResult) if f.name not in _VALUE_FIELDS}
    return json.dumps(_compact(described), sort_keys=True, default=str)


def merge_results(*groups: Iterable[EvalResult]) -> list[EvalResult]:
    """Merge groups of results on their full identity (`result_identity`): a later group's result replaces an earlier
    one that measured the same thing with the same arguments, in its place; every other result is kept."""
    merged: dict[str, EvalResult] = {}
    for group in groups:
        for result in group:
            merged[result_identity(result)] = result
    return list(merged.values())


def model_index(model_name: str, results: Sequence[EvalResult]) -> list[dict[str, Any]]:
    """The `model-index` of a card (the Hub's evaluation-results metadata): one entry per task, dataset (with its
    config, split, revision and args) and source, holding its metrics with their args.

    Not `huggingface_hub`'s `eval_results_to_model_index`, which groups on (task type, dataset type, config, split,
    revision) and writes the first result's dataset args for the whole group: results that differ only in their
    dataset args (a PBA and an ICA evaluation of one dataset) would lose theirs. Each entry here reads back as the
    same `EvalResult`s with `ModelCard.load` (`model_index_to_eval_results`).
    """
    entries: dict[str, dict[str, Any]] = {}
    for result in results:
        entry = _compact(
            {
                "task": {"type": result.task_type, "name": result.task_name},
                "dataset": {
                    "name": result.dataset_name,
                    "type": result.dataset_type,
                    "config": result.dataset_config,
                    "split": result.dataset_split,
                    "revision": result.dataset_revision,
                    "args": result.dataset_args,
                },
                "source": {"name": result.source_name, "url": result.source_url},
            }
        )
        metric = _compact({key: getattr(result, name) for name, key in _METRIC_FIELDS.items()})
        group = entries.setdefault(json.dumps(entry, sort_keys=True, default=str), {**entry, "metrics": []})
        group["metrics"].append(metric)
    return [{"name": model_name, "results": list(entries.values())}]


def read_card_results(card_path: str | Path) -> list[EvalResult]:
    """The `model-index` results of a card (written by personalign or by hand), with their arguments, read with
    `ModelCard.load`; none when there is no card or it has no results.

    Raises:
        `InputError`: If the card's metadata or `model-index` cannot be read, naming the file.
    """
    card_path = Path(card_path)
    if not card_path.is_file():
        return []
    return list(_load_model_card(card_path).data.eval_results or [])


def _load_model_card(card_path: Path) -> ModelCard:
    try:
        return ModelCard.load(card_path)
    except (ValueError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{card_path}: its metadata could not be read ({reason}); fix or remove it.") from None


def _arguments(result: EvalResult) -> str:
    """A result's arguments for the card's results table: `config=..., key=value, ...`."""
    parts = {"config": result.dataset_config} if result.dataset_config else {}
    for args in (result.dataset_args, result.metric_args):
        parts.update(args if isinstance(args, Mapping) else {"args": args} if args else {})
    return ", ".join(f"{key}={value}" for key, value in parts.items() if value is not None)


def results_table(results: Sequence[EvalResult]) -> list[dict[str, str]]:
    """One row per result for a card body's results table: dataset, split, metric, arguments, value (4 decimals)."""
    return [
        {
            "dataset": str(result.dataset_name or result.dataset_type),
            "split": str(result.dataset_split or ""),
            "metric": str(result.metric_name or result.metric_type),
            "arguments": _arguments(result),
            "value": f"{result.metric_value:.4f}"
            if isinstance(result.metric_value, (int, float))
            else str(result.metric_value),
        }
        for result in results
    ]


# ----------------------------------------------------------------------------------------------- model cards
def card_metadata(data: CardData, model_name: str | None = None, results: Sequence[EvalResult] = ()) -> dict:
    """A card's YAML metadata: `data` (tags, base_model, datasets, pipeline_tag, library_name, license, ...) plus the
    `model-index` of `results` (see `model_index`), which replaces any results `data` holds."""
    data = copy.copy(data)
    if isinstance(data, ModelCardData):
        data.eval_results = None
        if results:
            model_name = model_name or data.model_name
            data.model_name = None  # the model-index carries it, as the Hub's own writer does
    metadata = data.to_dict()
    if results:
        if not model_name:
            raise InputError("a card with evaluation results needs a model name for its model-index.")
        metadata["model-index"] = model_index(model_name, results)
    return metadata


def render_model_card(
    template_name: str,
    data: ModelCardData,
    model_name: str,
    results: Sequence[EvalResult] = (),
    **context: Any,
) -> str:
    """A model card: `card_metadata(data, model_name, results)` as YAML front matter and a body rendered from a
    template of `model_cards/`.

    Args:
        template_name (`str`): The body template, e.g. `"model_card.md.j2"`.
        data (`ModelCardData`): The card's metadata (tags, base_model, datasets, pipeline_tag, library_name, ...).
        model_name (`str`): The model's name in the `model-index`.
        results (`Sequence[EvalResult]`, *optional*): The evaluation results, with their arguments.
        **context: The template's variables; `evaluation` (the rows of `results_table(results)`) and `version` are
            added.

    Returns:
        `str`: The README.md text.
    """
    metadata = card_metadata(data, model_name, results)
    return _render(template_name, metadata, evaluation=results_table(results), **context)


def check_card_path(card_path: str | Path) -> Path:
    """Check, before any work, that results can be written into the model card at `card_path`: a Markdown file
    (existing or new) in an existing folder, whose metadata, if it exists, can be read.

    Returns:
        `Path`: `card_path`.

    Raises:
        `InputError`: If `card_path` is a folder (a model folder's card is its `README.md`), its folder does not
            exist, or the existing card's metadata cannot be read; naming the path.
    """
    card_path = Path(card_path)
    if card_path.is_dir():
        raise InputError(f"{card_path} is a folder; the model card is a file (e.g. {card_path / 'README.md'}).")
    if not card_path.parent.is_dir():
        raise InputError(f"{card_path}: its folder {card_path.parent} does not exist.")
    if card_path.is_file():
        _load_model_card(card_path)
    return card_path


def add_results_to_card(
    card_path: str | Path, results: Sequence[EvalResult], model_name: str, description: str = ""
) -> Path:
    """Add results to a model card's `model-index`, keeping its text, its other metadata and every result it holds
    except those the new ones measure again with the same arguments (`merge_results`). A missing card is created
    with a title and `description`. The card is replaced in one rename.

    The other metadata is the card's YAML as it is (`huggingface_hub.metadata_load`), every key and value kept in
    its order; only `model-index` is replaced (or appended). Not `ModelCardData.to_dict`, which drops a
    `model_name:` key once there are results (the Hub's writer moves it into the `model-index` name) and, on
    loading, overwrites it with the `model-index` name.

    Args:
        card_path (`str` or `Path`): The card (a model folder's `README.md`).
        results (`Sequence[EvalResult]`): The new results, with their arguments.
        model_name (`str`): The model's name in the `model-index` when the card does not name it already.
        description (`str`, *optional*): The text of a newly created card, under its title.

    Returns:
        `Path`: `card_path`.

    Raises:
        `InputError`: As `check_card_path` (a folder, a missing folder, unreadable metadata), naming the path.
    """
    card_path = check_card_path(card_path)
    if card_path.is_file():
        card = _load_model_card(card_path)
        data, body = card.data, card.text
        existing = metadata_load(card_path) or {}
    else:
        data, body = ModelCardData(), f"\n# {model_name}\n" + (f"\n{description}\n" if description else "")
        existing = {}
    merged = merge_results(data.eval_results or [], results)
    # the model-index's own name, else the card's `model_name:` (`ModelCardData` reads it so), else the caller's
    metadata = {**existing, "model-index": model_index(data.model_name or model_name, merged)}
    text = f"---\n{_metadata_yaml(metadata)}---\n{body}"
    with atomic_output(card_path, overwrite=True) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return card_path


# --------------------------------------------------------------------------------------------- dataset cards
@dataclass
class DatasetCardSpec:
    """What a dataset card says beyond the data itself.

    Args:
        pretty_name (`str`): Title of the card.
        summary (`str`): One paragraph on what the dataset is.
        source (`str`): Where the data came from (Hub id or local path).
        descriptions (`dict[str, str]`): One line per config.
        provenance (`dict[str, Any]`): Build settings (seed, thresholds, T, ...), rendered as a list.
        license (`str`): SPDX id for the YAML header (`"other"` when the source's license is not known).
        license_text (`str`): The license section's text.
        citations (`list[str]`): BibTeX entries.
        tags (`list[str]`): Extra Hub tags.
    """

    pretty_name: str
    summary: str
    source: str
    descriptions: dict[str, str]
    provenance: dict[str, Any] = field(default_factory=dict)
    license: str = "other"
    license_text: str = "See the source dataset's card for its license; this derived dataset inherits it."
    citations: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def render_dataset_card(configs: Mapping[str, DatasetDict], spec: DatasetCardSpec) -> str:
    """The README.md of a built dataset: `DatasetCardData` metadata (with `configs` pointing at the shard files and
    the `dataset_info` that `push_to_hub` would record) and a body rendered from `model_cards/dataset_card.md.j2`.

    Features are written with `datasets`' internal `Features._to_yaml_list` (the format `push_to_hub` writes and
    `load_dataset` reads); pinned by `tests/test_dataset_publishing.py::test_card_has_configs_provenance_license_and_
    citation`.
    """
    names = list(configs)
    card_data = DatasetCardData(
        language=["en"],
        license=spec.license,
        pretty_name=spec.pretty_name,
        task_categories=["text-generation"],
        tags=["personalization", "alignment", "preference", "personalign", *spec.tags],
        configs=[
            {
                "config_name": name,
                "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in configs[name]],
                **({"default": True} if index == 0 else {}),
            }
            for index, name in enumerate(names)
        ],
        # The features and sizes `push_to_hub` would record, so a local folder's card is complete too. `datasets`
        # reads a split entry only with all of name / num_bytes / num_examples (else it logs "Ignoring part of
        # dataset_info ... malformed" on every load).
        dataset_info=[
            {
                "config_name": name,
                "features": next(iter(configs[name].values())).features._to_yaml_list(),
                "splits": [
                    {"name": split, "num_bytes": split_num_bytes(data), "num_examples": len(data)}
                    for split, data in configs[name].items()
                ],
                "dataset_size": sum(split_num_bytes(data) for data in configs[name].values()),
            }
            for name in names
        ],
        license_name="source-license" if spec.license == "other" else None,
    )
    return _render(
        "dataset_card.md.j2",
        card_metadata(card_data),
        pretty_name=spec.pretty_name,
        summary=spec.summary,
        source=spec.source,
        configs=[
            {
                "name": name,
                "description": spec.descriptions.get(name, ""),
                "columns": list(next(iter(configs[name].values())).column_names),
                "splits": [{"name": split, "rows": len(data)} for split, data in configs[name].items()],
            }
            for name in names
        ],
        provenance=spec.provenance,
        license_text=spec.license_text,
        citations=spec.citations,
    )
