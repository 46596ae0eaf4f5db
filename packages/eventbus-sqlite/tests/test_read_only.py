"""Read-only stores (``read_only=True``, ``?mode=ro``): inspecting a live file never writes it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from eventbus.core import OLDEST, Lease, Owner, StoreClosedError, StoreReadOnlyError
from eventbus.core.testing import make_record
from eventbus.sqlite import DatabasePathError, SchemaVersionError, SQLiteStore, open_sqlite_store

from ._support import Call, raw


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns


def test_reading_tailing_and_listing_leave_the_file_and_data_version_alone(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    with SQLiteStore(db) as writer:
        offsets = [writer.append(make_record()) for _ in range(3)]
        writer.save_checkpoint("mailer", offsets[1])
    before = _fingerprint(db)
    watcher = raw(db)  # another connection: its data_version moves on any commit
    version = watcher.execute("PRAGMA data_version").fetchone()[0]
    with open_sqlite_store(f"sqlite:{db}?mode=ro") as store:
        assert store.read_only
        assert "read-only" in repr(store)
        assert [e.offset for e in store.read(OLDEST).events] == offsets
        assert [e.offset for e in store.iter_events()] == offsets
        assert store.tail(offsets[-1], timeout=0.05).events == []
        assert store.load_checkpoint("mailer") == offsets[1]
        assert store.list_checkpoints() == {"mailer": offsets[1]}
        assert store.compare_offsets(offsets[0], offsets[2]) < 0
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
    watcher.close()
    assert _fingerprint(db) == before


OWNER = Owner("host", 1, "reader")


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda s: s.append(make_record()), "append events"),
        (lambda s: s.append_batch([make_record()]), "append events"),
        (lambda s: asyncio.run(s.append_async(make_record())), "append events"),
        (lambda s: s.save_checkpoint("x", OLDEST), "save checkpoints"),
        (lambda s: s.delete_checkpoint("x"), "delete checkpoints"),
        (lambda s: s.claim_lease("x", OWNER, None), "claim leases"),
        (lambda s: s.renew_lease(Lease("x", OWNER, 1)), "renew leases"),
        (lambda s: s.release_lease(Lease("x", OWNER, 1)), "release leases"),
        (lambda s: s.save_checkpoint_fenced(Lease("x", OWNER, 1), OLDEST), "save checkpoints"),
    ],
)
def test_every_write_is_refused_with_a_clear_error(tmp_path: Path, call: object, what: str) -> None:
    db = tmp_path / "events.db"
    SQLiteStore(db).close()
    with SQLiteStore(db, read_only=True) as store:
        with pytest.raises(StoreReadOnlyError, match=f"opened read-only; it cannot {what}"):
            call(store)  # type: ignore[operator]
        assert store.read(OLDEST).events == []
    with SQLiteStore(db, read_only=True) as store:
        store.close()
        with pytest.raises(StoreClosedError):
            call(store)  # type: ignore[operator]


def test_sqlite_itself_refuses_writes_on_the_read_only_connections(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    SQLiteStore(db).close()
    with SQLiteStore(db, read_only=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._db.writer.execute("DELETE FROM events")
        reader = store._db.reader().conn
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|query_only"):
            reader.execute("DELETE FROM events")


def test_a_read_only_tail_sees_another_process_append(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    SQLiteStore(db).close()
    with SQLiteStore(db, read_only=True) as store:
        waiting = Call(lambda: store.tail(OLDEST, timeout=10))
        with SQLiteStore(db) as writer:
            offset = writer.append(make_record())
        assert [e.offset for e in waiting.join().events] == [offset]


def test_a_missing_file_is_refused_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    with pytest.raises(DatabasePathError, match="does not exist"):
        SQLiteStore(db, read_only=True)
    assert not db.exists()
    with pytest.raises(DatabasePathError, match="does not exist"):
        SQLiteStore(tmp_path, read_only=True)


def test_an_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "events.db"
    SQLiteStore(db).close()
    # chmod cannot make a file unreadable to root (the CI user): deny it at os.access.
    monkeypatch.setattr("eventbus.sqlite._connection.os.access", lambda path, mode: False)
    with pytest.raises(DatabasePathError, match="not readable"):
        SQLiteStore(db, read_only=True)


def test_memory_cannot_be_read_only() -> None:
    with pytest.raises(DatabasePathError, match="existing database file"):
        SQLiteStore(":memory:", read_only=True)
    with pytest.raises(DatabasePathError, match="existing database file"):
        open_sqlite_store("sqlite://?mode=ro")


def test_an_empty_file_is_not_given_a_schema(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    with pytest.raises(SchemaVersionError, match="cannot create or migrate"):
        SQLiteStore(db, read_only=True)
    assert db.read_bytes() == b""


def test_read_only_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="read_only must be True or False"):
        SQLiteStore(tmp_path / "x.db", read_only="yes")  # type: ignore[arg-type]


def test_mode_rw_is_the_default(tmp_path: Path) -> None:
    with open_sqlite_store(f"sqlite:{tmp_path / 'x.db'}?mode=rw") as store:
        assert not store.read_only
        store.append(make_record())
