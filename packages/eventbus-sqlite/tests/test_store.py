"""SQLiteStore itself: options, the path argument, the pragmas it sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventbus.sqlite import SQLiteStore


def test_accepts_path_objects_and_reports_options(db: Path) -> None:
    with SQLiteStore(db, durability="full", busy_timeout=1, read_batch_size=3) as store:
        assert store.path == str(db)
        assert store.durability == "full"
        assert repr(store) == f"<SQLiteStore {str(db)!r} durability='full'>"
        mode = store._db.writer.execute("PRAGMA synchronous").fetchone()[0]
        assert mode == 2  # FULL
    assert repr(store) == f"<SQLiteStore {str(db)!r} closed>"


def test_normal_durability_is_wal_with_synchronous_normal(store: SQLiteStore) -> None:
    assert store._db.writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"durability": "fast"}, ValueError, "durability must be 'normal' or 'full'"),
        ({"busy_timeout": "5"}, TypeError, "busy_timeout must be a number"),
        ({"busy_timeout": True}, TypeError, "busy_timeout must be a number"),
        ({"busy_timeout": -1}, ValueError, "finite number of seconds >= 0"),
        ({"busy_timeout": float("inf")}, ValueError, "finite number of seconds >= 0"),
        ({"busy_timeout": float("nan")}, ValueError, "finite number of seconds >= 0"),
        ({"read_batch_size": 0}, ValueError, "read_batch_size must be at least 1"),
        ({"read_batch_size": 2.0}, TypeError, "read_batch_size must be an int"),
    ],
)
def test_bad_options_are_refused_before_touching_disk(
    db: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SQLiteStore(db, **options)
    assert not db.exists()


def test_bytes_path_is_refused(db: Path) -> None:
    with pytest.raises(TypeError, match=r"str or os\.PathLike"):
        SQLiteStore(bytes(db))  # type: ignore[arg-type]
