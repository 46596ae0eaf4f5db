"""The package's modules: small, each with its one job written down, and no import cycle.

Every import between the package's modules counts, wherever it is written (module level,
inside a function, or under ``if TYPE_CHECKING:``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import eventbus.durablestream

PACKAGE = Path(eventbus.durablestream.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_LINES = 700


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, by stem."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                names = [module] if module else [a.name for a in node.names]
                found.update(name.split(".")[0] for name in names)
            elif module.startswith("eventbus.durablestream."):
                found.add(module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("eventbus.durablestream."):
                    found.add(alias.name.split(".")[2])
    return found - {path.stem}


def test_the_package_has_the_modules_this_test_reads() -> None:
    assert {"_store", "_client", "__init__"} <= {m.stem for m in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_is_small_and_says_what_it_does(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source)
    assert len(source.splitlines()) <= MAX_LINES
    assert ast.get_docstring(tree), f"{path.name} has no module docstring"
    assert "from __future__ import annotations" in source
    assigned = {
        getattr(target, "id", "")
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
    }
    assert "__all__" in assigned, f"{path.name} has no __all__"


def test_no_module_imports_itself_back() -> None:
    graph = {path.stem: _imports(path) for path in MODULES}
    assert graph["_store"] >= {"_group_commit", "_store_reads", "_long_poll"}  # sanity
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, "import cycle: " + " -> ".join((*trail, module))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*trail, module))
        done.add(module)

    for module in graph:
        visit(module, ())
