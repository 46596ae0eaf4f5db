"""SQLiteStore's conditional appends, snapshots and compaction: the SQLite-specific parts.

The kit (``test_contract.py``) proves the contract; the two-process race is in
``test_multiprocess.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    AppendConflictError,
    CompactionRefusedError,
    OffsetError,
    StoreCorruptError,
    StoreError,
    StoreReadOnlyError,
)
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

from ._support import raw


def _size(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def test_an_expected_end_past_the_tail_is_an_offset_error(store: SQLiteStore) -> None:
    store.append(make_record())
    with pytest.raises(OffsetError, match="past the tail"):
        store.append_expecting([make_record()], f"{5:020d}")
    with pytest.raises(OffsetError, match="past the tail"):
        store.compact(f"{5:020d}")
    assert len(store.read().events) == 1


def test_a_conditional_append_waits_for_a_running_group_commit(store: SQLiteStore) -> None:
    # Appends from other threads hold the write lock in turns; each conditional append
    # sees a consistent end, and every success extends exactly the end it expected.
    stop = threading.Event()

    def appender() -> None:
        while not stop.is_set():
            store.append(make_record())
            time.sleep(0.001)

    threads = [threading.Thread(target=appender) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wins = 0
        conflicts: list[tuple[object, object]] = []
        for _ in range(200):
            end = store.read(NEWEST).next
            try:
                [offset] = store.append_expecting([make_record()], end)
            except AppendConflictError as exc:
                conflicts.append((end, exc.current))
            else:
                wins += 1
                assert int(offset) == (0 if end is OLDEST else int(end)) + 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert wins > 0, "some conditional append must find the end unmoved"
    assert all(expected != current for expected, current in conflicts)
    offsets = [e.offset for e in store.iter_events()]
    assert offsets == sorted(set(offsets))


def test_a_large_conditional_batch_is_one_transaction(store: SQLiteStore) -> None:
    records = [make_record() for _ in range(150)]  # more than one multi-row INSERT
    offsets = store.append_expecting(records, OLDEST)
    assert offsets == [f"{n:020d}" for n in range(1, 151)]
    duplicate = [make_record() for _ in range(100)] + [records[0]]
    with pytest.raises(StoreError, match="event_id"):
        store.append_expecting(duplicate, offsets[-1])
    assert len(list(store.iter_events())) == 150, "a failed batch stores nothing"


def test_compaction_with_vacuum_shrinks_the_file(db: Path, store: SQLiteStore) -> None:
    offsets = store.append_batch([make_record("x" * 1000) for _ in range(2000)])
    store.save_checkpoint("reader", offsets[-1])
    before = _size(db)
    assert store.compact(offsets[1899]) == 1900
    assert _size(db) >= before * 0.5, "without vacuum the file keeps its pages"
    assert store.compact(offsets[1999], vacuum=True) == 100
    assert _size(db) < before / 10
    assert store.compact(offsets[1999], vacuum=True) == 0, "nothing left to remove"
    [offset] = store.append_expecting([make_record()], offsets[-1])
    assert int(offset) == 2001, "positions are never reused"


def test_compaction_names_an_unreadable_checkpoint(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    conn = raw(db)
    conn.execute("INSERT INTO checkpoints (subscription_id, checkpoint) VALUES ('s', 'junk')")
    conn.close()
    with pytest.raises(StoreCorruptError, match=r"checkpoint of 's'.*'junk'"):
        store.compact(offset)


def test_an_unreadable_snapshot_row_is_reported(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    conn = raw(db)
    conn.execute("INSERT INTO snapshots (snapshot_id, checkpoint, data) VALUES ('s', 'junk', '')")
    conn.close()
    with pytest.raises(StoreCorruptError, match=r"snapshot 's'.*'junk'"):
        store.load_snapshot("s")
    with pytest.raises(StoreCorruptError, match="snapshot 's'"):
        store.compact(offset, snapshots=["s"])


def test_compaction_refusal_names_every_reason(store: SQLiteStore) -> None:
    offsets = store.append_batch([make_record() for _ in range(3)])
    store.save_checkpoint("mailer", offsets[0])
    with pytest.raises(CompactionRefusedError) as caught:
        store.compact(offsets[2], snapshots=["never"])
    assert caught.value.needed_by == {
        "the checkpoint of durable subscription 'mailer'": offsets[0],
        "snapshot 'never', which was never saved": OLDEST,
    }


def test_a_read_only_store_refuses_the_event_sourcing_writes(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    store.save_snapshot("s", offset, "{}")
    with SQLiteStore(db, read_only=True) as reader:
        with pytest.raises(StoreReadOnlyError, match="cannot append events"):
            reader.append_expecting([make_record()], offset)
        with pytest.raises(StoreReadOnlyError, match="cannot save snapshots"):
            reader.save_snapshot("s", OLDEST, "{}")
        with pytest.raises(StoreReadOnlyError, match="cannot compact the log"):
            reader.compact(offset)
        assert reader.load_snapshot("s") is not None, "reading a snapshot is allowed"
    assert len(store.read().events) == 1
