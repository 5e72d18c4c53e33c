"""`personalign train METHOD --config cfg.yaml [--key value ...]`: one training entry point for every method, with
TRL's `TrlParser` semantics (YAML values are the defaults, flags override them, unknown keys are errors).

Each method parses three dataclasses: `TrainScriptArguments` (data, persona encoder, resume), the method's config
(`DPOREConfig`, `PBAConfig`, `ICAConfig`, `PersonalizedRewardConfig`, `PersonaEncoderTrainingArguments`) and TRL's
`ModelConfig` (model id or path, dtype, PEFT options). Everything else is the method's trainer, unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hub.run_record import changed_fields, to_jsonable, write_run_record
from ..methods import PERSONA_ENCODER_FOLDER


@dataclass
class TrainScriptArguments:
    """What a training run reads and how it starts: the data, DPORE's persona encoder, the encoder's excerpt
    format, resuming.

    Args:
        dataset_name (`str`): Hub dataset id, or a local file (parquet / jsonl / json) or folder.
        dataset_config (`str`, *optional*): The dataset config (e.g. `pba` of a folder written by `build-dataset`).
        dataset_train_split (`str`, *optional*, defaults to `"train"`): The training split.
        dataset_test_split (`str`, *optional*): An evaluation split; evaluated at the end of training (and during it
            with the config's `eval_strategy`).
        max_train_samples (`int`, *optional*): Train on the first N rows only.
        persona_encoder (`str`, *optional*): DPORE: the PersonaEncoder (Hub id or folder) that embeds each row's
            persona; saved into the output folder. Without it the rows must carry persona embedding columns.
        persona_format (`str`, *optional*, defaults to `"pba"`): DPORE on raw AlignX rows: how the persona is written
            into the prompt (`"pba"` preference text or `"ica"` history); the persona history is what the encoder
            embeds.
        excerpt_format (`str`, *optional*, defaults to `"alignx"`): Encoder: `alignx`, `aloe` or `table` rows.
        persona_column (`str`, *optional*): Encoder: the persona id column (alignx: groups rows; table).
        text_column (`str`, *optional*, defaults to `"text"`): Encoder, `table` rows: the text column.
        eval_fraction (`float`, *optional*, defaults to `0.1`): Encoder: share of personas held out and scored.
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
    persona_encoder: str | None = field(
        default=None, metadata={"help": "DPORE: PersonaEncoder id or folder that embeds each row's persona."}
    )
    persona_format: str = field(
        default="pba", metadata={"help": "DPORE on raw AlignX rows: persona in the prompt as 'pba' or 'ica'."}
    )
    excerpt_format: str = field(default="alignx", metadata={"help": "Encoder: 'alignx', 'aloe' or 'table' rows."})
    persona_column: str | None = field(default=None, metadata={"help": "Encoder: persona id column."})
    text_column: str = field(default="text", metadata={"help": "Encoder, table rows: text column."})
    eval_fraction: float = field(default=0.1, metadata={"help": "Encoder: share of personas held out."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in output_dir."})
    overwrite: bool = field(default=False, metadata={"help": "Start again although output_dir holds a run."})


def _config_class(method: str) -> type:
    if method == "dpore":
        from ..trainers import DPOREConfig

        return DPOREConfig
    if method == "pba":
        from ..trainers import PBAConfig

        return PBAConfig
    if method == "ica":
        from ..trainers import ICAConfig

        return ICAConfig
    if method == "reward":
        from ..trainers import PersonalizedRewardConfig

        return PersonalizedRewardConfig
    if method == "encoder":
        from ..encoder import PersonaEncoderTrainingArguments

        return PersonaEncoderTrainingArguments
    raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}.")


METHODS = ("dpore", "pba", "ica", "reward", "encoder")


# ------------------------------------------------------------------------------------------------------- parsing
def _split_config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    args = list(argv)
    if "--config" not in args:
        return None, args
    index = args.index("--config")
    if index + 1 >= len(args):
        raise ValueError("--config needs a YAML file path.")
    path = args[index + 1]
    del args[index : index + 2]
    return path, args


def read_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """A training YAML file as a mapping; `env:` entries are exported to the environment, as `TrlParser` does."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: config file not found.")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error}).") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a YAML mapping of config keys, got {type(config).__name__}.")
    env = config.pop("env", {})
    if not isinstance(env, dict):
        raise ValueError(f"{path}: 'env' must be a mapping of environment variables.")
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    return config


def device_policy(values: dict[str, Any], cuda_available: bool, bf16_supported: bool) -> str | None:
    """Choose device and precision in the parsed values (before the configs are built, since `bf16=True` without a
    GPU is rejected there): on CPU, `use_cpu=True` in fp32; on a GPU, bf16 unless the GPU lacks it (then fp16).

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


def _gpu_state() -> tuple[bool, bool]:
    import torch

    cuda = torch.cuda.is_available()
    return cuda, bool(cuda and torch.cuda.is_bf16_supported())


def parse_train_arguments(
    method: str, argv: Sequence[str], gpu_state: Callable[[], tuple[bool, bool]] = _gpu_state
) -> tuple[TrainScriptArguments, Any, Any, str | None]:
    """Parse `--config cfg.yaml` and `--key value` flags into `(script_args, method_config, model_config, notice)`.

    The YAML keys are the dataclasses' field names; its values become the parser defaults and the flags override
    them (`trl.TrlParser.set_defaults_with_config`). A key or flag that no dataclass has is an error naming it.
    Device and precision follow `device_policy`.
    """
    from trl import ModelConfig, TrlParser

    config_class = _config_class(method)
    parser = TrlParser((TrainScriptArguments, config_class, ModelConfig), exit_on_error=False)
    config_path, args = _split_config_flag(argv)
    if config_path is not None:
        unknown = parser.set_defaults_with_config(**read_yaml_config(config_path))
        if unknown:
            keys = ", ".join(repr(item[2:]) for item in unknown[::2])
            raise ValueError(
                f"{config_path}: unknown key(s) {keys} for `personalign train {method}` (expected fields of "
                f"TrainScriptArguments, {config_class.__name__} or ModelConfig)."
            )
    try:
        namespace, unknown_flags = parser.parse_known_args(args)
    except argparse.ArgumentError as error:
        raise ValueError(f"`personalign train {method}`: {error}") from None
    if unknown_flags:
        raise ValueError(f"`personalign train {method}`: unknown option(s) {' '.join(unknown_flags)}.")
    values = vars(namespace)
    notice = device_policy(values, *gpu_state())
    built = []
    for dataclass_type in (TrainScriptArguments, config_class, ModelConfig):
        names = {f.name for f in dataclasses.fields(dataclass_type) if f.init}
        built.append(dataclass_type(**{key: value for key, value in values.items() if key in names}))
    script_args, config, model_args = built
    if not script_args.dataset_name:
        raise ValueError(f"`personalign train {method}`: set dataset_name (in the YAML file or --dataset_name).")
    if not model_args.model_name_or_path:
        raise ValueError(
            f"`personalign train {method}`: set model_name_or_path (in the YAML file or --model_name_or_path)."
        )
    return script_args, config, model_args, notice


def accelerate_command(
    method: str, argv: Sequence[str], num_processes: int, accelerate_config: str | None = None
) -> list[str]:
    """The `accelerate launch` command that runs this training on `num_processes` processes (one per GPU)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config:
        command += ["--config_file", str(accelerate_config)]
    return [*command, "-m", "personalign", "train", method, *argv]


def format_command(command: Sequence[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)


# -------------------------------------------------------------------------------------------------------- running
def _check_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if resume:
        if last is None:
            raise ValueError(f"--resume: no checkpoint found in {output_dir}.")
        return last
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"{output_dir} already holds a run; pass --resume true to continue it or --overwrite true to start again."
        )
    return None


def _dpore_rows(dataset: Any, persona_format: str) -> Any:
    """Raw AlignX rows as DPORE rows: the persona rendered into the prompt (`pba` / `ica`) and its history as
    `persona_text`, the text the persona encoder embeds."""
    from ..data.alignx import AlignXBuildConfig
    from ..encoder.modeling_persona_encoder import persona_document
    from ..personas.persona import Persona
    from ..trainers.alignx_trainer import ROW_COLUMN, has_raw_personas, render_for_training

    if not has_raw_personas(dataset.column_names):
        return dataset
    if persona_format not in ("pba", "ica"):
        raise ValueError(f"persona_format must be 'pba' or 'ica', got {persona_format!r}.")
    texts = [persona_document(Persona.from_alignx_row(row, where=f"row {index}")) for index, row in enumerate(dataset)]
    rendered = render_for_training(dataset, persona_format, AlignXBuildConfig(), dataset_name="DPORE")
    return rendered.remove_columns(ROW_COLUMN).add_column("persona_text", texts)


def _build_trainer(method: str, script_args: TrainScriptArguments, args: Any, model_args: Any, train, evaluation):
    from trl import get_peft_config

    model_kwargs = {
        key: value
        for key, value in {
            "revision": model_args.model_revision,
            "dtype": model_args.dtype,
            "attn_implementation": model_args.attn_implementation,
        }.items()
        if value is not None
    }
    args.model_init_kwargs = {**(args.model_init_kwargs or {}), **model_kwargs}
    common = {
        "model": model_args.model_name_or_path,
        "args": args,
        "train_dataset": train,
        "eval_dataset": evaluation,
        "peft_config": get_peft_config(model_args),
    }
    if method == "dpore":
        from ..encoder import PersonaEncoder
        from ..trainers import DPORETrainer

        encoder = PersonaEncoder.from_pretrained(script_args.persona_encoder) if script_args.persona_encoder else None
        convert = lambda data: None if data is None else _dpore_rows(data, script_args.persona_format)  # noqa: E731
        common.update(train_dataset=convert(train), eval_dataset=convert(evaluation))
        return DPORETrainer(persona_encoder=encoder, **common), encoder
    if method == "pba":
        from ..trainers import PBATrainer

        return PBATrainer(**common), None
    if method == "ica":
        from ..trainers import ICATrainer

        return ICATrainer(**common), None
    from ..data.loading import load_source
    from ..data.multifacet import multifacet_cf_responses
    from ..trainers import PersonalizedRewardTrainer

    # Counterfactual MultiFacet rows keep their histories as ids into the dataset's `responses` config.
    needs_responses = "history_text" not in train.column_names and "history" in train.column_names
    responses = multifacet_cf_responses(load_source(script_args.dataset_name)) if needs_responses else None
    return PersonalizedRewardTrainer(responses=responses, **common), None


def _train_encoder(script_args: TrainScriptArguments, args: Any, model_args: Any) -> dict[str, Any]:
    from ..encoder import PersonaEncoder
    from ..encoder.pipeline import load_excerpts, train_encoder

    output = Path(args.output_dir)
    args.output_dir = str(output.with_name(f"{output.name}-checkpoints"))
    excerpts = load_excerpts(
        script_args.dataset_name, script_args.excerpt_format, script_args.persona_column, script_args.text_column
    )
    encoder = PersonaEncoder.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    results = train_encoder(
        encoder,
        excerpts,
        output,
        args,
        model_args.model_name_or_path,
        script_args.dataset_name,
        script_args.eval_fraction,
        resume=script_args.resume,
        overwrite=script_args.overwrite,
    )
    return {"output_dir": str(output), "eval": results}


def run_training(method: str, script_args: TrainScriptArguments, args: Any, model_args: Any) -> dict[str, Any]:
    """Train `method` as parsed by `parse_train_arguments` and write the result to `args.output_dir`: the model (and
    DPORE's projection head and persona encoder), the tokenizer, and `personalign_run.json` (what `push-model` turns
    into a model card). With `args.push_to_hub` the folder is then pushed with `push_model`.

    Returns:
        `dict`: The run record (method, base model, dataset, changed hyperparameters, train and eval metrics).
    """
    from ..data.loading import load_rows
    from ..hub.auth import resolve_token

    push = args.push_to_hub
    if push:
        resolve_token(args.hub_token)  # fail before training, not after it
        args.push_to_hub = False  # pushed once at the end, with personalign's card, instead of at every save
    record: dict[str, Any] = {
        "method": method,
        "base_model": model_args.model_name_or_path,
        "dataset": script_args.dataset_name,
        "dataset_config": script_args.dataset_config,
        "hyperparameters": changed_fields(args),
        "model_config": changed_fields(model_args),
    }
    if method == "encoder":
        record.update(_train_encoder(script_args, args, model_args))
        output_dir = Path(record["output_dir"])
    else:
        output_dir = Path(args.output_dir)
        record["output_dir"] = str(output_dir)
        last_checkpoint = _check_output_dir(output_dir, script_args.resume, script_args.overwrite)
        train = load_rows(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split)
        if script_args.max_train_samples is not None:
            train = train.select(range(min(script_args.max_train_samples, len(train))))
        evaluation = (
            load_rows(script_args.dataset_name, script_args.dataset_config, script_args.dataset_test_split)
            if script_args.dataset_test_split
            else None
        )
        trainer, encoder = _build_trainer(method, script_args, args, model_args, train, evaluation)
        result = trainer.train(resume_from_checkpoint=last_checkpoint)
        trainer.save_model(str(output_dir))
        if encoder is not None:
            encoder.save_pretrained(output_dir / PERSONA_ENCODER_FOLDER)
            record["persona_encoder"] = script_args.persona_encoder
        record["train_metrics"] = to_jsonable(result.metrics)
        if evaluation is not None:
            record["eval_metrics"] = to_jsonable(trainer.evaluate())
    write_run_record(output_dir, record)
    if push:
        from ..hub.models import push_model

        record["hub_url"] = push_model(output_dir, args.hub_model_id or output_dir.name, token=args.hub_token)
    return record
