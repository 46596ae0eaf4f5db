"""Checkpoints: saved in the same file, OLDEST kept apart from never saved."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from eventbus.core import OLDEST, StoreCorruptError, StoreError
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

from ._support import raw


def test_corrupt_checkpoint_value_is_reported(db: Path, store: SQLiteStore) -> None:
    conn = raw(db)
    conn.execute("INSERT INTO checkpoints (subscription_id, checkpoint) VALUES ('s', 'garbage')")
    conn.close()
    with pytest.raises(StoreCorruptError, match="'garbage', which is not an offset"):
        store.load_checkpoint("s")


def test_checkpoint_write_failure_keeps_the_old_value(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    store.save_checkpoint("s", OLDEST)
    conn = raw(db)
    conn.execute(
        "CREATE TRIGGER no_moves BEFORE UPDATE ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are frozen'); END"
    )
    conn.close()
    with pytest.raises(StoreError, match="checkpoints are frozen"):
        store.save_checkpoint("s", offset)
    assert store.load_checkpoint("s") is OLDEST
    assert not store._db.writer.in_transaction


def test_checkpoint_of_oldest_is_stored_distinguishably(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    store.save_checkpoint("a", OLDEST)
    store.save_checkpoint("b", offset)
    with contextlib.closing(raw(db)) as conn:
        rows = dict(conn.execute("SELECT subscription_id, checkpoint FROM checkpoints"))
    assert rows == {"a": "oldest", "b": offset}


def test_a_corrupt_checkpoint_fails_the_listing(db: Path, store: SQLiteStore) -> None:
    store.save_checkpoint("fine", OLDEST)
    conn = raw(db)
    conn.execute("INSERT INTO checkpoints (subscription_id, checkpoint) VALUES ('s', 'garbage')")
    conn.close()
    with pytest.raises(StoreCorruptError, match="checkpoint of 's'"):
        store.list_checkpoints()


def test_delete_checkpoint_is_durable(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    store.save_checkpoint("s", offset)
    assert store.delete_checkpoint("s") is True
    with SQLiteStore(db) as other:
        assert other.load_checkpoint("s") is None
        assert other.list_checkpoints() == {}
