"""A griffe extension that reads the TRL docstring format (listed in mkdocs.yml under mkdocstrings' `extensions`).

personalign's docstrings follow TRL / transformers: `name (`type`, *optional*, defaults to `x`): text` under `Args:`,
`` `type`: text `` under `Returns:` / `Yields:`, `` `SomeError`: text `` under `Raises:`. griffe's Google parser
takes the text in parentheses as a Python expression, which this format is not (backticks, `*optional*`, the
default), so without this extension every type renders as the raw string and links nowhere. Before griffe parses a
docstring, this rewrites each entry of those sections into griffe's Google form:

- a parameter (or attribute) whose signature annotates it: the docstring type is dropped, so the rendered type is
  the signature's annotation (exact, cross-referenced) and the default column is the signature's default;
- otherwise the docstring type is kept, cleaned: `[`X`]` links and backticks removed, `*optional*` and
  `defaults to ...` cut (the default comes from the signature);
- several names sharing one entry (`chosen_logps, rejected_logps (`torch.Tensor`): text`, TRL's and numpy's
  shorthand, which griffe's Google parser reads as one parameter named `chosen_logps, rejected_logps`): one entry
  per name, each with the entry's text;
- a return / yield / raised type: backticks removed, so griffe resolves the name; an entry that is only a type
  (`` `ScoreReport` ``, `` `int` or `None` ``) becomes that type with no text;
- a TRL link `[`Name`]` / `[`~module.Name`]` in any text: a cross-reference to where the name's object is
  documented, found from the docstring's scope (as Python would resolve the name there); a name outside personalign
  (`~trl.DPOConfig`) stays plain code, since the build is offline (no other project's inventory). A personalign name
  that resolves nowhere stays a cross-reference that autorefs cannot resolve: a warning, an error under --strict.

It also expands a lazily built `__all__` (`__all__ = [..., *_LAZY]`, where `_LAZY` is the module's dict of lazily
imported names): griffe does not evaluate a starred name that is not another `__all__`, so without this the names of
`_LAZY` (`personalign.evaluation`'s runner, scoring, judges...) would be missing from their package's page.

A method without a docstring that overrides a documented one gets that docstring, as `inspect.getdoc` and `help()`
give it (the judged protocols' `judge`, `describe`, `plot` are documented once, on `JudgeProtocol`).

Nothing else changes: a parameter documented but absent from the signature still warns (`warn_unknown_params`),
and the descriptions are untouched.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

_ENTRY_SECTIONS = {"args", "arguments", "parameters", "params", "attributes", "other parameters"}
_TYPE_SECTIONS = {"returns", "return", "yields", "yield", "raises", "raise", "exceptions"}
# One entry whose text wraps at the entry's indentation (TRL's form; `returns_multiple_items: false` in mkdocs.yml).
_SINGLE_ENTRY_SECTIONS = {"returns", "return", "yields", "yield"}
_SECTION = re.compile(r"^(\s*)([A-Za-z][A-Za-z ]*):\s*$")
_PARAMETER = re.compile(r"^(\s*)(\*{0,2}\w+(?:, \*{0,2}\w+)*)(?: \((.+?)\))?:(.*)$")
_TYPE_ONLY = re.compile(r"^(\s*)(`[^`]+`(?:\s*(?:,|or)\s*`[^`]+`)*)\s*$")
_LEADING_TYPE = re.compile(r"^(\s*)[(\[]?(`[^`]+`(?:\s*(?:,|or)\s*`[^`]+`)*)[)\]]?:(.*)$")
_TRL_LINK = re.compile(r"\[`([^`]+)`\]")


def clean_type(text: str) -> str:
    """The Python-readable part of a TRL-format type: `` `int`, *optional*, defaults to `8` `` -> `int`.

    Args:
        text (`str`): What a docstring entry has between the parentheses after the parameter's name.

    Returns:
        `str`: The type alone, without backticks, TRL's `[`X`]` link brackets, `*optional*` or the default.
    """
    text = re.split(r",?\s*defaults? to\b", text, maxsplit=1)[0]
    text = re.sub(r",?\s*\*?optional\*?", "", text)
    text = _TRL_LINK.sub(r"\1", text)
    return text.replace("`", "").strip().rstrip(",").strip()


def _annotated_names(obj: griffe.Object) -> set[str]:
    names: set[str] = set()
    try:
        parameters = obj.parameters  # functions, and classes through their __init__ (or dataclass fields)
    except Exception:
        parameters = ()
    for parameter in parameters or ():
        if parameter.annotation is not None and str(parameter.annotation) != "Any":
            names.add(parameter.name)
    if obj.is_class:
        for name, member in obj.members.items():
            if not member.is_alias and member.is_attribute and str(member.annotation or "Any") != "Any":
                names.add(name)
    return names


def resolve_reference(obj: griffe.Object, reference: str) -> str | None:
    """The documented path of a name a docstring links to, resolved from the docstring's scope.

    Args:
        obj (`griffe.Object`): The object whose docstring holds the link.
        reference (`str`): The link's text without backticks, e.g. `"PersonaEncoder.from_pretrained"` or
            `"~personalign.PreferenceInferencer"`.

    Returns:
        `str` or `None`: The path of the object it names (its canonical path, where it is defined), `None` for a
        name outside personalign (no page to link to), or the reference itself when it resolves nowhere.
    """
    dotted = reference.lstrip("~")
    head, _, rest = dotted.partition(".")
    if head == obj.package.name:
        path = dotted
    else:
        try:
            path = obj.resolve(head) + (f".{rest}" if rest else "")
        except Exception:
            return dotted if reference == dotted else None  # `~trl.X`-style: another library's name
    if path.split(".", 1)[0] != obj.package.name:
        return None
    try:
        target = obj.modules_collection[path]
        return target.final_target.path if target.is_alias else target.path
    except Exception:
        return path


def link_references(text: str, obj: griffe.Object) -> str:
    """Turn TRL's `[`Name`]` links into autorefs cross-references (see `resolve_reference`)."""

    def replace(match: re.Match[str]) -> str:
        reference = match.group(1)
        shown = reference.lstrip("~").rsplit(".", 1)[-1] if reference.startswith("~") else reference
        path = resolve_reference(obj, reference)
        return f"`{shown}`" if path is None else f"[`{shown}`][{path}]"

    return _TRL_LINK.sub(replace, text)


def rewrite_docstring(text: str, annotated: set[str]) -> str:
    """Rewrite the TRL-format entries of a docstring into griffe's Google form (see the module docstring).

    Args:
        text (`str`): The docstring, dedented.
        annotated (`set[str]`): The parameter / attribute names the signature annotates.

    Returns:
        `str`: The docstring with its `Args:`-like, `Returns:`, `Yields:` and `Raises:` entries rewritten.
    """
    out: list[str] = []
    section: str | None = None
    section_indent = entries_seen = 0
    entry: list[str] = []  # the current multi-name entry: its first line, then its continuation lines

    def flush() -> None:
        if entry:
            space, names, type_text, description = _PARAMETER.match(entry[0]).groups()
            for name in names.split(", "):
                if name.lstrip("*") in annotated or type_text is None:
                    out.append(f"{space}{name}:{description}")
                else:
                    out.append(f"{space}{name} ({clean_type(type_text)}):{description}")
                out.extend(entry[1:])
            entry.clear()

    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip())
        if entry and line.strip() and indent > section_indent + 4:
            entry.append(line)
            continue
        flush()
        out.append(line)
        header = _SECTION.match(line)
        if header and header.group(2).lower() in _ENTRY_SECTIONS | _TYPE_SECTIONS:
            section, section_indent = header.group(2).lower(), len(header.group(1))
            entries_seen = 0
            continue
        if section is None or not line.strip():
            continue
        if indent <= section_indent:
            section = None
            continue
        if indent != section_indent + 4 or (section in _SINGLE_ENTRY_SECTIONS and entries_seen):
            continue  # a continuation line of an entry
        entries_seen += 1
        if section in _ENTRY_SECTIONS and (match := _PARAMETER.match(line)):
            out.pop()
            entry.append(line)
        elif section in _TYPE_SECTIONS and (match := _LEADING_TYPE.match(line)):
            space, type_text, description = match.groups()
            out[-1] = f"{space}{clean_type(type_text.replace('`,', '` or'))}:{description}"
        elif section in _TYPE_SECTIONS and (match := _TYPE_ONLY.match(line)):
            space, type_text = match.groups()
            out[-1] = f"{space}{clean_type(type_text.replace('`,', '` or'))}:"
    flush()
    return "\n".join(out)


def expand_lazy_exports(module: griffe.Module) -> None:
    """Replace a starred name in a module's `__all__` by the keys of the literal dict (or list) it names."""
    if not module.exports:
        return
    exports: list[Any] = []
    for export in module.exports:
        member = module.members.get(getattr(export, "name", None) or "") if not isinstance(export, str) else None
        if member is not None and not member.is_alias and member.is_attribute and member.value is not None:
            try:
                exports.extend(str(name) for name in ast.literal_eval(str(member.value)))
                continue
            except (ValueError, SyntaxError):
                pass
        exports.append(export)
    module.exports = exports


def _walk(obj: griffe.Object, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.is_module:
        expand_lazy_exports(obj)
    if obj.docstring is not None:
        rewritten = rewrite_docstring(obj.docstring.value, _annotated_names(obj))
        obj.docstring.value = link_references(rewritten, obj)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member, seen)


def inherit_docstrings(obj: griffe.Object, seen: set[int]) -> None:
    """Give each undocumented method the docstring of the method it overrides in a documented base class."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.is_class:
        try:
            bases = obj.mro()
        except Exception:  # a base outside the loaded packages
            bases = []
        for name, member in obj.members.items():
            if member.is_alias or not member.is_function or member.docstring is not None:
                continue
            for base in bases:
                inherited = base.members.get(name)
                if inherited is not None and not inherited.is_alias and inherited.docstring is not None:
                    member.docstring = griffe.Docstring(
                        inherited.docstring.value, lineno=inherited.docstring.lineno, parent=member
                    )
                    break
    for member in obj.members.values():
        if not member.is_alias:
            inherit_docstrings(member, seen)


class TRLDocstrings(griffe.Extension):
    """Rewrites every docstring of a loaded package from the TRL format into griffe's Google form."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        inherit_docstrings(pkg, set())  # first: the rewriting below is not idempotent (links)
        _walk(pkg, set())
