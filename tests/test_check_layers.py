"""tools/check_layers.py on small package trees made for each test."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_tool() -> ModuleType:
    # tools/ is not a package and not on sys.path: load the script as CI runs it.
    path = ROOT / "tools" / "check_layers.py"
    spec = importlib.util.spec_from_file_location("check_layers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


check_layers = _load_tool()


def make_package(root: Path, files: dict[str, str], name: str = "fake") -> Path:
    """Write ``packages/eventbus-<name>/src/eventbus/<name>/`` with ``files`` (dedented)."""
    package = root / "packages" / f"eventbus-{name}" / "src" / "eventbus" / name
    for relative, source in {"__init__.py": "", **files}.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return package


def findings(root: Path) -> list[str]:
    result: list[str] = check_layers.check(check_layers.discover(root))
    return result


def edges(root: Path, module: str) -> set[str]:
    (package,) = check_layers.discover(root)
    return set(package.modules[module].imports)


def test_a_clean_tree_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_package(
        tmp_path,
        {
            "__init__.py": "from ._api import Api as Api\n",
            "_api.py": "from ._base import Base\n\nclass Api(Base): ...\n",
            "_base.py": "import json\n\nclass Base: ...\n",
        },
    )

    assert findings(tmp_path) == []
    assert check_layers.main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 package, 3 modules,")


def test_a_cycle_through_a_function_level_import_is_reported(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        {
            "_a.py": "from ._b import helper\n",
            "_b.py": """\
                def helper() -> None:
                    from ._a import later
                    later()
            """,
        },
    )

    (finding,) = findings(tmp_path)
    assert finding.splitlines() == [
        "import cycle: eventbus.fake._a -> eventbus.fake._b -> eventbus.fake._a",
        "    eventbus.fake._a imports eventbus.fake._b at line 1",
        "    eventbus.fake._b imports eventbus.fake._a at line 2 (in a function)",
    ]


@pytest.mark.parametrize(
    "guard",
    [
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n",
        "import typing\n\nif typing.TYPE_CHECKING:\n",
    ],
)
def test_a_cycle_through_a_type_checking_import_is_reported(tmp_path: Path, guard: str) -> None:
    make_package(
        tmp_path,
        {
            "_store.py": "from ._records import Record\n",
            "_records.py": guard + "    from ._store import Store\n",
        },
    )

    (finding,) = findings(tmp_path)
    assert finding.startswith(
        "import cycle: eventbus.fake._records -> eventbus.fake._store -> eventbus.fake._records\n"
    )
    assert "eventbus.fake._records imports eventbus.fake._store at line 4 (TYPE_CHECKING)" in (
        finding
    )


def test_the_else_of_type_checking_and_nested_blocks_run_at_import_time(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        {
            "_a.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    pass
                else:
                    try:
                        from ._b import b
                    except ImportError:
                        from ._c import c

                class K:
                    def method(self) -> None:
                        with open("x"):
                            from ._d import d
            """,
            "_b.py": "",
            "_c.py": "",
            "_d.py": "",
        },
    )

    (package,) = check_layers.discover(tmp_path)
    imports = package.modules["eventbus.fake._a"].imports
    contexts = {name: [site.context for site in sites] for name, sites in imports.items()}
    assert contexts == {
        "eventbus.fake._b": ["module"],
        "eventbus.fake._c": ["module"],
        "eventbus.fake._d": ["function"],
    }


def test_a_module_over_700_lines_is_reported(tmp_path: Path) -> None:
    make_package(tmp_path, {"_long.py": "x = 1\n" * 701, "_fits.py": "x = 1\n" * 700})

    assert findings(tmp_path) == ["module too long: eventbus.fake._long has 701 lines (limit 700)"]


def test_relative_imports_resolve(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        {
            "__init__.py": "from .sub import Thing as Thing\n",
            "_top.py": "",
            "_x.py": "",
            "sub/__init__.py": "from ._deep import Thing as Thing\n",
            "sub/_deep.py": """\
                from .. import _x
                from .._top import top
                from ... import sqlite
                from .... import too_far
                from . import _leaf
                from .inner._core import core

                Thing = object
            """,
            "sub/_leaf.py": "",
            "sub/inner/__init__.py": "",
            "sub/inner/_core.py": "",
        },
    )

    assert edges(tmp_path, "eventbus.fake") == {"eventbus.fake.sub"}
    assert edges(tmp_path, "eventbus.fake.sub") == {"eventbus.fake.sub._deep"}
    assert edges(tmp_path, "eventbus.fake.sub._deep") == {
        "eventbus.fake._x",
        "eventbus.fake._top",
        "eventbus.fake.sub._leaf",
        "eventbus.fake.sub.inner._core",
    }
    assert findings(tmp_path) == []


def test_absolute_imports_of_the_same_package_resolve(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        {
            "_a.py": """\
                import eventbus.fake._b
                import eventbus.fake._c as c
                from eventbus.fake._d import d
                from eventbus.fake import _e
                from eventbus.core import EventBus
                import eventbus.core._bus
            """,
            "_b.py": "",
            "_c.py": "",
            "_d.py": "",
            "_e.py": "",
        },
    )

    assert edges(tmp_path, "eventbus.fake._a") == {f"eventbus.fake._{x}" for x in "bcde"}


def test_importing_a_re_export_is_an_edge_to_the_init(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        {
            "__init__.py": "from ._bus import Bus as Bus\nfrom ._store import Store as Store\n",
            "_bus.py": "from eventbus.fake import Store\n",
            "_store.py": "from . import Bus\n",
        },
    )

    assert [finding.splitlines()[0] for finding in findings(tmp_path)] == [
        "import cycle: eventbus.fake.__init__ -> eventbus.fake._bus -> eventbus.fake.__init__",
        "import cycle: eventbus.fake.__init__ -> eventbus.fake._store -> eventbus.fake.__init__",
    ]


def test_imports_of_another_distribution_are_not_a_cycle(tmp_path: Path) -> None:
    make_package(tmp_path, {"_a.py": "from eventbus.other._b import b\n"}, name="fake")
    make_package(tmp_path, {"_b.py": "from eventbus.fake._a import a\n"}, name="other")

    assert [package.name for package in check_layers.discover(tmp_path)] == [
        "eventbus.fake",
        "eventbus.other",
    ]
    assert findings(tmp_path) == []


def test_a_module_that_does_not_parse_is_reported(tmp_path: Path) -> None:
    make_package(tmp_path, {"_broken.py": "def (:\n"})

    (finding,) = findings(tmp_path)
    assert "_broken.py: cannot be parsed:" in finding


def test_every_elementary_cycle_is_listed_once() -> None:
    graph = {"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}

    assert check_layers.find_cycles(graph) == [
        ["a", "b", "a"],
        ["a", "b", "c", "a"],
        ["a", "c", "a"],
        ["d", "d"],
    ]
    assert check_layers.find_cycles(graph, limit=2) == [["a", "b", "a"], ["a", "b", "c", "a"]]


def test_a_tangle_is_listed_up_to_a_limit(tmp_path: Path) -> None:
    # Five modules that all import one another: 84 elementary cycles.
    names = [f"_m{i}" for i in range(5)]
    make_package(
        tmp_path,
        {f"{name}.py": "".join(f"from . import {other}\n" for other in names) for name in names},
    )

    found = findings(tmp_path)
    assert len(found) == check_layers.MAX_CYCLES + 1
    assert found[-1] == "eventbus.fake: stopped after 50 cycles; there may be more"


def test_graph_lists_each_module_with_its_size_and_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_package(
        tmp_path,
        {
            "__init__.py": "from ._a import A as A\n",
            "_a.py": """\
                from typing import TYPE_CHECKING

                from ._b import B

                if TYPE_CHECKING:
                    from ._c import C

                def f() -> None:
                    from ._d import D
            """,
            "_b.py": "",
            "_c.py": "",
            "_d.py": "",
        },
    )

    assert check_layers.main(["--graph", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "eventbus.fake (packages/eventbus-fake/src/eventbus/fake): 5 modules, 10 lines\n"
        "  __init__      1 lines\n"
        "      -> _a\n"
        "  _a            9 lines\n"
        "      -> _b\n"
        "      -> _c (TYPE_CHECKING)\n"
        "      -> _d (in a function)\n"
        "  _b            0 lines\n"
    )
    assert out.endswith("ok: 1 package, 5 modules, no import cycle, no module over 700 lines\n")


def test_findings_make_the_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_package(tmp_path, {"_a.py": "from ._a import x\n", "_long.py": "\n" * 701})

    assert check_layers.main(["--root", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "FAIL: import cycle: eventbus.fake._a -> eventbus.fake._a",
        "    eventbus.fake._a imports eventbus.fake._a at line 1",
        "FAIL: module too long: eventbus.fake._long has 701 lines (limit 700)",
        "2 findings in 1 package, 3 modules",
    ]


def test_no_package_at_all_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_layers.main(["--root", str(tmp_path)]) == 1
    assert "no package found" in capsys.readouterr().out
