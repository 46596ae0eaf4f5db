"""Reads: offsets, pages and streaming."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.core import OffsetError
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

from ._support import raw


def test_offsets_are_fixed_width_and_sort_as_strings(store: SQLiteStore) -> None:
    offsets = store.append_batch([make_record() for _ in range(12)])
    assert all(len(o) == 20 and o.isdigit() for o in offsets)
    assert offsets == sorted(offsets)
    assert offsets[9] == "00000000000000000010"
    assert store.compare_offsets(offsets[8], offsets[9]) == -1  # "9" > "10" as text unpadded
    assert store.compare_offsets(offsets[9], offsets[9]) == 0


def test_offsets_from_another_store_are_refused(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "a.db") as big, SQLiteStore(tmp_path / "b.db") as small:
        foreign = big.append_batch([make_record() for _ in range(5)])[-1]
        small.append(make_record())
        for call in (
            lambda: small.read(foreign),
            lambda: small.iter_events(foreign),
            lambda: small.tail(foreign, timeout=0),
            lambda: small.compare_offsets(foreign, "00000000000000000001"),
            lambda: small.save_checkpoint("s", foreign),
        ):
            with pytest.raises(OffsetError, match="past the tail"):
                call()
        assert small.load_checkpoint("s") is None


def test_positions_are_never_reused_after_deleting_the_newest(store: SQLiteStore) -> None:
    first, second = store.append_batch([make_record(), make_record()])
    store._db.writer.execute("DELETE FROM events WHERE position = 2")
    third = store.append(make_record())
    assert store.compare_offsets(third, second) > 0
    assert [e.offset for e in store.read().events] == [first, third]


def test_iter_events_uses_the_read_batch_size(db: Path) -> None:
    with SQLiteStore(db, read_batch_size=2) as store:
        offsets = store.append_batch([make_record() for _ in range(5)])
        queries: list[str] = []
        store._db.reader().conn.set_trace_callback(queries.append)
        assert [e.offset for e in store.iter_events()] == offsets
        selects = [q for q in queries if "FROM events WHERE position >" in q]
        assert len(selects) == 4  # 2 + 2 + 1, then the empty page that ends it
        assert [e.offset for e in store.iter_events(offsets[1], batch_size=10)] == offsets[2:]


def test_reads_do_not_wait_for_a_writer(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    writer = raw(db)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO events (event_id, type_name, data, timestamp, origin) "
        "VALUES ('x', 't', '{}', '2026-01-01T00:00:00+00:00', 'o')"
    )
    try:
        assert [e.offset for e in store.read().events] == [offset]  # WAL snapshot
    finally:
        writer.execute("ROLLBACK")
        writer.close()
