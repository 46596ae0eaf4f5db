"""The bus-level guarantees (eventbus.core's BusContract) over in-memory stores.

``CorruptibleMemoryStore`` can hold a record it cannot read back, as a file or server
written by another tool can: its reads raise StoreCorruptError at that record, after
returning the readable ones before it, as the store contract asks.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from eventbus.core import (
    OLDEST,
    EventRecord,
    EventStore,
    MemoryStore,
    Position,
    ReadResult,
    StoreCorruptError,
    StoredEvent,
)
from eventbus.core.testing import BusContract, raw_record

from ._support import CheckpointingPlainStore


class CorruptibleMemoryStore(MemoryStore):
    """A memory store some of whose records are unreadable."""

    def __init__(self) -> None:
        super().__init__()
        self.unreadable: set[str] = set()

    def append_unreadable(self, record: EventRecord) -> None:
        self.unreadable.add(self.append(record))

    def _check(self, result: ReadResult) -> ReadResult:
        for index, stored in enumerate(result.events):
            if stored.offset not in self.unreadable:
                continue
            if index:  # a short page: what is readable before the bad record
                return ReadResult(result.events[:index], result.events[index - 1].offset)
            raise StoreCorruptError(
                f"memory://: the metadata of the record at offset {stored.offset} is unreadable.",
                store="memory://",
                offset=stored.offset,
                field="metadata",
                record=dataclasses.replace(stored, metadata={}),
            )
        return result

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        return self._check(super().read(after, limit))

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        return self._check(super().tail(after, timeout=timeout, limit=limit))


class TestMemoryBus(BusContract):
    def make_store(self, directory: Path) -> CorruptibleMemoryStore:
        return CorruptibleMemoryStore()

    def write_corrupt_record(self, store: EventStore, directory: Path, type_name: str) -> None:
        assert isinstance(store, CorruptibleMemoryStore)
        store.append_unreadable(raw_record(type_name, "{}"))


def test_the_corruptible_store_returns_a_short_page_before_the_bad_record() -> None:
    store = CorruptibleMemoryStore()
    good = store.append(raw_record("a", "{}"))
    store.append_unreadable(raw_record("a", "{}"))
    page = store.read(OLDEST, limit=10)
    assert [e.offset for e in page.events] == [good]
    assert isinstance(page.events[0], StoredEvent)
    assert datetime.now(UTC) >= page.events[0].timestamp


class TestBusContractOnAStoreWithoutLeases(BusContract):
    """The same guarantees where the store has only the required methods and checkpoints:
    the bus polls instead of tailing, and the ownership tests skip, naming LeaseStore."""

    def make_store(self, directory: Path) -> EventStore:
        return CheckpointingPlainStore()
