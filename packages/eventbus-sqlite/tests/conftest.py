"""Shared helpers for the eventbus-sqlite tests: real files in tmp_path, never mocks."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventbus.sqlite import SQLiteStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The path of a database file that does not exist yet."""
    return tmp_path / "events.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    """A store on a fresh file, closed after the test."""
    with SQLiteStore(db) as opened:
        yield opened


def _try_chattr(flag: str, path: Path) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    done = subprocess.run([chattr, flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def make_read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a file or folder truly read-only for this process, and undo it afterwards.

    ``chmod`` is enough for an ordinary user. root ignores permission bits, so for
    root the immutable attribute (``chattr +i``) is used; only where neither works
    (root without chattr support) is ``os.access`` told the truth it cannot see.
    """
    immutable: list[Path] = []
    modes: list[tuple[Path, int]] = []

    def make(path: Path) -> None:
        modes.append((path, path.stat().st_mode))
        path.chmod(0o555 if path.is_dir() else 0o444)
        if os.access(path, os.W_OK):  # root: permission bits do not bind
            if _try_chattr("+i", path):
                immutable.append(path)
            else:
                real_access = os.access
                monkeypatch.setattr(
                    os,
                    "access",
                    lambda p, mode, **kw: False if Path(p) == path else real_access(p, mode, **kw),
                )

    yield make
    for path in immutable:
        _try_chattr("-i", path)
    for path, mode in modes:
        path.chmod(mode)
