"""Check the layering of every distribution: no import cycle, no oversized module.

For each package ``packages/*/src/eventbus/<name>/`` the import graph among its own
modules is built from the source with :mod:`ast` (nothing is imported). Every import
counts: at module level, inside functions and under ``if TYPE_CHECKING:``. Relative
imports and absolute imports of the same package are resolved; ``from pkg import Name``
where ``Name`` is not a submodule is an edge to the package's ``__init__``, which is
where the name is re-exported. Imports of other distributions are not followed: the
cycle check is within one package. A package's own ``__init__`` is not counted as
imported by each of its modules (Python runs it first, whatever they import).

Fails (exit 1) on an import cycle, printed as ``a -> b -> a`` with the import sites of
each step, and on a module longer than 700 lines. ``--graph`` also prints the graph:
each module with its line count and what it imports.

Usage::

    python tools/check_layers.py            # check, print only findings
    python tools/check_layers.py --graph    # also print the import graph per package
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MAX_CYCLES",
    "MAX_LINES",
    "ImportSite",
    "Module",
    "Package",
    "check",
    "discover",
    "find_cycles",
    "load_package",
    "main",
    "render_graph",
]

MAX_LINES = 700
"""A module longer than this many lines is reported: split it by responsibility."""

MAX_CYCLES = 50
"""At most this many cycles are listed per package; the first ones are enough to act on."""

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ImportSite:
    """One import statement that creates an edge.

    ``context`` is ``"module"`` (runs at import time), ``"function"`` (runs when the
    function is called) or ``"TYPE_CHECKING"`` (never runs; seen only by type checkers).
    """

    line: int
    context: str


@dataclass
class Module:
    """One source file of a package, with the modules of the same package it imports."""

    name: str
    path: Path
    lines: int
    is_package: bool
    imports: dict[str, list[ImportSite]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The dotted name, with ``.__init__`` for a package so that it reads as a file."""
        return f"{self.name}.__init__" if self.is_package else self.name


@dataclass
class Package:
    """One importable package (``eventbus.core``) and its modules by dotted name."""

    name: str
    directory: Path
    modules: dict[str, Module]
    unparsable: list[str] = field(default_factory=list)

    def graph(self) -> dict[str, set[str]]:
        """Each module's name mapped to the names of the modules it imports."""
        return {name: set(module.imports) for name, module in self.modules.items()}

    def label(self, name: str) -> str:
        """How a module of this package is printed."""
        return self.modules[name].label


def discover(root: Path) -> list[Package]:
    """Load every package under ``root/packages/*/src/eventbus/``, sorted by name."""
    packages = [
        load_package(directory, f"eventbus.{directory.name}")
        for directory in root.glob("packages/*/src/eventbus/*/")
        if (directory / "__init__.py").is_file()
    ]
    return sorted(packages, key=lambda package: package.name)


def load_package(directory: Path, name: str) -> Package:
    """Parse every module under ``directory`` (the package named ``name``) and its imports.

    Args:
        directory: the folder holding the package's ``__init__.py``.
        name: the package's dotted name, e.g. ``"eventbus.core"``.

    Returns:
        The package, with each module's edges to the modules of the same package.
    """
    modules: dict[str, Module] = {}
    trees: dict[str, ast.Module] = {}
    unparsable: list[str] = []
    for path in sorted(directory.rglob("*.py")):
        relative = path.relative_to(directory).with_suffix("")
        if "__pycache__" in relative.parts:
            continue
        is_package = relative.name == "__init__"
        parts = relative.parts[:-1] if is_package else relative.parts
        dotted = ".".join((name, *parts))
        source = path.read_text(encoding="utf-8")
        modules[dotted] = Module(dotted, path, len(source.splitlines()), is_package)
        try:
            trees[dotted] = ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            unparsable.append(f"{path}: cannot be parsed: {exc}")
    for dotted, tree in trees.items():
        module = modules[dotted]
        for target, site in _imports(tree, module, modules.keys()):
            if target in modules:
                module.imports.setdefault(target, []).append(site)
    return Package(name, directory, modules, unparsable)


def _imports(tree: ast.Module, module: Module, known: Set[str]) -> Iterator[tuple[str, ImportSite]]:
    """Every module name ``module`` imports, with where and in which context.

    ``known`` is the set of module names of the package: ``from x import y`` imports the
    module ``x.y`` if there is one, and otherwise reads ``y`` from ``x`` itself (a
    re-export from a package's ``__init__``, or a module's own name).
    """
    # Relative imports start from the module's package: the module itself for an __init__.
    base = module.name if module.is_package else module.name.rpartition(".")[0]
    for node, context in _walk(tree.body, "module"):
        site = ImportSite(node.lineno, context)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, site
            continue
        if node.level:
            parts = base.split(".")
            if node.level > len(parts):
                continue  # above the top-level package: Python refuses it too
            parts = parts[: len(parts) - node.level + 1]
            source = ".".join([*parts, node.module] if node.module else parts)
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            yield (submodule if submodule in known else source), site


def _walk(
    body: Sequence[ast.stmt], context: str
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement under ``body``, with the context it runs in."""
    for statement in body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            yield statement, context
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = context if context == "TYPE_CHECKING" else "function"
            yield from _walk(statement.body, inner)
        elif isinstance(statement, ast.If) and _is_type_checking(statement.test):
            yield from _walk(statement.body, "TYPE_CHECKING")
            yield from _walk(statement.orelse, context)
        else:
            for child in _child_bodies(statement):
                yield from _walk(child, context)


def _child_bodies(statement: ast.stmt) -> Iterator[Sequence[ast.stmt]]:
    """The statement lists nested in a compound statement (class, if, try, with, loops)."""
    for name in ("body", "orelse", "finalbody"):
        child = getattr(statement, name, None)
        if isinstance(child, list):
            yield child
    for handler in getattr(statement, "handlers", ()):
        yield handler.body
    for case in getattr(statement, "cases", ()):
        yield case.body


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (any module's attribute of that name)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def find_cycles(graph: Mapping[str, Set[str]], limit: int = MAX_CYCLES) -> list[list[str]]:
    """The elementary cycles of ``graph``, each as ``[a, b, ..., a]`` (Johnson's algorithm).

    Each cycle starts at its smallest name; cycles come in order of that name. At most
    ``limit`` cycles are returned.

    Args:
        graph: each node mapped to the nodes it has an edge to.
        limit: stop after this many cycles (a tangle of modules has very many).

    Returns:
        The cycles, the first node repeated at the end.
    """
    cycles: list[list[str]] = []
    nodes = sorted(graph)
    for index, start in enumerate(nodes):
        component = _component(graph, start, frozenset(nodes[index:]))
        if start in graph[start] or len(component) > 1:
            _circuits(graph, start, component, cycles, limit)
        if len(cycles) >= limit:
            break
    return cycles[:limit]


def _component(graph: Mapping[str, Set[str]], start: str, allowed: Set[str]) -> set[str]:
    """The strongly connected component of ``start`` in the subgraph of ``allowed`` nodes."""
    forward = _reachable(start, lambda node: graph[node] & allowed)
    backward = _reachable(start, lambda node: {n for n in allowed if node in graph[n]})
    return forward & backward


def _reachable(start: str, successors: Callable[[str], Set[str]]) -> set[str]:
    """Every node reachable from ``start`` (``start`` included)."""
    seen = {start}
    todo = [start]
    while todo:
        for successor in successors(todo.pop()):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen


def _circuits(
    graph: Mapping[str, Set[str]],
    start: str,
    component: Set[str],
    cycles: list[list[str]],
    limit: int,
) -> None:
    """Append the cycles through ``start`` within ``component`` (Johnson's CIRCUIT)."""
    blocked: set[str] = set()
    blockers: dict[str, set[str]] = {node: set() for node in component}
    path: list[str] = []

    def unblock(node: str) -> None:
        todo = [node]
        while todo:
            current = todo.pop()
            if current in blocked:
                blocked.discard(current)
                todo.extend(blockers[current])
                blockers[current].clear()

    def circuit(node: str) -> bool:
        found = False
        path.append(node)
        blocked.add(node)
        for successor in sorted(graph[node] & component):
            if len(cycles) >= limit:
                break
            if successor == start:
                cycles.append([*path, start])
                found = True
            elif successor not in blocked and circuit(successor):
                found = True
        if found:
            unblock(node)
        else:
            for successor in graph[node] & component:
                blockers[successor].add(node)
        path.pop()
        return found

    circuit(start)


def check(packages: Sequence[Package], max_lines: int = MAX_LINES) -> list[str]:
    """What is wrong with ``packages``, one finding per entry (several lines for a cycle).

    Args:
        packages: the packages to check, as :func:`discover` or :func:`load_package` give.
        max_lines: a module with more lines than this is a finding.

    Returns:
        The findings; an empty list means the packages are clean.
    """
    findings: list[str] = []
    for package in packages:
        findings.extend(package.unparsable)
        cycles = find_cycles(package.graph())
        for cycle in cycles:
            lines = ["import cycle: " + " -> ".join(package.label(name) for name in cycle)]
            for importer, imported in itertools.pairwise(cycle):
                sites = package.modules[importer].imports[imported]
                lines.append(
                    f"    {package.label(importer)} imports {package.label(imported)} at "
                    + ", ".join(_describe(site) for site in sites)
                )
            findings.append("\n".join(lines))
        if len(cycles) >= MAX_CYCLES:
            findings.append(f"{package.name}: stopped after {MAX_CYCLES} cycles; there may be more")
        findings.extend(
            f"module too long: {module.label} has {module.lines} lines (limit {max_lines})"
            for module in sorted(package.modules.values(), key=lambda module: module.name)
            if module.lines > max_lines
        )
    return findings


def _describe(site: ImportSite) -> str:
    """``line 12`` or ``line 40 (in a function)`` or ``line 8 (TYPE_CHECKING)``."""
    if site.context == "function":
        return f"line {site.line} (in a function)"
    if site.context == "TYPE_CHECKING":
        return f"line {site.line} (TYPE_CHECKING)"
    return f"line {site.line}"


def render_graph(packages: Sequence[Package], root: Path | None = None) -> str:
    """The import graph of each package as indented text, one module per block.

    A module's line shows its line count; each import below it is marked
    ``(in a function)`` or ``(TYPE_CHECKING)`` when no import of it runs at import time.
    Module names are relative to the package (``_bus``, ``__init__``).
    """
    blocks: list[str] = []
    for package in packages:
        total = sum(module.lines for module in package.modules.values())
        where = package.directory
        if root is not None and where.is_relative_to(root):
            where = where.relative_to(root)
        lines = [f"{package.name} ({where}): {len(package.modules)} modules, {total} lines"]
        prefix = f"{package.name}."
        width = max(len(module.label) for module in package.modules.values()) - len(prefix)
        for name in sorted(package.modules, key=lambda name: package.label(name)):
            module = package.modules[name]
            label = module.label.removeprefix(prefix)
            lines.append(f"  {label:<{width}}  {module.lines:>5} lines")
            for imported in sorted(module.imports, key=lambda name: package.label(name)):
                contexts = {site.context for site in module.imports[imported]}
                note = ""
                if "module" not in contexts:
                    note = " (in a function)" if "function" in contexts else " (TYPE_CHECKING)"
                lines.append(f"      -> {package.label(imported).removeprefix(prefix)}{note}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the repository (or ``--root``); print findings; 1 if there are any."""
    parser = argparse.ArgumentParser(
        description="Import cycles and module sizes of every package under packages/*/src/."
    )
    parser.add_argument(
        "--graph", action="store_true", help="also print each package's import graph"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository root (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    packages = discover(root)
    if not packages:
        print(f"FAIL: no package found under {root / 'packages/*/src/eventbus/*/'}")
        return 1
    if args.graph:
        print(render_graph(packages, root), end="\n\n")
    findings = check(packages)
    for finding in findings:
        print(f"FAIL: {finding}")
    scope = (
        f"{_count(len(packages), 'package')}, "
        f"{_count(sum(len(package.modules) for package in packages), 'module')}"
    )
    if findings:
        print(f"{_count(len(findings), 'finding')} in {scope}")
        return 1
    print(f"ok: {scope}, no import cycle, no module over {MAX_LINES} lines")
    return 0


def _count(number: int, noun: str) -> str:
    """``1 package``, ``3 packages``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


if __name__ == "__main__":
    sys.exit(main())
