"""What every training script shares: the method-neutral script arguments, the device policy, and the run around a
trainer (output folder checks, data splits, training, saving, the run record, the optional push)."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset, concatenate_datasets
from trl import get_peft_config

from ..data.alignx import check_alignx_rows
from ..data.loading import DatasetSource, RowNames, load_source, require_columns, value_kind
from ..errors import InputError
from ..hub.auth import resolve_token
from ..hub.models import push_model
from ..hub.run_record import (
    changed_fields,
    logged_before,
    set_aside_earlier_run,
    to_jsonable,
    whole_run_train_metrics,
    write_run_record,
)
from ..io import (
    check_model_folder,
    check_run_unfinished,
    checkpoint_to_resume,
    ensure_writable,
    follow_umask,
    require_local_path,
)
from ..trainers.alignx_trainer import has_raw_personas


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
        general_dataset_name (`str`, *optional*): General (non-personal) preference data mixed into the training
            split, as the DPORE paper mixes UltraFeedback into Preferred-SFT, DPO and DPORE (§4.1): a Hub id, file or
            folder of TRL preference rows (explicit prompt, or implicit in `chosen` / `rejected` as in
            UltraFeedback-binarized; standard or conversational). Its rows carry no persona: DPORE's regularizer never
            touches them. Only `sft`, `dpo` and `dpore` mix general data (see `mix_general_rows`).
        general_dataset_config (`str`, *optional*): The general dataset's config.
        general_dataset_split (`str`, *optional*, defaults to `"train"`): The general dataset's split.
        general_share (`float`, *optional*, defaults to `0.0`): The share of the training rows drawn from the general
            data, in [0, 1): `round(n_personal * share / (1 - share))` general rows, sampled without replacement with
            the run's `seed` (too few general rows is refused). The evaluation split is not mixed.

    Raises:
        `InputError`: If `general_share` is outside [0, 1), or above 0 without `general_dataset_name`.
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
    general_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "General (non-personal) preference data mixed into training, without persona (the DPORE paper "
            "mixes UltraFeedback in): Hub id, file or folder of TRL preference rows (explicit or implicit prompt)."
        },
    )
    general_dataset_config: str | None = field(default=None, metadata={"help": "The general dataset's config."})
    general_dataset_split: str = field(default="train", metadata={"help": "The general dataset's split."})
    general_share: float = field(
        default=0.0,
        metadata={
            "help": "Share of the training rows drawn from the general data, in [0, 1): n_personal * share / (1 - "
            "share) rows, sampled without replacement with the run's seed."
        },
    )

    def __post_init__(self) -> None:
        check_general_arguments(self)


def check_general_arguments(script_args: ScriptArguments) -> None:
    """The general-data script arguments make sense together: `general_share` in [0, 1) (NaN refused), and above
    0 only with a `general_dataset_name`.

    Args:
        script_args (`ScriptArguments`): The parsed script arguments.

    Raises:
        `InputError`: `"general_share must be in [0, 1) (the share of the training rows drawn from the general data),
            got 1.0."`, or a share without general data.
    """
    share = script_args.general_share
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise InputError(
            f"general_share must be in [0, 1) (the share of the training rows drawn from the general data), got "
            f"{share!r}."
        )
    if share > 0 and not script_args.general_dataset_name:
        raise InputError(f"general_share is {share} but no general_dataset_name is set: name the general data.")


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
    method: str, script_args: ScriptArguments, training_args: Any, model_args: Any, mixes_general: bool = False
) -> tuple[dict, str | None]:
    """The run record's first fields, and the token to push with at the end. A local model or persona encoder path
    that does not exist is refused now. With `training_args.push_to_hub` the token is checked now (failing before
    training, not after it) and the trainer's own pushes at every save are turned off: the folder is pushed once,
    with personalign's card, by `finish_run`.

    `training_args.hub_token` is taken out of the arguments (set to `None`): the trainer saves its arguments in every
    checkpoint's `training_args.bin`, and a token must never be saved.

    Args:
        method (`str`): The method's registry name.
        script_args (`ScriptArguments`): The data and how to start.
        training_args: The method's config.
        model_args (`trl.ModelConfig`): The model id and its loading settings.
        mixes_general (`bool`, *optional*, defaults to `False`): Whether the method mixes general data in
            (`mix_general_rows`); a method that does not refuses `general_dataset_name` / `general_share`.

    Returns:
        `tuple[dict, str | None]`: The record (method, base model, dataset, the hyperparameters and model settings that
        differ from their defaults) and the token to push with (`None`: no push).

    Raises:
        `InputError`: If a local model or persona encoder folder is missing or unusable, the token is missing, or
            general data is set for a method that does not mix it.
    """
    if not mixes_general and (script_args.general_dataset_name or script_args.general_share):
        raise InputError(
            f"`personalign train {method}` does not mix general data (general_dataset_name, general_share): its rows "
            "are not ready preference rows; general data mixes into `personalign train sft`, `dpo` and `dpore`."
        )
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
    if getattr(training_args, "process_index", 0) != 0:
        return record  # under `accelerate launch`, the first process writes (and pushes) the run's one record
    write_run_record(output_dir, record)
    if push_token is not None:
        repo_id = training_args.hub_model_id or output_dir.name
        record["hub_url"] = push_model(output_dir, repo_id, token=push_token)
    return record


def check_output_dir(output_dir: str | Path, resume: bool, overwrite: bool, training_args: Any = None) -> str | None:
    """Refuse to train over an earlier run unless asked to; with `resume`, find the checkpoint to continue from
    (`io.checkpoint_to_resume`: the last one, or the last complete one when the last was cut short by a
    kill during its save) and, given `training_args`, refuse it when the run already reached its `max_steps` (or
    `num_train_epochs`; `io.check_run_unfinished`).

    Returns:
        `str` or `None`: The checkpoint to resume from (with `resume`), else `None`.

    Raises:
        `InputError`: If `resume` finds no checkpoint or a damaged last one (naming its file and the last intact
            checkpoint) or a finished run, `output_dir` holds a run and neither `resume` nor `overwrite` is set, both are set,
            `output_dir` is a file, or it cannot be created (see `io.ensure_writable`).
    """
    output_dir = Path(output_dir)
    if resume and overwrite:
        raise InputError("--resume continues the run in output_dir and --overwrite starts it again: pass one of them.")
    ensure_writable(output_dir, overwrite=True)  # a parent that is a file, or one this process may not write in
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"{output_dir}: is a file; output_dir must be a folder (new, or holding a run).")
    if resume:
        last = checkpoint_to_resume(output_dir)
        if last is None:
            raise InputError(f"--resume: no checkpoint found in {output_dir}.")
        if training_args is not None:
            check_run_unfinished(last, training_args.max_steps, training_args.num_train_epochs)
        return str(last)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise InputError(
            f"{output_dir} already holds a run; pass --resume true to continue it or --overwrite true to start again."
        )
    return None


RowCheck = Callable[[Dataset, RowNames, Any], None]
"""`check_rows(rows, names, training_args)`: refuse the first bad row of one file (or Hub split) with an
`InputError` naming it (`names.where`), the row (`names(index)`: a JSON-lines row by its 1-based line, any other by
its 0-based row) and the column; `training_args` is the method's config (its column names)."""


def check_split(
    source: DatasetSource, split: str, check_rows: RowCheck, training_args: Any, limit: int | None = None
) -> None:
    """Run `check_rows` over each file (or Hub split) of one split, so that messages name the file and the row in
    it, as `personalign build-dataset` does; with `limit`, only the first `limit` rows of the split (those trained).

    Raises:
        `InputError`: From `check_rows`, or if the split does not exist.
    """
    source.split(split)  # a missing split is reported first, naming those there are
    remaining = limit
    for where, rows in source.parts[split]:
        if remaining is not None:
            if remaining <= 0:
                break
            rows = rows.select(range(min(remaining, len(rows))))
            remaining -= len(rows)
        check_rows(rows, source.part_row_names(where), training_args)


def load_datasets(
    script_args: ScriptArguments, check_rows: RowCheck | None = None, training_args: Any = None
) -> tuple[Any, Any]:
    """The training split (cut to `max_train_samples`) and the evaluation split (`None` without one), each checked
    by `check_rows` file by file before anything else loads.

    Args:
        script_args (`ScriptArguments`): The dataset, its config and splits.
        check_rows (`RowCheck`, *optional*): The method's row check (see `check_split`).
        training_args (*optional*): The method's config, passed to `check_rows`.

    Raises:
        `InputError`: If the dataset cannot be read, a split is missing or a row is bad.
    """
    source = load_source(script_args.dataset_name, script_args.dataset_config)
    train = source.split(script_args.dataset_train_split)
    limit = script_args.max_train_samples
    if limit is not None:
        train = train.select(range(min(limit, len(train))))
    if check_rows is not None:
        check_split(source, script_args.dataset_train_split, check_rows, training_args, limit)
    evaluation = None
    if script_args.dataset_test_split:
        evaluation = source.split(script_args.dataset_test_split)
        if check_rows is not None:
            check_split(source, script_args.dataset_test_split, check_rows, training_args)
    return train, evaluation


def data_sources(script_args: ScriptArguments) -> dict[str, str]:
    """The training and evaluation data for messages, by the trainers' dataset names (`"train"`, `"eval"`):
    `"<dataset_name> [<split>]"`."""
    sources = {"train": f"{script_args.dataset_name} [{script_args.dataset_train_split}]"}
    if script_args.dataset_test_split:
        sources["eval"] = f"{script_args.dataset_name} [{script_args.dataset_test_split}]"
    return sources


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


def continue_from(trainer: Any, checkpoint: str | Path) -> int:
    """Prepare `trainer` to resume from `checkpoint`: TRL's trainers count the training tokens they log as
    `num_tokens` in `_total_train_tokens` (a TRL internal of DPOTrainer, RewardTrainer and others: set to 0 in
    `__init__`, added to in `compute_loss`), which `Trainer`'s resume does not restore; it is set to the count the
    checkpoint's log history holds, so the count goes on from there.

    Returns:
        `int`: The checkpoint's global step (the step the run resumes from).
    """
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    step = int(state.get("global_step", 0))
    tokens = logged_before(state.get("log_history", []), "num_tokens", step)
    if tokens is not None and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = tokens
    return step


BuildTrainer = Callable[[Any, Any, Any, Any, Any], Any]
"""`build_trainer(script_args, training_args, model_args, train_dataset, eval_dataset) -> Trainer`."""


def train_and_save(
    method: str,
    script_args: ScriptArguments,
    training_args: Any,
    model_args: Any,
    build_trainer: BuildTrainer,
    save_extras: Callable[[Any, Any, Path], dict[str, Any]] | None = None,
    check_rows: RowCheck | None = None,
    mixes_general: bool = False,
    prepare_rows: Callable[[Dataset], Dataset] | None = None,
) -> dict[str, Any]:
    """Train a trainer-based method and write its output folder: the model (and tokenizer), whatever `save_extras`
    adds, and the run record; push it when `training_args.push_to_hub`. With `script_args.overwrite` the earlier
    run is first moved aside (`set_aside_earlier_run`) and deleted once this one has finished; a resumed run's
    record reports its training loss and token count over the whole run (`whole_run_train_metrics`).

    Args:
        method (`str`): The method's registry name, recorded in the run record.
        script_args (`ScriptArguments`): The data and how to start (`resume`, `overwrite`).
        training_args: The method's config; `output_dir` is the output folder.
        model_args (`trl.ModelConfig`): The model id and its loading / PEFT settings.
        build_trainer (`BuildTrainer`): Builds the method's trainer from the parsed arguments and the data.
        save_extras (`Callable[[Trainer, ScriptArguments, Path], dict]`, *optional*): Saves what the method adds
            beside the model (DPORE's persona encoder) into the output folder and returns the fields to add to the
            run record.
        check_rows (`RowCheck`, *optional*): Validates the rows file by file before the model loads (see
            `check_split`).
        mixes_general (`bool`, *optional*, defaults to `False`): Whether the method takes general data: its
            training split is then mixed with `script_args.general_dataset_name` (`mix_general_rows`) and the run
            record says how (`general_data`); otherwise general data is refused.
        prepare_rows (`Callable[[Dataset], Dataset]`, *optional*): The method's own view of its (checked) training
            and evaluation rows, taken before general data is mixed in, so that `general_share` is a share of the
            rows the method trains on (Preferred-SFT's one row per preferred reply).

    Returns:
        `dict`: The run record (method, base model, dataset, changed hyperparameters, train and eval metrics).
    """
    record, push_token = start_run(method, script_args, training_args, model_args, mixes_general)
    output_dir = Path(training_args.output_dir)
    record["output_dir"] = str(output_dir)
    last_checkpoint = check_output_dir(output_dir, script_args.resume, script_args.overwrite, training_args)
    train_dataset, eval_dataset = load_datasets(script_args, check_rows, training_args)
    if prepare_rows is not None:
        train_dataset = prepare_rows(train_dataset)
        eval_dataset = None if eval_dataset is None else prepare_rows(eval_dataset)
    if mixes_general:
        train_dataset, general = mix_general_rows(train_dataset, script_args, training_args)
        if general is not None:
            record["general_data"] = general
    trainer = build_trainer(script_args, training_args, model_args, train_dataset, eval_dataset)
    # Under `accelerate launch` the first process alone moves, writes and deletes the run's files.
    main_process = trainer.is_world_process_zero()
    earlier = None
    if script_args.overwrite:
        # Started again: nothing of the earlier run may stay to be resumed (or mixed with this one's files).
        earlier = set_aside_earlier_run(output_dir) if main_process else None
        trainer.accelerator.wait_for_everyone()  # no process writes into the folder before it is emptied
    resumed_from = 0 if last_checkpoint is None else continue_from(trainer, last_checkpoint)
    result = trainer.train(resume_from_checkpoint=last_checkpoint)
    trainer.save_model(str(output_dir))  # every process: the Trainer gathers (FSDP / ZeRO-3) and saves once
    if save_extras is not None and main_process:
        record.update(save_extras(trainer, script_args, output_dir))
    if main_process:
        follow_umask(output_dir)  # safetensors writes its files 0600, checkpoints included
    metrics = whole_run_train_metrics(
        result.metrics, trainer.state.log_history, resumed_from, trainer.state.global_step
    )
    record["train_metrics"] = to_jsonable(metrics)
    if eval_dataset is not None:
        record["eval_metrics"] = to_jsonable(trainer.evaluate())
    record = finish_run(record, output_dir, push_token, training_args)
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)  # announced when it was set aside
    return record


# ------------------------------------------------------------------------------------------------- row checks
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
"""The columns of a TRL preference row."""


def first_null_row(column: pa.ChunkedArray | pa.Array) -> int | None:
    """The index of the first null of an Arrow column, or `None` (vectorised: no Python loop over the rows)."""
    nulls = pc.is_null(column)
    if not pc.any(nulls).as_py():
        return None
    return pc.index(nulls, True).as_py()


def check_text_columns(rows: Dataset, columns: tuple[str, ...], names: RowNames) -> None:
    """Each of `columns` holds, in every row, text or a list of chat messages whose `content` is text (TRL's
    standard and conversational formats). One vectorised pass per column over Arrow data.

    Raises:
        `InputError`: `"<file>, line 4, column 'prompt': expected text, got null (no value)."` (the message
            `personalign build-dataset` gives; the row as `names` names it), or the column's type when it is
            neither.
    """
    where = names.where
    table = rows.with_format("arrow")[:]  # the rows of this view only (a `select` keeps the whole table beneath)
    for name in columns:
        column = table.column(name)
        index = first_null_row(column)
        if index is not None:
            raise InputError(f"{names(index)}, column {name!r}: expected text, got {value_kind(None)}.")
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            continue
        is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        item = kind.value_type if is_list else None
        if item is None or not pa.types.is_struct(item) or item.get_field_index("content") < 0:
            raise InputError(
                f"{where}, column {name!r}: expected text or a list of chat messages ({{role, content}}), got "
                f"values of type {kind}."
            )
        contents = pc.struct_field(pc.list_flatten(column), "content")
        position = first_null_row(contents)
        if position is not None:
            index = pc.list_parent_indices(column)[position].as_py()
            raise InputError(f"{names(index)}, column {name!r}: a message without text content (null).")


def check_preference_rows(rows: Dataset, names: RowNames, method: str) -> None:
    """Ready TRL preference rows: `prompt`, `chosen` and `rejected` present and text (or chat messages) in every row.

    Raises:
        `InputError`: Naming `where`, the missing column (and what a `personalign train METHOD` row needs) or the
            first bad row.
    """
    require_columns(rows, PREFERENCE_COLUMNS, names.where, f"a `personalign train {method}`")
    check_text_columns(rows, PREFERENCE_COLUMNS, names)


def persona_row_check(method: str, persona_format: str | None = None) -> RowCheck:
    """The row check of the persona-prompt methods (PBA, ICA, DPORE): AlignX rows with raw persona columns are
    validated as `personalign build-dataset alignx` validates them (`check_alignx_rows`: same messages); rows with
    a ready prompt by `check_preference_rows`.

    Args:
        method (`str`): The method's registry name, for messages.
        persona_format (`str`, *optional*): How raw personas enter the prompt when the method takes either (DPORE's
            script argument `persona_format`): `"pba"` needs a preference to state. By default the config's
            `persona_format`, if it has one.

    Returns:
        `RowCheck`
    """

    def check(rows: Dataset, names: RowNames, training_args: Any) -> None:
        if has_raw_personas(rows.column_names):
            # PBA prompts need a preference to state (as the `pba` config of `build-dataset alignx` requires).
            chosen_format = persona_format or getattr(training_args, "persona_format", None)
            pba = method == "pba" or chosen_format == "pba"
            num_proc = getattr(training_args, "dataset_num_proc", None)
            check_alignx_rows(rows, names, require_preference=pba, num_proc=num_proc)
        else:
            check_preference_rows(rows, names, method)

    return check


# ---------------------------------------------------------------------------------------------- general data
GENERAL_ROW_KIND = (
    "a general preference (TRL's preference format: prompt, chosen, rejected; or chosen and rejected as message "
    "lists holding the prompt, as UltraFeedback-binarized)"
)
"""What a general row is, for messages."""


def is_conversational_column(rows: Dataset, column: str) -> bool:
    """Whether a column holds chat messages (lists) rather than text, read from its Arrow type (TRL's
    `is_conversational` reads one example; this reads the schema, the same for every row)."""
    kind = rows.data.schema.field(column).type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def check_general_rows(rows: Dataset, names: RowNames, training_args: Any = None) -> None:
    """General preference rows (TRL's preference format): `chosen` and `rejected` in every row, text or chat
    messages, and a prompt: a `prompt` column (explicit), or one implicit in `chosen` / `rejected`, message lists
    that start with the same user turns (UltraFeedback-binarized: its text `prompt` column repeats that turn).

    Args:
        rows (`Dataset`): The rows of one general file (or Hub split).
        names (`RowNames`): Names them for messages.
        training_args (*optional*): Unused (the `RowCheck` signature).

    Raises:
        `InputError`: Naming the file, the missing column, or the row and column of a bad value.
    """
    require_columns(rows, ("chosen", "rejected"), names.where, GENERAL_ROW_KIND)
    check_text_columns(rows, tuple(c for c in PREFERENCE_COLUMNS if c in rows.column_names), names)
    if "prompt" not in rows.column_names and not is_conversational_column(rows, "chosen"):
        raise InputError(
            f"{names.where}: no 'prompt' column and 'chosen' is text; {GENERAL_ROW_KIND} row needs a prompt."
        )


def general_preference_rows(rows: Dataset, names: Callable[[int], str]) -> Dataset:
    """General rows as explicit-prompt preference rows: `prompt`, `chosen`, `rejected` only (the other columns,
    e.g. UltraFeedback's `prompt_id`, `messages` and scores, are dropped), the implicit prompt taken out of
    `chosen` / `rejected` by TRL's `maybe_extract_prompt`.

    Args:
        rows (`Dataset`): Checked general rows (`check_general_rows`).
        names (`Callable[[int], str]`): Names row i of `rows` for messages (a `RowNames`, or its names of the
            sampled rows).

    Returns:
        `Dataset`: The rows with an explicit prompt.

    Raises:
        `InputError`: If a row's prompt, chosen or rejected is empty once the prompt is taken out (an implicit
            prompt needs `chosen` and `rejected` to share their first turns and differ after them).
    """
    from trl.data_utils import maybe_extract_prompt

    rows = rows.select_columns([c for c in PREFERENCE_COLUMNS if c in rows.column_names])
    rows = rows.map(maybe_extract_prompt, desc="Taking the prompt out of the general rows")
    table = rows.with_format("arrow")[:]
    for column in PREFERENCE_COLUMNS:
        values = table.column(column)
        is_list = pa.types.is_list(values.type) or pa.types.is_large_list(values.type)
        lengths = pc.list_value_length(values) if is_list else pc.utf8_length(values)
        empty = pc.index(pc.equal(lengths, 0), True).as_py()
        if empty >= 0:
            raise InputError(
                f"{names(empty)}, column {column!r}: empty once the prompt is taken out of chosen / rejected; "
                f"{GENERAL_ROW_KIND} row needs a prompt and a reply in each."
            )
    return rows


def as_conversational(rows: Dataset) -> Dataset:
    """Standard (text) preference rows as conversational ones: the prompt as a user turn, each reply as an
    assistant turn (how TRL's trainers read a one-turn conversation)."""

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }

    return rows.map(convert, remove_columns=list(PREFERENCE_COLUMNS), desc="General rows as conversations")


def mix_general_rows(
    train: Dataset, script_args: ScriptArguments, training_args: Any
) -> tuple[Dataset, dict[str, Any] | None]:
    """Mix general preference data into the (personal) training rows, as the DPORE paper mixes UltraFeedback into
    Preferred-SFT, DPO and DPORE (§4.1): `round(n_personal * general_share / (1 - general_share))` rows of
    `general_dataset_name` (split `general_dataset_split`), sampled without replacement with `training_args.seed`,
    checked file by file (`check_general_rows`), with their prompt made explicit (`general_preference_rows`) and,
    when the personal rows are conversational and the general ones text, converted (`as_conversational`). General
    rows keep only `prompt`, `chosen` and `rejected`; the personal rows' other columns (persona, embeddings, ids)
    are null in them. When the config names a general-row column (DPORE's `general_row_column`), it is added: true
    on general rows, which then get no persona embedding and no regularizer. The mixed rows are shuffled with the
    seed (so `train_sampling_strategy: sequential` still sees them interleaved).

    Args:
        train (`Dataset`): The personal training rows (checked, cut to `max_train_samples`).
        script_args (`ScriptArguments`): The general data and its share.
        training_args: The method's config (`seed`; `general_row_column` where the method reads one).

    Returns:
        `tuple[Dataset, dict | None]`: The training rows, and for the run record what was mixed (`dataset`,
        `config`, `split`, `share`, `rows`, `personal_rows`), or `None` without general data.

    Raises:
        `InputError`: If the general data cannot be read, a general row is bad, it has fewer rows than the share
            needs (naming both counts), the personal rows are raw AlignX rows (rendered by the trainer, so not ready
            to mix with), or the general rows are conversational and the personal ones text.
    """
    check_general_arguments(script_args)
    share = script_args.general_share
    if not script_args.general_dataset_name or share == 0:
        return train, None
    personal = f"{script_args.dataset_name} [{script_args.dataset_train_split}]"
    if has_raw_personas(train.column_names):
        raise InputError(
            f"{personal}: raw AlignX rows (the trainer renders their persona into the prompt) do not mix with general "
            "data; build ready rows first (`personalign build-dataset alignx`, config pba or ica) or unset "
            "general_dataset_name."
        )
    source = load_source(script_args.general_dataset_name, script_args.general_dataset_config)
    split = script_args.general_dataset_split
    check_split(source, split, check_general_rows, training_args)
    general = source.split(split)
    wanted = round(len(train) * share / (1 - share))
    if wanted > len(general):
        raise InputError(
            f"{source.where(split)}: {len(general)} general rows, but general_share {share} of {len(train)} personal "
            f"training rows needs {wanted} (sampled without replacement); lower general_share or give more rows."
        )
    picked = random.Random(training_args.seed).sample(range(len(general)), wanted)
    names = source.row_names(split)
    sampled = general_preference_rows(general.select(picked), lambda index: names(picked[index]))
    if is_conversational_column(train, "prompt") and not is_conversational_column(sampled, "prompt"):
        sampled = as_conversational(sampled)
    elif is_conversational_column(sampled, "prompt") and not is_conversational_column(train, "prompt"):
        raise InputError(
            f"{source.where(split)}: conversational general rows (lists of messages) do not mix with the text rows of "
            f"{personal}; give both in one format (a chat template turns messages into text)."
        )
    marker = getattr(training_args, "general_row_column", None)
    features = train.features.copy()
    if marker:
        train = train.add_column(marker, [False] * len(train))
        features = train.features.copy()
    # Every personal column, null where a general row has no value (a persona, an id); the marker true.
    rows = [{name: True if name == marker else row.get(name) for name in features} for row in sampled.to_list()]
    mixed = concatenate_datasets([train, Dataset.from_list(rows, features=features)])
    info = {
        "dataset": script_args.general_dataset_name,
        "config": script_args.general_dataset_config,
        "split": split,
        "share": share,
        "rows": wanted,
        "personal_rows": len(train),
    }
    return mixed.shuffle(seed=training_args.seed), info
