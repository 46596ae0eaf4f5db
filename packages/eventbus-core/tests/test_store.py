"""The contract's value types: sentinels, records and capability detection."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    Boundary,
    CheckpointStore,
    ClosableStore,
    EventRecord,
    EventStore,
    MemoryStore,
    OffsetOrdering,
    StreamingReader,
    TailingStore,
)

from ._support import PlainStore


def test_sentinels_are_distinct_named_members() -> None:
    assert OLDEST is Boundary.OLDEST
    assert NEWEST is Boundary.NEWEST
    assert len({OLDEST, NEWEST}) == 2
    assert repr(OLDEST) == "OLDEST"
    assert repr(NEWEST) == "NEWEST"


def test_records_are_frozen() -> None:
    record = EventRecord("id", "t", "{}", datetime.now(UTC), {}, "o")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.data = "[]"  # type: ignore[misc]


def test_capabilities_are_detected_structurally() -> None:
    full = MemoryStore()
    for capability in (
        EventStore,
        CheckpointStore,
        StreamingReader,
        TailingStore,
        OffsetOrdering,
        ClosableStore,
    ):
        assert isinstance(full, capability), capability
    plain = PlainStore()
    assert isinstance(plain, EventStore)
    for capability in (CheckpointStore, StreamingReader, TailingStore, OffsetOrdering):
        assert not isinstance(plain, capability), capability
