"""Publishing trained checkpoints: the model card (method, base model, datasets, hyperparameters, `model-index`) and
`push-model` (the Hub, or a local folder with the exact same layout).

A folder written by `personalign train` holds the weights (policy or reward model, plus DPORE's
`projection_head/` and `persona_encoder/`), the tokenizer, and `personalign_run.json`; the card is built
from that record, never from the trainer's pickled `training_args.bin`, which is not published either.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub import CommitOperationAdd, EvalResult, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from ..errors import InputError, network_error_types
from ..io import atomic_output, one_line, safetensors_problem
from ..methods import get_method
from .auth import HubError, redact_token, resolve_token
from .cards import merge_results, read_card_results, render_model_card
from .run_record import read_run_record

PUBLISHED_SUFFIXES = (".safetensors", ".json", ".jinja", ".txt", ".model")
"""What is published, by suffix (an allow-list): weights as safetensors, configs and tokenizer files (JSON, a chat
template, vocab / merges text, a sentencepiece model). Anything else (pickles such as `training_args.bin`,
`pytorch_model.bin`, `optimizer.pt`, `random_states_0.pkl`; logs) stays behind, whatever its name."""

SKIPPED_PARTS = ("checkpoint-*", "runs", ".*", "README.md")
"""Never published, at any depth: checkpoints, logs, hidden files and the old card (the generated one replaces
it)."""

FILE_NOTES = {"alignment_eval.json": "alignment accuracy and flip rate from `personalign eval policy`"}
"""Files any trained folder may hold, with the line the card says about each (a method's own are in its registry
entry, `Method.files`)."""

EVAL_METRIC_NAMES = {
    "eval_rewards/accuracies": ("alignment_accuracy", "Alignment accuracy (DPO reward accuracy)"),
    "eval_accuracy": ("accuracy", "Preference accuracy"),
}
"""The trainer's end-of-run metrics a card reports: metric key -> (`model-index` metric type, metric name)."""


def run_results(record: Mapping[str, Any]) -> list[EvalResult]:
    """The trainer's end-of-run evaluation of a run (`record["eval_metrics"]`) as card results, on the run's dataset,
    config and evaluation split (`eval_split`, else `"test"`), rounded to 4 decimals."""
    metrics = record.get("eval_metrics") or {}
    return [
        EvalResult(
            task_type="text-generation",
            task_name="Personalized preference alignment",
            dataset_type=record["dataset"],
            dataset_name=record["dataset"],
            dataset_config=record.get("dataset_config"),
            dataset_split=record.get("eval_split") or "test",
            metric_type=metric_type,
            metric_value=round(float(metrics[key]), 4),
            metric_name=name,
        )
        for key, (metric_type, name) in EVAL_METRIC_NAMES.items()
        if metrics.get(key) is not None
    ]


def model_card(folder: str | Path, repo_id: str | None = None) -> str:
    """The README.md for a trained folder, from its run record and the registry entry of its method (see
    `model_cards/model_card.md.j2`), with every result: the trainer's end-of-run evaluation and those already in the
    folder's card (added by `personalign eval --model-card` or by hand), each with its arguments.

    Raises:
        `InputError`: If the folder has no valid run record, its method writes its own card, or its card's metadata
            cannot be read.
    """
    folder = Path(folder)
    record = read_run_record(folder)
    method = get_method(record["method"])
    spec = method.card
    if spec is None:
        raise InputError(f"{folder}: a {method.name} run writes its own card; there is no method card to render.")
    results = merge_results(run_results(record), read_card_results(folder / "README.md"))
    name = repo_id.split("/")[-1] if repo_id else folder.name
    base_model, dataset = record.get("base_model"), record.get("dataset")
    general = record.get("general_data")  # general preference data mixed in (`scripts.utils.mix_general_rows`)
    hub_datasets = [d for d in (dataset, (general or {}).get("dataset")) if d and not Path(d).exists()]
    data = ModelCardData(
        # A local path is not a Hub id: the metadata names only Hub ids (the body names both).
        base_model=base_model if base_model and not Path(base_model).exists() else None,
        datasets=hub_datasets or None,
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag=spec.pipeline_tag,
        tags=["personalign", method.name, "personalization", "trl"],
    )
    return render_model_card(
        "model_card.md.j2",
        data,
        name,
        results,
        name=f"{name} ({spec.title})",
        description=spec.description,
        method=method.name,
        base_model=base_model,
        dataset=dataset,
        dataset_config=record.get("dataset_config"),
        general_data=general,
        usage=spec.usage.format(repo=repo_id or "<this repo or folder>"),
        files={file: note for file, note in {**method.files, **FILE_NOTES}.items() if (folder / file).exists()},
        hyperparameters=record.get("hyperparameters", {}),
        model_config=record.get("model_config", {}),
        citation=method.citation,
    )


def published_files(folder: Path) -> list[Path]:
    """The files of `folder` that are published (relative paths): those with a `PUBLISHED_SUFFIXES` suffix outside
    `SKIPPED_PARTS`, each checked to load (a safetensors file's header and size, a JSON file's syntax), so that a
    half-written file is never published.

    Raises:
        `InputError`: If a file to publish does not load, naming it.
    """
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(fnmatch(part, pattern) for part in relative.parts for pattern in SKIPPED_PARTS):
            continue
        if path.is_file() and path.suffix in PUBLISHED_SUFFIXES:
            check_loads(path)
            files.append(relative)
    return files


def check_loads(path: Path) -> None:
    """Open a file as what its suffix says: safetensors (header, and every tensor's bytes present) or JSON.

    Raises:
        `InputError`: If it does not load, naming it.
    """
    reason = None
    if path.suffix == ".safetensors":
        reason = safetensors_problem(path)
    elif path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            reason = one_line(error)
    if reason is not None:
        raise InputError(f"{path}: does not load ({reason}); nothing was published.")


def _card_for(folder: Path, repo_id: str | None) -> str:
    """The card to publish: the generated one, or the folder's own for a method that writes its own (the encoder)."""
    if get_method(read_run_record(folder)["method"]).card is None:
        return (folder / "README.md").read_text(encoding="utf-8")
    return model_card(folder, repo_id)


def export_model(folder: str | Path, target: str | Path, overwrite: bool = False, repo_id: str | None = None) -> Path:
    """Write the exact layout `push_model` uploads (published files + generated card) to a local folder,
    atomically. `from_pretrained(target)` then loads it as it would load the Hub repo."""
    folder = Path(folder)
    card = _card_for(folder, repo_id)
    with atomic_output(target, overwrite) as staging:
        for relative in published_files(folder):
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
    folder = Path(folder)
    card = _card_for(folder, repo_id)
    token = resolve_token(token)
    api = huggingface_hub.HfApi(token=token)  # looked up at call time, so a stand-in client can replace it
    operations = [
        CommitOperationAdd(path_in_repo=relative.as_posix(), path_or_fileobj=str(folder / relative))
        for relative in published_files(folder)
    ]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id, operations, commit_message="Upload with personalign push-model", revision=revision
        )
    except HfHubHTTPError as error:
        raise HubError(f"pushing to {repo_id} failed: {redact_token(str(error), token)}") from None
    except (OSError, *network_error_types()) as error:
        raise HubError(f"the Hugging Face Hub is unreachable ({type(error).__name__}); the push stopped.") from None
    return str(commit.commit_url)
