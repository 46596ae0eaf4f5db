"""Tests of the ``ClosableStore`` capability."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import pytest

from eventbus.core._exceptions import StoreClosedError
from eventbus.core._store import (
    NEWEST,
    OLDEST,
    CheckpointStore,
    ClosableStore,
    EventStore,
    OffsetOrdering,
    StreamingReader,
    TailingStore,
)

from ._fixtures import StoreFixtures, lacks
from ._records import make_record
from ._threads import Background

__all__ = ["ClosingContract"]


class ClosingContract(StoreFixtures):
    """``close``: idempotent, every later call raises, waiters and iterators stop."""

    wake_timeout: ClassVar[float]

    def test_close_is_idempotent_and_later_calls_raise(self, store: EventStore) -> None:
        if not isinstance(store, ClosableStore):
            lacks(ClosableStore)
        _, offsets = self.append_many(store, 1)
        store.close()
        store.close()
        calls: list[Callable[[], object]] = [
            lambda: store.append(make_record()),
            lambda: store.append_batch([make_record()]),
            lambda: store.read(),
            lambda: store.read(NEWEST),
        ]
        if isinstance(store, CheckpointStore):
            calls += [
                lambda: store.save_checkpoint("sub", OLDEST),
                lambda: store.load_checkpoint("sub"),
            ]
        if isinstance(store, StreamingReader):
            calls.append(lambda: list(store.iter_events()))
        if isinstance(store, TailingStore):
            calls.append(lambda: store.tail(OLDEST, timeout=0))
        if isinstance(store, OffsetOrdering):
            calls.append(lambda: store.compare_offsets(offsets[0], offsets[0]))
        for call in calls:
            with pytest.raises(StoreClosedError):
                call()

    def test_close_wakes_a_waiting_tail(self, store: EventStore) -> None:
        if not isinstance(store, ClosableStore):
            lacks(ClosableStore)
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        waiter = Background(lambda: store.tail(OLDEST, timeout=30))
        assert waiter.started.wait(self.wake_timeout)
        time.sleep(0.05)
        store.close()
        assert waiter.join(self.wake_timeout), "close() did not wake a waiting tail()"
        assert isinstance(waiter.error, StoreClosedError), (waiter.error, waiter.result)

    def test_iteration_interrupted_by_close_raises(self, store: EventStore) -> None:
        if not isinstance(store, ClosableStore):
            lacks(ClosableStore)
        if not isinstance(store, StreamingReader):
            lacks(StreamingReader)
        self.append_many(store, 5)
        iterator = store.iter_events(OLDEST, batch_size=1)
        next(iterator)
        store.close()
        with pytest.raises(StoreClosedError):
            list(iterator)
