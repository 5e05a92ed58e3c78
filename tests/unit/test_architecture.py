"""The package's import structure: no import cycle, and the CLI is the top layer.

The walk reads the *installed* ``iotrate`` package, not the repository's folders: probes/,
reports/ and rating_schema/ sit at the top of the repository but install as
``iotrate.probes``, ``iotrate.reports`` and ``iotrate.rating_schema``, so modules are found
through the import system (``importlib.util.find_spec`` and ``pkgutil``) and read with ``ast``
without being run.

What counts as an import of module B by module A (an edge A -> B):

* ``import B``, ``from B import name`` and their relative forms, resolved against A's package;
  ``from P import x`` is an import of the submodule ``P.x`` when there is one, otherwise of
  ``P`` itself (``x`` is then a name defined by P's ``__init__``).
* Wherever the statement is: at module level, in a class, or inside a function. A lazy import
  that exists to dodge a cycle still ties the two modules together; the failure message marks
  those with the function they are in, so they are easy to find.
* Not inside ``if TYPE_CHECKING:``: those never run, and annotations are strings.
* Not the implicit import of parent packages: importing ``P.x`` runs ``P/__init__``, but that
  is how packages work, not a dependency A chose. So a package ``__init__`` that imports its
  own submodules is fine while the submodules take what they need from their siblings; it is a
  cycle only when a submodule imports a name from the ``__init__`` (``from P import name``)
  and the ``__init__`` imports that submodule back.
* Imports of modules outside ``iotrate``, and dynamic ones (``importlib.import_module``, as
  the probe registry does), are not part of the graph.

A cycle is a strongly connected component of more than one module (Tarjan's algorithm).
"""

from __future__ import annotations

import ast
import pkgutil
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = "iotrate"
# The module ``python -m iotrate`` runs: it exists to start the CLI.
ENTRY_POINTS = frozenset({f"{ROOT}.__main__"})
CLI = f"{ROOT}.cli"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """What a relative import in this module is relative to."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    text: str
    function: str | None  # the function the import is in; None at module (or class) level

    def describe(self, path: Path) -> str:
        where = f" (inside {self.function})" if self.function else ""
        return f"  {_shown(path)}:{self.line}: {self.text}{where}"


@dataclass(frozen=True)
class _Reference:
    """An import statement as written, with a relative module name made absolute."""

    module: str
    names: tuple[str, ...]  # ``from module import names``; empty for ``import module``
    line: int
    text: str
    function: str | None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- finding the modules ------------------------------------------------------------------------


def _find(name: str, path: list[str] | None) -> Module | None:
    """The module ``name`` as the import system would find it, without running anything:
    each finder on ``sys.meta_path`` is asked directly, as ``import`` would ask it once the
    parent package (whose folder is ``path``) had been imported."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec(name, path)
        if spec is not None:
            if spec.origin is None or not spec.origin.endswith(".py"):
                return None
            return Module(name, Path(spec.origin), spec.submodule_search_locations is not None)
    return None


def _children(package: Module) -> Iterator[Module]:
    for info in pkgutil.iter_modules([str(package.path.parent)]):
        name = f"{package.name}.{info.name}"
        if info.ispkg:
            path = package.path.parent / info.name / "__init__.py"
        else:
            path = package.path.parent / f"{info.name}.py"
        if path.is_file():
            yield Module(name, path, info.ispkg)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: Module, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    parts = module.package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _references(module: Module) -> list[_Reference]:
    source = module.path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(module.path))
    found: list[_Reference] = []

    lines = source.splitlines()

    def text(node: ast.stmt) -> str:
        return " ".join(" ".join(lines[node.lineno - 1 : node.end_lineno]).split())

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch, function)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name if function is None else f"{function}.{node.name}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(_Reference(alias.name, (), node.lineno, text(node), function))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node.level, node.module)
            names = tuple(a.name for a in node.names)
            found.append(_Reference(target, names, node.lineno, text(node), function))
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.expr):  # an import is a statement, never in one
                visit(child, function)

    visit(tree, None)
    return found


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@dataclass(frozen=True)
class Graph:
    modules: dict[str, Module]
    edges: tuple[Edge, ...]

    def cycles(self) -> list[list[str]]:
        """Every strongly connected component of more than one module, each sorted."""
        return [sorted(c) for c in _components(self.modules, self.edges) if len(c) > 1]

    def describe_cycle(self, members: Iterable[str]) -> str:
        knot = set(members)
        inside = [e for e in self.edges if e.source in knot and e.target in knot]
        loop = _shortest_loop(sorted(knot)[0], inside)
        lines = [" -> ".join(loop), f"  modules: {', '.join(sorted(knot))}", "  imports:"]
        lines += [e.describe(self.modules[e.source].path) for e in inside]
        return "\n".join(lines)


def build_graph(root: str) -> Graph:
    """Every module of the installed package ``root`` and the imports between them."""
    top = _find(root, None)
    assert top is not None and top.is_package, f"{root} is not an installed package"
    modules: dict[str, Module] = {}
    references: dict[str, list[_Reference]] = {}
    looked_up: set[str] = set()
    todo = [top]
    while todo:
        while todo:
            module = todo.pop()
            if module.name not in modules:
                modules[module.name] = module
                references[module.name] = _references(module)
                if module.is_package:
                    todo.extend(_children(module))
        # A subpackage installed from another folder (package-dir mapping, an editable
        # install) is not in its parent's folder: look up the names the imports use.
        for refs in references.values():
            for name in (n for ref in refs for n in _named(ref)):
                parent = modules.get(name.rpartition(".")[0])
                if name in modules or name in looked_up or not (parent and parent.is_package):
                    continue
                looked_up.add(name)
                if (found := _find(name, [str(parent.path.parent)])) is not None:
                    todo.append(found)
    edges: list[Edge] = []
    for source, refs in references.items():
        for ref in refs:
            for target in _targets(ref, modules):
                if target != source and _inside(target, root):
                    edges.append(Edge(source, target, ref.line, ref.text, ref.function))
    return Graph(modules, tuple(edges))


def _named(ref: _Reference) -> Iterator[str]:
    """Every module name an import statement could mean, its packages included."""
    parts = ref.module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])
    for name in ref.names:
        yield f"{ref.module}.{name}"


def _targets(ref: _Reference, modules: dict[str, Module]) -> list[str]:
    if not ref.names:
        return [ref.module] if ref.module in modules else []
    targets = []
    for name in ref.names:
        submodule = f"{ref.module}.{name}"
        if submodule in modules:
            targets.append(submodule)
        elif ref.module in modules:
            targets.append(ref.module)
    return list(dict.fromkeys(targets))


def _components(modules: Iterable[str], edges: Iterable[Edge]) -> list[set[str]]:
    """Tarjan's strongly connected components."""
    successors: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        successors[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(successors[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            result.append(component)

    for v in sorted(successors):
        if v not in index:
            connect(v)
    return result


def _shortest_loop(start: str, edges: list[Edge]) -> list[str]:
    """One shortest way from ``start`` back to itself, for the message."""
    successors: dict[str, set[str]] = {}
    for e in edges:
        successors.setdefault(e.source, set()).add(e.target)
    previous = {start: start}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(successors.get(v, ())):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return [start]


@cache
def installed() -> Graph:
    return build_graph(ROOT)


# --- the package -------------------------------------------------------------------------------


def test_walk_reaches_the_subpackages_installed_from_top_level_folders() -> None:
    names = installed().modules
    for module in ("probes.base", "reports.html", "rating_schema"):
        assert f"{ROOT}.{module}" in names


def test_no_import_cycle() -> None:
    graph = installed()
    cycles = graph.cycles()
    report = "\n\n".join(graph.describe_cycle(c) for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) in {ROOT}:\n\n{report}"


def test_nothing_below_the_cli_imports_it() -> None:
    graph = installed()
    upward = [
        e
        for e in graph.edges
        if _inside(e.target, CLI) and not _inside(e.source, CLI) and e.source not in ENTRY_POINTS
    ]
    lines = [e.describe(graph.modules[e.source].path) for e in upward]
    assert not upward, f"modules outside {CLI} import it (the CLI is the top layer):\n" + (
        "\n".join(lines)
    )


# --- the walker itself, on a package made for the purpose --------------------------------------


def test_the_walk_sees_lazy_and_relative_imports_and_skips_type_checking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "archfixture"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .sub import leaf\n",
        "a.py": "import archfixture.b\n",
        "b.py": "def later():\n    from . import a\n",
        "c.py": "import typing\nif typing.TYPE_CHECKING:\n    from archfixture import d\n",
        "d.py": "from archfixture import c\n",
        "sub/__init__.py": "",
        "sub/leaf.py": "from .. import ROOT_NAME\n",
        "sub/ok.py": "from . import leaf\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = build_graph("archfixture")  # reads the files; nothing of them is imported
    assert not any(_inside(name, "archfixture") for name in sys.modules)
    assert graph.cycles() == [
        ["archfixture", "archfixture.sub.leaf"],
        ["archfixture.a", "archfixture.b"],
    ]
    lazy = [e for e in graph.edges if e.source == "archfixture.b"]
    assert [(e.target, e.function, e.line) for e in lazy] == [("archfixture.a", "later", 2)]
    assert not any(e.source == "archfixture.c" for e in graph.edges)
    message = graph.describe_cycle(["archfixture.a", "archfixture.b"])
    assert "archfixture.a -> archfixture.b -> archfixture.a" in message
    assert "b.py:2: from . import a (inside later)" in message
