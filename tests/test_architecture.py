"""The shape of the code: layers point one way, no import circles, no module over 500 lines.

Imports are read with :mod:`ast` from the package folders named in ``pyproject.toml``
(nothing is imported), so a violation is reported even in a module no test loads.

What counts as an import, for the circle check: every ``import``/``from ... import`` of
an slmkit module, at module level *and inside functions*; only imports under
``if TYPE_CHECKING:`` are left out (they never run). A function-level import cannot fail
at import time, but it still ties two modules together: neither can be moved, read or
tested without the other, and whether it bites depends on which is imported first. Both
circles issue 13 removed (``tasks`` <-> the environments, ``evaluate`` <-> ``report``)
were closed by a function-level import, so they count. ``from pkg import name`` is an
edge to ``pkg`` (its ``__init__``) when ``name`` is in ``pkg.__all__`` (``from
slmkit.simulators import collect`` is the function), else to the module ``pkg.name`` when
there is one; importing a submodule is not counted as importing its parent package.

Across packages, only the public surface is imported: ``from slmkit.<pkg> import name``
with ``name`` in that package's ``__all__``.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
LAYERS = {
    "models": 0,
    "tools": 1,
    "retrieval": 1,
    "agents": 2,
    "simulators": 3,
    "training": 4,
    "apps": 5,
}
"""``models <- tools, retrieval <- agents <- simulators <- training <- apps`` (DESIGN.md);
tools and retrieval share a layer and do not import each other."""

LONG_ALLOWED = {
    "tools/sandbox/_child.py": "runs alone under `python -I -S` and may import neither "
    "slmkit nor a sibling file (its directory is not on sys.path), so it stays one file",
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    name: str | None = None
    """The name taken from ``target`` (``from target import name``); None for ``import``."""


def _package_dirs() -> dict[str, Path]:
    """``slmkit.<name>`` -> its folder, from pyproject's ``package-dir`` mapping."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def _modules() -> dict[str, Path]:
    """Every slmkit module by dotted name (a package is its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for package, folder in _package_dirs().items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements anywhere under ``node`` except in ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _import_nodes(other)
        else:
            yield from _import_nodes(child)


def _exported(path: Path) -> set[str]:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            return set(ast.literal_eval(node.value))
    return set()


def _imports(modules: dict[str, Path]) -> list[Import]:
    edges: list[Import] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[tuple[str, str | None]]
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                exported = _exported(modules[base]) if base in modules else set()
                targets = [
                    (f"{base}.{a.name}", None)
                    if f"{base}.{a.name}" in modules and a.name not in exported
                    else (base, a.name)
                    for a in node.names
                ]
            edges += [
                Import(name, t, node.lineno, what)
                for t, what in targets
                if t in modules and t != name
            ]
    return edges


def _cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return _modules()


@pytest.fixture(scope="module")
def edges(modules: dict[str, Path]) -> list[Import]:
    return _imports(modules)


def test_the_scan_sees_the_packages_and_their_imports(
    modules: dict[str, Path], edges: list[Import]
) -> None:
    assert {m.split(".")[1] for m in modules} == set(LAYERS)
    assert "slmkit.simulators.envs.bfcl" in modules
    pairs = {(e.source, e.target) for e in edges}
    assert ("slmkit.simulators.evaluate", "slmkit.simulators.report") in pairs
    # a function-level import is seen (the registry imports environments on first use)
    assert ("slmkit.simulators.registry", "slmkit.simulators.envs.bfcl") in pairs
    # ``from . import x`` and ``from .x import y`` resolve to the sibling module
    assert ("slmkit.retrieval.index", "slmkit.retrieval.generation") in pairs


def test_the_circle_check_finds_a_circle() -> None:
    a_b = [Import("a", "b", 1), Import("b", "c", 1), Import("c", "a", 9), Import("c", "d", 2)]
    assert _cycles(a_b) == [["a", "b", "c"]]
    assert _cycles(a_b[:2]) == []


def test_no_import_circles(edges: list[Import]) -> None:
    cycles = _cycles(edges)
    detail = [
        ", ".join(
            sorted(
                {
                    f"{e.source}:{e.line} -> {e.target}"
                    for e in edges
                    if e.source in cycle and e.target in cycle
                }
            )
        )
        for cycle in cycles
    ]
    assert not cycles, "import circles (move the shared part down a module):\n" + "\n".join(detail)


def test_layers_point_one_way(edges: list[Import]) -> None:
    upward = []
    for e in edges:
        src, dst = e.source.split(".")[1], e.target.split(".")[1]
        if LAYERS[dst] > LAYERS[src] or (LAYERS[dst] == LAYERS[src] and dst != src):
            upward.append(f"{e.source}:{e.line} imports {e.target}")
    assert not upward, upward


def test_other_packages_import_only_the_public_surface(
    modules: dict[str, Path], edges: list[Import]
) -> None:
    """Across packages, ``from slmkit.<pkg> import name`` with ``name`` in its ``__all__``.

    A package's modules are its own business (httpx's rule): what another package needs
    is exported, so moving a module inside a package never breaks a caller outside it.
    """
    private = []
    for e in edges:
        if e.source.split(".")[1] == e.target.split(".")[1]:
            continue
        path = modules[e.target]
        if path.name != "__init__.py" or (e.name is not None and e.name not in _exported(path)):
            private.append(
                f"{e.source}:{e.line} imports {e.target}{'.' + e.name if e.name else ''}"
            )
    assert not private, "export these from the package's __init__:\n" + "\n".join(private)


def test_no_module_over_500_lines(modules: dict[str, Path]) -> None:
    too_long = {}
    for path in modules.values():
        relative = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and relative not in LONG_ALLOWED:
            too_long[relative] = lines
    assert not too_long, f"split these by responsibility: {too_long}"
    for relative in LONG_ALLOWED:
        assert (ROOT / relative).is_file(), f"stale exception: {relative}"
