"""mkdocs hooks (listed in mkdocs.yml): the config-reference tables of the method and data pages.

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
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import importlib.metadata
import inspect
import re
import sys
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


def on_config(config: Any, **kwargs: Any) -> Any:
    # The tables describe this checkout's classes, whichever personalign the environment has installed.
    source = str(Path(config.config_file_path).parent / "src")
    if source not in sys.path:
        sys.path.insert(0, source)
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    return replace_markers(markdown, page.file.src_uri)
