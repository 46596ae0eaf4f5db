"""Tests of the ``CompactingStore`` capability: removing a prefix nobody needs any more."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest

from eventbus.core._exceptions import AppendConflictError, CompactionRefusedError, OffsetError
from eventbus.core._store import (
    NEWEST,
    OLDEST,
    CheckpointStore,
    CompactingStore,
    ConditionalAppendStore,
    EventStore,
    SnapshotStore,
)

from ._fixtures import StoreFixtures, lacks, supported

__all__ = ["CompactionContract"]


def _compacting(store: EventStore) -> CompactingStore:
    if not isinstance(store, CompactingStore):
        lacks(CompactingStore)
    return store


class CompactionContract(StoreFixtures):
    """Compaction: the prefix goes, offsets stay, and it is refused while still needed."""

    malformed_offsets: ClassVar[tuple[str, ...]]

    def test_compaction_removes_the_prefix_and_keeps_offsets(self, store: EventStore) -> None:
        compacting = _compacting(store)
        records, offsets = self.append_many(store, 5)
        with supported():
            assert compacting.compact(offsets[2]) == 3
        self.assert_log(store, records[3:], offsets[3:])
        assert [e.offset for e in self.read_all(store, offsets[0])] == offsets[3:]
        assert [e.offset for e in self.read_all(store, offsets[3])] == offsets[4:]
        assert store.read(NEWEST).next == offsets[4]
        assert compacting.compact(offsets[2]) == 0, "compacting again removes nothing"
        assert compacting.compact(offsets[1]) == 0
        later, more = self.append_many(store, 1)
        self.assert_increasing(store, [offsets[4], *more])
        self.assert_log(store, records[3:] + later, offsets[3:] + more)

    def test_compaction_of_everything_keeps_the_end(self, store: EventStore) -> None:
        compacting = _compacting(store)
        _, offsets = self.append_many(store, 2)
        with supported():
            assert compacting.compact(offsets[1]) == 2
        assert self.read_all(store) == []
        assert store.read(NEWEST).next == offsets[1], "the end is where the last event was"
        if isinstance(store, ConditionalAppendStore):
            with pytest.raises(AppendConflictError):
                store.append_expecting([], OLDEST)
            store.append_expecting([], offsets[1])

    def test_compaction_is_refused_while_a_checkpoint_needs_events(self, store: EventStore) -> None:
        compacting = _compacting(store)
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        records, offsets = self.append_many(store, 4)
        store.save_checkpoint("mailer", offsets[0])
        store.save_checkpoint("auditor", OLDEST)
        store.save_checkpoint("ahead", offsets[3])
        with supported(), pytest.raises(CompactionRefusedError) as caught:
            compacting.compact(offsets[1])
        message = str(caught.value)
        assert "'mailer'" in message
        assert "'auditor'" in message
        assert "'ahead'" not in message
        assert sorted(caught.value.needed_by.values(), key=str) == sorted(
            [offsets[0], OLDEST], key=str
        )
        self.assert_log(store, records, offsets)  # nothing removed
        store.save_checkpoint("auditor", offsets[1])
        store.save_checkpoint("mailer", offsets[1])
        assert compacting.compact(offsets[1]) == 2, "a checkpoint at the offset needs nothing"

    def test_compaction_requires_the_named_snapshots(self, store: EventStore) -> None:
        compacting = _compacting(store)
        if not isinstance(store, SnapshotStore):
            lacks(SnapshotStore)
        records, offsets = self.append_many(store, 3)
        store.save_snapshot("old", offsets[0], "{}")
        with supported(), pytest.raises(CompactionRefusedError) as caught:
            compacting.compact(offsets[1], snapshots=["old", "missing"])
        assert "'old'" in str(caught.value)
        assert "'missing'" in str(caught.value)
        self.assert_log(store, records, offsets)
        store.save_snapshot("old", offsets[1], "{}")
        store.save_snapshot("missing", offsets[2], "{}")
        assert compacting.compact(offsets[1], snapshots=["old", "missing"]) == 2

    def test_compaction_rejects_a_malformed_offset(self, store: EventStore) -> None:
        compacting = _compacting(store)
        records, offsets = self.append_many(store, 1)
        for bad in self.malformed_offsets:
            with supported(), pytest.raises(OffsetError):
                compacting.compact(bad)
        self.assert_log(store, records, offsets)

    def test_compaction_survives_reopen(
        self, store: EventStore, reopen: Callable[[EventStore], EventStore]
    ) -> None:
        compacting = _compacting(store)
        records, offsets = self.append_many(store, 3)
        with supported():
            compacting.compact(offsets[0])
        again = reopen(store)
        self.assert_log(again, records[1:], offsets[1:])
        _, more = self.append_many(again, 1)
        self.assert_increasing(again, [offsets[2], *more])
