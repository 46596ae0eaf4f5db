"""Persistence and cross-instance tests, run when the backend overrides ``reopen_store``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from eventbus.core._store import (
    NEWEST,
    OLDEST,
    CheckpointStore,
    EventStore,
    ReadResult,
    TailingStore,
)

from ._fixtures import StoreFixtures, lacks
from ._records import assert_stored, make_record
from ._threads import Background

__all__ = ["PersistenceContract"]


class PersistenceContract(StoreFixtures):
    """Events, offsets and checkpoints outlive an instance; instances see each other."""

    wake_timeout: ClassVar[float]

    def test_events_survive_reopen(
        self, store: EventStore, reopen: Callable[[EventStore], EventStore]
    ) -> None:
        records, offsets = self.append_many(store, 5)
        batch = [make_record() for _ in range(3)]
        offsets += store.append_batch(batch)
        records += batch
        again = reopen(store)
        self.assert_log(again, records, offsets)
        assert again.read(NEWEST).next == offsets[-1]
        rest = self.read_all(again, offsets[2])
        assert [e.offset for e in rest] == offsets[3:], "pre-reopen offsets must stay valid"
        later = make_record()
        later_offset = again.append(later)
        self.assert_increasing(again, [*offsets, later_offset])

    def test_checkpoints_survive_reopen(
        self, store: EventStore, reopen: Callable[[EventStore], EventStore]
    ) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        _, offsets = self.append_many(store, 2)
        store.save_checkpoint("at-oldest", OLDEST)
        store.save_checkpoint("at-first", offsets[0])
        again = reopen(store)
        assert isinstance(again, CheckpointStore), "the reopened store lost CheckpointStore"
        assert again.load_checkpoint("at-oldest") is OLDEST
        assert again.load_checkpoint("at-first") == offsets[0]
        assert again.load_checkpoint("never-saved") is None

    def test_instances_on_the_same_data_see_each_others_appends(
        self, store: EventStore, second_instance: Callable[[EventStore], EventStore]
    ) -> None:
        other = second_instance(store)
        mine = make_record()
        offsets = [store.append(mine)]
        theirs = make_record()
        offsets.append(other.append(theirs))
        self.assert_increasing(store, offsets)
        self.assert_log(store, [mine, theirs], offsets)
        self.assert_log(other, [mine, theirs], offsets)

    def test_tail_wakes_for_an_append_through_another_instance(
        self, store: EventStore, second_instance: Callable[[EventStore], EventStore]
    ) -> None:
        if not isinstance(store, TailingStore):
            lacks(TailingStore)
        other = second_instance(store)
        _, offsets = self.append_many(store, 1)
        waiter = Background(lambda: store.tail(offsets[0], timeout=30))
        assert waiter.started.wait(self.wake_timeout)
        time.sleep(0.05)
        record = make_record()
        offset = other.append(record)
        assert waiter.join(self.wake_timeout), "tail did not see another instance's append"
        assert waiter.error is None, waiter.error
        page = waiter.result
        assert isinstance(page, ReadResult), page
        assert [e.offset for e in page.events] == [offset]
        assert_stored(page.events[0], record, offset)
