"""The required part of the contract: append, append_batch and read."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, MutableMapping, MutableSequence
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from eventbus.core._exceptions import OffsetError
from eventbus.core._store import NEWEST, OLDEST, EventRecord, EventStore, Offset

from ._fixtures import StoreFixtures
from ._records import NOT_COUNTS, assert_stored, make_record, not_an_int
from ._threads import run_threads

__all__ = ["AppendReadContract"]


class AppendReadContract(StoreFixtures):
    """Tests of ``EventStore``: round trips, log order, exact resume points, bad input."""

    malformed_offsets: ClassVar[tuple[str, ...]]
    concurrency: ClassVar[tuple[int, int]]

    def test_store_satisfies_event_store_protocol(self, store: EventStore) -> None:
        assert isinstance(store, EventStore)

    def test_empty_store_reads_nothing(self, store: EventStore) -> None:
        page = store.read()
        assert list(page.events) == []
        assert page.next is OLDEST

    def test_append_then_read_round_trips_every_field(self, store: EventStore) -> None:
        record = make_record({"a": [1, 2.5, None, True]}, metadata={"k": "v", "trace": "t-1"})
        offset = store.append(record)
        assert isinstance(offset, str)
        page = store.read(OLDEST, 10)
        assert len(page.events) == 1
        assert_stored(page.events[0], record, offset)
        assert page.next == offset

    def test_reads_return_events_in_append_order(self, store: EventStore) -> None:
        records, offsets = self.append_many(store, 25)
        self.assert_increasing(store, offsets)
        self.assert_log(store, records, offsets)

    @pytest.mark.parametrize("limit", [1, 2, 3, 7, 100])
    def test_resume_after_every_offset_yields_exactly_the_rest(
        self, store: EventStore, limit: int
    ) -> None:
        records, offsets = self.append_many(store, 12)
        ids = [r.event_id for r in records]
        assert [e.event_id for e in self.read_all(store, OLDEST, limit)] == ids
        for index, offset in enumerate(offsets):
            rest = self.read_all(store, offset, limit)
            assert [e.event_id for e in rest] == ids[index + 1 :], f"resuming after #{index}"
            assert [e.offset for e in rest] == offsets[index + 1 :]

    def test_read_limit_pages_and_next_points_at_last_event(self, store: EventStore) -> None:
        records, offsets = self.append_many(store, 10)
        first = store.read(OLDEST, 3)
        assert 1 <= len(first.events) <= 3
        assert first.next == first.events[-1].offset
        second = store.read(first.next, 3)
        assert second.events[0].event_id == records[len(first.events)].event_id
        rest = self.read_all(store, second.next, 4)
        seen = [*first.events, *second.events, *rest]
        assert [e.offset for e in seen] == offsets

    def test_read_after_last_offset_returns_nothing_and_keeps_position(
        self, store: EventStore
    ) -> None:
        _, offsets = self.append_many(store, 3)
        page = store.read(offsets[-1])
        assert list(page.events) == []
        assert page.next == offsets[-1]

    def test_read_newest_on_empty_store_is_oldest(self, store: EventStore) -> None:
        page = store.read(NEWEST)
        assert list(page.events) == []
        assert page.next is OLDEST

    def test_read_newest_returns_concrete_tail_not_history(self, store: EventStore) -> None:
        _, offsets = self.append_many(store, 5)
        for limit in (1, 100):
            page = store.read(NEWEST, limit)
            assert list(page.events) == [], "read(NEWEST) must not replay history"
            assert page.next == offsets[-1], "read(NEWEST).next must be the last offset"
        later = make_record()
        later_offset = store.append(later)
        page = store.read(offsets[-1])
        assert [e.event_id for e in page.events] == [later.event_id]
        assert store.read(NEWEST).next == later_offset

    def test_append_batch_stores_in_order(self, store: EventStore) -> None:
        first, first_offsets = self.append_many(store, 2)
        batch = [make_record() for _ in range(5)]
        batch_offsets = store.append_batch(batch)
        assert isinstance(batch_offsets, list)
        assert len(batch_offsets) == 5
        last = make_record()
        records = [*first, *batch, last]
        offsets = [*first_offsets, *batch_offsets, store.append(last)]
        self.assert_increasing(store, offsets)
        self.assert_log(store, records, offsets)

    def test_append_batch_of_nothing_stores_nothing(self, store: EventStore) -> None:
        assert store.append_batch([]) == []
        assert self.read_all(store) == []
        record = make_record()
        offset = store.append(record)
        assert store.append_batch([]) == []
        self.assert_log(store, [record], [offset])

    def test_append_batch_is_contiguous_under_concurrency(self, store: EventStore) -> None:
        batches = [[make_record({"thread": t, "i": i}) for i in range(10)] for t in range(8)]
        results: dict[int, list[Offset]] = {}

        def writer(t: int) -> Callable[[], None]:
            def run() -> None:
                results[t] = store.append_batch(batches[t])

            return run

        run_threads([writer(t) for t in range(len(batches))], timeout=60)
        events = self.read_all(store)
        assert len(events) == 80
        position = {e.event_id: i for i, e in enumerate(events)}
        for t, batch in enumerate(batches):
            places = [position[r.event_id] for r in batch]
            assert places == list(range(places[0], places[0] + 10)), f"batch {t} interleaved"
            assert [events[p].offset for p in places] == results[t]

    def test_concurrent_appends_get_unique_increasing_offsets(self, store: EventStore) -> None:
        threads, per_thread = self.concurrency
        results: dict[int, list[tuple[EventRecord, Offset]]] = {}

        def writer(t: int) -> Callable[[], None]:
            def run() -> None:
                mine = results.setdefault(t, [])
                for i in range(per_thread):
                    record = make_record({"thread": t, "i": i})
                    mine.append((record, store.append(record)))

            return run

        run_threads([writer(t) for t in range(threads)], timeout=300)
        events = self.read_all(store)
        assert len(events) == threads * per_thread
        offsets = [e.offset for e in events]
        self.assert_increasing(store, offsets)
        by_id = {e.event_id: e for e in events}
        places = {offset: index for index, offset in enumerate(offsets)}
        for mine in results.values():
            assert len(mine) == per_thread
            for record, offset in mine:
                assert_stored(by_id[record.event_id], record, offset)
            own = [places[offset] for _, offset in mine]
            assert own == sorted(own), "one thread's appends must keep their order"

    def test_large_payload_round_trips(self, store: EventStore) -> None:
        blob = "".join(chr(0x20 + i % 0x5F) for i in range(1024 * 1024))
        record = make_record({"blob": blob})
        offset = store.append(record)
        assert_stored(store.read().events[0], record, offset)

    def test_unicode_round_trips_everywhere(self, store: EventStore) -> None:
        text = (
            "h\u00e9llo \u4e16\u754c \U0001f600\U0001f3f3\ufe0f\u200d\U0001f308"
            " \u05e9\u05dc\u05d5\u05dd \u2028\u2029 e\u0301 \ufeff \\ \" ' \x7f \U0010fffd"
        )
        record = make_record(
            {"text": text, text: [text]},
            type_name="conformance.\u00c9v\u00e9nement\U0001f4e6",
            metadata={"cl\u00e9 \U0001f511": text, "plain": "\t\r\n"},
            origin="bus-\U0001f68c",
        )
        # JSON with \\u escapes (surrogate pairs included) must not be normalised either.
        escaped = dataclasses.replace(make_record(metadata={}), data=json.dumps({"text": text}))
        offsets = [store.append(record), store.append(escaped)]
        self.assert_log(store, [record, escaped], offsets)

    def test_metadata_round_trips_including_empty(self, store: EventStore) -> None:
        many = {f"key-{i}": f"value {i} " * i for i in range(50)}
        records = [
            make_record(metadata={}),
            make_record(metadata=many),
            make_record(metadata={"": ""}),
        ]
        offsets = [store.append(r) for r in records]
        self.assert_log(store, records, offsets)

    def test_timestamps_round_trip_as_utc_with_microseconds(self, store: EventStore) -> None:
        moments = [
            datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
            datetime(1999, 12, 31, 0, 0, 0, 1, tzinfo=UTC),
            datetime(2100, 1, 1, 12, 30, 45, 123_456, tzinfo=UTC),
            datetime.now(UTC),
        ]
        records = [make_record(timestamp=m) for m in moments]
        offsets = [store.append(r) for r in records]
        self.assert_log(store, records, offsets)

    def test_history_is_immutable_through_caller_references(self, store: EventStore) -> None:
        metadata = {"k": "original"}
        record = make_record(metadata=metadata)
        offset = store.append(record)
        metadata["k"] = "changed"
        metadata["added"] = "x"
        page = store.read()
        if isinstance(page.events, MutableSequence):
            page.events.clear()
        events = store.read().events
        if isinstance(events[0].metadata, MutableMapping):
            events[0].metadata["k"] = "changed through a read result"
        stored = store.read().events[0]
        assert stored.offset == offset
        assert dict(stored.metadata) == {"k": "original"}

    def test_stores_are_independent(self, new_store: Callable[[], EventStore]) -> None:
        first, second = new_store(), new_store()
        record = make_record()
        offset = first.append(record)
        assert self.read_all(second) == []
        other = make_record()
        other_offset = second.append(other)
        self.assert_log(first, [record], [offset])
        self.assert_log(second, [other], [other_offset])

    # -- bad input ----------------------------------------------------------------------

    def test_malformed_offsets_raise_offset_error(self, store: EventStore) -> None:
        self.append_many(store, 2)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                store.read(offset)

    @pytest.mark.parametrize("limit", [0, -1])
    def test_non_positive_limit_raises_value_error(self, store: EventStore, limit: int) -> None:
        self.append_many(store, 1)
        with pytest.raises(ValueError, match=rf"^limit must be at least 1, got {limit}\.$"):
            store.read(OLDEST, limit)

    @pytest.mark.parametrize("limit", NOT_COUNTS)
    def test_a_limit_that_is_not_an_int_raises_type_error(
        self, store: EventStore, limit: object
    ) -> None:
        self.append_many(store, 1)
        with pytest.raises(TypeError, match=not_an_int("limit", limit)):
            store.read(OLDEST, limit)  # type: ignore[arg-type]
