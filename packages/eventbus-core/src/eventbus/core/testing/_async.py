"""AsyncStoreContract: the tests of a store's native coroutine ``append_async``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeAlias

import pytest

from eventbus.core._exceptions import StoreClosedError, StoreError
from eventbus.core._store import NEWEST, AsyncAppendingStore, ClosableStore, EventStore

from ._fixtures import StoreFixtures, lacks
from ._records import assert_stored, make_record
from ._threads import run_threads

if TYPE_CHECKING:
    from pathlib import Path

    from eventbus.core._store import EventRecord, Offset

__all__ = ["AsyncEventStore", "AsyncStoreContract", "require_async"]

# Each coroutine test says it runs on pytest-asyncio, in a loop of its own: the kit then
# runs the same way whatever asyncio_mode and default loop scope the user's project sets.
_on_a_loop = pytest.mark.asyncio(loop_scope="function")


class AsyncEventStore(EventStore, AsyncAppendingStore, Protocol):
    """What :class:`AsyncStoreContract` tests: an ``EventStore`` with ``append_async``."""


def require_async(store: EventStore) -> AsyncEventStore:
    """Return ``store`` if it implements ``AsyncAppendingStore``; fail the test if not."""
    assert isinstance(store, AsyncAppendingStore), (
        f"{store!r} has no append_async(): AsyncStoreContract tests stores that implement "
        "eventbus.core.AsyncAppendingStore."
    )
    return store


_Appended: TypeAlias = "list[tuple[EventRecord, Offset]]"
"""What one writer appended, in its order: each record and the offset it was given."""


async def _append_async_as(store: AsyncEventStore, writer: str, count: int) -> _Appended:
    """Await ``count`` records of ``writer`` one after another."""
    appended: _Appended = []
    for i in range(count):
        record = make_record({"writer": writer, "i": i})
        appended.append((record, await store.append_async(record)))
    return appended


async def _tick(ticks: list[None], stop: asyncio.Event) -> None:
    """Count this task's turns on the event loop until ``stop`` is set."""
    while not stop.is_set():
        ticks.append(None)
        await asyncio.sleep(0)


class AsyncStoreContract(StoreFixtures):
    """Pytest base class for stores with a native ``append_async``. Subclass it as ``TestXStore``.

    It makes stores like :class:`StoreContract` (override :meth:`make_store`, and
    :meth:`break_store` to run the failure test), so one class may subclass both. Its
    coroutine tests are marked for pytest-asyncio explicitly, each on a loop of its own,
    so they run whatever ``asyncio_mode`` the project sets.
    """

    async_concurrency: ClassVar[tuple[int, int]] = (20, 10)
    """(tasks, appends per task) for the concurrent ``append_async`` test."""

    # -- hooks --------------------------------------------------------------------------

    def break_store(self, store: EventStore, directory: Path) -> None:
        """Make every later append to ``store`` fail in its backend, as an outage would.

        Stop its server, delete its stream or table, remove its directory: the store
        must then raise a :class:`~eventbus.core.StoreError` subclass other than
        ``StoreClosedError``. The default skips the failure test.

        Args:
            store: An open instance :meth:`make_store` returned.
            directory: The directory :meth:`make_store` was given for it.
        """
        pytest.skip(f"{type(self).__name__} does not override break_store().")

    # -- fixtures -----------------------------------------------------------------------

    @pytest.fixture
    def async_store(self, store: EventStore) -> AsyncEventStore:
        """A fresh, empty store, checked to implement ``AsyncAppendingStore``."""
        return require_async(store)

    # -- helpers ------------------------------------------------------------------------

    async def append_many_async(
        self, store: AsyncEventStore, count: int
    ) -> tuple[list[EventRecord], list[Offset]]:
        """Await ``count`` fresh records one by one; return them and their offsets."""
        records = [make_record() for _ in range(count)]
        return records, [await store.append_async(record) for record in records]

    def _assert_writers_landed(self, store: EventStore, writers: list[_Appended]) -> None:
        """Assert the log is exactly the writers' records at the offsets each was given,
        every writer's in its own order. Blocking: call it off the event loop."""
        events = self.read_all(store)
        assert len(events) == sum(len(mine) for mine in writers)
        offsets = [e.offset for e in events]
        self.assert_increasing(store, offsets)
        places = {offset: index for index, offset in enumerate(offsets)}
        for mine in writers:
            for record, offset in mine:
                assert offset in places, f"append returned {offset!r}, which read never returns"
                assert_stored(events[places[offset]], record, offset)
            own = [places[offset] for _, offset in mine]
            assert own == sorted(own), "one writer's appends must keep their order"

    # -- the tests ----------------------------------------------------------------------
    # Like the bus, the coroutine tests never call a store's blocking methods on the
    # event loop's thread: they use asyncio.to_thread.

    def test_store_satisfies_async_appending_store_protocol(self, store: EventStore) -> None:
        assert isinstance(store, EventStore)
        assert isinstance(store, AsyncAppendingStore)
        assert inspect.iscoroutinefunction(store.append_async), (
            "append_async must be a coroutine function (async def)"
        )

    @_on_a_loop
    async def test_append_async_offsets_are_exact_resume_points(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        records = [
            make_record({"a": [1, 2.5, None, True]}, metadata={"k": "v", "trace": "t-1"}),
            make_record({"text": "h\u00e9llo \U0001f600 \u2028"}, metadata={}),
        ]
        offsets = [await store.append_async(record) for record in records]
        more, more_offsets = await self.append_many_async(store, 8)
        records += more
        offsets += more_offsets
        await asyncio.to_thread(self._assert_exact_resume_points, store, records, offsets)

    def _assert_exact_resume_points(
        self, store: EventStore, records: list[EventRecord], offsets: list[Offset]
    ) -> None:
        self.assert_increasing(store, offsets)
        self.assert_log(store, records, offsets)
        assert store.read(NEWEST).next == offsets[-1]
        ids = [r.event_id for r in records]
        for limit in (1, 3, 100):
            for index, offset in enumerate(offsets):
                rest = self.read_all(store, offset, limit)
                assert [e.event_id for e in rest] == ids[index + 1 :], f"resuming after #{index}"
                assert [e.offset for e in rest] == offsets[index + 1 :]

    @_on_a_loop
    async def test_concurrent_append_async_from_many_tasks_lands_in_order(
        self, async_store: AsyncEventStore
    ) -> None:
        tasks, per_task = self.async_concurrency
        writers = await asyncio.gather(
            *(_append_async_as(async_store, f"task-{t}", per_task) for t in range(tasks))
        )
        await asyncio.to_thread(self._assert_writers_landed, async_store, writers)

    @_on_a_loop
    async def test_append_async_interleaved_with_append_keeps_call_order(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        records: list[EventRecord] = []
        offsets: list[Offset] = []
        for i in range(6):
            record = make_record({"i": i, "via": "append"})
            records.append(record)
            offsets.append(await asyncio.to_thread(store.append, record))
            record = make_record({"i": i, "via": "append_async"})
            records.append(record)
            offsets.append(await store.append_async(record))
            if i % 2:
                batch = [make_record({"i": i, "via": "append_batch", "n": n}) for n in range(3)]
                records += batch
                offsets += await asyncio.to_thread(store.append_batch, batch)
        await asyncio.to_thread(self.assert_increasing, store, offsets)
        await asyncio.to_thread(self.assert_log, store, records, offsets)

    @_on_a_loop
    async def test_append_async_beside_appends_in_threads_keeps_each_writers_order(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        by_thread: dict[int, _Appended] = {}

        def thread_writer(t: int) -> Callable[[], None]:
            def run() -> None:
                mine = by_thread.setdefault(t, [])
                for i in range(20):
                    record = make_record({"writer": f"thread-{t}", "i": i})
                    mine.append((record, store.append(record)))

            return run

        tasks = asyncio.gather(*(_append_async_as(store, f"task-{t}", 20) for t in range(3)))
        threads = asyncio.to_thread(run_threads, [thread_writer(t) for t in range(2)], 120)
        by_task, _ = await asyncio.gather(tasks, threads)
        writers = [*by_task, *by_thread.values()]
        await asyncio.to_thread(self._assert_writers_landed, store, writers)

    @_on_a_loop
    async def test_append_async_does_not_block_the_event_loop(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        ticks: list[None] = []
        records: list[EventRecord] = []
        offsets: list[Offset] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_tick(ticks, stop))
        try:
            await asyncio.sleep(0)  # the ticker's first turn
            for _ in range(3):
                records.append(make_record())
                before = len(ticks)
                offsets.append(await store.append_async(records[-1]))
                assert len(ticks) > before, (
                    "no other task ran while append_async() was awaited: it blocks the loop"
                )
        finally:
            stop.set()
            await ticker
        await asyncio.to_thread(self.assert_log, store, records, offsets)

    @_on_a_loop
    async def test_append_async_failure_raises_a_store_error(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        await store.append_async(make_record())  # it works until the backend fails
        self.break_store(store, self._directory_of(store))
        with pytest.raises(StoreError) as caught:
            await store.append_async(make_record())
        assert not isinstance(caught.value, StoreClosedError), (
            f"a backend failure must not look like a close: {caught.value!r}"
        )
        outcomes = await asyncio.gather(
            *(store.append_async(make_record()) for _ in range(5)), return_exceptions=True
        )
        for outcome in outcomes:
            assert isinstance(outcome, StoreError), f"expected a StoreError, got {outcome!r}"
            assert not isinstance(outcome, StoreClosedError), outcome

    @_on_a_loop
    async def test_append_async_after_close_raises_store_closed_error(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        if not isinstance(store, ClosableStore):
            lacks(ClosableStore)
        await store.append_async(make_record())
        store.close()
        store.close()
        with pytest.raises(StoreClosedError):
            await store.append_async(make_record())
        outcomes = await asyncio.gather(
            *(store.append_async(make_record()) for _ in range(5)), return_exceptions=True
        )
        for outcome in outcomes:
            assert isinstance(outcome, StoreClosedError), f"expected StoreClosedError: {outcome!r}"

    def test_append_async_from_successive_and_concurrent_event_loops(
        self, async_store: AsyncEventStore
    ) -> None:
        store = async_store
        # One loop after another, as two asyncio.run() calls would make...
        writers = [asyncio.run(_append_async_as(store, f"run-{n}", 3)) for n in range(2)]
        self._assert_writers_landed(store, writers)
        by_loop: dict[int, _Appended] = {}

        def on_its_own_loop(n: int) -> Callable[[], None]:
            def run() -> None:
                by_loop[n] = asyncio.run(_append_async_as(store, f"loop-{n}", 10))

            return run

        # ...and three loops at once, each in its own thread.
        run_threads([on_its_own_loop(n) for n in range(3)], timeout=120)
        self._assert_writers_landed(store, [*writers, *by_loop.values()])
