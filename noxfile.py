"""The one entry point for checks: lint, types, tests with coverage, conformance, bench, demo.

Plain ``nox`` runs everything a contributor must pass. ``nox -s demo`` runs the examples,
``nox -s bench`` the benchmarks (not part of plain ``nox``: they measure, they don't gate).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests-core",
    "tests-sqlite",
    "tests-durablestream",
    "tests-cli",
    "tests-otel",
    "tests",
    "demo",
    "build",
    "conformance",
]

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
CORE = PACKAGES / "eventbus-core"
SQLITE = PACKAGES / "eventbus-sqlite"
DURABLESTREAM = PACKAGES / "eventbus-durablestream"
CLI = PACKAGES / "eventbus-cli"
OTEL = PACKAGES / "eventbus-otel"
DS_SERVER = ROOT / "servers" / "durable-streams"
PYTHONS = ["3.11", "3.12", "3.13"]
TEST_TOOLS = ["pytest>=8.3", "pytest-asyncio>=0.25", "coverage[toml]>=7.6"]
LINT_TOOLS = ["ruff==0.17.6"]
TYPE_TOOLS = ["mypy==2.4.1"]
# Optional event-class libraries the core codec supports; tests exercise each one.
CODEC_EXTRAS = ("pydantic>=2", "msgspec", "attrs")
# Peers measured by the bench scripts (never runtime dependencies).
BENCH_PEERS = ("pyee==13.0.1", "blinker==1.9.0", "eventsourcing==9.5.6")
# The durablestream tests make throwaway TLS certificates for the asyncio backend's HTTPS.
DS_TEST_TOOLS = ("trustme>=1.2",)
# The eventbus-otel tests: the SDK's in-memory exporters, and the contrib launcher
# (opentelemetry-distro brings opentelemetry-instrument) for the no-code-change test.
OTEL_SDK = "opentelemetry-sdk>=1.27"  # docs/observability.md's example prints its spans
OTEL_TEST_TOOLS = (OTEL_SDK, "opentelemetry-distro>=0.48b0")


def _install(session: nox.Session, *packages: Path, extra: tuple[str, ...] = ()) -> None:
    """Install local packages as a user would (built wheels, not editable)."""
    session.install("hatchling>=1.25", *TEST_TOOLS, *extra)
    session.install("--no-build-isolation", *(str(p) for p in packages))


def _install_ds_server(session: nox.Session) -> None:
    """Install the pinned Durable Streams reference server from the committed lockfile."""
    if not (DS_SERVER / "node_modules" / "@durable-streams" / "server").exists():
        with session.chdir(DS_SERVER):
            session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    session.env["EVENTBUS_DS_SERVER_DIR"] = str(DS_SERVER)


def _covered_tests(session: nox.Session, package: Path, module: str) -> None:
    """Run one package's own tests and demand 100% line and branch coverage of it."""
    data = Path(tempfile.mkdtemp()) / ".coverage"
    env = {"COVERAGE_FILE": str(data)}
    session.run(
        "coverage",
        "run",
        f"--source={module}",
        f"--rcfile={ROOT / 'pyproject.toml'}",
        "-m",
        "pytest",
        str(package / "tests"),
        *session.posargs,
        env=env,
    )
    session.run("coverage", "combine", f"--rcfile={ROOT / 'pyproject.toml'}", env=env)
    session.run(
        "coverage", "report", "--fail-under=100", f"--rcfile={ROOT / 'pyproject.toml'}", env=env
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository; package layering."""
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # No import cycle inside a package, no module over 700 lines (stdlib only).
    session.run("python", str(ROOT / "tools" / "check_layers.py"))


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on each package, installed as a user installs it, with its tests."""
    _install(
        session,
        CORE,
        SQLITE,
        DURABLESTREAM,
        OTEL,
        CLI,
        extra=(*TYPE_TOOLS, *CODEC_EXTRAS, *BENCH_PEERS, *DS_TEST_TOOLS, *OTEL_TEST_TOOLS, "nox"),
    )
    config = f"--config-file={ROOT / 'pyproject.toml'}"
    # Each package is checked as installed (-p), and its tests from the package folder,
    # so the source tree and the installed copy are never seen as two modules.
    for package, module in (
        (CORE, "eventbus.core"),
        (SQLITE, "eventbus.sqlite"),
        (DURABLESTREAM, "eventbus.durablestream"),
        (CLI, "eventbus.cli"),
        (OTEL, "eventbus.otel"),
    ):
        with session.chdir(package):
            session.run("mypy", config, "-p", module)
            session.run("mypy", config, "tests")
    session.run("mypy", config, "tests", "noxfile.py", "tools", "typing_tests")
    session.run("mypy", config, *map(str, ROOT.glob("examples/*.py")))
    session.run("mypy", config, *map(str, ROOT.glob("bench/*.py")))


@nox.session(name="tests-core", python=PYTHONS)
def tests_core(session: nox.Session) -> None:
    """eventbus-core alone: its tests, 100% line and branch coverage."""
    # Test tools only: the codec's support for these optional libraries is tested
    # here; the eventbus-core wheel itself depends on none of them.
    _install(session, CORE, extra=CODEC_EXTRAS)
    _covered_tests(session, CORE, "eventbus.core")


@nox.session(name="tests-sqlite", python=PYTHONS)
def tests_sqlite(session: nox.Session) -> None:
    """eventbus-sqlite with only its declared dependencies: 100% line and branch coverage."""
    _install(session, CORE, SQLITE)
    _covered_tests(session, SQLITE, "eventbus.sqlite")


@nox.session(name="tests-durablestream", python=PYTHONS)
def tests_durablestream(session: nox.Session) -> None:
    """eventbus-durablestream against the real reference server: 100% coverage."""
    _install_ds_server(session)
    _install(session, CORE, DURABLESTREAM, extra=DS_TEST_TOOLS)
    _covered_tests(session, DURABLESTREAM, "eventbus.durablestream")


@nox.session(name="tests-cli", python=PYTHONS)
def tests_cli(session: nox.Session) -> None:
    """eventbus-cli: the installed `eventbus` script in subprocesses, against real SQLite
    files and the reference server; 100% line and branch coverage, subprocesses included
    (the tests run the script under `coverage run` when they are measured)."""
    _install_ds_server(session)
    # The stores are the CLI's optional extras; its tests open all of them.
    _install(session, CORE, SQLITE, DURABLESTREAM, CLI)
    _covered_tests(session, CLI, "eventbus.cli")


@nox.session(name="tests-otel", python=PYTHONS)
def tests_otel(session: nox.Session) -> None:
    """eventbus-otel with its declared dependencies and the SDK: 100% coverage.

    eventbus-sqlite is a test tool here: the two-process test shares a SQLite file.
    """
    _install(session, CORE, SQLITE, OTEL, extra=OTEL_TEST_TOOLS)
    _covered_tests(session, OTEL, "eventbus.otel")


@nox.session
def tests(session: nox.Session) -> None:
    """The cross-package tests: the contract suite against every store, multi-process,
    and every code block of the docs (which use the CLI and eventbus-otel with the SDK)."""
    _install_ds_server(session)
    _install(session, CORE, SQLITE, DURABLESTREAM, CLI, OTEL, extra=(OTEL_SDK,))
    session.run("pytest", "tests", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run every example on the embedded default store and show what happened."""
    _install(session, CORE, SQLITE)
    with tempfile.TemporaryDirectory() as workdir:
        for example in sorted((ROOT / "examples").glob("*.py")):
            session.log(f"--- {example.name} ---")
            with session.chdir(workdir):
                session.run("python", str(example))


@nox.session
def build(session: nox.Session) -> None:
    """Build every wheel and sdist; install each alone into a fresh venv and import it."""
    session.install("build>=1.2", "hatchling>=1.25")
    dist = Path(tempfile.mkdtemp(prefix="eventbus-dist-"))
    for package in (CORE, SQLITE, DURABLESTREAM, CLI, OTEL):
        session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), str(package))
    session.run("python", str(ROOT / "tools" / "check_dists.py"), str(dist))


@nox.session
def conformance(session: nox.Session) -> None:
    """The official Durable Streams client conformance suite against both client faces."""
    runner = os.environ.get("DS_CONFORMANCE_RUNNER")
    if not runner:
        session.skip(
            "DS_CONFORMANCE_RUNNER is not set; see docs/conformance.md for getting a runner."
        )
    _install(session, CORE, DURABLESTREAM)
    python = shutil.which("python", path=session.bin)
    for face in ("sync", "async"):
        session.run(
            "python",
            str(ROOT / "tools" / "run_conformance.py"),
            "--runner",
            runner,
            "--adapter",
            f"{python} -m eventbus.durablestream.conformance --face {face}",
            "--min-passed",
            "253",
        )


@nox.session
def bench(session: nox.Session) -> None:
    """Measure every claim as a ratio against a floor taken in the same run."""
    _install_ds_server(session)
    _install(
        session,
        CORE,
        SQLITE,
        DURABLESTREAM,
        CLI,
        OTEL,
        extra=BENCH_PEERS,
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        session.run("python", str(script), "--json", str(out / f"{script.stem}.json"))
