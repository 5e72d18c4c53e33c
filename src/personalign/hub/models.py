"""Publishing trained checkpoints: the model card (method, base model, datasets, hyperparameters, `model-index`) and
`push-model` (the Hub, or a local folder with the exact same layout).

A folder written by `personalign train` holds the weights (policy or reward model, plus DPORE's
`dpore_projection.safetensors` and `persona_encoder/`), the tokenizer, and `personalign_run.json`; the card is built
from that record, never from the trainer's pickled `training_args.bin`, which is not published either.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ..methods import METHODS, get_method
from .auth import HubError, redact_token
from .cards import render_card
from .run_record import RUN_RECORD

IGNORED_FILES = (
    "checkpoint-*",
    "training_args.bin",
    "*.pt",
    "*.pth",
    "runs",
    "README.md",
    ".*",
)
"""Not published: checkpoints, pickles (training args, optimizer, RNG states), logs, hidden files and the old card
(the generated one replaces it)."""

FILE_NOTES = {"alignment_eval.json": "alignment accuracy and flip rate from `personalign eval`"}
"""Files any trained folder may hold, with the line the card says about each (a method's own are in its registry
entry, `Method.files`)."""

EVAL_METRIC_NAMES = {
    "eval_rewards/accuracies": ("alignment_accuracy", "Alignment accuracy (DPO reward accuracy)"),
    "eval_accuracy": ("accuracy", "Preference accuracy"),
}


def read_run_record(folder: str | Path) -> dict[str, Any]:
    """The `personalign_run.json` of a trained folder."""
    path = Path(folder) / RUN_RECORD
    if not path.is_file():
        raise ValueError(f"{folder}: no {RUN_RECORD}; push-model publishes folders written by `personalign train`.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(record, dict) or record.get("method") not in METHODS:
        raise ValueError(f"{path}: expected a run record with 'method' one of {', '.join(METHODS)}.")
    return record


def card_results(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evaluation results of a run as flat entries `{dataset, split, type, name, value}`: the trainer's end-of-run
    evaluation and every result added by `personalign eval` (`record["results"]`)."""
    results = []
    split = record.get("eval_split") or "test"
    for key, (metric_type, name) in EVAL_METRIC_NAMES.items():
        value = (record.get("eval_metrics") or {}).get(key)
        if value is not None:
            results.append(
                {"dataset": record["dataset"], "split": split, "type": metric_type, "name": name, "value": value}
            )
    results += [dict(entry) for entry in record.get("results", [])]
    return results


def existing_card_results(card_path: str | Path) -> list[dict[str, Any]]:
    """The `model-index` results already in a card (e.g. added by `personalign eval --model-card`), as flat entries;
    none when there is no card or it has no results."""
    from huggingface_hub import ModelCard

    card_path = Path(card_path)
    if not card_path.is_file():
        return []
    try:
        data = ModelCard.load(card_path).data
    except ValueError:  # a README without (valid) metadata
        return []
    return [
        {
            "dataset": result.dataset_name or result.dataset_type,
            "split": result.dataset_split or "test",
            "type": result.metric_type,
            "name": result.metric_name or result.metric_type,
            "value": result.metric_value,
        }
        for result in (data.eval_results or [])
    ]


def merge_results(*groups: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (dataset, split, metric type); a later group replaces an earlier one's value."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for group in groups:
        for entry in group:
            merged[(str(entry["dataset"]), str(entry["split"]), str(entry["type"]))] = dict(entry)
    return list(merged.values())


def model_index(name: str, results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The card's `model-index` (the Hub's evaluation-results metadata), one entry per dataset and split."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for result in results:
        grouped.setdefault((result["dataset"], result["split"]), []).append(result)
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "text-generation", "name": "Personalized preference alignment"},
                    "dataset": {"name": dataset, "type": dataset, "split": split},
                    "metrics": [
                        {"type": entry["type"], "value": round(float(entry["value"]), 4), "name": entry["name"]}
                        for entry in entries
                    ],
                }
                for (dataset, split), entries in grouped.items()
            ],
        }
    ]


def model_card(folder: str | Path, repo_id: str | None = None) -> str:
    """The README.md for a trained folder, from its run record (see `model_cards/model_card.md.j2`)."""
    folder = Path(folder)
    record = read_run_record(folder)
    method = get_method(record["method"])
    spec = method.card
    if spec is None:
        raise ValueError(f"{folder}: a {method.name} run writes its own card; there is no method card to render.")
    results = merge_results(card_results(record), existing_card_results(folder / "README.md"))
    name = repo_id.split("/")[-1] if repo_id else folder.name
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": spec.pipeline_tag,
        "tags": ["personalign", method.name, "personalization", "trl"],
        "license": "apache-2.0",
    }
    if record.get("base_model") and not Path(record["base_model"]).exists():
        metadata["base_model"] = record["base_model"]
    if record.get("dataset") and not Path(record["dataset"]).exists():
        metadata["datasets"] = [record["dataset"]]
    if results:
        metadata["model-index"] = model_index(name, results)
    return render_card(
        "model_card.md.j2",
        metadata,
        name=f"{name} ({spec.title})",
        description=spec.description,
        method=method.name,
        base_model=record.get("base_model"),
        dataset=record.get("dataset"),
        dataset_config=record.get("dataset_config"),
        usage=spec.usage.format(repo=repo_id or "<this repo or folder>"),
        files={file: note for file, note in {**method.files, **FILE_NOTES}.items() if (folder / file).exists()},
        hyperparameters=record.get("hyperparameters", {}),
        model_config=record.get("model_config", {}),
        results=results,
        citation=method.citation,
    )


def _published(folder: Path) -> list[Path]:
    """The files of `folder` that are published (relative paths), skipping `IGNORED_FILES` at any depth."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(fnmatch(part, pattern) for part in relative.parts for pattern in IGNORED_FILES):
            continue
        if path.is_file():
            files.append(relative)
    return files


def _card_for(folder: Path, repo_id: str | None) -> str:
    record = read_run_record(folder)
    if record["method"] == "encoder":  # `train encoder` already wrote the encoder's own card
        return (folder / "README.md").read_text(encoding="utf-8")
    return model_card(folder, repo_id)


def export_model(folder: str | Path, target: str | Path, overwrite: bool = False, repo_id: str | None = None) -> Path:
    """Write the exact layout `push_model` uploads (published files + generated card) to a local folder,
    atomically. `from_pretrained(target)` then loads it as it would load the Hub repo."""
    from ..io import atomic_output

    folder = Path(folder)
    card = _card_for(folder, repo_id)
    with atomic_output(target, overwrite) as staging:
        for relative in _published(folder):
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / relative, destination)
        (staging / "README.md").write_text(card, encoding="utf-8")
    return Path(target)


def push_model(
    folder: str | Path, repo_id: str, token: str | None = None, private: bool = False, revision: str | None = None
) -> str:
    """Push a trained folder to a Hub model repo: weights, tokenizer, DPORE's head and encoder, the run record and a
    generated model card, in one commit. The token comes from the argument, `HF_TOKEN` or the saved login, and is
    never printed.

    Returns:
        `str`: The URL of the commit.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from .auth import resolve_token

    folder = Path(folder)
    card = _card_for(folder, repo_id)
    token = resolve_token(token)
    api = HfApi(token=token)
    operations = [
        CommitOperationAdd(path_in_repo=relative.as_posix(), path_or_fileobj=str(folder / relative))
        for relative in _published(folder)
    ]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id, operations, commit_message="Upload with personalign push-model", revision=revision
        )
    except HfHubHTTPError as error:
        raise HubError(f"pushing to {repo_id} failed: {redact_token(str(error), token)}") from None
    except (ConnectionError, OSError) as error:
        raise HubError(f"the Hugging Face Hub is unreachable ({type(error).__name__}); the push stopped.") from None
    return str(commit.commit_url)
