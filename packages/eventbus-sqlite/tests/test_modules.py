"""The package's modules: small, each documented with its one job, and free of import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import eventbus.sqlite
from eventbus.sqlite import _store

PACKAGE = Path(eventbus.sqlite.__file__).parent
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}
MAX_LINES = 700


def _siblings(tree: ast.Module) -> set[str]:
    """The package's modules that ``tree`` imports anywhere: at the top, in functions,
    or under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                module = node.module
            elif node.level == 0 and (node.module or "").startswith("eventbus.sqlite"):
                module = (node.module or "").removeprefix("eventbus.sqlite").lstrip(".")
            else:
                continue
            if module:
                found.add(module.split(".")[0])
            else:  # from . import _x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("eventbus.sqlite."):
                    found.add(alias.name.split(".")[2])
    return found & MODULES.keys()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that returns to its start, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_small_documented_and_declares_its_names(name: str) -> None:
    source = MODULES[name].read_text()
    assert source.count("\n") <= MAX_LINES
    tree = ast.parse(source)
    assert ast.get_docstring(tree), f"{name} has no docstring naming its job"
    first = tree.body[1]
    assert isinstance(first, ast.ImportFrom)
    assert (first.module, [a.name for a in first.names]) == ("__future__", ["annotations"])
    declared = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
    ]
    assert len(declared) == 1, f"{name} has no __all__"
    names = ast.literal_eval(declared[0])
    module = getattr(eventbus.sqlite, name, None) if name != "__init__" else eventbus.sqlite
    assert module is not None
    assert all(hasattr(module, exported) for exported in names)


def test_the_modules_import_one_another_without_a_cycle() -> None:
    graph = {name: _siblings(ast.parse(path.read_text())) for name, path in MODULES.items()}
    assert _cycle(graph) is None
    # The direction: the face on top, the row format at the bottom.
    assert graph["_rows"] == set()
    assert graph["_store"] == {
        "_appender",
        "_async_appender",
        "_checkpoints",
        "_compaction",
        "_conditional",
        "_connection",
        "_leases",
        "_reads",
        "_snapshots",
        "_tail",
    }


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    tree = ast.parse(
        "from ._rows import x\n"
        "from eventbus.sqlite._reads import y\n"
        "from eventbus.sqlite import _tail\n"
        "from . import _appender\n"
        "import eventbus.sqlite._connection\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ._store import SQLiteStore\n"
        "def f():\n"
        "    from ._checkpoints import z\n"
    )
    assert _siblings(tree) == {
        "_rows",
        "_reads",
        "_tail",
        "_appender",
        "_connection",
        "_store",
        "_checkpoints",
    }


def test_sqlitestore_stays_importable_from_its_old_module() -> None:
    assert _store.SQLiteStore is eventbus.sqlite.SQLiteStore
