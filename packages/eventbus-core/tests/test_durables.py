"""Durable subscriptions of one bus (_durables.py, _durable.py): ownership, stopping, drain."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    BusUsageError,
    EventBus,
    HandlerFailure,
    MemoryStore,
    PoisonPolicy,
    Position,
    ReadResult,
    RegistrationError,
    StoreCorruptError,
    StoredEvent,
    StoreUnavailableError,
)
from eventbus.core._durables import DurableConsumers
from eventbus.core._failures import Reporter
from eventbus.core._mapper import EventMapper
from eventbus.core._middleware import MiddlewareStack
from eventbus.core._runner import AsyncRunner
from eventbus.core.testing import BusContract, raw_record

from ._support import OrderPlaced

WAIT = 10.0  # a deadline for things that happen "soon"; never a timing assertion


def test_drain_from_the_subscriptions_own_handler_is_refused() -> None:
    failures: list[HandlerFailure] = []
    bus = EventBus(store=MemoryStore(), on_error=failures.append)
    box: list[Any] = []

    def handler(event: OrderPlaced) -> None:
        box[0].drain(timeout=WAIT)

    box.append(bus.subscribe_durable("s", handler, max_attempts=1, retry_backoff=0.001))
    bus.publish(OrderPlaced("o-1", 1.0))
    assert not box[0].drain(timeout=WAIT)
    assert isinstance(failures[0].exception, BusUsageError)
    assert "own handler" in str(failures[0].exception)
    bus.shutdown(WAIT)


def test_a_coroutine_handler_that_cancels_itself_stops_the_subscription() -> None:
    bus = EventBus(store=MemoryStore(), on_error=lambda f: None)

    async def handler(event: OrderPlaced) -> None:
        raise asyncio.CancelledError

    durable = bus.subscribe_durable("s", handler)
    bus.publish(OrderPlaced("o-1", 1.0))
    assert not durable.drain(timeout=WAIT)
    assert durable.error is not None
    assert not durable.running
    bus.shutdown(WAIT)


def test_a_handler_may_close_its_own_bus() -> None:
    bus = EventBus(store=MemoryStore())
    closed = threading.Event()

    def handler(event: OrderPlaced) -> None:
        bus.close(timeout=WAIT)
        closed.set()

    bus.subscribe_durable("s", handler)
    bus.publish(OrderPlaced("o-1", 1.0))
    assert closed.wait(WAIT)
    assert bus.closed


class NewestFails(MemoryStore):
    """A store whose tail cannot be resolved once ``failing`` is set (a server gone)."""

    failing = False

    def read(self, after: Position = NEWEST, limit: int = 100) -> ReadResult:
        if self.failing and after is NEWEST:
            raise StoreUnavailableError("the server is gone")
        return super().read(after, limit)


def test_a_drain_that_fails_at_close_is_reported_and_the_bus_still_closes() -> None:
    failures: list[HandlerFailure] = []
    store = NewestFails()
    bus = EventBus(store=store, on_error=failures.append)
    durable = bus.subscribe_durable("s", lambda e: None, event_type=OrderPlaced)
    store.failing = True
    assert bus.shutdown(WAIT)
    assert not durable.running
    assert [type(f.exception) for f in failures] == [StoreUnavailableError]


def test_no_durable_subscription_starts_once_stopping_began() -> None:
    runner = AsyncRunner(limit=None, report=lambda exc, event, sub: None)
    mapper = EventMapper()
    consumers = DurableConsumers(
        MemoryStore(), MemoryStore(), mapper, runner, Reporter(None), MiddlewareStack()
    )
    assert consumers.stop_all(None, drain=True) == []
    with pytest.raises(BusUsageError, match="closing"):
        consumers.subscribe("s", lambda e: None, OrderPlaced, _options())
    # The refused subscription checks no registration any more.
    mapper.register(OrderPlaced)


def test_on_unknown_must_be_a_poison_policy() -> None:
    bus = EventBus(store=MemoryStore())
    with pytest.raises(RegistrationError, match="on_unknown"):
        bus.subscribe_durable(
            "s",
            lambda e: None,
            event_type=OrderPlaced,
            on_unknown="skip",  # type: ignore[arg-type]
        )


def test_stopping_twice_and_cancelling_an_idle_subscription_are_harmless() -> None:
    bus = EventBus(store=MemoryStore())
    durable = bus.subscribe_durable("s", lambda e: None, event_type=OrderPlaced)
    durable.cancel()  # no coroutine handler is running: nothing to cancel
    assert durable.stop(WAIT)
    assert durable.stop(WAIT)
    assert "stopped" in repr(durable)
    bus.shutdown(WAIT)


def _options() -> Any:
    from eventbus.core._durable_options import DurableOptions
    from eventbus.core._failures import PoisonPolicy

    return DurableOptions(
        start=NEWEST,
        where=None,
        on_poison=PoisonPolicy.ABORT,
        on_unknown=PoisonPolicy.SKIP,
        max_attempts=1,
        retry_backoff=0.01,
        max_backoff=1.0,
        checkpoint_every=1,
        checkpoint_interval=None,
        poll_interval=0.25,
        batch_size=100,
    )


class RaisesOnce(MemoryStore):
    """Raises one given StoreCorruptError on the first read that starts at OLDEST."""

    def __init__(self) -> None:
        super().__init__()
        self.error: StoreCorruptError | None = None

    def read(self, after: Position = NEWEST, limit: int = 100) -> ReadResult:
        if after is OLDEST and self.error is not None:
            error, self.error = self.error, None
            raise error
        return super().read(after, limit)


def _corrupt_store(*, offset: bool, record: bool) -> tuple[RaisesOnce, str]:
    """A store whose first record is good; a read from the start reports it unreadable."""
    inner = RaisesOnce()
    first = inner.append(
        raw_record(OrderPlaced.__module__ + ".OrderPlaced", '{"order_id": "x", "amount": 1.0}')
    )
    stored = inner.read(OLDEST, limit=1).events[0]
    inner.error = StoreCorruptError(
        "memory://: the record is unreadable.",
        store="memory://",
        offset=first if offset else None,
        field="metadata",
        record=stored if record else None,
    )
    return inner, first


def test_an_unreadable_record_without_an_offset_stops_the_subscription() -> None:
    store, _ = _corrupt_store(offset=False, record=True)
    bus = EventBus(store=store, on_error=lambda f: None)
    durable = bus.subscribe_durable(
        "s", lambda e: None, event_type=OrderPlaced, on_poison=PoisonPolicy.SKIP
    )
    assert not durable.drain(timeout=WAIT)
    assert isinstance(durable.error, StoreCorruptError)
    bus.shutdown(WAIT)


def test_an_unreadable_record_with_nothing_readable_skips_or_stops_by_policy() -> None:
    failures: list[HandlerFailure] = []
    store, first = _corrupt_store(offset=True, record=False)
    bus = EventBus(store=store, on_error=failures.append)
    durable = bus.subscribe_durable(
        "s", lambda e: None, event_type=OrderPlaced, on_poison=PoisonPolicy.SKIP
    )
    assert durable.drain(timeout=WAIT)
    assert durable.position == first
    assert [type(f.exception) for f in failures] == [StoreCorruptError]
    bus.shutdown(WAIT)

    store, _ = _corrupt_store(offset=True, record=False)
    bus = EventBus(store=store, on_error=lambda f: None)
    dead: list[object] = []
    durable = bus.subscribe_durable(
        "s", lambda e: None, event_type=OrderPlaced, on_poison=lambda s, e: dead.append(s)
    )
    assert not durable.drain(timeout=WAIT)  # no record to hand over: it stops instead
    assert isinstance(durable.error, StoreCorruptError)
    assert dead == []
    bus.shutdown(WAIT)


def test_a_failing_dead_letter_handler_for_an_unreadable_record_stops_it() -> None:
    store, _ = _corrupt_store(offset=True, record=True)
    bus = EventBus(store=store, on_error=lambda f: None)

    def broken(stored: StoredEvent, exc: BaseException) -> None:
        raise OSError("dead-letter queue down")

    durable = bus.subscribe_durable("s", lambda e: None, event_type=OrderPlaced, on_poison=broken)
    assert not durable.drain(timeout=WAIT)
    assert "dead-letter" in str(durable.error)
    bus.shutdown(WAIT)


def test_the_bus_contract_skips_corruption_tests_a_store_cannot_run() -> None:
    with pytest.raises(pytest.skip.Exception, match="write_corrupt_record"):
        BusContract().write_corrupt_record(MemoryStore(), Path("."), "x")
