"""The documentation site's own code, as pure functions (the site itself is built by `make docs`, a CI step):
the config-reference tables of docs/hooks.py, the TRL-docstring rewriting of docs/griffe_trl.py, and the API
reference's top-level page against `personalign.__all__`."""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    return _load("hooks")


@pytest.fixture(scope="module")
def griffe_trl():
    pytest.importorskip("griffe", reason="the docs extra is not installed")
    return _load("griffe_trl")


@dataclass
class ExternalConfig:
    """A stand-in for TRL's DPOConfig: a base outside the package."""

    inherited: int = field(default=1, metadata={"help": "Declared by the base only."})
    overridden: float = field(default=0.1, metadata={"help": "The base's help."})


ExternalConfig.__module__ = "external_library.configs"


@dataclass
class MiddleConfig(ExternalConfig):
    """A package class between the config and the base.

    Args:
        documented (`str`, *optional*, defaults to `"a"`): Documented in the docstring, with a
            continuation line.
    """

    documented: str = "a"


@dataclass
class ToyConfig(MiddleConfig):
    """The config a page documents."""

    overridden: float = field(default=0.5, metadata={"help": "A new default."})
    union: int | None = field(default=None, metadata={"help": "Takes `int | None`."})
    listed: list[str] = field(default_factory=lambda: ["x"], metadata={"help": "A factory default."})
    undocumented: bool = False


PACKAGE = ToyConfig.__module__.split(".")[0]


def _rows(table: str) -> dict[str, list[str]]:
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_config_reference_lists_the_fields_the_package_declares(hooks):
    table, problems = hooks.config_reference(ToyConfig, package=PACKAGE)
    rows = _rows(table)
    # Dataclass order; the base's own field is left to the base's docs, a re-declared one is the package's.
    assert list(rows) == ["overridden", "documented", "union", "listed", "undocumented"]
    assert rows["overridden"] == ["<code>float</code>", "<code>0.5</code>", "A new default."]
    assert rows["documented"][2] == "Documented in the docstring, with a continuation line."
    assert rows["union"][0] == "<code>int &#124; None</code>"
    assert rows["union"][2] == "Takes <code>int &#124; None</code>."
    assert rows["listed"][1] == "<code>[&#x27;x&#x27;]</code>"
    assert table.endswith("Every field of `ExternalConfig` applies as well.")
    assert problems == [
        f"{ToyConfig.__module__}.ToyConfig.undocumented has no help (metadata['help'] or an Args entry)"
    ]


def test_config_reference_links_the_real_base_and_skips_its_fields(hooks):
    pytest.importorskip("trl")
    from personalign.trainers.pba_config import PBAConfig

    table, problems = hooks.config_reference(PBAConfig)
    rows = _rows(table)
    assert problems == []
    assert {"upper", "lower", "arithmetic", "history_seed", "max_history_items"} <= set(rows)  # PBA's and AlignX's
    assert "beta" not in rows and "learning_rate" not in rows  # DPOConfig's
    # The TRL version installed (the one the constraints pin), not `main`.
    import trl

    assert f"https://huggingface.co/docs/trl/v{trl.__version__}/en/dpo_trainer#trl.DPOConfig" in table


def test_config_reference_reads_init_parameters_of_a_pretrained_config(hooks):
    pytest.importorskip("transformers")
    from personalign.encoder.modeling_persona_encoder import PersonaEncoderConfig

    table, problems = hooks.config_reference(PersonaEncoderConfig)
    rows = _rows(table)
    assert problems == []
    assert rows["pooling"][:2] == ["<code>str</code>", "<code>&#x27;mean&#x27;</code>"]
    assert "model_type" not in rows and "kwargs" not in rows
    assert "transformers.PretrainedConfig" in table


def test_plain_dataclass_takes_its_help_from_the_docstring(hooks):
    from personalign.data.alignx import AlignXBuildConfig

    table, problems = hooks.config_reference(AlignXBuildConfig)
    rows = _rows(table)
    assert problems == []
    assert list(rows) == [f.name for f in dataclasses.fields(AlignXBuildConfig)]
    assert rows["upper"][2] == "PBA aggregation: positive threshold."
    assert "applies as well" not in table  # no base outside personalign


def test_markers_become_tables_and_bad_paths_warn(hooks, caplog):
    page = "# Page\n\n<!-- config-reference: personalign.data.alignx.AlignXBuildConfig -->\n\ntext\n"
    out = hooks.replace_markers(page, "page.md")
    assert "config-reference" not in out and "| `seed` |" in out and out.endswith("\n\ntext\n")
    with caplog.at_level(logging.WARNING):
        kept = hooks.replace_markers("<!-- config-reference: personalign.data.alignx.NoSuchConfig -->", "page.md")
    assert "config-reference" in kept
    assert "personalign.data.alignx.NoSuchConfig cannot be imported" in caplog.text


def test_trl_docstrings_become_griffe_google_form(griffe_trl):
    assert griffe_trl.clean_type("`int`, *optional*, defaults to `8`") == "int"
    assert griffe_trl.clean_type("[`PersonaEncoderConfig`]") == "PersonaEncoderConfig"
    assert griffe_trl.clean_type("`Dataset` or `dict`") == "Dataset or dict"
    text = (
        "Summary.\n\nArgs:\n    a, b (`torch.Tensor`): Shared\n        text.\n"
        "    c (`int`, *optional*, defaults to `1`): Annotated.\n\n"
        "Returns:\n    `int` or `None`\n\nRaises:\n    `InputError`: Bad.\n"
    )
    assert griffe_trl.rewrite_docstring(text, annotated={"c"}) == (
        "Summary.\n\nArgs:\n    a (torch.Tensor): Shared\n        text.\n    b (torch.Tensor): Shared\n        text.\n"
        "    c: Annotated.\n\nReturns:\n    int or None:\n\nRaises:\n    InputError: Bad.\n"
    )


def test_reference_index_lists_every_top_level_name():
    import personalign

    page = (ROOT / "docs" / "reference" / "personalign.md").read_text()
    listed = set(re.findall(r"^\| \[`(\w+)`\]", page, re.MULTILINE))
    assert listed == set(personalign.__all__) - {"__version__"}


def test_lazy_all_is_expanded_for_the_reference(griffe_trl):
    import griffe

    import personalign
    import personalign.evaluation

    extensions = griffe.load_extensions(griffe_trl.TRLDocstrings)
    package = griffe.load("personalign", search_paths=[ROOT / "src"], extensions=extensions)
    assert package["evaluation"].exports == personalign.evaluation.__all__
    assert package.exports == personalign.__all__


def test_every_public_class_function_and_method_of_the_reference_has_a_docstring():
    """The API reference shows a public name without a docstring with its signature alone (the strict build cannot
    fail on it: mkdocstrings has no such warning), so this test is where a missing docstring fails: every class,
    function and public method exported by a module the reference pages render."""
    griffe = pytest.importorskip("griffe", reason="the docs extra is not installed")
    modules = sorted(
        {
            name
            for page in (ROOT / "docs" / "reference").glob("*.md")
            for name in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M)
        }
    )
    loader = griffe.GriffeLoader(search_paths=[str(ROOT / "src")])
    package = loader.load("personalign")
    loader.resolve_aliases(implicit=True, external=False)
    missing = []
    for module_name in modules:
        module = package if module_name == "personalign" else package[module_name.removeprefix("personalign.")]
        names = module.exports if module.exports is not None else [n for n in module.members if not n.startswith("_")]
        for name in names:
            name = name if isinstance(name, str) else name.name
            member = module[name]
            if member.kind.value in ("class", "function") and not member.docstring:
                missing.append(f"{module_name}.{name}")
            if member.kind.value == "class":
                missing += [
                    f"{module_name}.{name}.{method}"
                    for method, value in member.members.items()
                    if not method.startswith("_")
                    and not value.is_alias
                    and value.kind.value == "function"
                    and not value.docstring
                ]
    assert len(modules) > 20 and not missing, missing


class Color(enum.Enum):
    red = "red"
    blue = "blue"


def test_options_table_lists_arguments_and_options(hooks):
    toy = typer.Typer(add_completion=False)

    @toy.command()
    def run(
        source: Annotated[Path, typer.Argument(help="The input.")],
        count: Annotated[int, typer.Option(help="How many [bold]rows[/bold] <n>.")] = 3,
        color: Annotated[Color, typer.Option(help="A colour.")] = Color.red,
        fast: Annotated[bool, typer.Option("--fast/--slow", help="Speed.")] = False,
        secret: Annotated[str, typer.Option(hidden=True)] = "x",
    ) -> None:
        """Run it."""

    table = hooks.options_table(typer.main.get_command(toy).params)
    assert table.splitlines() == [
        "| name | type | default | help |",
        "|---|---|---|---|",
        "| <code>SOURCE</code> | <code>Path</code> | required | The input. |",
        "| <code>--count</code> | <code>int</code> | <code>3</code> | How many rows &lt;n>. |",
        "| <code>--color</code> | <code>red &#124; blue</code> | <code>red</code> | A colour. |",
        "| <code>--fast / --slow</code> | flag | <code>--slow</code> | Speed. |",
    ]
    assert hooks.options_table([]) == ""


def test_cli_reference_walks_groups_and_the_marker_becomes_the_reference(hooks):
    toy, group = typer.Typer(add_completion=False), typer.Typer(help="A group.")

    @toy.command("top")
    def top(n: int = 1) -> None:
        """The top command."""

    @group.command("leaf")
    def leaf() -> None:
        """A leaf."""

    toy.add_typer(group, name="grp")
    text = hooks.cli_reference(typer.main.get_command(toy), path="tool")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["## `tool`", "### `tool top`", "### `tool grp`", "#### `tool grp leaf`"]
    assert "The top command." in text and "| <code>--n</code> | <code>int</code> | <code>1</code> |" in text
    assert hooks.CLI_MARKER.search("# CLI\n\n<!-- cli-reference -->\n")


SCRIPT_ARGUMENT_CLASSES = [
    "personalign.scripts.utils.ScriptArguments",
    "personalign.scripts.dpore.DPOREScriptArguments",
    "personalign.scripts.encoder.EncoderScriptArguments",
    "personalign.scripts.preference_inferencer.PreferenceInferencerScriptArguments",
    "personalign.scripts.preference_inferencer.PreferenceInferencerConfig",
]


@pytest.mark.parametrize("path", SCRIPT_ARGUMENT_CLASSES)
def test_script_arguments_have_config_reference_tables(hooks, path):
    """The YAML keys of `personalign train` that are script arguments get their marker tables like the configs."""
    pytest.importorskip("trl")
    cls = hooks.import_dotted(path)
    table, problems = hooks.config_reference(cls)
    assert problems == []
    assert set(_rows(table)) == {f.name for f in dataclasses.fields(cls) if f.init}
