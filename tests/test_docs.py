"""The documentation's promises point at tests that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The server address the pages show; their tests put the session's server in its place.
DOCUMENTED_SERVER = "http://127.0.0.1:4437"
CORE_SRC = ROOT / "packages" / "eventbus-core" / "src" / "eventbus" / "core"
# The conformance kits, by the class a test file subclasses to inherit their tests.
KITS = {
    "StoreContract": CORE_SRC / "testing",
    "AsyncStoreContract": CORE_SRC / "testing" / "_async.py",
    "BusContract": CORE_SRC / "testing" / "_bus.py",
}
PREFIXES = {
    "core": ROOT / "packages" / "eventbus-core" / "tests",
    "sqlite": ROOT / "packages" / "eventbus-sqlite" / "tests",
    "ds": ROOT / "packages" / "eventbus-durablestream" / "tests",
    "tests": ROOT / "tests",
}


def test_every_test_named_in_guarantees_md_exists() -> None:
    text = (ROOT / "docs" / "guarantees.md").read_text()
    cited = 0
    for cell in re.findall(r"\| ([^|]*::[^|]*) \|$", text, re.MULTILINE):
        current: Path | None = None
        for reference in re.findall(r"`([^`]+)`", cell):
            if "/" in reference:
                prefix, rest = reference.split("/", 1)
                file_part, _, name = rest.partition("::")
                current = PREFIXES[prefix] / file_part
            else:
                name = reference.removeprefix("::")
            if not name.startswith("test_"):
                continue
            assert current is not None, reference
            assert defines_test(current, name), (
                f"{reference} in docs/guarantees.md does not exist in {current}"
            )
            cited += 1
    assert cited > 30


def defines_test(path: Path, name: str) -> bool:
    """Whether the test file at ``path`` defines or inherits the test ``name``.

    A test inherited from a conformance kit is defined in the kit's module, which counts
    only for a file with a class that subclasses the kit's class.
    """
    source = path.read_text()
    for kit_class, kit in KITS.items():
        if re.search(rf"^class \w+\([^)]*\b{kit_class}\b", source, re.MULTILINE):
            files = sorted(kit.glob("*.py")) if kit.is_dir() else [kit]
            source += "".join(f.read_text() for f in files)
    return re.search(rf"def {re.escape(name)}\b", source) is not None


def test_a_cited_test_is_found_only_where_it_is_defined_or_inherited() -> None:
    core = PREFIXES["core"]
    kit_test = "test_unknown_wire_names_are_reported_once_and_counted"
    assert defines_test(core / "test_bus_contract.py", kit_test)  # inherited from BusContract
    assert defines_test(
        core / "test_memory.py", "test_resume_after_every_offset_yields_exactly_the_rest"
    )
    assert not defines_test(core / "test_bus_contract.py", "test_no_such_guarantee_is_tested")
    assert not defines_test(core / "test_mapper.py", kit_test)  # names no kit
    assert not defines_test(core / "test_durables.py", kit_test)  # uses the kit, no subclass


@pytest.mark.parametrize(
    "page",
    [
        "README.md",
        "docs/bus.md",
        "docs/cli.md",
        "docs/persistence.md",
        "docs/schema-evolution.md",
        "docs/stores/sqlite.md",
        "docs/testing.md",
    ],
)
def test_the_python_in_a_page_runs_as_one_program(page: str, tmp_path: Path) -> None:
    # A page's snippets continue one another, as a reader would type them in order.
    program = "\n".join(re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S))
    assert program, f"{page} has no python snippet"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{page} failed:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("page", ["docs/client.md", "docs/stores/durablestream.md"])
def test_each_python_block_of_a_server_page_runs_on_its_own(
    page: str, tmp_path: Path, ds_server_url: str
) -> None:
    # These pages talk to a server at the documented address; each block is a whole
    # program, run alone in a fresh folder against the test session's reference server.
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)
    assert blocks, f"{page} has no python snippet"
    for number, block in enumerate(blocks, 1):
        folder = tmp_path / f"block-{number}"
        folder.mkdir()
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", block.replace(DOCUMENTED_SERVER, ds_server_url)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{page} block {number} failed:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_backend_guide_example_passes_the_kits(mode: str, tmp_path: Path) -> None:
    # The page's files (a block whose first line is "# path.py") make a plug-in project;
    # its tests subclass StoreContract, AsyncStoreContract and BusContract, under each
    # asyncio_mode.
    page = (ROOT / "docs" / "writing-a-backend.md").read_text()
    files: dict[str, str] = {}
    for block in re.findall(r"```python\n(.*?)```", page, re.S):
        heading = re.fullmatch(r"# (\S+\.py)", block.partition("\n")[0])
        if heading:
            files[heading[1]] = block
    assert set(files) == {"mystore.py", "tests/conftest.py", "tests/test_mystore.py"}
    for kit in KITS:
        assert re.search(
            rf"^class Test\w+\([^)]*\b{kit}\b", files["tests/test_mystore.py"], re.MULTILINE
        ), f"no test class of the example subclasses {kit}"
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    options = ["-o", f"asyncio_mode={mode}", "-o", "asyncio_default_fixture_loop_scope=function"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *options, "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert re.search(r"\b\d{2,} passed", result.stdout), report
    assert "failed" not in result.stdout.splitlines()[-1], report
    for capability in ("StreamingReader", "TailingStore"):
        assert f"the store does not implement {capability}" in result.stdout, report
    assert "the store does not implement CheckpointStore" not in result.stdout, report
    assert "does not override break_store" not in result.stdout, report
    assert "does not override write_corrupt_record" not in result.stdout, report
    assert "test_append_async" not in result.stdout, report  # none skipped or failed


def test_the_import_tables_of_architecture_md_are_what_check_layers_prints() -> None:
    # Each "### `eventbus.<name>`" table under "Who imports whom" lists every module of
    # the package but its top __init__, in the order the page draws them, each with what
    # it imports; every import points down the table.
    graph = _check_layers_graph()
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("\n## Who imports whom\n", 1)[1].split("\n## ", 1)[0]
    tables = dict(re.findall(r"^### `(eventbus\.\w+)`\n(.*?)(?=^### |\Z)", section, re.S | re.M))
    assert set(tables) == set(graph)
    for package, table in tables.items():
        documented: dict[str, dict[str, str]] = {}
        rank: dict[str, int] = {}
        for row, (modules, imports) in enumerate(
            re.findall(r"^\| (`[^|]*) \| ([^|]*) \|$", table, re.MULTILINE)
        ):
            edges = dict(re.findall(r"`([^`]+)`(?: \(([^)]*)\))?", imports))
            assert edges or imports == "nothing", f"{package}: {imports!r}"
            for module in re.findall(r"`([^`]+)`", modules):
                assert module not in documented, f"{package}: {module} listed twice"
                documented[module] = edges
                rank[module] = row
        expected = {name: edges for name, edges in graph[package].items() if name != "__init__"}
        assert documented == expected, f"{package}: the table differs from --graph"
        for module, edges in documented.items():
            above = [name for name in edges if rank[name] <= rank[module]]
            assert not above, f"{package}: {module} imports {above}, drawn above it"


def _check_layers_graph() -> dict[str, dict[str, dict[str, str]]]:
    """``tools/check_layers.py --graph`` as {package: {module: {import: note}}}.

    The note is "" for an import that runs, else "TYPE_CHECKING only" or "in a function".
    """
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_layers.py"), "--graph"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    notes = {"": "", " (TYPE_CHECKING)": "TYPE_CHECKING only", " (in a function)": "in a function"}
    graph: dict[str, dict[str, dict[str, str]]] = {}
    modules: dict[str, dict[str, str]] = {}
    imports: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if package := re.match(r"(eventbus\.\w+) \(", line):
            modules = graph[package[1]] = {}
        elif module := re.match(r"  (\S+) +\d+ lines$", line):
            imports = modules[module[1]] = {}
        elif edge := re.match(r"      -> (\S+)(.*)$", line):
            imports[edge[1]] = notes[edge[2]]
    return graph


def test_the_readme_durable_quick_start_prints_on_its_first_run(tmp_path: Path) -> None:
    # A new user's first run, in a fresh folder: closing the bus drains the durable
    # subscription, so the receipt is printed before the program ends.
    program = "\n".join(re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "receipt for o-2" in result.stdout
