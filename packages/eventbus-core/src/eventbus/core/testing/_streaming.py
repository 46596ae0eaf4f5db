"""Tests of the ``StreamingReader`` capability."""

from __future__ import annotations

from typing import ClassVar

import pytest

from eventbus.core._exceptions import OffsetError
from eventbus.core._store import NEWEST, OLDEST, EventStore, StreamingReader

from ._fixtures import StoreFixtures, lacks
from ._records import NOT_COUNTS, assert_stored, make_record, not_an_int

__all__ = ["StreamingContract"]


class StreamingContract(StoreFixtures):
    """``iter_events``: from every position, any batch size, including later appends."""

    malformed_offsets: ClassVar[tuple[str, ...]]

    @pytest.mark.parametrize("batch_size", [1, 2, 500])
    def test_iter_events_yields_everything_after_each_position(
        self, store: EventStore, batch_size: int
    ) -> None:
        if not isinstance(store, StreamingReader):
            lacks(StreamingReader)
        assert list(store.iter_events(batch_size=batch_size)) == []
        records, offsets = self.append_many(store, 7)
        streamed = list(store.iter_events(OLDEST, batch_size=batch_size))
        assert [e.offset for e in streamed] == offsets
        for event, record in zip(streamed, records, strict=True):
            assert_stored(event, record)
        for index, offset in enumerate(offsets):
            rest = list(store.iter_events(offset, batch_size=batch_size))
            assert [e.offset for e in rest] == offsets[index + 1 :]

    def test_iter_events_newest_yields_nothing(self, store: EventStore) -> None:
        if not isinstance(store, StreamingReader):
            lacks(StreamingReader)
        assert list(store.iter_events(NEWEST)) == []
        self.append_many(store, 3)
        assert list(store.iter_events(NEWEST)) == []

    def test_iter_events_sees_events_appended_while_iterating(self, store: EventStore) -> None:
        if not isinstance(store, StreamingReader):
            lacks(StreamingReader)
        _, offsets = self.append_many(store, 2)
        iterator = store.iter_events(OLDEST, batch_size=1)
        assert next(iterator).offset == offsets[0]
        later = make_record()
        later_offset = store.append(later)
        rest = list(iterator)
        assert [e.offset for e in rest] == [offsets[1], later_offset]

    def test_iter_events_rejects_bad_input(self, store: EventStore) -> None:
        if not isinstance(store, StreamingReader):
            lacks(StreamingReader)
        self.append_many(store, 1)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                list(store.iter_events(offset))
        with pytest.raises(ValueError, match=r"^batch_size must be at least 1, got 0\.$"):
            list(store.iter_events(OLDEST, batch_size=0))
        for batch_size in NOT_COUNTS:
            with pytest.raises(TypeError, match=not_an_int("batch_size", batch_size)):
                list(store.iter_events(OLDEST, batch_size=batch_size))  # type: ignore[arg-type]
