"""Middleware around publishes and handler calls: plain and durable, sync and coroutine."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from eventbus.core import (
    OLDEST,
    AppendConflictError,
    Delivery,
    Envelope,
    EventBus,
    EventRecord,
    HandlerFailure,
    MemoryStore,
    Middleware,
    Offset,
    PoisonPolicy,
    Position,
    Publication,
    ReadResult,
    RegistrationError,
    StoreUnavailableError,
)

from ._support import FailingStore, OrderPlaced

WAIT = 5.0


class Recording(Middleware):
    """Logs its contexts' entries and exits; the first adds ``trace`` metadata."""

    def __init__(self, name: str, log: list[tuple[Any, ...]], *, tag: bool = False) -> None:
        self.name = name
        self.log = log
        self.tag = tag
        self.publications: list[Publication] = []
        self.deliveries: list[Delivery] = []

    @contextlib.contextmanager
    def publishing(self, publication: Publication) -> Iterator[None]:
        self.publications.append(publication)
        self.log.append(("enter publish", self.name, publication.type_name))
        if self.tag:
            publication.metadata["trace"] = f"t-{publication.event.order_id}"  # type: ignore[attr-defined]
        try:
            yield
        except Exception as exc:
            self.log.append(("publish failed", self.name, type(exc).__name__))
            raise
        self.log.append(("exit publish", self.name, publication.envelope is not None))

    @contextlib.contextmanager
    def handling(self, delivery: Delivery) -> Iterator[None]:
        self.deliveries.append(delivery)
        self.log.append(("enter handle", self.name, delivery.subscription_id))
        try:
            yield
        except Exception as exc:
            self.log.append(("handle failed", self.name, type(exc).__name__))
            raise
        self.log.append(("exit handle", self.name, delivery.attempt))


class Swallowing(Middleware):
    """Suppresses every handler exception."""

    @contextlib.contextmanager
    def handling(self, delivery: Delivery) -> Iterator[None]:
        with contextlib.suppress(Exception):
            yield


def eventually(condition: Any, timeout: float = WAIT) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("store", [None, MemoryStore()], ids=["bare", "stored"])
def test_first_installed_is_outermost_around_publish_and_handler(store: MemoryStore | None) -> None:
    log: list[tuple[Any, ...]] = []
    outer, inner = Recording("outer", log, tag=True), Recording("inner", log)
    bus = EventBus(store=store, middleware=[outer])
    bus.add_middleware(inner)
    assert bus.middleware == (outer, inner)
    seen: list[Envelope] = []

    @bus.subscribe
    def handler(event: OrderPlaced) -> None:
        log.append(("handler",))

    bus.subscribe(OrderPlaced, lambda e, env: seen.append(env))
    offset = bus.publish(OrderPlaced("o-1", 1.0))
    name = outer.publications[0].type_name
    assert log[:6] == [
        ("enter publish", "outer", name),
        ("enter publish", "inner", name),
        ("exit publish", "inner", True),
        ("exit publish", "outer", True),
        ("enter handle", "outer", None),
        ("enter handle", "inner", None),
    ]
    assert log[6:9] == [("handler",), ("exit handle", "inner", 1), ("exit handle", "outer", 1)]
    publication = outer.publications[0]
    assert publication.type_name.endswith("OrderPlaced")
    assert publication.envelope is not None
    assert publication.envelope.offset == offset
    # Metadata a middleware adds at publish reaches the handler's envelope (and store).
    assert seen[0].metadata["trace"] == "t-o-1"
    assert outer.deliveries[0].envelope.event_id == publication.envelope.event_id
    if store is not None:
        assert next(iter(bus.replay())).metadata["trace"] == "t-o-1"
    bus.close()


def test_the_fast_path_is_left_while_middleware_is_installed() -> None:
    log: list[tuple[Any, ...]] = []
    middleware = Recording("m", log)
    bus = EventBus()
    bus.subscribe(OrderPlaced, lambda e: None)
    bus.publish(OrderPlaced("a", 1.0))
    assert OrderPlaced in bus._plain
    bus.add_middleware(middleware)
    assert OrderPlaced not in bus._plain
    bus.publish(OrderPlaced("b", 1.0))
    assert [entry[0] for entry in log] == [
        "enter publish",
        "exit publish",
        "enter handle",
        "exit handle",
    ]
    assert bus.remove_middleware(middleware)
    assert not bus.remove_middleware(middleware)
    bus.publish(OrderPlaced("c", 1.0))
    assert OrderPlaced in bus._plain
    assert len(log) == 4
    bus.close()


def test_explicit_metadata_is_kept_and_middleware_metadata_wins() -> None:
    bus = EventBus(store=MemoryStore(), middleware=[Recording("m", [], tag=True)])
    bus.publish(OrderPlaced("a", 1.0), metadata={"trace": "mine", "tenant": "acme"})
    stored = next(iter(bus.replay()))
    assert dict(stored.metadata) == {"trace": "t-a", "tenant": "acme"}
    bus.close()


def test_a_handler_error_passes_through_the_middleware_and_is_reported() -> None:
    log: list[tuple[Any, ...]] = []
    failures: list[HandlerFailure] = []
    bus = EventBus(middleware=[Recording("m", log)], on_error=failures.append)

    @bus.subscribe(OrderPlaced, sequential=True)
    def broken(event: OrderPlaced) -> None:
        raise ValueError("boom")

    bus.publish(OrderPlaced("a", 1.0))
    assert ("handle failed", "m", "ValueError") in log
    assert [type(f.exception) for f in failures] == [ValueError]
    assert failures[0].subscription is not None
    bus.close()


def test_a_middleware_may_suppress_a_handler_error() -> None:
    failures: list[HandlerFailure] = []
    bus = EventBus(middleware=[Swallowing()], on_error=failures.append)
    bus.subscribe(OrderPlaced, lambda e: 1 / 0)
    bus.publish(OrderPlaced("a", 1.0))
    assert failures == []
    bus.close()


def test_a_strict_append_failure_passes_through_the_middleware() -> None:
    log: list[tuple[Any, ...]] = []
    middleware = Recording("m", log)
    bus = EventBus(store=FailingStore(OSError("disk")), middleware=[middleware])
    with pytest.raises(StoreUnavailableError):
        bus.publish(OrderPlaced("a", 1.0))
    assert log[-1] == ("publish failed", "m", "StoreUnavailableError")
    assert middleware.publications[0].envelope is None
    bus.close()


def test_the_default_methods_do_nothing() -> None:
    seen: list[OrderPlaced] = []
    bus = EventBus(store=MemoryStore(), middleware=[Middleware()])
    bus.subscribe(OrderPlaced, seen.append)
    bus.publish(OrderPlaced("a", 1.0))
    assert seen == [OrderPlaced("a", 1.0)]
    bus.close()


def test_something_without_the_methods_is_refused() -> None:
    with pytest.raises(RegistrationError, match="publishing\\(\\) and handling\\(\\)"):
        EventBus(middleware=[object()])  # type: ignore[list-item]


@pytest.mark.parametrize("store", [None, MemoryStore()], ids=["bare", "stored"])
def test_publish_many_wraps_each_event(store: MemoryStore | None) -> None:
    log: list[tuple[Any, ...]] = []
    middleware = Recording("m", log, tag=True)
    bus = EventBus(store=store, middleware=[middleware])
    seen: list[str] = []
    bus.subscribe(OrderPlaced, lambda e, env: seen.append(env.metadata["trace"]))
    offsets = bus.publish_many([OrderPlaced("a", 1.0), OrderPlaced("b", 2.0)])
    assert seen == ["t-a", "t-b"]
    assert [p.envelope.offset for p in middleware.publications if p.envelope] == offsets
    # Both are entered before the one batch append, and exited after it.
    assert [e[0] for e in log[:4]] == ["enter publish"] * 2 + ["exit publish"] * 2
    bus.close()


def test_publish_many_without_middleware_builds_no_publication() -> None:
    bus = EventBus(store=MemoryStore())
    seen: list[Envelope] = []
    bus.subscribe(OrderPlaced, lambda e, env: seen.append(env))
    bus.publish_many([OrderPlaced("a", 1.0)], metadata={"k": "v"})
    assert dict(seen[0].metadata) == {"k": "v"}
    bus.close()


@pytest.mark.parametrize("native", [False, True], ids=["thread", "native"])
@pytest.mark.asyncio
async def test_coroutine_handlers_run_inside_the_middleware(native: bool) -> None:
    log: list[tuple[Any, ...]] = []
    store = MemoryStore()
    if not native:
        store = _ThreadOnly(store)  # type: ignore[assignment]
    bus = EventBus(store=store, middleware=[Recording("m", log, tag=True)])
    inside: list[bool] = []

    @bus.subscribe
    async def handler(event: OrderPlaced, envelope: Envelope) -> None:
        await asyncio.sleep(0)
        inside.append(log[-1][0] == "enter handle" and envelope.metadata["trace"] == "t-a")

    await bus.publish_async(OrderPlaced("a", 1.0))
    assert inside == [True]
    assert log[-1] == ("exit handle", "m", 1)
    await bus.publish_many_async([OrderPlaced("b", 1.0)])
    assert log[-1] == ("exit handle", "m", 1)
    await bus.aclose()


@pytest.mark.asyncio
async def test_publish_async_on_a_bare_bus_goes_through_the_middleware() -> None:
    log: list[tuple[Any, ...]] = []
    bus = EventBus(middleware=[Recording("m", log)])
    bus.subscribe(OrderPlaced, lambda e: None)
    assert await bus.publish_async(OrderPlaced("a", 1.0)) is None
    assert [e[0] for e in log] == ["enter publish", "exit publish", "enter handle", "exit handle"]
    await bus.aclose()


class _ThreadOnly:
    """A MemoryStore without its native async append: publish_async uses a thread.

    The store methods are spelled out: from Python 3.12 a protocol check looks at the
    class, not at what ``__getattr__`` would find."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner

    def append(self, record: EventRecord) -> Offset:
        return self.inner.append(record)

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        return self.inner.append_batch(records)

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        return self.inner.read(after, limit)


def test_durable_handlers_run_inside_the_middleware_with_their_id_and_attempts() -> None:
    log: list[tuple[Any, ...]] = []
    middleware = Recording("m", log, tag=True)
    store = MemoryStore()
    bus = EventBus(store=store, middleware=[middleware], on_error=lambda f: None)
    calls: list[str] = []

    def flaky(event: OrderPlaced) -> None:
        calls.append(event.order_id)
        if len(calls) == 1:
            raise ValueError("first try fails")

    bus.publish(OrderPlaced("a", 1.0))
    durable = bus.subscribe_durable("mailer", flaky, retry_backoff=0.001, event_type=OrderPlaced)
    assert durable.drain(timeout=WAIT)
    assert calls == ["a", "a"]
    durable_deliveries = [d for d in middleware.deliveries if d.subscription_id == "mailer"]
    assert [d.attempt for d in durable_deliveries] == [1, 2]
    delivery = durable_deliveries[0]
    assert delivery.envelope.offset is not None
    assert delivery.envelope.metadata["trace"] == "t-a"
    assert ("handle failed", "m", "ValueError") in log
    bus.close()


def test_durable_coroutine_handlers_run_inside_the_middleware() -> None:
    log: list[tuple[Any, ...]] = []
    bus = EventBus(store=MemoryStore(), middleware=[Recording("m", log)])
    seen: list[tuple[str, Any]] = []

    async def handler(event: OrderPlaced, envelope: Envelope) -> None:
        seen.append((event.order_id, log[-1]))

    bus.publish(OrderPlaced("a", 1.0))
    durable = bus.subscribe_durable("async", handler, event_type=OrderPlaced)
    assert durable.drain(timeout=WAIT)
    assert seen == [("a", ("enter handle", "m", "async"))]
    eventually(lambda: log[-1] == ("exit handle", "m", 1))
    bus.close()


def test_middleware_added_later_reaches_a_running_durable_subscription() -> None:
    log: list[tuple[Any, ...]] = []
    bus = EventBus(store=MemoryStore())
    seen: list[str] = []
    durable = bus.subscribe_durable(
        "late", lambda e: seen.append(e.order_id), event_type=OrderPlaced
    )
    bus.publish(OrderPlaced("a", 1.0))
    assert durable.drain(timeout=WAIT)
    bus.add_middleware(Recording("m", log))
    bus.publish(OrderPlaced("b", 1.0))
    assert durable.drain(timeout=WAIT)
    assert seen == ["a", "b"]
    assert ("enter handle", "m", "late") in log
    bus.close()


def test_a_swallowed_durable_error_moves_the_subscription_on() -> None:
    bus = EventBus(store=MemoryStore(), middleware=[Swallowing()])
    durable = bus.subscribe_durable(
        "s", lambda e: 1 / 0, event_type=OrderPlaced, on_poison=PoisonPolicy.ABORT
    )
    bus.publish(OrderPlaced("a", 1.0))
    assert durable.drain(timeout=WAIT)
    assert durable.running
    bus.close()


def test_middleware_wraps_conditional_publishes_and_sees_their_conflicts() -> None:
    log: list[tuple[Any, ...]] = []
    tagger = Recording("tag", log, tag=True)
    store = MemoryStore()
    bus = EventBus(store=store, middleware=[tagger])
    first = bus.publish(OrderPlaced("a", 1.0), expected_offset=OLDEST)
    assert first is not None
    [second] = bus.publish_many([OrderPlaced("b", 2.0)], expected_offset=first)
    assert second is not None
    third = asyncio.run(bus.publish_async(OrderPlaced("c", 3.0), expected_offset=second))
    with pytest.raises(AppendConflictError):
        bus.publish(OrderPlaced("d", 4.0), expected_offset=first)
    stored = store.read().events
    assert [e.metadata.get("trace") for e in stored] == ["t-a", "t-b", "t-c"]
    assert stored[-1].offset == third
    assert ("publish failed", "tag", "AppendConflictError") in log
    bus.close()
