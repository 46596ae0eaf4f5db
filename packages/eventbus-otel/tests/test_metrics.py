"""Metrics: durations, handler errors, and how far a durable subscription is behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from eventbus.core import (
    OLDEST,
    EventBus,
    EventRecord,
    MemoryStore,
    Position,
    ReadResult,
    StoredEvent,
    StoreUnavailableError,
)
from eventbus.otel import LAG_CAP

from ._events import OrderPlaced
from .conftest import Telemetry

WAIT = 5.0


def _by_group(points: Sequence[Any]) -> dict[str, Any]:
    return {p.attributes["messaging.consumer.group.name"]: p for p in points}


def test_publish_and_handler_durations_and_errors(telemetry: Telemetry) -> None:
    bus = EventBus(on_error=lambda failure: None)
    bus.subscribe(OrderPlaced, lambda e: None)
    bus.subscribe(OrderPlaced, lambda e: 1 / 0)
    bus.publish(OrderPlaced("o-1"))
    bus.publish(OrderPlaced("o-2"))
    (publish,) = telemetry.points("messaging.client.operation.duration")
    assert publish.count == 2
    assert dict(publish.attributes) == {
        "messaging.system": "eventbus",
        "messaging.destination.name": "shop.OrderPlaced",
        "messaging.operation.name": "publish",
    }
    process = telemetry.points("messaging.process.duration")
    by_error = {p.attributes.get("error.type"): p.count for p in process}
    assert by_error == {None: 2, "ZeroDivisionError": 2}
    (errors,) = telemetry.points("messaging.eventbus.handler.errors")
    assert errors.value == 2
    assert errors.attributes["error.type"] == "ZeroDivisionError"
    bus.close()


def test_a_durable_delivery_records_the_age_of_its_event(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore())
    bus.publish(OrderPlaced("o-1"))
    durable = bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    assert durable.drain(timeout=WAIT)
    (age,) = telemetry.points("messaging.eventbus.consumer.lag.seconds")
    assert 0 <= age.value < WAIT
    assert age.attributes["messaging.consumer.group.name"] == "mailer"
    (process,) = telemetry.points("messaging.process.duration")
    assert process.attributes["messaging.consumer.group.name"] == "mailer"
    # Caught up: nothing behind, nothing waiting for a checkpoint.
    assert _by_group(telemetry.points("messaging.eventbus.consumer.lag"))["mailer"].value == 0
    assert _by_group(telemetry.points("messaging.eventbus.checkpoint.age"))["mailer"].value == 0
    bus.close()


def test_a_stuck_subscription_shows_events_behind_and_checkpoint_age(
    telemetry: Telemetry,
) -> None:
    bus = EventBus(store=MemoryStore())
    entered, release = threading.Event(), threading.Event()

    def slow(event: OrderPlaced) -> None:
        entered.set()
        release.wait(WAIT)

    durable = bus.subscribe_durable("slow", slow, event_type=OrderPlaced)
    bus.publish_many([OrderPlaced(str(n)) for n in range(3)])
    assert entered.wait(WAIT)
    try:
        # Stuck in the first event: all three are after its position and checkpoint.
        assert _by_group(telemetry.points("messaging.eventbus.consumer.lag"))["slow"].value == 3
        (age,) = telemetry.points("messaging.eventbus.checkpoint.age")
        assert age.value > 0
    finally:
        release.set()
    assert durable.drain(timeout=WAIT)
    bus.close()


def test_the_events_behind_are_counted_up_to_the_cap(telemetry: Telemetry) -> None:
    assert LAG_CAP == 10_000
    store = MemoryStore()
    store.append_batch([_record(n) for n in range(LAG_CAP + 5)])
    bus = EventBus(store=store)
    gate = threading.Event()
    bus.subscribe_durable("late", lambda e: gate.wait(WAIT), event_type=OrderPlaced)
    try:
        points = telemetry.points("messaging.eventbus.consumer.lag")
        assert _by_group(points)["late"].value == LAG_CAP
    finally:
        gate.set()
    bus.close()


def _record(n: int) -> EventRecord:
    return EventRecord(
        event_id=f"id-{n}",
        type_name="shop.OrderPlaced",
        data=f'{{"order_id": "{n}"}}',
        timestamp=datetime.now(UTC),
        metadata={},
        origin="test",
    )


def test_standby_subscriptions_and_closed_buses_are_not_observed(telemetry: Telemetry) -> None:
    store = MemoryStore()
    first, second = EventBus(store=store), EventBus(store=store)
    active = first.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    assert active.wait_active(WAIT)
    second.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    assert len(telemetry.points("messaging.eventbus.consumer.lag")) == 1
    first.close()
    second.close()
    assert telemetry.points("messaging.eventbus.consumer.lag") == []


class FlakyReads(MemoryStore):
    """Reads fail while ``failing`` is set (the durable worker backs off meanwhile)."""

    failing = False

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        if self.failing:
            raise StoreUnavailableError("the disk is away")
        return super().read(after, limit)

    def iter_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[StoredEvent]:
        if self.failing:
            raise StoreUnavailableError("the disk is away")
        return super().iter_events(after, batch_size=batch_size)


def test_an_unreadable_store_gives_no_lag_observation(telemetry: Telemetry) -> None:
    store = FlakyReads()
    bus = EventBus(store=store, on_error=lambda failure: None)
    durable = bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    assert durable.wait_caught_up(WAIT)
    store.failing = True
    try:
        assert telemetry.points("messaging.eventbus.consumer.lag") == []
        assert telemetry.points("messaging.eventbus.checkpoint.age") == []
    finally:
        store.failing = False
    bus.close()
