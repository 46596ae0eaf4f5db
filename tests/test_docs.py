"""The documentation's promises point at tests that exist, and its code runs.

Every ```python block of README.md, of each package's README.md and of every page under
docs/ (found by glob, so a new page is covered at once) is a whole program: it runs
alone, with ``python -W error``, in a fresh folder, and a failure names the page, the
block's number on it and its first line. An HTML comment on the line right before a
fence changes that, visibly:

- ``<!-- docs-test: server -->``: the block talks to a Durable Streams server at the
  documented address (http://127.0.0.1:4437); it runs against the test session's
  reference server instead.
- ``<!-- docs-test: file -->``: one file of a project (its first line is ``# path.py``),
  written out with the page's other files and run by that page's own test (the plug-in
  of writing-a-backend.md); here it must compile.
- ``<!-- docs-test: compile-only, <why> -->``: a sketch that needs something the reader
  brings (their own server, an installed plug-in); it must compile, and say why it does
  not run.
- ``<!-- docs-test: output -->`` before a ```text block right after a python block: what
  that block prints, compared line by line (``...`` stands for any text in a line).

Shell commands: ``pip install`` lines cannot run offline, so the distributions and extras
they name are checked against ``packages/*/pyproject.toml``; every ``eventbus ...`` line
of a bash or console block must parse (it is run with ``--help``), and the nox sessions,
scripts and folders such lines name must exist. The ``eventbus`` sessions of docs/cli.md
are replayed, output and all, by ``packages/eventbus-cli/tests/test_docs_cli.py``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The server address the pages show; their tests put the session's server in its place.
DOCUMENTED_SERVER = "http://127.0.0.1:4437"
PAGES = [
    "README.md",
    *sorted(
        path.relative_to(ROOT).as_posix()
        for pattern in ("packages/*/README.md", "docs/**/*.md")
        for path in ROOT.glob(pattern)
    ),
]
# What the pages tell a reader to install that is not one of this repository's packages.
THIRD_PARTY = {"nox", "opentelemetry-sdk"}
CORE_SRC = ROOT / "packages" / "eventbus-core" / "src" / "eventbus" / "core"
# The conformance kits, by the class a test file subclasses to inherit their tests.
KITS = {
    "StoreContract": CORE_SRC / "testing",
    "AsyncStoreContract": CORE_SRC / "testing" / "_async.py",
    "BusContract": CORE_SRC / "testing" / "_bus*.py",
}
PREFIXES = {
    "core": ROOT / "packages" / "eventbus-core" / "tests",
    "sqlite": ROOT / "packages" / "eventbus-sqlite" / "tests",
    "ds": ROOT / "packages" / "eventbus-durablestream" / "tests",
    "tests": ROOT / "tests",
}
FENCE = re.compile(
    r"^(?:<!-- docs-test: (?P<marker>.*?) -->\n)?```(?P<language>\S*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)


@dataclass(frozen=True)
class Block:
    """A ```python block of a page, with its marker and the output the page shows."""

    page: str
    number: int  # among the page's python blocks, from 1
    marker: str
    body: str
    output: str | None

    @property
    def first_line(self) -> str:
        return self.body.partition("\n")[0]


def python_blocks(page: str, text: str | None = None) -> list[Block]:
    """The python blocks of ``page`` (its ``text``, read from the file if not given)."""
    blocks: list[Block] = []
    previous = ""  # the language of the fence before this one
    for fence in FENCE.finditer((ROOT / page).read_text() if text is None else text):
        marker = fence["marker"] or ""
        if marker == "output":
            where = f"{page}: an output block"
            assert fence["language"] == "text", f"{where} is a ```text block"
            assert previous == "python", f"{where} does not follow a python block"
            last = blocks[-1]
            blocks[-1] = Block(last.page, last.number, last.marker, last.body, fence["body"])
        elif fence["language"] == "python":
            blocks.append(Block(page, len(blocks) + 1, marker, fence["body"], None))
        else:
            assert not marker, f"{page}: a marker {marker!r} on a {fence['language']} block"
        previous = fence["language"]
    return blocks


PYTHON_BLOCKS = [block for page in PAGES for block in python_blocks(page)]


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
            files = sorted(kit.glob("*.py")) if kit.is_dir() else sorted(kit.parent.glob(kit.name))
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


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: f"{b.page}#{b.number}")
def test_each_python_block_runs_on_its_own(
    block: Block, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A reader copies one block into a file in an empty folder and runs it.
    where = f"{block.page} block {block.number} ({block.first_line!r})"
    if block.marker == "file":
        assert re.fullmatch(r"# \S+\.py", block.first_line), f"{where}: a file starts '# path.py'"
        compile(block.body, where, "exec")  # run by the test of its page
        return
    if block.marker.startswith("compile-only"):
        assert block.marker.removeprefix("compile-only").strip(" ,:"), f"{where}: say why"
        compile(block.body, where, "exec")
        return
    assert block.marker in ("", "server"), f"{where}: unknown marker {block.marker!r}"
    program, output = block.body, block.output
    if block.marker == "server":
        server = request.getfixturevalue("ds_server_url")
        program = program.replace(DOCUMENTED_SERVER, server)
        output = None if output is None else output.replace(DOCUMENTED_SERVER, server)
    else:
        assert DOCUMENTED_SERVER not in program, f"{where} needs the marker 'server'"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"
    if output is not None:
        assert_prints(result.stdout, output, where)


def assert_prints(stdout: str, shown: str, where: str) -> None:
    """``stdout`` is what the page shows, line by line; ``...`` stands for any text."""
    got, expected = stdout.splitlines(), shown.splitlines()
    message = f"{where} printed:\n{stdout}\nthe page shows:\n{shown}"
    assert len(got) == len(expected), message
    for line, pattern in zip(got, expected, strict=True):
        regex = ".*".join(re.escape(part) for part in pattern.split("..."))
        assert re.fullmatch(regex, line), message


def test_the_output_check_matches_lines_with_ellipses() -> None:
    assert_prints("stored at 0001\nok\n", "stored at ...\nok", "example")
    for shown in ("stored at 0002\nok", "stored at ...", "stored at ...\nok\nmore"):
        with pytest.raises(AssertionError):
            assert_prints("stored at 0001\nok\n", shown, "example")


def test_markers_and_output_blocks_attach_to_their_python_block() -> None:
    page = (
        "Text.\n\n```python\nprint(1)\n```\n\n<!-- docs-test: output -->\n```text\n1\n```\n\n"
        "<!-- docs-test: server -->\n```python\nprint(2)\n```\n\n```toml\n[x]\n```\n"
    )
    assert python_blocks("page.md", page) == [
        Block("page.md", 1, "", "print(1)\n", "1\n"),
        Block("page.md", 2, "server", "print(2)\n", None),
    ]
    stray = "```toml\n[x]\n```\n<!-- docs-test: output -->\n```text\n1\n```\n"
    with pytest.raises(AssertionError, match="does not follow a python block"):
        python_blocks("page.md", stray)
    with pytest.raises(AssertionError, match="a marker 'server' on a toml block"):
        python_blocks("page.md", "<!-- docs-test: server -->\n```toml\n[x]\n```\n")


def test_the_blocks_of_every_page_are_found() -> None:
    pages = {block.page for block in PYTHON_BLOCKS}
    assert {"README.md", "docs/bus.md", "docs/stores/sqlite.md", "docs/client.md"} <= pages
    markers = {block.marker.split(",")[0] for block in PYTHON_BLOCKS}
    assert markers == {"", "server", "file", "compile-only"}
    assert any(block.output is not None for block in PYTHON_BLOCKS)


def test_pip_install_lines_name_distributions_and_extras_that_exist() -> None:
    # They cannot run offline; what they name must exist in packages/*/pyproject.toml
    # (or be one of the few third-party tools the pages tell a reader to install).
    ours: dict[str, set[str]] = {}
    for pyproject in (ROOT / "packages").glob("*/pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        ours[project["name"]] = set(project.get("optional-dependencies", {}))
    checked = 0
    for page in PAGES:
        text = (ROOT / page).read_text()
        for line in re.findall(r"pip install ([^`|\n]*)", text):
            words = iter(shlex.split(line.split("#")[0]))
            for word in words:
                if word == "-e":
                    path = next(words)
                    assert (ROOT / path / "pyproject.toml").exists(), f"{page}: {path}"
                    continue
                name, _, extras = word.partition("[")
                checked += 1
                if name in THIRD_PARTY:
                    continue
                assert name in ours, f"{page}: pip install {word}: no such distribution"
                for extra in filter(None, extras.rstrip("]").split(",")):
                    assert extra in ours[name], f"{page}: {name} has no extra {extra!r}"
    assert checked > 10


def shell_lines() -> list[tuple[str, str]]:
    """(page, command) for each command line of the pages' bash and console blocks."""
    lines: list[tuple[str, str]] = []
    for page in PAGES:
        for fence in FENCE.finditer((ROOT / page).read_text()):
            if fence["language"] in ("bash", "console"):
                for line in fence["body"].splitlines():
                    command = line.removeprefix("$ ") if fence["language"] == "console" else line
                    if command != line or fence["language"] == "bash":
                        lines.append((page, command))
    return lines


def test_the_eventbus_commands_the_pages_show_parse() -> None:
    # Each `eventbus ...` line names a command and options that exist (docs/cli.md's
    # sessions are also replayed, output and all, by the eventbus-cli tests).
    from click.testing import CliRunner

    from eventbus.cli import main

    commands = [(p, c) for p, c in shell_lines() if c.startswith("eventbus ")]
    assert len(commands) > 10
    for page, command in commands:
        arguments = shlex.split(command, comments=True)[1:]
        result = CliRunner().invoke(main, [*arguments, "--help"])
        assert result.exit_code == 0, f"{page}: {command}\n{result.output}"


def test_the_nox_sessions_and_scripts_the_pages_run_exist() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    sessions = set(re.findall(r'^@nox\.session\(name="([^"]+)"', noxfile, re.M))
    sessions |= set(re.findall(r"^@nox\.session(?:\([^)]*\))?\ndef (\w+)", noxfile, re.M))
    checked = 0
    for page, command in shell_lines():
        words = shlex.split(command, comments=True)
        if words[:2] == ["nox", "-s"]:
            assert words[2] in sessions, f"{page}: {command}: no such nox session"
            checked += 1
        elif words[:1] == ["python"] and words[1].endswith(".py"):
            assert (ROOT / words[1]).is_file(), f"{page}: {command}: no such script"
            checked += 1
        elif words[:1] == ["cd"]:
            assert (ROOT / words[1]).is_dir(), f"{page}: {command}: no such folder"
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_backend_guide_example_passes_the_kits(mode: str, tmp_path: Path) -> None:
    # The page's files (marked "file", first line "# path.py") make a plug-in project;
    # its tests subclass StoreContract, AsyncStoreContract and BusContract, under each
    # asyncio_mode.
    files = {
        block.first_line.removeprefix("# "): block.body
        for block in python_blocks("docs/writing-a-backend.md")
        if block.marker == "file"
    }
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
    program = python_blocks("README.md")[1].body
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
