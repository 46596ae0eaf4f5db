"""Fixtures: the installed ``eventbus`` script run in subprocesses, SQLite files, a DS server.

When the tests themselves run under coverage (``nox -s tests-cli``), every subprocess runs
the installed script under ``coverage run --parallel-mode`` with the same configuration
and data file, so the lines the script runs count toward the package's 100%.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import coverage
import pytest

from eventbus.sqlite import SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[3]
_DS_CONFTEST = ROOT / "packages" / "eventbus-durablestream" / "tests" / "conftest.py"


def _measured(*command: str) -> list[str]:
    """``python COMMAND`` under ``coverage run`` when these tests are measured."""
    current = coverage.Coverage.current()
    if current is None:
        return [sys.executable, *command]
    rcfile = current.config.config_file or str(ROOT / "pyproject.toml")
    return [
        sys.executable,
        "-m",
        "coverage",
        "run",
        "--parallel-mode",
        f"--rcfile={rcfile}",
        "--source=eventbus.cli",
        *command,
    ]


def script() -> list[str]:
    """The command line that runs the installed ``eventbus`` script (under coverage if on)."""
    found = shutil.which("eventbus", path=str(Path(sys.executable).parent))
    assert found is not None, "the eventbus-cli console script is not installed"
    return _measured(found) if coverage.Coverage.current() else [found]


def module() -> list[str]:
    """The command line of ``python -m eventbus.cli`` (under coverage if on)."""
    return _measured("-m", "eventbus.cli")


def run(*args: str, timeout: float = 120, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run ``eventbus ARGS`` to completion; its output as text."""
    return subprocess.run(
        [*script(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,
    )


def start(*args: str, **options: Any) -> subprocess.Popen[str]:
    """Start ``eventbus ARGS`` in the background, stdout and stderr piped."""
    return subprocess.Popen(
        [*script(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A fresh eventbus SQLite database file, with its schema and no events."""
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    return path


def _load_ds_launcher() -> Any:
    """The Durable Streams package's test launcher of the reference server (one copy)."""
    spec = importlib.util.spec_from_file_location("_ds_launcher", _DS_CONFTEST)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ds_url() -> Iterator[str]:
    """The base URL of a memory-mode reference server, for the session."""
    server = _load_ds_launcher().start_server()
    yield server.url
    server.stop()


@pytest.fixture
def ds_store_url(ds_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh stream's store URL on the reference server."""
    name = f"cli-{request.node.name}-{os.getpid()}".replace("[", "-").replace("]", "")
    return f"durablestream+{ds_url}/v1/stream/{name}"
