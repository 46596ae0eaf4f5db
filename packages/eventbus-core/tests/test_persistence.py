"""Publishing with a store: persisted before handlers, strict vs best effort, batches, replay."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    BusUsageError,
    DecodeError,
    EncodeError,
    Envelope,
    EventBus,
    EventRecord,
    HandlerFailure,
    MemoryStore,
    Middleware,
    Publication,
    StoreClosedError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UpcastFailedError,
    WireNameConflictError,
    event_name,
    publish_metadata,
)
from eventbus.core import _journal as journal_module

from ._support import (
    V1,
    V2,
    FailingStore,
    GappyStore,
    OrderPlaced,
    OrderShipped,
    PlainStore,
    SlowStore,
)


@dataclasses.dataclass(frozen=True)
class NotJson:
    payload: Any


def failures() -> tuple[list[HandlerFailure], Any]:
    seen: list[HandlerFailure] = []
    return seen, seen.append


def test_event_is_stored_before_any_handler_runs() -> None:
    store = MemoryStore()
    bus = EventBus(store=store)
    stored_at_handler: list[int] = []
    bus.subscribe(OrderPlaced, lambda e: stored_at_handler.append(len(store.read().events)))

    offset = bus.publish(OrderPlaced("o-1", 9.5))

    assert stored_at_handler == [1]
    [stored] = store.read().events
    assert stored.offset == offset
    assert stored.type_name.endswith("_support.OrderPlaced")
    assert bus.decode(stored) == OrderPlaced("o-1", 9.5)
    assert stored.origin == bus.origin


def test_handler_envelope_carries_stored_identity_and_metadata() -> None:
    store = MemoryStore()
    bus = EventBus(store=store)
    envelopes: list[Envelope] = []
    bus.subscribe(OrderPlaced, lambda e, env: envelopes.append(env))

    with publish_metadata(tenant="acme"):
        offset = bus.publish(OrderPlaced("o-1", 1.0), metadata={"user": "ann"})

    [envelope] = envelopes
    [stored] = store.read().events
    assert envelope.offset == offset == stored.offset
    assert envelope.event_id == stored.event_id
    assert envelope.type_name == stored.type_name
    assert envelope.timestamp == stored.timestamp
    assert dict(envelope.metadata) == dict(stored.metadata) == {"tenant": "acme", "user": "ann"}
    assert envelope.origin == bus.origin


def test_strict_append_failure_raises_and_runs_no_handler() -> None:
    store = FailingStore(OSError("disk full"))
    bus = EventBus(store=store)
    ran: list[object] = []
    bus.subscribe(OrderPlaced, ran.append)

    with pytest.raises(StoreUnavailableError, match="disk full") as caught:
        bus.publish(OrderPlaced("o-1", 1.0))

    assert isinstance(caught.value.__cause__, OSError)
    assert ran == []


def test_store_errors_pass_through_unwrapped() -> None:
    error = StoreClosedError("closed under us")
    bus = EventBus(store=FailingStore(error))
    with pytest.raises(StoreClosedError) as caught:
        bus.publish(OrderPlaced("o-1", 1.0))
    assert caught.value is error


def test_best_effort_reports_the_failure_and_still_delivers() -> None:
    seen, hook = failures()
    bus = EventBus(store=FailingStore(OSError("disk full")), strict=False, on_error=hook)
    envelopes: list[Envelope] = []
    bus.subscribe(OrderPlaced, lambda e, env: envelopes.append(env))

    assert bus.publish(OrderPlaced("o-1", 1.0)) is None

    assert [env.offset for env in envelopes] == [None]
    [failure] = seen
    assert failure.stage == "persistence"
    assert isinstance(failure.exception, StoreError)
    assert isinstance(failure.detail, EventRecord) or failure.event is not None


def test_append_timeout_raises_store_timeout_error() -> None:
    store = SlowStore()
    bus = EventBus(store=store, append_timeout=0.05)
    ran: list[object] = []
    bus.subscribe(OrderPlaced, ran.append)
    try:
        with pytest.raises(StoreTimeoutError, match="may still be stored"):
            bus.publish(OrderPlaced("o-1", 1.0))
        assert ran == []
        assert isinstance(StoreTimeoutError("x"), TimeoutError)
    finally:
        store.release.set()
        bus.close()


def test_append_within_the_timeout_returns_the_offset() -> None:
    store = SlowStore()
    store.release.set()
    with EventBus(store=store, append_timeout=5) as bus:
        offsets = [bus.publish(OrderPlaced("o-1", 1.0)), bus.publish(OrderPlaced("o-2", 1.0))]
    assert offsets == [e.offset for e in store.inner.read().events]


def test_unserialisable_event_fails_before_anything_is_stored() -> None:
    store = MemoryStore()
    bus = EventBus(store=store)
    with pytest.raises(EncodeError):
        bus.publish(NotJson(object()))
    assert store.read().events == []


def test_publish_many_appends_once_and_dispatches_in_order() -> None:
    store = PlainStore()
    bus = EventBus(store=store)
    order: list[str] = []
    bus.subscribe(OrderPlaced, lambda e: order.append(e.order_id))
    bus.before_publish(lambda e: order.append("before"))
    bus.after_publish(lambda e: order.append("after"))

    offsets = bus.publish_many([OrderPlaced("a", 1.0), OrderPlaced("b", 2.0)])

    assert store.batch_calls == 1
    assert store.append_calls == 0
    assert offsets == [e.offset for e in store.read().events]
    assert order == ["before", "before", "a", "after", "b", "after"]


def test_publish_many_with_a_bad_event_stores_none() -> None:
    store = PlainStore()
    bus = EventBus(store=store)
    with pytest.raises(EncodeError):
        bus.publish_many([OrderPlaced("a", 1.0), NotJson(object())])
    assert store.read().events == []
    assert store.batch_calls == 0


def test_publish_many_of_nothing_returns_nothing() -> None:
    store = PlainStore()
    assert EventBus(store=store).publish_many([]) == []
    assert store.batch_calls == 0


def test_publish_many_strict_failure_raises_best_effort_reports() -> None:
    with pytest.raises(StoreUnavailableError, match="batch of 1"):
        EventBus(store=FailingStore(OSError("x"))).publish_many([OrderPlaced("a", 1.0)])

    seen, hook = failures()
    delivered: list[object] = []
    bus = EventBus(store=FailingStore(OSError("x")), strict=False, on_error=hook)
    bus.subscribe(OrderPlaced, delivered.append)
    assert bus.publish_many([OrderPlaced("a", 1.0)]) == [None]
    assert delivered == [OrderPlaced("a", 1.0)]
    assert [f.stage for f in seen] == ["persistence"]


def test_publish_many_without_store_dispatches() -> None:
    bus = EventBus()
    got: list[Envelope | None] = []
    bus.subscribe(OrderPlaced, lambda e, env: got.append(env))
    assert bus.publish_many([OrderPlaced("a", 1.0)]) == [None]
    assert got[0] is not None
    assert got[0].offset is None


class ThreadRecordingStore(PlainStore):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[threading.Thread] = []

    def append(self, record: EventRecord) -> str:
        self.threads.append(threading.current_thread())
        return super().append(record)


@pytest.mark.asyncio
async def test_publish_async_appends_off_the_loop_and_awaits_handlers() -> None:
    store = ThreadRecordingStore()
    bus = EventBus(store=store)
    handled = asyncio.Event()

    async def handler(event: OrderPlaced) -> None:
        await asyncio.sleep(0)
        handled.set()

    bus.subscribe(handler)
    offset = await bus.publish_async(OrderPlaced("a", 1.0))
    assert handled.is_set()
    assert offset == store.read().events[0].offset
    assert store.threads[0] is not threading.current_thread()
    await bus.aclose()


@pytest.mark.asyncio
async def test_publish_many_async() -> None:
    store = PlainStore()
    bus = EventBus(store=store)
    got: list[str] = []

    async def handler(event: OrderPlaced) -> None:
        got.append(event.order_id)

    bus.subscribe(handler)
    offsets = await bus.publish_many_async([OrderPlaced("a", 1.0), OrderPlaced("b", 1.0)])
    assert got == ["a", "b"]
    assert offsets == [e.offset for e in store.read().events]
    assert store.batch_calls == 1
    assert await EventBus().publish_many_async([OrderShipped("x")]) == [None]


def test_hooks_in_any_order_never_bypass_persistence() -> None:
    for order in ("before-first", "after-first"):
        store = MemoryStore()
        bus = EventBus(store=store)
        if order == "before-first":
            bus.before_publish(lambda e: None)
            bus.after_publish(lambda e: None)
        else:
            bus.after_publish(lambda e: None)
            bus.before_publish(lambda e: None)
        bus.publish(OrderPlaced("a", 1.0))
        bus.publish(OrderShipped("a"))
        assert len(store.read().events) == 2, order


def test_replay_yields_stored_events_from_any_position() -> None:
    store = MemoryStore()
    bus = EventBus(store=store)
    offsets = [bus.publish(OrderPlaced(str(i), float(i))) for i in range(5)]

    assert [s.offset for s in bus.replay()] == offsets
    second = offsets[1]
    assert second is not None
    assert [s.offset for s in bus.replay(second)] == offsets[2:]
    assert list(bus.replay(NEWEST)) == []
    assert [s.offset for s in bus.replay(batch_size=2)] == offsets


def test_replay_on_a_plain_store_pages_and_crosses_empty_pages() -> None:
    store = GappyStore()
    bus = EventBus(store=store)
    offsets = [bus.publish(OrderPlaced(str(i), 1.0)) for i in range(4)]
    # The store reports the first event as a gap: replay must carry on, not stop.
    assert [s.offset for s in bus.replay(OLDEST, batch_size=2)] == offsets[1:]


def test_replay_events_decodes_and_skips_unknown_wire_names() -> None:
    store = MemoryStore()
    store.append(EventRecord("id", "somebody.Else", "{}", _now(), {}, "x"))
    bus = EventBus(store=store)
    bus.publish(OrderPlaced("a", 1.0))
    bus.publish(OrderShipped("a"))

    decoded = [event for event, _ in bus.replay_events()]
    assert decoded == [OrderPlaced("a", 1.0), OrderShipped("a")]
    assert len(list(bus.replay())) == 3  # raw replay still shows the unknown event
    unknown = next(iter(bus.replay()))
    with pytest.raises(DecodeError, match=r"somebody\.Else"):
        bus.decode(unknown)


def test_register_makes_foreign_events_decodable() -> None:
    store = MemoryStore()
    EventBus(store=store).publish(OrderShipped("z"))
    reader = EventBus(store=store)
    assert list(reader.replay_events()) == []
    reader.register(OrderShipped)
    assert [e for e, _ in reader.replay_events()] == [OrderShipped("z")]


def test_replay_events_sees_registrations_made_while_it_runs() -> None:
    store = MemoryStore()
    writer = EventBus(store=store)
    writer.publish(OrderShipped("x"))
    writer.publish(OrderPlaced("a", 1.0))
    writer.publish(OrderShipped("b"))
    writer.publish(OrderPlaced("c", 2.0))
    reader = EventBus(store=store)
    reader.register(OrderPlaced)
    seen = []
    for event, _ in reader.replay_events():
        seen.append(event)
        reader.register(OrderShipped)  # "x" was skipped: no class claimed its name then
    assert seen == [OrderPlaced("a", 1.0), OrderShipped("b"), OrderPlaced("c", 2.0)]


def test_replay_events_applies_upcasters_registered_while_it_runs() -> None:
    @dataclasses.dataclass(frozen=True)
    class OrderV2:
        __event_name__ = "orders.v2"
        order_id: str

    store = MemoryStore()
    bus = EventBus(store=store)
    bus.register(OrderV2)
    store.append(EventRecord("1", "orders.v1", '{"id":"a"}', _now(), {}, "x"))
    bus.publish(OrderShipped("s"))
    store.append(EventRecord("2", "orders.v1", '{"id":"b"}', _now(), {}, "x"))
    seen = []
    for event, _ in bus.replay_events():
        seen.append(event)
        if isinstance(event, OrderShipped):  # orders.v1 was skipped so far
            bus.register_upcaster("orders.v1", "orders.v2", lambda d: {"order_id": d["id"]})
    assert seen == [OrderShipped("s"), OrderV2("b")]


def test_replay_events_skips_events_upcast_to_a_name_nobody_claims() -> None:
    store = MemoryStore()
    store.append(EventRecord("1", "orders.v1", '{"id":"a"}', _now(), {}, "x"))
    bus = EventBus(store=store)
    bus.publish(OrderShipped("s"))
    bus.register_upcaster("orders.v1", "orders.v2", lambda d: {"order_id": d["id"]})
    assert [e for e, _ in bus.replay_events()] == [OrderShipped("s")]


def test_one_wire_name_one_class_on_a_persistent_bus() -> None:
    @dataclasses.dataclass
    class A:
        __event_name__ = "same"
        x: int

    @dataclasses.dataclass
    class B:
        __event_name__ = "same"
        x: int

    bus = EventBus(store=MemoryStore())
    bus.subscribe(A, lambda e: None)
    with pytest.raises(WireNameConflictError):
        bus.subscribe(B, lambda e: None)
    with pytest.raises(WireNameConflictError):
        bus.publish(B(1))
    # Without a store the bus routes by class and never needs wire names.
    plain = EventBus()
    plain.subscribe(A, lambda e: None)
    plain.subscribe(B, lambda e: None)
    assert plain.handler_count(B) == 1


def test_raw_upcaster_applies_in_replay() -> None:
    store = MemoryStore()
    store.append(EventRecord("1", "orders.v1", '{"id":"a"}', _now(), {}, "x"))

    @dataclasses.dataclass(frozen=True)
    class OrderV2:
        __event_name__ = "orders.v2"
        order_id: str
        amount: float

    bus = EventBus(store=store)
    bus.register(OrderV2)
    bus.register_upcaster("orders.v1", "orders.v2", lambda d: {"order_id": d["id"], "amount": 0.0})
    assert [e for e, _ in bus.replay_events()] == [OrderV2("a", 0.0)]


def test_typed_upcaster_and_failed_upcast_never_delivers_old_schema() -> None:
    store = MemoryStore()
    writer = EventBus(store=store)
    writer.publish(V1(2))
    reader = EventBus(store=store)

    @reader.upcaster
    def v1_to_v2(old: V1) -> V2:
        if old.n < 0:
            raise ValueError("negative")
        return V2(old.n, old.n * 2)

    assert [e for e, _ in reader.replay_events()] == [V2(2, 4)]
    writer.publish(V1(-1))
    with pytest.raises(UpcastFailedError):
        list(reader.replay_events())


def test_close_closes_the_store() -> None:
    store = MemoryStore()
    with EventBus(store=store) as bus:
        bus.publish(OrderPlaced("a", 1.0))
    with pytest.raises(StoreClosedError):
        store.read()


def test_persistence_calls_without_a_store_say_what_is_missing() -> None:
    bus = EventBus()
    with pytest.raises(BusUsageError, match="no store"):
        list(bus.replay())
    with pytest.raises(BusUsageError, match="no store"):
        bus.subscribe_durable("x", lambda e: None, event_type=OrderPlaced)


def test_bad_store_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="EventStore"):
        EventBus(store=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CheckpointStore"):
        EventBus(store=MemoryStore(), checkpoints=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        list(EventBus(store=MemoryStore()).replay(batch_size=0))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.mark.asyncio
async def test_sync_publish_with_a_store_refuses_to_block_the_running_loop() -> None:
    store = MemoryStore()
    bus = EventBus(store=store)
    with pytest.raises(BusUsageError, match="publish_async"):
        bus.publish(OrderPlaced("a", 1.0))
    with pytest.raises(BusUsageError, match="publish_many_async"):
        bus.publish_many([OrderPlaced("a", 1.0)])
    assert store.read().events == []
    # Without a store, publish from a coroutine is fine: nothing blocks.
    EventBus().publish(OrderPlaced("a", 1.0))
    await bus.aclose()


class NativeAsyncStore(PlainStore):
    """A store with its own coroutine append, as a remote backend would have."""

    def __init__(self, *, delay: float = 0.0, error: Exception | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.error = error
        self.threads: list[threading.Thread] = []

    async def append_async(self, record: EventRecord) -> str:
        self.threads.append(threading.current_thread())
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.inner.append(record)


@pytest.mark.asyncio
async def test_publish_async_prefers_the_stores_own_coroutine_append() -> None:
    store = NativeAsyncStore()
    bus = EventBus(store=store)
    envelopes: list[Envelope] = []

    async def handler(event: OrderPlaced, envelope: Envelope) -> None:
        envelopes.append(envelope)

    bus.subscribe(handler)
    offset = await bus.publish_async(OrderPlaced("a", 1.0))
    assert store.threads == [threading.current_thread()]  # no worker thread involved
    assert store.append_calls == 0
    assert offset == store.read().events[0].offset == envelopes[0].offset
    await bus.aclose()


@pytest.mark.asyncio
async def test_publish_async_inside_middleware_uses_the_native_append_too() -> None:
    store = NativeAsyncStore()
    seen: list[Publication] = []

    class Watching(Middleware):
        @contextlib.contextmanager
        def publishing(self, publication: Publication) -> Iterator[None]:
            yield
            seen.append(publication)

    bus = EventBus(store=store, middleware=[Watching()])
    offset = await bus.publish_async(OrderPlaced("a", 1.0), metadata={"k": "v"})
    assert store.threads == [threading.current_thread()]  # no worker thread involved
    assert store.append_calls == 0
    envelope = seen[0].envelope
    assert envelope is not None
    assert (envelope.offset, dict(envelope.metadata)) == (offset, {"k": "v"})
    await bus.aclose()


@pytest.mark.asyncio
async def test_native_async_append_timeout_and_failures() -> None:
    slow = EventBus(store=NativeAsyncStore(delay=10), append_timeout=0.01)
    with pytest.raises(StoreTimeoutError, match="may still be stored"):
        await slow.publish_async(OrderPlaced("a", 1.0))
    assert slow.store is not None
    assert slow.store.read().events == []

    fast = EventBus(store=NativeAsyncStore(), append_timeout=5)
    assert await fast.publish_async(OrderPlaced("a", 1.0)) is not None

    with pytest.raises(StoreUnavailableError, match="network down"):
        await EventBus(store=NativeAsyncStore(error=OSError("network down"))).publish_async(
            OrderPlaced("a", 1.0)
        )

    seen, hook = failures()
    best_effort = EventBus(store=NativeAsyncStore(error=OSError("x")), strict=False, on_error=hook)
    assert await best_effort.publish_async(OrderPlaced("a", 1.0)) is None
    assert [f.stage for f in seen] == ["persistence"]


def test_record_fields_match_the_fast_record_builder() -> None:
    names = tuple(field.name for field in dataclasses.fields(EventRecord))
    assert names == journal_module.RECORD_FIELDS


def test_envelope_fields_match_the_fast_envelope_builder() -> None:
    names = tuple(field.name for field in dataclasses.fields(Envelope))
    assert names == journal_module.ENVELOPE_FIELDS


# -- check_encoding=True: a bare bus encodes what a store would ----------------------------


def test_a_bare_bus_does_not_encode_by_default() -> None:
    seen: list[object] = []
    with EventBus() as bus:
        bus.subscribe(NotJson, seen.append)
        bus.publish(NotJson(object()))
    assert len(seen) == 1


def test_check_encoding_raises_encode_error_on_a_bare_bus_and_dispatches_nothing() -> None:
    seen: list[object] = []
    with EventBus(check_encoding=True) as bus:
        bus.subscribe(NotJson, seen.append)
        bus.subscribe(OrderPlaced, seen.append)
        bus.before_publish(seen.append)
        with pytest.raises(EncodeError, match="payload"):
            bus.publish(NotJson(object()))
        with pytest.raises(EncodeError):
            bus.publish_many([OrderPlaced("a", 1.0), NotJson(object())])
        assert seen == []
        assert bus.publish(OrderPlaced("o-1", 1.0)) is None
        assert seen == [OrderPlaced("o-1", 1.0), OrderPlaced("o-1", 1.0)]


@pytest.mark.asyncio
async def test_check_encoding_applies_to_the_async_publishers() -> None:
    seen: list[object] = []
    async with EventBus(check_encoding=True) as bus:
        bus.subscribe(NotJson, seen.append)
        with pytest.raises(EncodeError):
            await bus.publish_async(NotJson(object()))
        with pytest.raises(EncodeError):
            await bus.publish_many_async([NotJson(object())])
    assert seen == []


def test_check_encoding_with_a_store_encodes_once_as_usual() -> None:
    store = MemoryStore()
    with EventBus(store=store, check_encoding=True) as bus:
        with pytest.raises(EncodeError):
            bus.publish(NotJson(object()))
        bus.publish(OrderPlaced("o-1", 1.0))
        assert [r.type_name for r in store.read().events] == [event_name(OrderPlaced)]


def test_check_encoding_must_be_a_bool() -> None:
    expected = r"check_encoding must be True or False, got 'yes'; use EventBus\(check_encoding"
    with pytest.raises(TypeError, match=expected):
        EventBus(check_encoding="yes")  # type: ignore[arg-type]
