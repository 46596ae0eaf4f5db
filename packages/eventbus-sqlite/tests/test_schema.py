"""The schema: version table, forward migrations, refusing newer and damaged files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import (
    NEWEST,
    Owner,
    StoreCorruptError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from eventbus.core.testing import make_record
from eventbus.sqlite import SchemaVersionError, SQLiteStore
from eventbus.sqlite import _schema as schema
from eventbus.sqlite._connection import Connections

CHILD = Path(__file__).with_name("_child.py")


def _versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    finally:
        conn.close()


ALL_VERSIONS = list(range(1, schema.CURRENT_VERSION + 1))
NEXT = schema.CURRENT_VERSION + 1


def test_a_version_1_file_gains_the_leases_table_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for statement in schema.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("COMMIT")
    conn.close()
    with SQLiteStore(path) as store:
        store.save_checkpoint("sub", store.append(make_record()))
    with SQLiteStore(path) as store:
        lease = store.claim_lease("sub", Owner("h", 1, "i"), None)
        assert lease is not None
        store.save_checkpoint_fenced(lease, store.read(NEWEST).next)
        assert store.read_lease("sub") == lease
    assert _versions(path) == ALL_VERSIONS


def test_new_file_gets_every_version_and_the_application_id(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    assert _versions(path) == list(range(1, schema.CURRENT_VERSION + 1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    conn.close()


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    with SQLiteStore(path) as store:
        store.append(make_record())
    assert _versions(path) == ALL_VERSIONS


def test_newer_schema_is_refused_with_a_message_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="schema version 99") as caught:
        SQLiteStore(path)
    assert "newer eventbus-sqlite" in str(caught.value)
    assert str(path) in str(caught.value)


def test_forward_migration_applies_to_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.db"
    with SQLiteStore(path) as store:
        offset = store.append(make_record())
    migrations = {**schema.MIGRATIONS, NEXT: ("ALTER TABLE events ADD COLUMN note TEXT",)}
    monkeypatch.setattr(schema, "MIGRATIONS", migrations)
    monkeypatch.setattr(schema, "CURRENT_VERSION", NEXT)
    with SQLiteStore(path) as store:
        assert [e.offset for e in store.read().events] == [offset]
    assert _versions(path) == [*ALL_VERSIONS, NEXT]
    conn = sqlite3.connect(path)
    assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    conn.close()


def test_failed_migration_leaves_the_file_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    migrations = {
        **schema.MIGRATIONS,
        NEXT: ("CREATE TABLE extra (x)", "CREATE TABLE events (x)"),  # second step fails
    }
    monkeypatch.setattr(schema, "MIGRATIONS", migrations)
    monkeypatch.setattr(schema, "CURRENT_VERSION", NEXT)
    with pytest.raises(StoreUnavailableError, match="already exists"):
        SQLiteStore(path)
    monkeypatch.undo()
    assert _versions(path) == ALL_VERSIONS
    conn = sqlite3.connect(path)
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert "extra" not in names


def test_missing_version_table_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE schema_version")
    conn.close()
    with pytest.raises(StoreCorruptError, match="has no schema_version table"):
        SQLiteStore(path)


def test_empty_version_table_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM schema_version")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="schema_version table is empty"):
        SQLiteStore(path)


def test_concurrent_constructors_in_threads_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []
    stores: list[SQLiteStore] = []

    def open_one() -> None:
        barrier.wait()
        try:
            stores.append(SQLiteStore(path))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    offsets = [store.append(make_record()) for store in stores]
    assert len(set(offsets)) == 5
    for store in stores:
        store.close()
    assert _versions(path) == ALL_VERSIONS


@pytest.mark.slow
def test_concurrent_constructors_in_processes_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "open-append", str(path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    go.touch()  # all five start opening the fresh file at once
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * 5, outputs
    offsets = sorted(out.strip() for out, _ in outputs)
    assert offsets == [f"{n:020d}" for n in range(1, 6)]
    assert _versions(path) == ALL_VERSIONS


def test_opening_retries_an_immediate_busy_answer_until_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite sometimes answers SQLITE_BUSY at once (without its busy handler) when two
    # connections switch a new file to WAL together; the race is too rare to produce on
    # demand, so the first answers are made busy here and the store must wait them out.
    real_open = Connections._open_writer
    answers = [StoreTimeoutError("database is locked"), StoreTimeoutError("database is locked")]

    def flaky_open(self: Connections) -> Any:
        if answers:
            raise answers.pop(0)
        return real_open(self)

    monkeypatch.setattr(Connections, "_open_writer", flaky_open)
    store = SQLiteStore(tmp_path / "events.db")
    assert answers == []
    store.append(make_record())
    store.close()

    def always_busy(self: Connections) -> Any:
        raise StoreTimeoutError("database is locked")

    monkeypatch.setattr(Connections, "_open_writer", always_busy)
    with pytest.raises(StoreTimeoutError, match="locked"):
        SQLiteStore(tmp_path / "other.db", busy_timeout=0.02)
