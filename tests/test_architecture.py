"""The layout's rules, checked on the source: what each folder may import (the table of docs/architecture.md is the
one list), no import cycle, no private name imported across modules, one lazy-export table."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "personalign"


def _component(module: str) -> str:
    """`personalign.data.alignx` -> `data`; `personalign.io` -> `io`; `personalign` -> `personalign`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Every `from personalign... import ...` of one module, with whether it runs at import time."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rsplit(".", 1)[0]
        # (target module, names, runs when the module is imported, line, sits inside a function)
        self.found: list[tuple[str, list[str], bool, int, bool]] = []
        self._depth = 0
        self._type_checking = 0

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            self._type_checking += 1
            self.generic_visit(node)
            self._type_checking -= 1
        else:
            self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target == "personalign" or target.startswith("personalign."):
            runs_on_import = self._depth == 0 and self._type_checking == 0
            names = [alias.name for alias in node.names]
            self.found.append((target, names, runs_on_import, node.lineno, self._depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.startswith("personalign"):
                runs_on_import = self._depth == 0 and self._type_checking == 0
                self.found.append((alias.name, [], runs_on_import, node.lineno, self._depth > 0))


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


MODULES = _modules()


def _imports() -> dict[str, list[tuple[str, list[str], bool, int, bool]]]:
    result = {}
    for module, (path, is_package) in MODULES.items():
        visitor = _Imports(module, is_package)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        result[module] = visitor.found
    return result


IMPORTS = _imports()


def _rules() -> dict[str, set[str]]:
    """The architecture table of docs/architecture.md: `| `component` | what | `a`, `b` |` -> {component: {a, b}}."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Folders and what each may import", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`").removesuffix("/").removesuffix(".py")
        rules[name] = {item.removesuffix("/").removesuffix(".py") for item in re.findall(r"`([^`]+)`", cells[2])}
    return rules


RULES = _rules()


def test_the_architecture_table_lists_every_component():
    components = {_component(module) for module in MODULES} - {"personalign"}
    assert components, "no modules found"
    assert sorted(components - set(RULES)) == [], (
        "components missing from the architecture table of docs/architecture.md"
    )
    assert sorted(set(RULES) - components) == [], (
        "the architecture table of docs/architecture.md names components that do not exist"
    )


@pytest.mark.parametrize("component", sorted(RULES))
def test_each_component_imports_only_what_the_table_allows(component):
    allowed = RULES[component] | {component}
    broken = []
    for module, found in IMPORTS.items():
        if _component(module) != component:
            continue
        for target, names, _, line, _ in found:
            if target == "personalign":
                # The package root is the lazy public facade: only its version may be imported from inside.
                if set(names) - {"__version__"}:
                    broken.append(f"{module}:{line} imports {names} from the package root")
                continue
            if _component(target) not in allowed:
                broken.append(f"{module}:{line} imports {target}")
    assert broken == [], f"{component} may import only {sorted(allowed)}"


def test_no_import_cycle_between_modules():
    """Among the imports that run when a module is imported (not inside functions, not under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, found in IMPORTS.items():
        for target, names, runs_on_import, _, _ in found:
            if not runs_on_import:
                continue
            # `from personalign.x import y` imports personalign.x.y when y is a submodule.
            targets = [f"{target}.{name}" if f"{target}.{name}" in MODULES else target for name in names] or [target]
            graph[module].update(t for t in targets if t in MODULES and t != module)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(MODULES):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_private_name_is_imported_across_modules():
    private = [
        f"{module}:{line} imports {name} from {target}"
        for module, found in IMPORTS.items()
        for target, names, _, line, _ in found
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert private == []


def test_the_lazy_export_table_and_the_type_checking_imports_agree():
    """`personalign/__init__.py` lists each public name once in `_LAZY`; the TYPE_CHECKING block imports the same
    names from the same modules (what editors and type checkers see)."""
    import personalign

    checked = {}
    for target, names, runs_on_import, _, _ in IMPORTS["personalign"]:
        assert not runs_on_import, "the package root must not import its submodules at import time"
        for name in names:
            checked[name] = target
    assert checked == dict(personalign._LAZY)
    for name in personalign._LAZY:
        assert getattr(personalign, name) is not None


def test_internal_imports_sit_at_the_top_of_modules_outside_the_cli():
    """A file's top shows what it depends on. Only the CLI imports personalign modules inside its commands: each
    command loads its own (torch, transformers, TRL behind them) so that `personalign --help` stays light."""
    inside = [
        f"{module}:{line} imports {target}"
        for module, found in IMPORTS.items()
        if _component(module) not in {"cli", "personalign"}
        for target, _, _, line, in_function in found
        if in_function
    ]
    assert inside == []
