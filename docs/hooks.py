"""mkdocs hooks (listed in mkdocs.yml): the config-reference tables of the method and data pages, and the command-line
reference (docs/cli.md).

A page line `<!-- config-reference: personalign.trainers.dpore_config.DPOREConfig -->` becomes a Markdown table of
the fields that class adds to its parent, one row per field: name, type, default, help.

Which fields: those declared by the class itself or by a personalign class between it and its first base outside
personalign (TRL's `DPOConfig` / `RewardConfig` / `ScriptArguments`, sentence-transformers' training arguments,
`datasets.BuilderConfig`, transformers' `PretrainedConfig`); a field personalign re-declares (a new default) counts
as its own. The inherited ones are not repeated: a line under the table links to that base's documentation. For a
dataclass the fields are its dataclass fields, in their order; for a class that declares no field but defines its own
`__init__` (a transformers `PreTrainedConfig`), the named parameters of that `__init__`.

Where the help comes from (one rule): a field's `metadata["help"]` when it has one (what `HfArgumentParser`, and so
`personalign train --help`, prints: the page and the command line say the same); otherwise the text of the field's
entry under `Args:` in the docstring of the class that declares it (plain dataclasses such as `AlignXBuildConfig`,
and `__init__`-based configs, document their fields there). A field with neither is a build warning, an error under
`mkdocs build --strict`; so is a marker naming a class that cannot be imported.

The line `<!-- cli-reference -->` (docs/cli.md) becomes the reference of the `personalign` command line, read from the
Typer app (`typer.main.get_command(personalign.cli.app)`): for every command and sub-command its help and a table of
its arguments and options (name, type, default, help); for `train`, every registered method's own options as
`personalign train METHOD --help` prints them (`personalign.cli.train.method_help`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import html
import importlib
import importlib.metadata
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger("config-reference")

MARKER = re.compile(r"^<!--\s*config-reference:\s*([\w.]+)\s*-->[ \t]*$", re.MULTILINE)


def hf_docs(library: str, page: str) -> str:
    """A Hugging Face documentation URL for the installed version of `library` (the one the constraints pin).

    Args:
        library (`str`): The distribution and docs name: `"trl"`, `"transformers"`, `"datasets"`.
        page (`str`): The page and anchor under `en/`: `"dpo_trainer#trl.DPOConfig"`.

    Returns:
        `str`: `https://huggingface.co/docs/<library>/v<version>/en/<page>`: the page of the version installed, so
        the inherited fields a reader is sent to are the ones this build's classes have (not `main`'s).
    """
    return f"https://huggingface.co/docs/{library}/v{importlib.metadata.version(library)}/en/{page}"


# Where the documentation of the bases personalign's configs extend lives (the rows they add are not repeated).
BASE_DOCS = {
    "trl.trainer.dpo_config.DPOConfig": ("trl", "dpo_trainer#trl.DPOConfig"),
    "trl.trainer.reward_config.RewardConfig": ("trl", "reward_trainer#trl.RewardConfig"),
    "trl.scripts.utils.ScriptArguments": ("trl", "script_utils#trl.ScriptArguments"),
    "datasets.builder.BuilderConfig": ("datasets", "package_reference/builder_classes#datasets.BuilderConfig"),
    "transformers.configuration_utils.PreTrainedConfig": (
        "transformers",
        "main_classes/configuration#transformers.PretrainedConfig",
    ),
}
# Not on huggingface.co/docs: a fixed URL.
OTHER_DOCS = {
    "sentence_transformers.sentence_transformer.training_args.SentenceTransformerTrainingArguments": (
        "https://sbert.net/docs/package_reference/sentence_transformer/training_args.html"
    ),
}


def base_docs_url(path: str) -> str | None:
    """The documentation URL of a base class at a dotted path, `None` when none is known."""
    if path in BASE_DOCS:
        return hf_docs(*BASE_DOCS[path])
    return OTHER_DOCS.get(path)


_SECTION = re.compile(r"^(\s*)([A-Za-z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^(\*{0,2}\w+(?:, \*{0,2}\w+)*)(?: \(.*?\))?:(.*)$")


def docstring_args(cls: type) -> dict[str, str]:
    """The `Args:` entries of a class's own docstring: name -> text (continuation lines joined with spaces).

    Args:
        cls (`type`): The class; its own `__doc__` only, not an inherited one.

    Returns:
        `dict[str, str]`: One entry per documented name (an entry naming several, `a, b: text`, gives each the text).
    """
    text = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    entries: dict[str, str] = {}
    in_args, indent, names = False, 0, []
    for line in text.split("\n"):
        header = _SECTION.match(line)
        if header:
            in_args, indent, names = (
                header.group(2).lower() in ("args", "arguments", "parameters"),
                len(header.group(1)),
                [],
            )
            continue
        if not in_args or not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            in_args = False
        elif depth == indent + 4 and (entry := _ENTRY.match(line.strip())):
            names = entry.group(1).split(", ")
            for name in names:
                entries[name.lstrip("*")] = entry.group(2).strip()
        else:
            for name in names:
                entries[name.lstrip("*")] = f"{entries[name.lstrip('*')]} {line.strip()}".strip()
    return entries


def _own_classes(cls: type, package: str) -> tuple[list[type], type | None]:
    """The classes of `cls`'s MRO before its first base outside `package`, and that base (`None` without one)."""
    own = []
    for klass in cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] != package:
            return own, (None if klass is object else klass)
        own.append(klass)
    return own, None


def _code(text: Any) -> str:
    """Inline code for a table cell: HTML, since Python-Markdown keeps a `\\|` inside backticks as it is."""
    return "<code>" + html.escape(" ".join(str(text).split())).replace("|", "&#124;") + "</code>"


def _cell(text: Any) -> str:
    """Markdown for a table cell: one line, its pipes escaped (a code span with a pipe becomes HTML code)."""
    text = re.sub(r"`([^`]*\|[^`]*)`", lambda match: _code(match.group(1)), " ".join(str(text).split()))
    return re.sub(r"(?<!\\)\|", "\\|", text)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, str):  # `from __future__ import annotations`: the source text
        return annotation
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _value(value: Any) -> str:
    """A default as code: its repr, or the import path of a class or function (whose repr is `<class ...>`)."""
    if inspect.isclass(value) or inspect.isfunction(value):
        return _code(f"{value.__module__}.{value.__qualname__}")
    return _code(repr(value))


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return _value(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return _value(field.default_factory())
    return "required"


def config_reference(cls: type, package: str = "personalign") -> tuple[str, list[str]]:
    """The Markdown table of the fields `cls` adds to its first base outside `package` (see the module docstring).

    Args:
        cls (`type`): A dataclass (a TRL-style config, a `BuilderConfig`, a plain dataclass) or a class whose
            `__init__` parameters are its fields (a `PretrainedConfig`).
        package (`str`, *optional*, defaults to `"personalign"`): The top-level package whose classes count as
            the class's own.

    Returns:
        `tuple[str, list[str]]`: The Markdown (the table, then a line linking to the base's documentation when
        there is one) and the problems found: one per field without help.
    """
    own, base = _own_classes(cls, package)
    declared = {name for klass in own for name in inspect.get_annotations(klass)}
    documented: dict[str, str] = {}
    for klass in reversed(own):  # the subclass's text wins over its parents'
        documented.update(docstring_args(klass))
    rows, problems = [], []
    if dataclasses.is_dataclass(cls):
        for field in dataclasses.fields(cls):
            if field.name in declared:
                help_text = field.metadata.get("help") or documented.get(field.name)
                rows.append((field.name, _type_name(field.type), _default(field), help_text))
    if not rows and any("__init__" in klass.__dict__ for klass in own):
        # No declared field but an `__init__` of its own (transformers makes every PreTrainedConfig subclass a
        # dataclass, yet its fields are the `__init__` parameters).
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = parameter.annotation
            shown_type = "" if annotation is parameter.empty else _type_name(annotation)
            default = "required" if parameter.default is parameter.empty else _value(parameter.default)
            rows.append((name, shown_type, default, documented.get(name)))
    lines = ["| field | type | default | help |", "|---|---|---|---|"]
    for name, shown_type, default, help_text in rows:
        if not help_text:
            problems.append(
                f"{cls.__module__}.{cls.__qualname__}.{name} has no help (metadata['help'] or an Args entry)"
            )
        type_cell = _code(shown_type) if shown_type else ""
        lines.append(f"| `{name}` | {type_cell} | {default} | {_cell(help_text or '')} |")
    if base is not None:
        path = f"{base.__module__}.{base.__qualname__}"
        url = base_docs_url(path)
        shown = f"[`{base.__name__}`]({url})" if url else f"`{base.__name__}`"
        lines += ["", f"Every field of {shown} applies as well."]
    return "\n".join(lines), problems


def import_dotted(path: str) -> type:
    """The class at a dotted path: `personalign.trainers.dpore_config.DPOREConfig`."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def replace_markers(markdown: str, where: str) -> str:
    """Replace every config-reference marker line of a page's Markdown by its table; problems are build warnings."""

    def table(match: re.Match[str]) -> str:
        try:
            cls = import_dotted(match.group(1))
        except (ImportError, AttributeError, ValueError) as error:
            log.warning("%s: config-reference %s cannot be imported: %s", where, match.group(1), error)
            return match.group(0)
        text, problems = config_reference(cls)
        for problem in problems:
            log.warning("%s: %s", where, problem)
        return text

    return MARKER.sub(table, markdown)


CLI_MARKER = re.compile(r"^<!--\s*cli-reference\s*-->[ \t]*$", re.MULTILINE)


def _text(text: str, markup: bool = True) -> str:
    """Markdown from a help text: Rich markup removed (with `markup`: Typer's help texts; `train METHOD --help`'s
    are plain, with `[default: ...]`), `<` outside code spans escaped (so `<path>` is not HTML)."""
    from rich.errors import MarkupError
    from rich.text import Text

    if markup:
        with contextlib.suppress(MarkupError):  # text that is not valid markup stays as it is
            text = Text.from_markup(text).plain
    text = text.replace("\b\n", "").replace("\b", "")
    parts = text.split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))


def _param_default(param: Any) -> str:
    if getattr(param, "required", False):
        return "required"
    if getattr(param, "show_default", None) is False:
        return ""
    default = param.default
    if default is None or callable(default) or (isinstance(default, (tuple, list)) and not default):
        return ""
    if isinstance(default, enum.Enum):
        default = default.value
    if isinstance(default, bool) and getattr(param, "secondary_opts", None):
        return _code(param.opts[0] if default else param.secondary_opts[0])
    return _code(default if isinstance(default, (str, Path)) else repr(default))


def _param_type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    kind = getattr(param, "type", None)
    if kind is not None:  # click's parameters
        if getattr(kind, "choices", None):
            return _code(" | ".join(str(choice) for choice in kind.choices))
        return _code(kind.name)
    # Typer 0.29's: the annotation (the click type is built when the command runs)
    annotation = param.type_descriptor.annotation
    arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(arms) == 1:
        annotation = arms[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _code(" | ".join(str(member.value) for member in annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return _code(" | ".join(str(value) for value in typing.get_args(annotation)))
    return _code(_type_name(annotation).replace("pathlib.", ""))


def options_table(params: list[Any]) -> str:
    """The Markdown table of a click command's arguments and options (name(s), type, default, help), `--help` and
    hidden options left out.

    Args:
        params (`list[click.Parameter]`): The command's `params` (Typer's `TyperArgument` / `TyperOption` included;
            Typer vendors its own click, so the parameters are read by their attributes, not their classes).

    Returns:
        `str`: The table, or `""` when nothing is left.
    """
    rows = []
    for param in params:
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        if "Argument" in type(param).__name__:
            names = _code((param.metavar or param.name).upper())
        else:
            flags = ", ".join(param.opts)
            if param.secondary_opts:
                flags += " / " + ", ".join(param.secondary_opts)
            names = _code(flags)
        help_text = _cell(_text(getattr(param, "help", None) or ""))
        rows.append(f"| {names} | {_param_type(param)} | {_param_default(param)} | {help_text} |")
    if not rows:
        return ""
    return "\n".join(["| name | type | default | help |", "|---|---|---|---|", *rows])


def _train_methods(level: int) -> list[str]:
    """Every registered method's own options, from the code behind `personalign train METHOD --help`."""
    from personalign.cli.train import method_help
    from personalign.methods import METHODS

    lines = []
    for name in METHODS:
        summary, own, inherited = method_help(name)
        lines += [f"{'#' * level} `personalign train {name}`", "", _text(summary), ""]
        lines += ["| option | help |", "|---|---|"]
        lines += [f"| {_code(flag)} | {_cell(_text(help_text, markup=False))} |" for flag, help_text in own]
        lines.append("")
        lines += [
            f"Every field of `{class_name}` is an option too: {_cell(names)}." for class_name, names in inherited
        ]
        lines.append("")
    return lines


def cli_reference(command: Any, path: str = "personalign", level: int = 2) -> str:
    """The Markdown reference of a click command and, for a group, of every sub-command (depth first, in the order
    the group lists them).

    Args:
        command (`click.Command`): The command (`typer.main.get_command(personalign.cli.app)` for the whole CLI).
        path (`str`, *optional*, defaults to `"personalign"`): How the command is invoked (the heading).
        level (`int`, *optional*, defaults to `2`): The heading level of this command (sub-commands one deeper,
            at most 6).

    Returns:
        `str`: One section per command: a heading, its help, its options table.
    """
    from personalign.cli.train import TrainCommand, train_help

    help_text = train_help() if isinstance(command, TrainCommand) else (command.help or "")
    text = _text(inspect.cleandoc(help_text))
    if isinstance(command, TrainCommand):  # one method a line
        text = text.replace("\n", "  \n")
    lines = [f"{'#' * level} `{path}`", "", text, ""]
    table = options_table(command.params)
    if table:
        lines += [table, ""]
    if isinstance(command, TrainCommand):
        lines += _train_methods(min(level + 1, 6))
    if hasattr(command, "list_commands"):  # a group (click's, or the copy Typer vendors: duck-typed)
        context = command.context_class(command, info_name=path)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                lines.append(cli_reference(sub, f"{path} {name}", min(level + 1, 6)))
    return "\n".join(lines)


def on_config(config: Any, **kwargs: Any) -> Any:
    # The tables describe this checkout's classes, whichever personalign the environment has installed.
    source = str(Path(config.config_file_path).parent / "src")
    if source not in sys.path:
        sys.path.insert(0, source)
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    markdown = replace_markers(markdown, page.file.src_uri)
    if CLI_MARKER.search(markdown):
        import typer

        from personalign.cli import app

        reference = cli_reference(typer.main.get_command(app))
        markdown = CLI_MARKER.sub(lambda match: reference, markdown)
    return markdown
