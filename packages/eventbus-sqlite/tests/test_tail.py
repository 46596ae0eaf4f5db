"""Tailing: woken by this store's appends, and by other connections' commits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from eventbus.core import NEWEST, OLDEST, StoreClosedError, StoreCorruptError, StoreError
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

from ._support import Call, wait_until, write_row

if TYPE_CHECKING:
    from pathlib import Path


def test_tail_sees_appends_through_another_store_on_the_same_file(db: Path) -> None:
    with SQLiteStore(db) as follower, SQLiteStore(db) as writer:
        start = follower.read(NEWEST).next
        waiting = Call(lambda: follower.tail(start, timeout=30))
        time.sleep(0.1)  # let the follower back off to its longer polls
        offset = writer.append(make_record())
        result = waiting.join()
        assert [e.offset for e in result.events] == [offset]


def test_tail_from_newest_waits_for_the_next_event(store: SQLiteStore) -> None:
    store.append(make_record())
    waiting = Call(lambda: store.tail(NEWEST, timeout=30))
    wait_until(lambda: store._tailer._commits >= 1, "the first commit")
    time.sleep(0.01)
    offset = store.append(make_record())
    assert [e.offset for e in waiting.join().events] == [offset]


def test_tail_timeout_on_empty_store_keeps_oldest(store: SQLiteStore) -> None:
    result = store.tail(OLDEST, timeout=0.01)
    assert result.events == []
    assert result.next is OLDEST


def test_tail_counts_itself_only_while_it_waits(store: SQLiteStore) -> None:
    assert store.tail(OLDEST, timeout=0.01).events == []
    assert store._tailer._tailing == 0
    waiting = Call(lambda: store.tail(OLDEST, timeout=30))
    wait_until(lambda: store._tailer._tailing == 1, "the tail to wait")
    offset = store.append(make_record())  # a waiting tail is notified
    assert [e.offset for e in waiting.join().events] == [offset]
    assert store._tailer._tailing == 0
    closed = Call(lambda: store.tail(offset, timeout=30))
    wait_until(lambda: store._tailer._tailing == 1, "the second tail to wait")
    store.close()
    closed.join()
    assert isinstance(closed.error, StoreClosedError)
    assert store._tailer._tailing == 0


def test_tail_keeps_waiting_after_a_failed_append(store: SQLiteStore) -> None:
    record = make_record()
    offset = store.append(record)
    waiting = Call(lambda: store.tail(offset, timeout=0.3))
    time.sleep(0.02)
    with pytest.raises(StoreError, match="already stored"):
        store.append(record)  # wakes the waiter, which finds nothing new
    result = waiting.join()
    assert result.events == []
    assert result.next == offset


# -- rows another tool wrote badly ------------------------------------------------------


def test_tail_returns_the_readable_events_then_raises_at_the_bad_one(db: Path) -> None:
    with SQLiteStore(db) as store:
        first = store.append(make_record())
        bad = write_row(db, timestamp="not a time")
        last = store.append(make_record())
        assert [e.offset for e in store.tail(OLDEST, timeout=1).events] == [first]
        with pytest.raises(StoreCorruptError) as caught:
            store.tail(first, timeout=1)
        assert (caught.value.offset, caught.value.field) == (bad, "timestamp")
        assert caught.value.offset is not None
        assert [e.offset for e in store.tail(caught.value.offset, timeout=1).events] == [last]


def test_a_waiting_tail_raises_when_the_next_row_is_bad(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())

    def another_tool() -> str:
        time.sleep(0.1)  # the tail is waiting by now
        return write_row(db, metadata="{")

    writer = Call(another_tool)
    with pytest.raises(StoreCorruptError) as caught:
        store.tail(offset, timeout=30)
    assert caught.value.offset == writer.join()
    assert caught.value.field == "metadata"
