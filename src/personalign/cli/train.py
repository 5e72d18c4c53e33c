"""`personalign train METHOD --config cfg.yaml [--key value ...]`: one training entry point for every method of the
registry (`personalign.methods.METHODS`), with TRL's `TrlParser` semantics (YAML values are the defaults, flags
override them, unknown keys are errors).

This module only dispatches: the method's registry entry names its script (`personalign.scripts.<name>`), whose
`make_parser()` gives the three dataclasses (script arguments, config, `trl.ModelConfig`) and whose `main()` trains.
Nothing here imports torch, transformers or TRL until a command runs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import functools
import importlib.util
import math
import os
import shlex
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Union

import typer
import yaml
from rich.markup import escape
from typer.core import TyperCommand

from ..errors import InputError
from ..hub.auth import TOKEN_KEYS, mask_token_arguments
from ..methods import METHODS, get_method
from .common import console

CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["--help"]}
"""The flags after METHOD are the method's (TRL / HfArgumentParser flags), passed through to its parser."""

HEADLINE_METRICS = ("eval_rewards/accuracies", "eval_accuracy", "eval_loss", "eval_mean_token_accuracy")
"""Evaluation metrics of a run record printed when training ends (the preference methods' reward accuracy, the
reward model's accuracy; Preferred-SFT's held-out loss and token accuracy). The first one a record holds is
printed, with those after it that are not a loss."""


# ------------------------------------------------------------------------------------------------------- parsing
class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping sets one key twice (`UniqueKeyLoader`)."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(f"key {key!r} is set twice (line {first_line} and line {second_line})")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that sets a key twice (PyYAML keeps the last value without a word,
    so a config edited in two places would train with whichever came last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1  # PyYAML counts from 0; an editor from 1
            try:
                first = lines.setdefault(key, line)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != line:
                raise DuplicateKeyError(key, first, line)
        return super().construct_mapping(node, deep=deep)


def read_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """A training YAML file as a mapping; `env:` entries are exported to the environment, as `TrlParser` does.

    Raises:
        `InputError`: If the file is missing, not YAML, sets a key twice (`"cfg.yaml: key 'beta' is set twice (line 2
            and line 5); keep one."`), or is not a mapping (with a mapping under `env:`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found.")
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except DuplicateKeyError as error:
        raise InputError(f"{path}: {error}; keep one.") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error}).") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a YAML mapping of config keys, got {type(config).__name__}.")
    env = config.pop("env", {})
    if not isinstance(env, dict):
        raise InputError(f"{path}: 'env' must be a mapping of environment variables.")
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    return config


BOOL_STRINGS = ("true", "false", "yes", "no", "t", "f", "y", "n", "1", "0")
"""The texts `transformers.HfArgumentParser` reads as a boolean (its `string_to_bool`)."""


def value_matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a dataclass field's type hint as `TrlParser` would take it: a text value must parse
    as the flag would (argparse converts text defaults), other values must already have the type (argparse passes
    them through untouched, so a wrong one reaches the config, or the optimizer, as it is). Types this does not know
    are accepted: only what is certainly wrong is refused."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        enums = [arm for arm in args if isinstance(arm, type) and issubclass(arm, enum.Enum)]
        if enums and isinstance(value, str):  # `SchedulerType | str`: HfArgumentParser offers the enum's values
            return any(value_matches(value, arm) for arm in enums)
        return any(value_matches(value, arm) for arm in args)
    if hint is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if value is None:
        return False
    if hint is bool:
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOL_STRINGS)
    if hint in (int, float):
        if isinstance(value, bool):
            return False
        if isinstance(value, str):
            try:
                hint(value)
            except ValueError:
                return False
            return True
        return isinstance(value, int) or (hint is float and isinstance(value, float))
    if hint is str:
        return not isinstance(value, (list, dict))
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        item = args[0] if args else Any
        items = value if isinstance(value, list) else [value]  # one value for a list field: argparse's nargs default
        return all(value_matches(element, item) for element in items)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {member.value for member in hint} or value in hint.__members__
    return True


def describe_type(hint: Any) -> str:
    """A type hint in words, for messages (`"a number"`, `"an integer or null"`, `"a list of text"`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        enums = [arm for arm in args if isinstance(arm, type) and issubclass(arm, enum.Enum)]
        words = [describe_type(arm) for arm in (enums or args) if arm is not type(None)]
        return " or ".join(dict.fromkeys(words)) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        return f"a list of {describe_type(args[0]).removeprefix('a ').removeprefix('an ')}" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in hint)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def check_yaml_types(config: dict[str, Any], parser: Any, path: str | os.PathLike) -> None:
    """Refuse a YAML value that does not fit its field's type, naming the file, the key and the expected type, before
    anything loads. `TrlParser` would pass a non-text value through unchecked (`learning_rate: [1, 2]` reached the
    optimizer) and report a bad text value as a flag (`--max_steps: invalid int value`) without the file.

    Args:
        config (`dict`): The YAML mapping (from `read_yaml_config`).
        parser (`trl.TrlParser`): The method's parser (its `dataclass_types`).
        path (`str` or `os.PathLike`): The YAML file, for messages.

    Raises:
        `InputError`: `"cfg.yaml: key 'learning_rate' must be a number; got [1, 2] (list)."`.
    """
    for dataclass_type in parser.dataclass_types:
        hints = typing.get_type_hints(dataclass_type)
        for field in dataclasses.fields(dataclass_type):
            if field.name not in config or field.name not in hints:
                continue
            value, hint = config[field.name], hints[field.name]
            choices = field.metadata.get("choices")  # as HfArgumentParser reads them
            if value is None and field.default is None:
                continue  # a field that defaults to None takes null whatever its hint says
            fits = value_matches(value, hint)
            if fits and isinstance(value, str) and choices:
                fits = value in choices
            if not fits:
                expected = f"one of {', '.join(map(repr, choices))}" if choices else describe_type(hint)
                shown = "***" if field.name in TOKEN_KEYS else repr(value)  # a token is never printed
                got = "null" if value is None else f"{shown} ({type(value).__name__})"
                raise InputError(f"{path}: key {field.name!r} must be {expected}; got {got}.")


def split_config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """`(the path after --config or None, the other arguments)`.

    Raises:
        `InputError`: If `--config` has no value.
    """
    args = list(argv)
    if "--config" not in args:
        return None, args
    index = args.index("--config")
    if index + 1 >= len(args):
        raise InputError("--config needs a YAML file path.")
    path = args[index + 1]
    del args[index : index + 2]
    return path, args


def field_names(parser: Any) -> set[str]:
    """The field names of a script parser's dataclasses."""
    return {f.name for dataclass_type in parser.dataclass_types for f in dataclasses.fields(dataclass_type)}


def other_methods_hint(name: str, keys: Sequence[str]) -> str:
    """` (--key is an option of `personalign train OTHER`)` for the first unknown key another registered method
    takes, else `""`. Imports the other methods' scripts: called on the error path only."""
    fields_of = {
        other: field_names(METHODS[other].script_module().make_parser()) for other in METHODS if other != name
    }
    for key in keys:
        others = [other for other, names in fields_of.items() if key in names]
        if others:
            where = " / ".join(f"`personalign train {other}`" for other in others)
            return f" (--{key} is an option of {where})"
    return ""


POSITIVE_FIELDS = (
    "max_train_samples",  # a script argument: 0 rows is nothing to train on
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "beta",
)
"""Config fields that must be above zero. transformers and TRL do not check them when the config is built: torch
refuses them later, mid-run, with a message that names no option (or, for beta, trains on without a word)."""


def flag_given(name: str, args: Sequence[str]) -> bool:
    """Whether the command line sets the field `name` (`--name value`, `--name=value`, or the dashed spelling
    `HfArgumentParser` also accepts)."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    return any(arg.split("=", 1)[0] in spellings for arg in args)


def set_where(
    name: str,
    where: str,
    yaml_config: Mapping[str, Any] | None = None,
    yaml_path: str | os.PathLike | None = None,
    args: Sequence[str] = (),
) -> tuple[str, bool]:
    """Where the field `name` was set, for a message: `("cfg.yaml: key 'beta'", True)` when the YAML file sets it
    and no flag overrides it, else `("<where>: --beta", False)`."""
    if yaml_config is not None and name in yaml_config and not flag_given(name, args):
        return f"{yaml_path}: key {name!r}", True
    return f"{where}: --{name}", False


def refuse_value(
    name: str,
    value: Any,
    expected: str,
    where: str,
    yaml_config: Mapping[str, Any] | None,
    yaml_path: str | os.PathLike | None,
    args: Sequence[str],
) -> NoReturn:
    """Refuse the parsed `value` of field `name`, naming where it was set (`set_where`) and, for a YAML value, the
    value as the file wrote it.

    Raises:
        `InputError`: `"cfg.yaml: key 'beta' must be <expected>; got -1."` or `"<where>: --beta must be <expected>,
            got -1.0."`.
    """
    setting, in_yaml = set_where(name, where, yaml_config, yaml_path, args)
    if in_yaml:
        raise InputError(f"{setting} must be {expected}; got {yaml_config[name]!r}.")
    raise InputError(f"{setting} must be {expected}, got {value}.")


def check_positive(
    config: Any,
    where: str,
    yaml_config: Mapping[str, Any] | None = None,
    yaml_path: str | os.PathLike | None = None,
    args: Sequence[str] = (),
) -> None:
    """Refuse a value of `POSITIVE_FIELDS` that is not a finite number above zero (NaN passes both `> 0` and `<= 0`
    checks as False: `beta: .nan` trained with a zero loss, `--learning_rate nan` failed mid-run in torch), naming
    where it was set (`set_where`): the YAML file and key when it comes from the YAML file (no flag overrides it),
    else its flag.

    Args:
        config: The method's parsed config (or its script arguments).
        where (`str`): The command, for flag messages.
        yaml_config (`Mapping`, *optional*): The YAML file's mapping (`read_yaml_config`).
        yaml_path (`str` or `os.PathLike`, *optional*): The YAML file, for messages.
        args (`Sequence[str]`, *optional*): The command-line arguments (a flag overrides the YAML value).

    Raises:
        `InputError`: `"cfg.yaml: key 'learning_rate' must be above 0; got -1."`,
            `"<where>: --learning_rate must be above 0, got -5.0."` or, for NaN and infinities,
            `"cfg.yaml: key 'beta' must be a finite number above 0; got nan."`.
    """
    for name in POSITIVE_FIELDS:
        value = getattr(config, name, None)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if math.isfinite(value) and value > 0:
            continue
        expected = "above 0" if math.isfinite(value) else "a finite number above 0"
        refuse_value(name, value, expected, where, yaml_config, yaml_path, args)


INFINITY_ALLOWED = ("max_grad_norm",)
"""Float fields where an infinity has a meaning (`max_grad_norm=inf`: no clipping)."""


def check_finite(
    config: Any,
    where: str,
    yaml_config: Mapping[str, Any] | None = None,
    yaml_path: str | os.PathLike | None = None,
    args: Sequence[str] = (),
) -> None:
    """Refuse NaN (and, outside `INFINITY_ALLOWED`, an infinity) in any float field of a parsed config: argparse and
    YAML both accept `nan` / `.nan` as a float, and a NaN `weight_decay` or `re_lambda` trains on NaN losses without a
    word. Named as `check_positive` names a value.

    Raises:
        `InputError`: `"cfg.yaml: key 're_lambda' must be a finite number; got nan."` or
            `"<where>: --weight_decay must be a finite number, got nan."`.
    """
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name, None)
        if not isinstance(value, float) or math.isfinite(value):
            continue
        if spec.name in INFINITY_ALLOWED and not math.isnan(value):
            continue
        refuse_value(spec.name, value, "a finite number", where, yaml_config, yaml_path, args)


DISPATCHED_FIELDS = ("loss_type", "f_divergence_type")
"""`trl.DPOConfig` fields whose values TRL checks only when the loss is first computed, mid-run (`ValueError:
Unknown loss type`, after the output folder was made): their accepted values are read from where TRL dispatches on
them (`dpo_dispatch_values`)."""


@functools.cache
def dpo_dispatch_values() -> dict[str, tuple[str, ...]]:
    """The values of each `DISPATCHED_FIELDS` field that TRL's DPO trainer handles: the text constants the field is
    compared to (`loss_type == "sigmoid"`, `self.f_divergence_type == "reverse_kl"`) in the source of
    `trl.trainer.dpo_trainer`, read with `ast` and not imported. TRL exposes no list of them (`DPOConfig` names the
    loss types in its help text only, and its trainer's `Unknown loss type` message repeats a copy); this reads an
    internal, so `tests/test_train_cli.py` pins the result against the help texts of `trl.DPOConfig`.

    Returns:
        `dict[str, tuple[str, ...]]`: Field name -> accepted values, in the order TRL tests them.
    """
    spec = importlib.util.find_spec("trl.trainer.dpo_trainer")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    values: dict[str, list[str]] = {name: [] for name in DISPATCHED_FIELDS}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
            continue
        left, right = node.left, node.comparators[0]
        name = left.id if isinstance(left, ast.Name) else left.attr if isinstance(left, ast.Attribute) else None
        is_text = isinstance(right, ast.Constant) and isinstance(right.value, str)
        if name in values and is_text and right.value not in values[name]:
            values[name].append(right.value)
    return {name: tuple(found) for name, found in values.items()}


def check_dispatched_choices(
    config: Any,
    where: str,
    yaml_config: Mapping[str, Any] | None = None,
    yaml_path: str | os.PathLike | None = None,
    args: Sequence[str] = (),
) -> None:
    """Refuse a value of a `DISPATCHED_FIELDS` field of a DPO-family config that TRL does not handle, before
    anything loads, naming where it was set (`set_where`), the value and the accepted ones. Other configs (the
    reward model's, the encoder's, `trl.SFTConfig`, whose `loss_type` is SFT's own) pass.

    Raises:
        `InputError`: `"cfg.yaml: key 'loss_type' must be one of 'sigmoid', 'hinge', ...; got 'bogus'."`.
    """
    from trl import DPOConfig  # here, not at the top: the CLI's start-up imports no TRL

    if not isinstance(config, DPOConfig):
        return
    for name in DISPATCHED_FIELDS:
        if not hasattr(config, name):
            continue
        value = getattr(config, name)
        accepted = dpo_dispatch_values()[name]
        bad = [item for item in (value if isinstance(value, (list, tuple)) else [value]) if item not in accepted]
        if bad:
            setting, _ = set_where(name, where, yaml_config, yaml_path, args)
            raise InputError(f"{setting} must be one of {', '.join(map(repr, accepted))}; got {bad[0]!r}.")


def parse_train_arguments(
    name: str, argv: Sequence[str], gpu_state: Callable[[], tuple[bool, bool]] | None = None
) -> tuple[Any, Any, Any, str | None]:
    """Parse `--config cfg.yaml` and `--key value` flags for the method `name` into
    `(script_args, config, model_config, notice)`.

    The YAML keys are the fields of the method's three dataclasses (`make_parser()` of its script); its values
    become the parser defaults and the flags override them (`trl.TrlParser.set_defaults_with_config`). A key or flag
    that no dataclass has is an error naming it (and the method that takes it, if one does). Device and precision
    follow `personalign.scripts.utils.device_policy`.

    Args:
        name (`str`): A registered method.
        argv (`Sequence[str]`): The arguments after `personalign train NAME`.
        gpu_state (`Callable[[], tuple[bool, bool]]`, *optional*): `(cuda_available, bf16_supported)`; defaults to
            this machine's (`personalign.scripts.utils.gpu_state`).

    Returns:
        `tuple`: The script arguments, the method's config, `trl.ModelConfig` and a device notice (or `None`).

    Raises:
        `InputError`: If the method, a key, a flag or a value is wrong, or the dataset or model is missing.
    """
    from personalign.scripts.utils import device_policy
    from personalign.scripts.utils import gpu_state as machine_gpu_state

    method = get_method(name)
    parser = method.script_module().make_parser()
    where = f"`personalign train {name}`"
    config_path, args = split_config_flag(argv)
    yaml_config = None
    if config_path is not None:
        yaml_config = read_yaml_config(config_path)
        check_yaml_types(yaml_config, parser, config_path)
        unknown = parser.set_defaults_with_config(**yaml_config)
        if unknown:
            keys = [item[2:] for item in unknown[::2]]
            expected = ", ".join(t.__name__ for t in parser.dataclass_types[:-1])
            raise InputError(
                f"{config_path}: unknown key(s) {', '.join(map(repr, keys))} for {where} (expected fields of "
                f"{expected} or {parser.dataclass_types[-1].__name__}){other_methods_hint(name, keys)}."
            )
    try:
        namespace, unknown_flags = parser.parse_known_args(args)
    except argparse.ArgumentError as error:
        raise InputError(f"{where}: {error}") from None
    if unknown_flags:
        keys = [flag[2:].split("=")[0].replace("-", "_") for flag in unknown_flags if flag.startswith("--")]
        shown = " ".join(mask_token_arguments(unknown_flags, loose=True))  # a misspelled --hub_token's value
        raise InputError(f"{where}: unknown option(s) {shown}{other_methods_hint(name, keys)}.")
    values = vars(namespace)
    notice = device_policy(values, *(gpu_state or machine_gpu_state)())
    built = []
    for dataclass_type in parser.dataclass_types:
        names = {f.name for f in dataclasses.fields(dataclass_type) if f.init}
        try:
            built.append(dataclass_type(**{key: value for key, value in values.items() if key in names}))
        except InputError:
            raise
        except ValueError as error:  # a config's own checks: bad values of the user's arguments
            raise InputError(f"{where}: {error}") from error
    script_args, config, model_args = built
    for parsed in (script_args, config):
        check_positive(parsed, where, yaml_config, config_path, args)
    for parsed in (script_args, config, model_args):
        check_finite(parsed, where, yaml_config, config_path, args)
    check_dispatched_choices(config, where, yaml_config, config_path, args)
    if not script_args.dataset_name:
        raise InputError(f"{where}: set dataset_name (in the YAML file or --dataset_name).")
    if not model_args.model_name_or_path:
        raise InputError(f"{where}: set model_name_or_path (in the YAML file or --model_name_or_path).")
    return script_args, config, model_args, notice


CPU_LAUNCH_FLAGS = ("--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
"""`accelerate launch` flags for N processes on a machine without CUDA. Without a config file accelerate's `--cpu`
(and a `distributed_type: MULTI_CPU` config) take its simple launcher, which starts ONE process unless an MPI hostfile
is configured (`mpirun_hostfile`); `--multi_gpu` takes the `torch.distributed.run` launcher, which starts N, and each
process then runs on CPU with gloo (`device_policy` sets `use_cpu=True`, so accelerate's `PartialState` picks
`MULTI_CPU`). The other flags are the values accelerate would warn it defaulted to (no GPU: fp32, no compilation)."""


def accelerate_command(
    method: str,
    argv: Sequence[str],
    num_processes: int,
    accelerate_config: str | os.PathLike | None = None,
    cuda_available: bool = True,
) -> list[str]:
    """The `accelerate launch` command that runs this training on `num_processes` processes.

    Args:
        method (`str`): A registered method.
        argv (`Sequence[str]`): The arguments after `personalign train METHOD` (passed on to every process).
        num_processes (`int`): Processes to start (one per GPU; on a machine without CUDA, CPU processes).
        accelerate_config (`str` or `os.PathLike`, *optional*): An accelerate config file (examples/accelerate);
            it decides the launcher, as with `accelerate launch --config_file`.
        cuda_available (`bool`, *optional*, defaults to `True`): Whether this machine has a CUDA device. Without one
            and without a config file, `CPU_LAUNCH_FLAGS` make accelerate start `num_processes` CPU processes (gloo).

    Returns:
        `list[str]`: The command (`python -m accelerate.commands.launch ... -m personalign train METHOD ...`).
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config:
        command += ["--config_file", str(accelerate_config)]
    elif not cuda_available and num_processes > 1:
        command += list(CPU_LAUNCH_FLAGS)
    return [*command, "-m", "personalign", "train", method, *argv]


def format_command(command: Sequence[str]) -> str:
    """A command as one shell-quoted line."""
    return " ".join(shlex.quote(part) for part in command)


# ------------------------------------------------------------------------------------------------------- command
def train_help() -> str:
    """The `train` command's help: usage, then every registered method with its summary (read when shown, so a
    method registered after import is listed too)."""
    methods = "\n".join(f"[bold]{name}[/bold]: {escape(method.summary)}" for name, method in METHODS.items())
    return (
        "Train a method from a YAML config: [bold]personalign train METHOD --config cfg.yaml [--key value ...][/bold]."
        f"\n\nMethods:\n{methods}\n\n"
        "YAML keys are the fields of the method's script arguments (dataset_name, resume, ...; DPORE: "
        "persona_encoder; encoder: excerpt_format, ...), its config (learning_rate, beta, ...) and TRL's ModelConfig "
        "(model_name_or_path, use_peft, lora_r, ...). YAML values are defaults, flags override them, unknown keys "
        "are errors. `--resume` continues from the last checkpoint; `--push_to_hub` pushes the result with a card."
    )


METHOD_HELP = "personalign_method_help"
"""`ctx.meta` key: the method whose own help `personalign train METHOD --help` shows."""


def own_fields(dataclass_type: type) -> list[dataclasses.Field]:
    """The fields a dataclass gets from personalign's classes (its own and its personalign bases'), not from TRL or
    transformers."""
    names = {
        name
        for base in dataclass_type.__mro__
        if base.__module__.split(".")[0] == "personalign"
        for name in getattr(base, "__annotations__", {})
    }
    return [f for f in dataclasses.fields(dataclass_type) if f.name in names and f.init]


def describe_field(field: dataclasses.Field) -> str:
    """A field as one help entry's right side: its help and its default."""
    default = field.default if field.default is not dataclasses.MISSING else None
    return f"{field.metadata.get('help', '')} [default: {default}]".strip()


def method_help(name: str) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    """`personalign train NAME --help`: the method's summary, its own options (script arguments and the
    personalign fields of its config) as `(--flag, help)` pairs, and the TRL / transformers classes whose every field
    is an option too, as `(class, field names)` pairs."""
    method = get_method(name)
    script_type, config_type, model_type = method.script_module().make_parser().dataclass_types
    own = [
        (f"--{field.name}", describe_field(field))
        for dataclass_type in (script_type, config_type)
        for field in own_fields(dataclass_type)
    ]
    own_names = {flag[2:] for flag, _ in own}
    inherited = []
    for dataclass_type in (config_type, model_type):
        base = next(b for b in dataclass_type.__mro__ if b.__module__.split(".")[0] != "personalign")
        fields = [f.name for f in dataclasses.fields(dataclass_type) if f.init and f.name not in own_names]
        if fields:  # a config of personalign's own fields only (the preference inferencer's) inherits none
            inherited.append((f"{base.__module__.split('.')[0]}.{base.__name__}", ", ".join(fields)))
    return method.summary, own, inherited


class TrainCommand(TyperCommand):
    """The `train` command, whose help is `train_help()` at the time it is shown, or, for `personalign train METHOD
    --help`, the method's own options (`method_help`).

    Relies on Typer building the command from `typer.core.TyperCommand` (the `cls=` of `app.command`) and rendering
    its help from `self.help` in click's `Command.format_help`, and on click's `Command.parse_args(ctx, args)` seeing
    the arguments before the eager `--help` prints; `test_train_help_lists_the_registered_methods`,
    `test_train_method_help_shows_its_own_fields` and the registry test fail if either changes.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--help" in args:
            method = next((arg for arg in args if arg in METHODS), None)
            if method is not None:
                ctx.meta[METHOD_HELP] = method
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        name = ctx.meta.get(METHOD_HELP)
        if name is None:
            self.help = train_help()
            super().format_help(ctx, formatter)
            return
        summary, own, inherited = method_help(name)
        formatter.write_usage(f"personalign train {name}", "--config cfg.yaml [--key value ...]")
        formatter.write_paragraph()
        formatter.write_text(f"{name}: {summary}")
        formatter.write_text(
            "YAML keys and --flags are the same names; YAML values are defaults, flags override them. "
            "--num-processes, --accelerate-config, --print-config: see `personalign train --help`."
        )
        with formatter.section(f"Options of personalign train {name}"):
            formatter.write_dl(own)
        for class_name, names in inherited:
            with formatter.section(f"Every field of {class_name} (see its documentation)"):
                formatter.write_text(names)


Method = Annotated[str, typer.Argument(help="A registered method (listed above).", show_default=False)]


def train_command(
    ctx: typer.Context,
    method: Method,
    num_processes: Annotated[
        int,
        typer.Option(
            help="Run on this many processes through `accelerate launch`: one per GPU, or CPU processes (gloo) on a "
            "machine without GPUs."
        ),
    ] = 1,
    accelerate_config: Annotated[
        Path | None, typer.Option(help="An accelerate config file (DeepSpeed ZeRO-3, FSDP; see examples/accelerate).")
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved configuration as YAML and exit.")
    ] = False,
) -> None:
    """Train a registered method from a YAML config and flags (the help lists the methods)."""
    # Parsed here even when the run is launched through accelerate: a bad flag or key fails once, in this process,
    # and --print-config shows what each launched process will parse.
    script_args, config, model_args, notice = parse_train_arguments(method, ctx.args)
    launch = num_processes > 1 or accelerate_config is not None
    command = None
    if launch:
        from personalign.scripts.utils import gpu_state

        cuda_available, _ = gpu_state()
        command = accelerate_command(method, ctx.args, num_processes, accelerate_config, cuda_available)
    if print_config:
        from ..hub.run_record import to_jsonable

        resolved = {
            name: to_jsonable(dataclasses.asdict(part))
            for name, part in (("script", script_args), ("config", config), ("model", model_args))
        }
        for key in TOKEN_KEYS:
            if resolved["config"].get(key):
                resolved["config"][key] = "***"  # never printed
        typer.echo(yaml.safe_dump(resolved, sort_keys=False))
        if command is not None:
            console.print(f"would launch: {escape(format_command(mask_token_arguments(command)))}")
        return
    if command is not None:
        console.print(f"launching: {escape(format_command(mask_token_arguments(command)))}")
        raise typer.Exit(subprocess.call(command))
    if notice:
        console.print(notice)
    record = get_method(method).script_module().main(script_args, config, model_args)
    if os.environ.get("RANK", "0") != "0":
        return  # a launched process other than the first: the first one reports the run
    for line in summary_lines(record):
        console.print(line)
    console.print(f"wrote {record['output_dir']}")
    if record.get("hub_url"):
        console.print(f"pushed {record['hub_url']}")


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The headline results of a run record: the evaluation metrics of `HEADLINE_METRICS`, a learned preference
    inferencer's held-out direction report, and a trained encoder's held-out scores before and after training."""
    lines = []
    metrics = record.get("eval_metrics") or {}
    present = [key for key in HEADLINE_METRICS if key in metrics]
    # A preference method's eval_loss is its DPO loss, not a headline: only a record without accuracies shows it.
    shown = [f"{key} {metrics[key]:.4f}" for key in present if key == present[0] or key != "eval_loss"]
    if shown:
        lines.append(" ".join(shown))
    report = record.get("direction_report")
    if report:
        lines.append(
            f"held-out macro-F1 {report['macro_f1']:.3f} ("
            + ", ".join(
                f"{name} P {report[name]['precision']:.3f} R {report[name]['recall']:.3f}"
                for name in ("positive", "negative", "neutral")
            )
            + ")"
        )
    held_out = record.get("eval") or {}
    if "before" in held_out and "after" in held_out:
        before, after = held_out["before"], held_out["after"]
        lines.append(
            f"held-out recall@1 {before['recall@1']:.3f} -> {after['recall@1']:.3f} "
            f"(chance {after['chance_recall@1']:.3f}), pair AUC {before['pair_auc']:.3f} -> {after['pair_auc']:.3f}"
        )
    return lines
