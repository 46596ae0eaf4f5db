"""The command group (_app.py, __main__.py, _version.py): --version, help, errors, --debug."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from eventbus.cli._stores import opened

from .conftest import module, run

if TYPE_CHECKING:
    from pathlib import Path


def test_version_lists_the_distributions_and_the_stores_they_register() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for dist in ("eventbus-cli", "eventbus-core", "eventbus-sqlite", "eventbus-durablestream"):
        assert any(line.startswith(f"{dist} 0.") for line in lines), result.stdout
    assert "stores (entry-point group eventbus.stores):" in lines
    assert "  sqlite:  eventbus.sqlite._discovery:open_sqlite_store (eventbus-sqlite)" in lines
    assert "  memory:  eventbus.core._memory:open_memory_store (eventbus-core)" in lines


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [*module(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: eventbus" in result.stdout
    for command in ("info", "tail", "checkpoints", "copy", "verify"):
        assert command in result.stdout


def test_usage_errors_exit_2_with_one_line() -> None:
    result = run("no-such-command")
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
    result = run("info")
    assert result.returncode == 2
    assert "Missing argument 'URL'" in result.stderr


def test_an_unknown_scheme_is_a_usage_error_naming_the_scheme() -> None:
    result = run("info", "nosuch://x")
    assert result.returncode == 2
    assert result.stderr.startswith("error: No store backend handles 'nosuch' URLs")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_bad_url_is_a_usage_error() -> None:
    result = run("info", "sqlite://host/events.db")
    assert result.returncode == 2
    assert "is not a SQLite store URL" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_missing_file_is_a_failure_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = run("info", f"sqlite:{missing}")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot open sqlite:{missing}: The SQLite database '{missing}' does not "
        "exist (or is not a file); a read-only store opens only an existing database.\n"
    )
    assert not missing.exists()


def test_an_unreachable_server_is_a_failure() -> None:
    # Port 9 (discard) on the loopback: nothing listens there.
    result = run("info", "durablestream+http://127.0.0.1:9/v1/stream/x")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.startswith(
        "error: cannot open durablestream+http://127.0.0.1:9/v1/stream/x: "
    )
    assert "Connection refused" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_debug_adds_the_traceback_before_the_one_line_error(tmp_path: Path) -> None:
    result = run("--debug", "info", f"sqlite:{tmp_path / 'missing.db'}")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "DatabasePathError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: cannot open sqlite:")


def test_debug_adds_no_traceback_to_a_usage_error() -> None:
    result = run("--debug", "info")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_store_that_cannot_be_closed_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = object()
    monkeypatch.setattr("eventbus.cli._stores.open_store", lambda url: plain)
    with opened("x://", "create") as store:
        assert store is plain
