"""The import graph of identity_service and workers: no cycles, between modules or between the
packages at any level, and the CLI loads training code only inside the commands that train or
evaluate. (The layer contracts themselves are pyproject.toml's, checked by ``lint-imports``.)"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")  # comes with import-linter (the dev extra)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("identity_service", "workers")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES)


def _imported(graph, module: str):
    return iter(sorted(graph.find_modules_directly_imported_by(module)))


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, _imported(graph, start))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_through_others(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles between modules:\n" + "\n".join(map(str, cycles))


def test_no_cycles_between_sibling_packages(graph):
    """Within every package, its children (each with all it contains) import one another
    without a cycle; grimp names the imports that would break each one."""
    broken = {}
    packages = list(PACKAGES)
    while packages:
        package = packages.pop()
        children = graph.find_children(package)
        packages.extend(children)
        if children:
            breakers = graph.nominate_cycle_breakers(package)
            if breakers:
                broken[package] = sorted(breakers)
    assert not broken, f"cycles between the children of these packages: {broken}"


def test_every_package_has_a_layer():
    """A new top-level module or package of identity_service must be placed in the layers."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    children = {
        f"identity_service.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "identity_service").iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").is_file())
    }
    assert children <= named, f"not in the layers contract: {sorted(children - named)}"


def _module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Imports that run when the module is imported: at module level, or in a module-level
    ``if``/``try`` block (a function or class body is not)."""
    found = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # cli modules are identity_service.cli.X: ".." is identity_service
            base = ".".join(p for p in ("identity_service", node.module) if p)
            if node.level != 2:
                base = node.module or ""
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    todo.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return found


def test_the_cli_imports_training_only_inside_its_commands():
    """``faceid --help`` and every command that does not train or evaluate run without torch:
    identity_service.training is imported only inside the commands' functions."""
    offending = []
    for path in sorted((ROOT / "identity_service" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for line, name in _module_level_imports(tree):
            if name == "identity_service.training" or name.startswith("identity_service.training."):
                offending.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offending, "\n".join(offending)
