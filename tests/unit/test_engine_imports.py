"""The engine package's modules import one another without a cycle.

Every import counts: at the top of a module, under ``TYPE_CHECKING`` or inside a function.
A runner knows the engine that owns it only as ``runner.OwningEngine`` (a protocol the
engine satisfies), so ``engine.py`` may import ``runner.py`` and never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sahara_es.engine

PACKAGE = "sahara_es.engine"
FOLDER = Path(sahara_es.engine.__file__).parent


def module_name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


MODULES = {module_name(path): path for path in sorted(FOLDER.glob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """The package's modules ``name`` imports, anywhere in its text."""
    found: set[str] = set()
    package = PACKAGE if name == PACKAGE else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            # ``from package import module`` imports the module; anything else the package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    return {name: imported(name, path) for name, path in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that is on one (depth-first, so short to read)."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(path: list[str]) -> None:
        for successor in sorted(edges.get(path[-1], ())):
            if successor == path[0]:
                if frozenset(path) not in seen:
                    seen.add(frozenset(path))
                    found.append([*path, successor])
            elif successor not in path and successor > path[0]:
                visit([*path, successor])

    for start in sorted(edges):
        visit([start])
    return found


def test_the_checker_sees_a_cycle_through_a_type_checking_or_function_import() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_counts_imports_under_type_checking_and_in_functions(tmp_path: Path) -> None:
    module = tmp_path / "runner.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from sahara_es.engine.engine import Engine\n"
        "def later():\n"
        "    from sahara_es.engine import handoff\n"
        "    from . import state\n"
    )
    assert imported(f"{PACKAGE}.runner", module) == {
        f"{PACKAGE}.engine", f"{PACKAGE}.handoff", f"{PACKAGE}.state"}


def test_the_engine_package_has_no_import_cycle() -> None:
    edges = graph()
    assert f"{PACKAGE}.runner" in edges and f"{PACKAGE}.engine" in edges
    assert cycles(edges) == []


def test_the_runner_does_not_import_the_engine() -> None:
    assert f"{PACKAGE}.engine" not in graph()[f"{PACKAGE}.runner"]
