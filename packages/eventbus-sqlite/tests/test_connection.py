"""Opening, the path check, reader connections per thread, and in-memory stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eventbus.core import (
    StoreClosedError,
    StoreCorruptError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from eventbus.core.testing import make_record
from eventbus.sqlite import MEMORY, DatabasePathError, SQLiteStore
from eventbus.sqlite import _connection as connection_module

from ._support import Call, raw

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.mark.parametrize("name", ["events?mode=ro.db", "events#1.db"])
def test_path_with_uri_characters_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatabasePathError, match=r"contains '\?' or '#'") as caught:
        SQLiteStore(tmp_path / name)
    assert name in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_empty_path_is_refused() -> None:
    with pytest.raises(DatabasePathError, match="path is empty"):
        SQLiteStore("")


def test_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "events.db"
    with pytest.raises(DatabasePathError, match="does not exist") as caught:
        SQLiteStore(path)
    assert str(tmp_path / "missing") in str(caught.value)
    assert not (tmp_path / "missing").exists()


def test_folder_as_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabasePathError, match="is a folder"):
        SQLiteStore(tmp_path)


def test_read_only_folder_is_refused(
    tmp_path: Path, make_read_only: Callable[[Path], None]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    make_read_only(folder)
    with pytest.raises(DatabasePathError, match="is read-only") as caught:
        SQLiteStore(folder / "events.db")
    assert str(folder) in str(caught.value)
    assert list(folder.iterdir()) == []


def test_read_only_file_is_refused_and_left_alone(
    db: Path, make_read_only: Callable[[Path], None]
) -> None:
    with SQLiteStore(db) as store:
        store.append(make_record())
    before = db.read_bytes()
    make_read_only(db)
    with pytest.raises(DatabasePathError, match="is read-only") as caught:
        SQLiteStore(db)
    assert str(db) in str(caught.value)
    assert db.read_bytes() == before


def test_file_that_is_not_a_database_is_refused_untouched(db: Path) -> None:
    content = b"these are my notes, not a database\n" * 200
    db.write_bytes(content)
    with pytest.raises(StoreCorruptError, match="not a database") as caught:
        SQLiteStore(db)
    assert str(db) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert db.read_bytes() == content


def test_corrupt_database_is_refused(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.append_batch([make_record() for _ in range(50)])
        store._db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    # Keep the 100-byte header, wreck the schema page that follows it.
    data[100:4096] = b"\xff" * (4096 - 100)
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="corrupt or not a database") as caught:
        SQLiteStore(db)
    assert str(db) in str(caught.value)


def test_database_of_another_application_is_refused_untouched(db: Path) -> None:
    conn = raw(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreCorruptError, match="not an eventbus store") as caught:
        SQLiteStore(db)
    assert "invoices" in str(caught.value)
    assert db.read_bytes() == before


def test_unopenable_file_is_named(tmp_path: Path) -> None:
    link = tmp_path / "events.db"
    link.symlink_to(tmp_path / "gone" / "events.db")  # dangling: SQLite cannot open it
    with pytest.raises(StoreUnavailableError, match="unable to open") as caught:
        SQLiteStore(link)
    assert str(link) in str(caught.value)


def test_locked_database_at_open_times_out_and_writes_nothing(db: Path) -> None:
    empty = raw(db)
    empty.execute("PRAGMA journal_mode = WAL")
    empty.execute("BEGIN EXCLUSIVE")  # holds the write lock of the still empty file
    try:
        with pytest.raises(StoreTimeoutError, match="stayed locked") as caught:
            SQLiteStore(db, busy_timeout=0)
        assert str(db) in str(caught.value)
    finally:
        empty.execute("ROLLBACK")
        empty.close()
    with SQLiteStore(db) as store:  # nothing was half-written
        assert store.read().events == []


def test_non_sqlite_failure_during_open_propagates(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(conn: sqlite3.Connection, path: str) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(connection_module, "ensure_schema", boom)
    with pytest.raises(KeyboardInterrupt):
        SQLiteStore(db)


def test_memory_stores_are_independent_and_keep_data() -> None:
    with SQLiteStore(MEMORY) as first, SQLiteStore(":memory:") as second:
        first.append(make_record())
        assert len(first.read().events) == 1
        assert second.read().events == []
        assert first._db.writer.execute("PRAGMA journal_mode").fetchone()[0] == "memory"


def test_memory_store_reads_from_many_threads() -> None:
    with SQLiteStore(MEMORY) as store:
        offsets = store.append_batch([make_record() for _ in range(10)])
        seen: list[list[str]] = []
        calls = [
            Call(lambda: seen.append([e.offset for e in store.read(limit=100).events]))
            for _ in range(4)
        ]
        for call in calls:
            call.join()
        assert seen == [offsets] * 4


def test_reader_connections_of_finished_threads_are_closed(store: SQLiteStore) -> None:
    store.append(make_record())
    Call(lambda: store.read()).join()
    assert len(store._db.readers) == 1
    finished = store._db.readers[0]
    Call(lambda: store.read()).join()
    assert len(store._db.readers) == 1
    assert store._db.readers[0] is not finished
    with pytest.raises(sqlite3.ProgrammingError):
        finished.conn.execute("SELECT 1")


def test_reader_opened_during_close_is_not_leaked(store: SQLiteStore) -> None:
    store.close()
    with pytest.raises(StoreClosedError):
        store._db.reader()
    assert store._db.readers == []
