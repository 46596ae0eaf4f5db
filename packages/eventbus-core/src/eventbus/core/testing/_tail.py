"""Tests of the ``TailingStore`` capability."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import pytest

from eventbus.core._exceptions import OffsetError
from eventbus.core._store import (
    NEWEST,
    OLDEST,
    EventStore,
    Position,
    ReadResult,
    StoredEvent,
    TailingStore,
)

from ._fixtures import StoreFixtures, lacks
from ._records import NOT_COUNTS, assert_stored, make_record, not_an_int
from ._threads import Background, run_threads

__all__ = ["TailContract"]


class TailContract(StoreFixtures):
    """``tail``: immediate pages, timeouts, waking on appends, no loss under concurrency."""

    malformed_offsets: ClassVar[tuple[str, ...]]
    wake_timeout: ClassVar[float]

    def test_tail_returns_at_once_when_events_exist(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        records, offsets = self.append_many(store, 3)
        page = store.tail(OLDEST, timeout=30, limit=2)
        assert 1 <= len(page.events) <= 2
        assert page.events[0].event_id == records[0].event_id
        page = store.tail(offsets[0], timeout=30)
        assert page.events[0].offset == offsets[1]
        assert page.next == page.events[-1].offset

    def test_tail_times_out_with_nothing(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        page = store.tail(OLDEST, timeout=0.05)
        assert list(page.events) == []
        assert page.next is OLDEST
        _, offsets = self.append_many(store, 2)
        for position in (offsets[-1], NEWEST):
            page = store.tail(position, timeout=0.05)
            assert list(page.events) == []
            assert page.next == offsets[-1]
        assert list(store.tail(offsets[-1], timeout=0).events) == []

    def test_tail_wakes_when_another_thread_appends(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        _, offsets = self.append_many(store, 1)
        waiter = Background(lambda: store.tail(offsets[0], timeout=30))
        assert waiter.started.wait(self.wake_timeout)
        time.sleep(0.05)  # let it block; an append before the wait must also be seen
        record = make_record()
        offset = store.append(record)
        assert waiter.join(self.wake_timeout), "tail did not wake up after an append"
        assert waiter.error is None, waiter.error
        page = waiter.result
        assert isinstance(page, ReadResult), page
        assert [e.offset for e in page.events] == [offset]
        assert_stored(page.events[0], record, offset)

    def test_tail_follows_concurrent_appends_without_loss(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        writers, per_writer = 4, 50
        expected: set[str] = set()
        seen: list[StoredEvent] = []

        def writer(t: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(per_writer):
                    record = make_record({"writer": t, "i": i})
                    expected.add(record.event_id)
                    store.append(record)

            return run

        def follower() -> None:
            position: Position = OLDEST
            deadline = time.monotonic() + 120
            while len(seen) < writers * per_writer and time.monotonic() < deadline:
                page = store.tail(position, timeout=1, limit=7)
                assert len(page.events) <= 7
                seen.extend(page.events)
                position = page.next

        run_threads([follower, *(writer(t) for t in range(writers))], timeout=180)
        ids = [e.event_id for e in seen]
        assert len(ids) == len(set(ids)), "tail delivered an event twice"
        assert set(ids) == expected, "tail lost events"
        assert [e.offset for e in seen] == [e.offset for e in self.read_all(store)]

    def test_tail_rejects_bad_input(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        self.append_many(store, 1)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                store.tail(offset, timeout=0)
        with pytest.raises(ValueError, match=r"^limit must be at least 1, got 0\.$"):
            store.tail(OLDEST, timeout=0, limit=0)
        for limit in NOT_COUNTS:
            with pytest.raises(TypeError, match=not_an_int("limit", limit)):
                store.tail(OLDEST, timeout=0, limit=limit)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="-1"):
            store.tail(OLDEST, timeout=-1)
