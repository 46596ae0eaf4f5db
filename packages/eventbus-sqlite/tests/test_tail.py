"""Tailing: woken by this store's appends, and by other connections' commits cheaply."""

from __future__ import annotations

import _thread
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from eventbus.core import NEWEST, OLDEST, StoreClosedError, StoreCorruptError, StoreError
from eventbus.core.testing import make_record
from eventbus.sqlite import MEMORY, SQLiteStore

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


def test_tail_from_newest_waits_for_the_next_event(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append(make_record())
    statements = _Statements(store, monkeypatch)
    waiting = Call(lambda: store.tail(NEWEST, timeout=30))
    # The tail's first page query comes after it resolved NEWEST: an append before that
    # would be part of what NEWEST means, and the tail would wait for yet another event.
    wait_until(lambda: statements.count(_PAGE) >= 1, "the tail's first look")
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


# -- the cost of waiting ----------------------------------------------------------------

_PAGE = "SELECT printf('%020d', position)"  # how the page query begins
_DATA_VERSION = "PRAGMA data_version"


class _Statements:
    """Every statement the store runs, with the thread that ran it and when."""

    def __init__(self, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[float, str, str]] = []
        query = store._db.query

        def traced(sql: str, params: tuple[object, ...]) -> Any:
            self.seen.append((time.monotonic(), threading.current_thread().name, sql))
            return query(sql, params)

        monkeypatch.setattr(store._db, "query", traced)

    def count(self, prefix: str, thread: str | None = None) -> int:
        return sum(sql.startswith(prefix) and thread in (None, name) for _, name, sql in self.seen)

    def threads(self, prefix: str) -> set[str]:
        return {name for _, name, sql in self.seen if sql.startswith(prefix)}

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def no_new_threads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every thread started while the test runs (through threading or _thread)."""
    started: list[object] = []
    real_start = threading.Thread.start
    real_new = _thread.start_new_thread

    def start(thread: threading.Thread) -> None:
        started.append(thread)
        real_start(thread)

    def start_new_thread(function: Any, args: Any, kwargs: Any = None) -> int:
        started.append(function)
        return real_new(function, args, kwargs or {})

    monkeypatch.setattr(threading.Thread, "start", start)
    monkeypatch.setattr(_thread, "start_new_thread", start_new_thread)
    return started


def test_idle_tail_runs_no_page_query_while_one_watcher_checks_for_changes(
    store: SQLiteStore, no_new_threads: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    offset = store.append(make_record())
    statements = _Statements(store, monkeypatch)
    me = threading.current_thread().name
    result = store.tail(offset, timeout=0.3)
    assert result.events == []
    assert result.next == offset
    # One page query when the call starts; while it waits, only the watcher's check.
    assert statements.count(_PAGE, me) == 1
    assert statements.count(_DATA_VERSION, me) == 0
    assert statements.threads(_DATA_VERSION) == {"eventbus-sqlite-watcher"}
    assert statements.count(_DATA_VERSION) >= 5
    assert [t.name for t in no_new_threads if isinstance(t, threading.Thread)] == [
        "eventbus-sqlite-watcher"
    ]


def test_many_idle_tails_share_one_watcher_across_calls(
    store: SQLiteStore, no_new_threads: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    offset = store.append(make_record())
    statements = _Statements(store, monkeypatch)

    def subscriber() -> None:
        for _ in range(3):  # a durable subscription's loop of short tails
            assert store.tail(offset, timeout=0.2).events == []

    callers = [Call(subscriber) for _ in range(10)]
    for caller in callers:
        caller.join()
    watchers = [t for t in no_new_threads if getattr(t, "name", "") == "eventbus-sqlite-watcher"]
    assert len(watchers) == 1
    assert statements.threads(_DATA_VERSION) == {"eventbus-sqlite-watcher"}
    # Each caller read its page once per call, never again: nothing changed.
    assert statements.count(_PAGE) == 30


def test_idle_tail_sees_another_connections_commit_promptly(
    db: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    offset = store.append(make_record())
    statements = _Statements(store, monkeypatch)
    committed: list[float] = []

    def another_tool() -> str:
        time.sleep(0.3)  # the watcher has backed off to its longest polls
        written = write_row(db)
        committed.append(time.monotonic())
        return written

    writer = Call(another_tool)
    result = store.tail(offset, timeout=30)
    returned = time.monotonic()
    written = writer.join()
    assert [e.offset for e in result.events] == [written]
    assert returned - committed[0] < 0.5  # polls are at most 50 ms apart
    me = threading.current_thread().name
    assert statements.count(_PAGE, me) == 2  # at the start, and once the data changed
    assert statements.count(_DATA_VERSION) >= 5


def test_the_watcher_ends_a_while_after_the_last_tail_and_a_new_one_starts(
    store: SQLiteStore,
) -> None:
    offset = store.append(make_record())
    store.tail(offset, timeout=0.05)
    first = store._tailer._watcher
    assert first is not None
    first.join(10)  # ends on its own once nobody tails for a while
    assert not first.is_alive()
    assert store._tailer._watcher is None
    store.tail(offset, timeout=0.05)
    assert store._tailer._watcher is not None


def test_closing_the_store_ends_the_watcher(db: Path) -> None:
    store = SQLiteStore(db)
    offset = store.append(make_record())
    waiting = Call(lambda: store.tail(offset, timeout=30))
    wait_until(lambda: store._tailer._watcher is not None, "the watcher to start")
    watcher = store._tailer._watcher
    assert watcher is not None
    store.close()
    waiting.join()
    assert isinstance(waiting.error, StoreClosedError)
    watcher.join(10)
    assert not watcher.is_alive()


def test_memory_tail_only_waits(
    no_new_threads: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    with SQLiteStore(MEMORY) as store:
        offset = store.append(make_record())
        statements = _Statements(store, monkeypatch)
        assert store.tail(offset, timeout=0.2).events == []
        # The initial page and the check of the offset; nothing while waiting, as
        # nothing but this store can write to a private in-memory database.
        assert [sql.split()[0] for _, _, sql in statements.seen] == ["SELECT", "SELECT"]
        assert no_new_threads == []
        waiting = Call(lambda: store.tail(offset, timeout=30))
        wait_until(lambda: store._tailer._tailing == 1, "the tail to wait")
        appended = store.append(make_record())
        assert [e.offset for e in waiting.join().events] == [appended]


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
