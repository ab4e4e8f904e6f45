"""The structure STYLE.md asks for, checked on the source: no import cycles (lazy and
type-checking imports included), nobody writes another object's private attributes, and
production code does not import the test helpers."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ocean_trio

PACKAGE = Path(ocean_trio.__file__).resolve().parent
# The ``port-emulator`` command serves the emulator that ships with the test helpers; it
# imports it inside that command only.
ALLOWED_TESTING_IMPORTS = {("ocean_trio._cli", "ocean_trio.testing._port_emulator")}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every ocean_trio module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            # the deepest known module the import names (``from . import x`` may be one)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges = {name: set(imports(name, path, known)) for name, path in found.items()}
    # A package's __init__ re-exports its modules; importing the package is not a cycle
    # back from them, so package nodes keep only their edges to other packages.
    for name in edges:
        if found[name].name == "__init__.py":
            edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    return edges


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if state.get(target) is None:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_cycle_check_sees_lazy_and_type_checking_imports() -> None:
    # The check itself: imports inside functions and under TYPE_CHECKING count.
    edges = graph()
    assert "ocean_trio.testing._port_emulator" in edges["ocean_trio._cli"]  # lazy
    assert "ocean_trio._app" in edges["ocean_trio.live_events._admin"]  # TYPE_CHECKING


def test_production_code_does_not_import_the_test_helpers() -> None:
    edges = graph()
    offending = {
        (source, target)
        for source, targets in edges.items()
        if not source.startswith("ocean_trio.testing")
        for target in targets
        if target.startswith("ocean_trio.testing")
    }
    assert offending <= ALLOWED_TESTING_IMPORTS


def test_nothing_writes_another_objects_private_attributes() -> None:
    written = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr.startswith("_")
                    and not target.attr.startswith("__")
                    and not (
                        isinstance(target.value, ast.Name) and target.value.id in {"self", "cls"}
                    )
                ):
                    written.append(f"{name}:{node.lineno}: {ast.unparse(target)}")
    assert written == []
