"""What every training script shares: the method-neutral script arguments, the device policy, and the run around a
trainer (output folder checks, data splits, training, saving, the run record, the optional push)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl import get_peft_config

from ..data.loading import load_rows
from ..errors import InputError
from ..hub.auth import resolve_token
from ..hub.models import push_model
from ..hub.run_record import changed_fields, to_jsonable, write_run_record
from ..io import check_model_folder, checkpoint_to_resume, follow_umask, require_local_path


@dataclass
class ScriptArguments:
    """What a training run reads and how it starts, for every method (a method's script subclasses this to add its
    own fields, so a field of another method is an unknown option).

    Args:
        dataset_name (`str`, *optional*): Hub dataset id, or a local file (parquet / jsonl / json) or folder.
        dataset_config (`str`, *optional*): The dataset config (e.g. `pba` of a folder written by `build-dataset`).
        dataset_train_split (`str`, *optional*, defaults to `"train"`): The training split.
        dataset_test_split (`str`, *optional*): An evaluation split; evaluated at the end of training (and during it
            with the config's `eval_strategy`).
        max_train_samples (`int`, *optional*): Train on the first N rows only.
        resume (`bool`, *optional*, defaults to `False`): Continue from the last checkpoint in `output_dir`.
        overwrite (`bool`, *optional*, defaults to `False`): Start again even though `output_dir` holds a run.
    """

    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id, or a local parquet / jsonl / json file or folder."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Training split."})
    dataset_test_split: str | None = field(default=None, metadata={"help": "Evaluation split (optional)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on the first N rows only."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in output_dir."})
    overwrite: bool = field(default=False, metadata={"help": "Start again although output_dir holds a run."})


# ------------------------------------------------------------------------------------------------ device policy
def device_policy(values: dict[str, Any], cuda_available: bool, bf16_supported: bool) -> str | None:
    """Choose device and precision in a config's values before the config is built (`bf16=True` without a GPU is
    rejected there): on CPU, `use_cpu=True` in fp32; on a GPU, bf16 unless the GPU lacks it (then fp16).

    Args:
        values (`dict`): The config's keyword values; changed in place.
        cuda_available (`bool`): Whether a CUDA device is present.
        bf16_supported (`bool`): Whether that device supports bf16.

    Returns:
        `str` or `None`: A one-line notice when a setting was changed or a fallback taken.
    """
    if "bf16" not in values:  # not a TrainingArguments family config
        return None
    if not cuda_available:
        wanted_half = bool(values.get("bf16")) or bool(values.get("fp16"))
        values.update(use_cpu=True, bf16=False, fp16=False)
        return "no GPU found: training on CPU in fp32" + (" (bf16/fp16 switched off)" if wanted_half else "")
    if values.get("bf16") in (None, True) and not values.get("fp16") and not bf16_supported:
        values.update(bf16=False, fp16=True)
        return "this GPU has no bf16: training in fp16 mixed precision"
    if values.get("bf16") is None:
        values["bf16"] = not values.get("fp16")
    return None


def gpu_state() -> tuple[bool, bool]:
    """`(cuda_available, bf16_supported)` of this machine, as `device_policy` takes them."""
    cuda = torch.cuda.is_available()
    return cuda, bool(cuda and torch.cuda.is_bf16_supported())


def make_config(config_class: type, **values: Any) -> Any:
    """A training config from keyword values with the device policy applied, as `personalign train` builds it from
    a YAML file and flags (the Python route to the same run).

    Args:
        config_class (`type`): A `TrainingArguments` subclass (e.g. `PBAConfig`).
        **values: Its fields; the rest keep their defaults.

    Returns:
        An instance of `config_class`.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config_class) if f.name in ("bf16", "fp16")}
    values = {**defaults, **values}
    device_policy(values, *gpu_state())
    return config_class(**values)


# ------------------------------------------------------------------------------------------------------- a run
def start_run(
    method: str, script_args: ScriptArguments, training_args: Any, model_args: Any
) -> tuple[dict, str | None]:
    """The run record's first fields, and the token to push with at the end. A local model or persona encoder path
    that does not exist is refused now. With `training_args.push_to_hub` the token is checked now (failing before
    training, not after it) and the trainer's own pushes at every save are turned off: the folder is pushed once,
    with personalign's card, by `finish_run`.

    `training_args.hub_token` is taken out of the arguments (set to `None`): the trainer saves its arguments in every
    checkpoint's `training_args.bin`, and a token must never be saved.

    Returns:
        `tuple[dict, str | None]`: The record (method, base model, dataset, the hyperparameters and model settings that
        differ from their defaults) and the token to push with (`None`: no push).
    """
    # A missing local model or encoder folder fails here, naming it (the Hub client would talk about repo ids).
    require_local_path(model_args.model_name_or_path, "model")
    check_model_folder(model_args.model_name_or_path, "model")
    if getattr(script_args, "persona_encoder", None):
        require_local_path(script_args.persona_encoder, "persona encoder")
        check_model_folder(script_args.persona_encoder, "persona encoder")
    token = getattr(training_args, "hub_token", None)
    if token is not None:
        training_args.hub_token = None
    push_token = None
    if getattr(training_args, "push_to_hub", False):
        push_token = resolve_token(token)
        training_args.push_to_hub = False
    record = {
        "method": method,
        "base_model": model_args.model_name_or_path,
        "dataset": script_args.dataset_name,
        "dataset_config": script_args.dataset_config,
        "hyperparameters": changed_fields(training_args),
        "model_config": changed_fields(model_args),
    }
    return record, push_token


def finish_run(
    record: dict[str, Any], output_dir: str | Path, push_token: str | None, training_args: Any
) -> dict[str, Any]:
    """Write the run record (`personalign_run.json`, what `push-model` turns into a model card) into `output_dir`
    and, with a `push_token` (from `start_run`), push the folder with `push_model`.

    Returns:
        `dict`: The record, with `hub_url` after a push.
    """
    output_dir = Path(output_dir)
    write_run_record(output_dir, record)
    if push_token is not None:
        repo_id = training_args.hub_model_id or output_dir.name
        record["hub_url"] = push_model(output_dir, repo_id, token=push_token)
    return record


def check_output_dir(output_dir: str | Path, resume: bool, overwrite: bool) -> str | None:
    """Refuse to train over an earlier run unless asked to; with `resume`, find the checkpoint to continue from
    (`io.checkpoint_to_resume`: the last one, or the last complete one when the last was cut short by a
    kill during its save).

    Returns:
        `str` or `None`: The checkpoint to resume from (with `resume`), else `None`.

    Raises:
        `InputError`: If `resume` finds no checkpoint or a damaged last one (naming its file and the last intact
            checkpoint), or `output_dir` holds a run and neither `resume` nor `overwrite` is set.
    """
    output_dir = Path(output_dir)
    if resume:
        last = checkpoint_to_resume(output_dir)
        if last is None:
            raise InputError(f"--resume: no checkpoint found in {output_dir}.")
        return str(last)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise InputError(
            f"{output_dir} already holds a run; pass --resume true to continue it or --overwrite true to start again."
        )
    return None


def load_datasets(script_args: ScriptArguments) -> tuple[Any, Any]:
    """The training split (cut to `max_train_samples`) and the evaluation split (`None` without one)."""
    train = load_rows(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split)
    if script_args.max_train_samples is not None:
        train = train.select(range(min(script_args.max_train_samples, len(train))))
    evaluation = None
    if script_args.dataset_test_split:
        evaluation = load_rows(script_args.dataset_name, script_args.dataset_config, script_args.dataset_test_split)
    return train, evaluation


def trainer_kwargs(training_args: Any, model_args: Any, train_dataset: Any, eval_dataset: Any) -> dict[str, Any]:
    """The keyword arguments every TRL-style trainer takes: the model id (loaded by the trainer with the model
    settings of `model_args`, which are added to `training_args.model_init_kwargs`), the config, the data and the
    PEFT config of `model_args`."""
    model_kwargs = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": model_args.attn_implementation,
    }
    model_kwargs = {key: value for key, value in model_kwargs.items() if value is not None}
    training_args.model_init_kwargs = {**(training_args.model_init_kwargs or {}), **model_kwargs}
    return {
        "model": model_args.model_name_or_path,
        "args": training_args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "peft_config": get_peft_config(model_args),
    }


BuildTrainer = Callable[[Any, Any, Any, Any, Any], Any]
"""`build_trainer(script_args, training_args, model_args, train_dataset, eval_dataset) -> Trainer`."""


def train_and_save(
    method: str,
    script_args: ScriptArguments,
    training_args: Any,
    model_args: Any,
    build_trainer: BuildTrainer,
    save_extras: Callable[[Any, Any, Path], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train a trainer-based method and write its output folder: the model (and tokenizer), whatever `save_extras`
    adds, and the run record; push it when `training_args.push_to_hub`.

    Args:
        method (`str`): The method's registry name, recorded in the run record.
        script_args (`ScriptArguments`): The data and how to start (`resume`, `overwrite`).
        training_args: The method's config; `output_dir` is the output folder.
        model_args (`trl.ModelConfig`): The model id and its loading / PEFT settings.
        build_trainer (`BuildTrainer`): Builds the method's trainer from the parsed arguments and the data.
        save_extras (`Callable[[Trainer, ScriptArguments, Path], dict]`, *optional*): Saves what the method adds
            beside the model (DPORE's persona encoder) into the output folder and returns the fields to add to the
            run record.

    Returns:
        `dict`: The run record (method, base model, dataset, changed hyperparameters, train and eval metrics).
    """
    record, push_token = start_run(method, script_args, training_args, model_args)
    output_dir = Path(training_args.output_dir)
    record["output_dir"] = str(output_dir)
    last_checkpoint = check_output_dir(output_dir, script_args.resume, script_args.overwrite)
    train_dataset, eval_dataset = load_datasets(script_args)
    trainer = build_trainer(script_args, training_args, model_args, train_dataset, eval_dataset)
    result = trainer.train(resume_from_checkpoint=last_checkpoint)
    trainer.save_model(str(output_dir))
    if save_extras is not None:
        record.update(save_extras(trainer, script_args, output_dir))
    follow_umask(output_dir)  # safetensors writes its files 0600, checkpoints included
    record["train_metrics"] = to_jsonable(result.metrics)
    if eval_dataset is not None:
        record["eval_metrics"] = to_jsonable(trainer.evaluate())
    return finish_run(record, output_dir, push_token, training_args)
