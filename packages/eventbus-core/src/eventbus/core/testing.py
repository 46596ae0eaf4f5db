"""The store conformance kit: the executable definition of the store contract.

A backend proves it implements :class:`~eventbus.core.EventStore` (and each optional
capability it claims) by subclassing :class:`StoreContract` in its own tests::

    from pathlib import Path

    from eventbus.core.testing import StoreContract
    from mybackend import MyStore


    class TestMyStore(StoreContract):
        def make_store(self, directory: Path) -> MyStore:
            return MyStore(directory / "events.db")

        def reopen_store(self, store: EventStore, directory: Path) -> MyStore:
            return MyStore(directory / "events.db")

Capability tests (checkpoints, streaming reads, tail, offset ordering, close) run
when the store has the capability, detected structurally like the bus does, and are
skipped with the reason otherwise: a store that has the methods must pass them.

This module needs pytest; it is imported only by tests, never by eventbus itself.
See ``docs/writing-a-backend.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping, MutableSequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import pytest

from ._exceptions import OffsetError, StoreClosedError
from ._ids import new_event_id
from ._store import (
    NEWEST,
    OLDEST,
    CheckpointStore,
    ClosableStore,
    EventRecord,
    EventStore,
    OffsetOrdering,
    ReadResult,
    StoredEvent,
    StreamingReader,
    TailingStore,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ._store import Offset, Position

__all__ = ["StoreContract", "make_record"]

_counter = itertools.count()


def make_record(
    data: Any = None,
    *,
    type_name: str = "conformance.Event",
    metadata: dict[str, str] | None = None,
    timestamp: datetime | None = None,
    origin: str = "conformance-bus",
    event_id: str | None = None,
) -> EventRecord:
    """Build an :class:`~eventbus.core.EventRecord` for a store test.

    Args:
        data: Any JSON-serialisable value; by default a unique ``{"n": ...}``.
        type_name: The wire name.
        metadata: The metadata pairs; by default ``{"source": "conformance"}``.
        timestamp: A timezone-aware UTC time; by default now.
        origin: The publishing bus id.
        event_id: The event id; by default a new ULID.

    Returns:
        The record, with ``data`` encoded as JSON text (non-ASCII kept as is).
    """
    return EventRecord(
        event_id=new_event_id() if event_id is None else event_id,
        type_name=type_name,
        data=json.dumps({"n": next(_counter)} if data is None else data, ensure_ascii=False),
        timestamp=datetime.now(UTC) if timestamp is None else timestamp,
        metadata={"source": "conformance"} if metadata is None else metadata,
        origin=origin,
    )


def _assert_stored(event: StoredEvent, record: EventRecord, offset: Offset | None = None) -> None:
    assert isinstance(event, StoredEvent), f"a store must return StoredEvent, got {event!r}"
    if offset is not None:
        assert event.offset == offset, f"offset {event.offset!r} != appended {offset!r}"
    assert event.event_id == record.event_id
    assert event.type_name == record.type_name
    assert event.data == record.data, "data did not round-trip exactly"
    assert event.timestamp == record.timestamp, f"{event.timestamp!r} != {record.timestamp!r}"
    assert event.timestamp.utcoffset() == timedelta(0), f"{event.timestamp!r} is not UTC"
    assert dict(event.metadata) == dict(record.metadata)
    assert event.origin == record.origin


def _run_threads(targets: list[Callable[[], None]], timeout: float) -> None:
    """Run each target in its own thread; re-raise the first failure here."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def run(target: Callable[[], None]) -> None:
        try:
            start.wait(timeout)
            target()
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"
    if errors:
        raise errors[0]


def _lacks(capability: type) -> NoReturn:
    pytest.skip(f"the store does not implement {capability.__name__}")


class _Background:
    """Call a function in a thread and collect its result or exception."""

    def __init__(self, function: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self._function = function
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.started.set()
        try:
            self.result = self._function()
        except BaseException as exc:  # inspected by the test's thread
            self.error = exc

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


class StoreContract:
    """Pytest base class: every test a store must pass. Subclass it as ``TestXStore``.

    Override :meth:`make_store`; override :meth:`reopen_store` when the store keeps
    its data across instances (files, servers) to run the persistence tests. The class
    attributes tune the suite to a backend's documented properties.

    A subclass that needs other fixtures (a server URL, say) can take them in an
    ``autouse`` fixture that saves them on ``self`` before :meth:`make_store` runs.
    """

    offsets_sort_as_strings: ClassVar[bool] = False
    """Set when the store documents that comparing offsets as strings follows log order."""

    malformed_offsets: ClassVar[tuple[str, ...]] = ("", "not an offset", "-1", "\N{GHOST}")
    """Strings that are never offsets of this store: each must raise OffsetError."""

    wake_timeout: ClassVar[float] = 5.0
    """Seconds a waiting ``tail`` may take to notice an append or a close. Generous:
    the tests fail only when a waiter does not wake at all within its own timeout."""

    concurrency: ClassVar[tuple[int, int]] = (10, 100)
    """(threads, appends per thread) for the concurrent-append test."""

    multi_instance: ClassVar[bool] = True
    """Whether two open instances on the same data (see :meth:`reopen_store`) see each
    other's appends. Clear it for a store that allows one instance at a time; the
    cross-instance tests then skip."""

    # -- hooks --------------------------------------------------------------------------

    def make_store(self, directory: Path) -> EventStore:
        """Return a new, empty store, independent of every other store made.

        Args:
            directory: A new empty directory that belongs to this store alone.

        Returns:
            The store. The suite closes it after the test if it is closable.
        """
        raise NotImplementedError(f"{type(self).__name__} must override make_store().")

    def reopen_store(self, store: EventStore, directory: Path) -> EventStore:
        """Return another instance on the same data as ``store``.

        The persistence tests close ``store`` first and expect the new instance to
        see its events and checkpoints. The cross-instance tests keep ``store`` open
        and expect each instance to see the other's appends, as two processes would.
        The default skips both; override it for a store whose data outlives an
        instance (a file, a server).

        Args:
            store: An instance :meth:`make_store` returned, open or closed.
            directory: The directory :meth:`make_store` was given for it.

        Returns:
            A new store instance on the same data.
        """
        pytest.skip(f"{type(self).__name__} does not override reopen_store().")

    # -- fixtures -----------------------------------------------------------------------

    @pytest.fixture
    def new_store(self, tmp_path: Path) -> Iterator[Callable[[], EventStore]]:
        """A factory of fresh stores, each with its own directory; closed at teardown."""
        made: list[EventStore] = []

        def factory() -> EventStore:
            directory = tmp_path / f"store-{len(made)}"
            directory.mkdir()
            store = self.make_store(directory)
            made.append(store)
            self._instances_made[id(store)] = (store, directory)
            return store

        # id -> (store, its directory); holding the store keeps its id unique.
        self._instances_made: dict[int, tuple[EventStore, Path]] = {}
        yield factory
        for store in made:
            if isinstance(store, ClosableStore):
                store.close()

    @pytest.fixture
    def store(self, new_store: Callable[[], EventStore]) -> EventStore:
        """A fresh, empty store."""
        return new_store()

    @pytest.fixture
    def reopen(
        self, new_store: Callable[[], EventStore]
    ) -> Iterator[Callable[[EventStore], EventStore]]:
        """Close a store and return a new instance on its data (see reopen_store)."""
        with self._instances() as another:

            def reopen(store: EventStore) -> EventStore:
                if isinstance(store, ClosableStore):
                    store.close()
                return another(store)

            yield reopen

    @pytest.fixture
    def second_instance(
        self, new_store: Callable[[], EventStore]
    ) -> Iterator[Callable[[EventStore], EventStore]]:
        """Open another instance on a store's data, leaving the store open."""
        if not self.multi_instance:
            pytest.skip(f"{type(self).__name__}.multi_instance is False.")
        with self._instances() as another:
            yield another

    @contextlib.contextmanager
    def _instances(self) -> Iterator[Callable[[EventStore], EventStore]]:
        opened: list[EventStore] = []

        def another(store: EventStore) -> EventStore:
            original, directory = self._instances_made[id(store)]
            again = self.reopen_store(original, directory)
            opened.append(again)
            self._instances_made[id(again)] = (again, directory)
            return again

        try:
            yield another
        finally:
            for store in opened:
                if isinstance(store, ClosableStore):
                    store.close()

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def read_all(
        store: EventStore, after: Position = OLDEST, limit: int = 100
    ) -> list[StoredEvent]:
        """Page through ``store`` from ``after`` with ``read``, checking each page."""
        events: list[StoredEvent] = []
        seen: set[Offset] = set()
        position = after
        while True:
            page = store.read(position, limit)
            assert isinstance(page, ReadResult), f"read() must return a ReadResult, got {page!r}"
            assert len(page.events) <= limit, f"read(limit={limit}) returned {len(page.events)}"
            if not page.events:
                assert page.next == position, "an empty page must keep the position"
                return events
            assert page.next == page.events[-1].offset, "next must be the last offset read"
            for event in page.events:
                assert event.offset not in seen, f"read() returned {event.offset!r} twice"
                seen.add(event.offset)
            events.extend(page.events)
            position = page.next

    @staticmethod
    def append_many(store: EventStore, count: int) -> tuple[list[EventRecord], list[Offset]]:
        """Append ``count`` fresh records one by one; return them and their offsets."""
        records = [make_record() for _ in range(count)]
        return records, [store.append(record) for record in records]

    def assert_log(
        self, store: EventStore, records: list[EventRecord], offsets: list[Offset]
    ) -> None:
        """Assert the whole log is exactly ``records`` at ``offsets``, in order."""
        events = self.read_all(store)
        assert [e.event_id for e in events] == [r.event_id for r in records]
        for event, record, offset in zip(events, records, offsets, strict=True):
            _assert_stored(event, record, offset)

    def assert_increasing(self, store: EventStore, offsets: list[Offset]) -> None:
        """Assert ``offsets`` are distinct and in log order, by every documented order."""
        assert len(set(offsets)) == len(offsets), "offsets must be unique"
        assert all(isinstance(o, str) for o in offsets), "offsets must be strings"
        if self.offsets_sort_as_strings:
            assert offsets == sorted(offsets), "offsets must sort as strings in log order"
        if isinstance(store, OffsetOrdering):
            for before, after in itertools.pairwise(offsets):
                assert store.compare_offsets(before, after) < 0
                assert store.compare_offsets(after, before) > 0

    # -- append and read ----------------------------------------------------------------

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
        _assert_stored(page.events[0], record, offset)
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

        _run_threads([writer(t) for t in range(len(batches))], timeout=60)
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

        _run_threads([writer(t) for t in range(threads)], timeout=300)
        events = self.read_all(store)
        assert len(events) == threads * per_thread
        offsets = [e.offset for e in events]
        self.assert_increasing(store, offsets)
        by_id = {e.event_id: e for e in events}
        places = {offset: index for index, offset in enumerate(offsets)}
        for mine in results.values():
            assert len(mine) == per_thread
            for record, offset in mine:
                _assert_stored(by_id[record.event_id], record, offset)
            own = [places[offset] for _, offset in mine]
            assert own == sorted(own), "one thread's appends must keep their order"

    def test_large_payload_round_trips(self, store: EventStore) -> None:
        blob = "".join(chr(0x20 + i % 0x5F) for i in range(1024 * 1024))
        record = make_record({"blob": blob})
        offset = store.append(record)
        _assert_stored(store.read().events[0], record, offset)

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
        with pytest.raises(ValueError, match=str(limit)):
            store.read(OLDEST, limit)

    # -- persistence (when reopen_store is overridden) ----------------------------------

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
            _lacks(CheckpointStore)
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
            _lacks(TailingStore)
        other = second_instance(store)
        _, offsets = self.append_many(store, 1)
        waiter = _Background(lambda: store.tail(offsets[0], timeout=30))
        assert waiter.started.wait(self.wake_timeout)
        time.sleep(0.05)
        record = make_record()
        offset = other.append(record)
        assert waiter.join(self.wake_timeout), "tail did not see another instance's append"
        assert waiter.error is None, waiter.error
        page = waiter.result
        assert isinstance(page, ReadResult), page
        assert [e.offset for e in page.events] == [offset]
        _assert_stored(page.events[0], record, offset)

    # -- CheckpointStore ----------------------------------------------------------------

    def test_checkpoint_absent_is_none(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            _lacks(CheckpointStore)
        assert store.load_checkpoint("never-saved") is None

    def test_checkpoint_saved_oldest_is_not_absent(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            _lacks(CheckpointStore)
        store.save_checkpoint("sub", OLDEST)
        assert store.load_checkpoint("sub") is OLDEST

    def test_checkpoint_saves_overwrites_and_resumes(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            _lacks(CheckpointStore)
        records, offsets = self.append_many(store, 4)
        store.save_checkpoint("sub", offsets[1])
        saved = store.load_checkpoint("sub")
        assert saved == offsets[1]
        assert saved is not None
        rest = self.read_all(store, saved)
        assert [e.event_id for e in rest] == [r.event_id for r in records[2:]]
        store.save_checkpoint("sub", offsets[3])
        assert store.load_checkpoint("sub") == offsets[3]
        store.save_checkpoint("sub", OLDEST)
        assert store.load_checkpoint("sub") is OLDEST

    def test_checkpoint_ids_are_independent(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            _lacks(CheckpointStore)
        _, offsets = self.append_many(store, 2)
        names = ["a", "b", "A", "a/b", "a b", "\u00e9\U0001f600", "x" * 200]
        for index, name in enumerate(names):
            store.save_checkpoint(name, offsets[index % 2])
        for index, name in enumerate(names):
            assert store.load_checkpoint(name) == offsets[index % 2], name
        assert store.load_checkpoint("c") is None

    def test_checkpoint_rejects_newest_and_keeps_the_old_value(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            _lacks(CheckpointStore)
        _, offsets = self.append_many(store, 1)
        with pytest.raises(ValueError, match="NEWEST"):
            store.save_checkpoint("sub", NEWEST)  # type: ignore[arg-type]
        assert store.load_checkpoint("sub") is None
        store.save_checkpoint("sub", offsets[0])
        with pytest.raises(ValueError, match="NEWEST"):
            store.save_checkpoint("sub", NEWEST)  # type: ignore[arg-type]
        assert store.load_checkpoint("sub") == offsets[0]

    def test_checkpoint_rejects_empty_subscription_id(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            _lacks(CheckpointStore)
        with pytest.raises(ValueError, match="''"):
            store.save_checkpoint("", OLDEST)
        with pytest.raises(ValueError, match="''"):
            store.load_checkpoint("")

    # -- StreamingReader ----------------------------------------------------------------

    @pytest.mark.parametrize("batch_size", [1, 2, 500])
    def test_iter_events_yields_everything_after_each_position(
        self, store: EventStore, batch_size: int
    ) -> None:
        if not isinstance(store, StreamingReader):
            _lacks(StreamingReader)
        assert list(store.iter_events(batch_size=batch_size)) == []
        records, offsets = self.append_many(store, 7)
        streamed = list(store.iter_events(OLDEST, batch_size=batch_size))
        assert [e.offset for e in streamed] == offsets
        for event, record in zip(streamed, records, strict=True):
            _assert_stored(event, record)
        for index, offset in enumerate(offsets):
            rest = list(store.iter_events(offset, batch_size=batch_size))
            assert [e.offset for e in rest] == offsets[index + 1 :]

    def test_iter_events_newest_yields_nothing(self, store: EventStore) -> None:
        if not isinstance(store, StreamingReader):
            _lacks(StreamingReader)
        assert list(store.iter_events(NEWEST)) == []
        self.append_many(store, 3)
        assert list(store.iter_events(NEWEST)) == []

    def test_iter_events_sees_events_appended_while_iterating(self, store: EventStore) -> None:
        if not isinstance(store, StreamingReader):
            _lacks(StreamingReader)
        _, offsets = self.append_many(store, 2)
        iterator = store.iter_events(OLDEST, batch_size=1)
        assert next(iterator).offset == offsets[0]
        later = make_record()
        later_offset = store.append(later)
        rest = list(iterator)
        assert [e.offset for e in rest] == [offsets[1], later_offset]

    def test_iter_events_rejects_bad_input(self, store: EventStore) -> None:
        if not isinstance(store, StreamingReader):
            _lacks(StreamingReader)
        self.append_many(store, 1)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                list(store.iter_events(offset))
        with pytest.raises(ValueError, match="0"):
            list(store.iter_events(OLDEST, batch_size=0))

    # -- TailingStore -------------------------------------------------------------------

    def test_tail_returns_at_once_when_events_exist(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            _lacks(TailingStore)
        records, offsets = self.append_many(store, 3)
        page = store.tail(OLDEST, timeout=30, limit=2)
        assert 1 <= len(page.events) <= 2
        assert page.events[0].event_id == records[0].event_id
        page = store.tail(offsets[0], timeout=30)
        assert page.events[0].offset == offsets[1]
        assert page.next == page.events[-1].offset

    def test_tail_times_out_with_nothing(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            _lacks(TailingStore)
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
            _lacks(TailingStore)
        _, offsets = self.append_many(store, 1)
        waiter = _Background(lambda: store.tail(offsets[0], timeout=30))
        assert waiter.started.wait(self.wake_timeout)
        time.sleep(0.05)  # let it block; an append before the wait must also be seen
        record = make_record()
        offset = store.append(record)
        assert waiter.join(self.wake_timeout), "tail did not wake up after an append"
        assert waiter.error is None, waiter.error
        page = waiter.result
        assert isinstance(page, ReadResult), page
        assert [e.offset for e in page.events] == [offset]
        _assert_stored(page.events[0], record, offset)

    def test_tail_follows_concurrent_appends_without_loss(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            _lacks(TailingStore)
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

        _run_threads([follower, *(writer(t) for t in range(writers))], timeout=180)
        ids = [e.event_id for e in seen]
        assert len(ids) == len(set(ids)), "tail delivered an event twice"
        assert set(ids) == expected, "tail lost events"
        assert [e.offset for e in seen] == [e.offset for e in self.read_all(store)]

    def test_tail_rejects_bad_input(self, store: EventStore) -> None:
        if not isinstance(store, TailingStore):
            _lacks(TailingStore)
        self.append_many(store, 1)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                store.tail(offset, timeout=0)
        with pytest.raises(ValueError, match="0"):
            store.tail(OLDEST, timeout=0, limit=0)
        with pytest.raises(ValueError, match="-1"):
            store.tail(OLDEST, timeout=-1)

    # -- OffsetOrdering -----------------------------------------------------------------

    def test_compare_offsets_follows_log_order(self, store: EventStore) -> None:
        if not isinstance(store, OffsetOrdering):
            _lacks(OffsetOrdering)
        _, offsets = self.append_many(store, 4)
        offsets += store.append_batch([make_record(), make_record()])
        for (i, a), (j, b) in itertools.product(enumerate(offsets), repeat=2):
            result = store.compare_offsets(a, b)
            assert (result > 0) - (result < 0) == (i > j) - (i < j), (a, b, result)

    def test_compare_offsets_rejects_malformed_offsets(self, store: EventStore) -> None:
        if not isinstance(store, OffsetOrdering):
            _lacks(OffsetOrdering)
        _, offsets = self.append_many(store, 1)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                store.compare_offsets(offset, offsets[0])
            with pytest.raises(OffsetError):
                store.compare_offsets(offsets[0], offset)

    # -- ClosableStore ------------------------------------------------------------------

    def test_close_is_idempotent_and_later_calls_raise(self, store: EventStore) -> None:
        if not isinstance(store, ClosableStore):
            _lacks(ClosableStore)
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
            _lacks(ClosableStore)
        if not isinstance(store, TailingStore):
            _lacks(TailingStore)
        waiter = _Background(lambda: store.tail(OLDEST, timeout=30))
        assert waiter.started.wait(self.wake_timeout)
        time.sleep(0.05)
        store.close()
        assert waiter.join(self.wake_timeout), "close() did not wake a waiting tail()"
        assert isinstance(waiter.error, StoreClosedError), (waiter.error, waiter.result)

    def test_iteration_interrupted_by_close_raises(self, store: EventStore) -> None:
        if not isinstance(store, ClosableStore):
            _lacks(ClosableStore)
        if not isinstance(store, StreamingReader):
            _lacks(StreamingReader)
        self.append_many(store, 5)
        iterator = store.iter_events(OLDEST, batch_size=1)
        next(iterator)
        store.close()
        with pytest.raises(StoreClosedError):
            list(iterator)
