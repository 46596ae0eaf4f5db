"""Publishing with ``expected_offset``: optimistic concurrency through the bus."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    AppendConflictError,
    BusUsageError,
    Checkpoint,
    EventBus,
    EventRecord,
    HandlerFailure,
    MemoryStore,
    Offset,
    PublishError,
    StoreTimeoutError,
    StoreUnavailableError,
)

from ._support import OrderPlaced, PlainStore


class BrokenConditionalStore(MemoryStore):
    """A store whose conditional append fails like a backend bug would."""

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        raise OSError("disk on fire")


class SlowConditionalStore(MemoryStore):
    """A store whose conditional append waits for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        self.release.wait(10)
        return super().append_expecting(records, expected_end)


def test_publish_expecting_the_end_stores_and_dispatches() -> None:
    store = MemoryStore()
    seen: list[OrderPlaced] = []
    with EventBus(store=store) as bus:
        bus.subscribe(OrderPlaced, seen.append)
        first = bus.publish(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
        assert first is not None
        second = bus.publish(OrderPlaced("o-2", 2.0), expected_offset=first)
        assert [e.offset for e in store.read().events] == [first, second]
    assert [e.order_id for e in seen] == ["o-1", "o-2"]


def test_publish_conflict_raises_and_runs_no_handler() -> None:
    store = MemoryStore()
    seen: list[OrderPlaced] = []
    with EventBus(store=store, strict=False) as bus:
        bus.subscribe(OrderPlaced, seen.append)
        end = bus.publish(OrderPlaced("o-1", 1.0))
        with pytest.raises(AppendConflictError) as caught:
            bus.publish(OrderPlaced("o-2", 2.0), expected_offset=OLDEST)
        assert len(store.read().events) == 1
    assert (caught.value.expected, caught.value.current) == (OLDEST, end)
    assert f"ends at {end!r}" in str(caught.value)
    assert [e.order_id for e in seen] == ["o-1"], "a refused publish runs no handler"


def test_publish_with_expected_offset_needs_a_conditional_store() -> None:
    with EventBus() as bus, pytest.raises(BusUsageError, match="has no store"):
        bus.publish(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
    with EventBus(store=PlainStore()) as bus:
        with pytest.raises(BusUsageError, match="PlainStore does not implement Conditional"):
            bus.publish(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
        assert bus.publish(OrderPlaced("o-1", 1.0)) is not None


def test_publish_refuses_newest_as_an_expectation() -> None:
    with EventBus(store=MemoryStore()) as bus, pytest.raises(PublishError, match="NEWEST"):
        bus.publish(OrderPlaced("o-1", 1.0), expected_offset=NEWEST)  # type: ignore[arg-type]


def test_conditional_failures_raise_on_a_best_effort_bus() -> None:
    reported: list[HandlerFailure] = []
    with EventBus(store=BrokenConditionalStore(), strict=False, on_error=reported.append) as bus:
        with pytest.raises(StoreUnavailableError, match="conditional append of 1 events") as c:
            bus.publish(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
        assert isinstance(c.value.__cause__, OSError)
        assert bus.publish(OrderPlaced("o-1", 1.0)) is not None, "plain appends still work"
    assert reported == []


def test_conditional_publish_honours_the_append_timeout() -> None:
    store = SlowConditionalStore()
    bus = EventBus(store=store, append_timeout=0.05)
    try:
        with pytest.raises(StoreTimeoutError, match=r"event .* within 0\.05 s"):
            bus.publish(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
        with pytest.raises(StoreTimeoutError, match=r"the append within 0\.05 s"):
            bus.publish_many([OrderPlaced("o-1", 1.0)] * 2, expected_offset=OLDEST)
    finally:
        store.release.set()
        bus.close()
    store = SlowConditionalStore()
    store.release.set()
    with EventBus(store=store, append_timeout=5) as bus:
        assert bus.publish(OrderPlaced("o-3", 1.0), expected_offset=OLDEST) is not None


def test_publish_many_expecting_appends_the_batch_or_nothing() -> None:
    store = MemoryStore()
    seen: list[OrderPlaced] = []
    with EventBus(store=store) as bus:
        bus.subscribe(OrderPlaced, seen.append)
        offsets = bus.publish_many(
            [OrderPlaced("o-1", 1.0), OrderPlaced("o-2", 2.0)], expected_offset=OLDEST
        )
        assert offsets == [e.offset for e in store.read().events]
        with pytest.raises(AppendConflictError):
            bus.publish_many([OrderPlaced("o-3", 3.0)], expected_offset=offsets[0])
        assert bus.publish_many([], expected_offset=offsets[1]) == []
        with pytest.raises(AppendConflictError):
            bus.publish_many([], expected_offset=OLDEST)
        assert len(store.read().events) == 2
    assert [e.order_id for e in seen] == ["o-1", "o-2"]


def test_async_publish_expecting() -> None:
    store = MemoryStore()
    seen: list[str] = []

    async def handler(event: OrderPlaced) -> None:
        seen.append(event.order_id)

    async def main() -> None:
        async with EventBus(store=store) as bus:
            bus.subscribe(OrderPlaced, handler)
            first = await bus.publish_async(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
            assert first is not None
            with pytest.raises(AppendConflictError):
                await bus.publish_async(OrderPlaced("o-x", 1.0), expected_offset=OLDEST)
            batch = await bus.publish_many_async(
                [OrderPlaced("o-2", 1.0), OrderPlaced("o-3", 1.0)], expected_offset=first
            )
            assert batch == [e.offset for e in store.read().events[1:]]
            with pytest.raises(AppendConflictError):
                await bus.publish_many_async([OrderPlaced("o-y", 1.0)], expected_offset=first)

    asyncio.run(main())
    assert seen == ["o-1", "o-2", "o-3"]


def test_conditional_publish_wakes_durable_subscriptions() -> None:
    store = MemoryStore()
    got = threading.Event()

    def watcher(event: OrderPlaced) -> None:
        got.set()

    with EventBus(store=store) as bus:
        bus.subscribe_durable("watcher", watcher)
        bus.publish(OrderPlaced("o-1", 1.0), expected_offset=OLDEST)
        assert got.wait(5)
