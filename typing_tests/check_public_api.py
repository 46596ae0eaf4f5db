"""Static checks of the public API: what a user's type checker accepts and refuses.

Never run, only type-checked (``nox -s typecheck`` runs mypy --strict over this folder,
with ``warn_unused_ignores``): each valid call pins its inferred type with
``assert_type``, and each invalid call carries the exact ``type: ignore`` code mypy must
report, so an ignore that stops being needed (the API got looser) fails the check too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_type

from eventbus.core import (
    NEWEST,
    OLDEST,
    AppendConflictError,
    Checkpoint,
    DurableSubscription,
    EventBus,
    MemoryStore,
    Offset,
    PoisonPolicy,
    Projection,
    Snapshot,
    StoredEvent,
    Subscription,
)
from eventbus.core.state import ChangeMessage, Collection, Materializer
from eventbus.durablestream import DurableStreamClient, DurableStreamStore, RetryPolicy
from eventbus.sqlite import SQLiteStore


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    amount: float


def on_order(event: OrderPlaced) -> None: ...


async def on_order_async(event: OrderPlaced) -> None: ...


def subscribing(bus: EventBus) -> None:
    # The explicit forms know the event type; the inferred ones cannot.
    assert_type(bus.subscribe(OrderPlaced, on_order), Subscription[OrderPlaced])
    assert_type(bus.subscribe(OrderPlaced)(on_order_async), Subscription[OrderPlaced])
    assert_type(bus.subscribe(on_order), Subscription[Any])
    assert_type(bus.subscribe()(on_order), Subscription[Any])
    # A filter is checked against the event type it filters.
    bus.subscribe(OrderPlaced, on_order, where=lambda e: e.amount > 10)
    bus.subscribe(OrderPlaced, on_order, where=lambda e: e.missing)  # type: ignore[attr-defined]
    bus.subscribe(OrderPlaced, on_order, once="yes")  # type: ignore[call-overload]


def publishing(bus: EventBus) -> None:
    assert_type(bus.publish(OrderPlaced("o-1", 5.0)), Offset | None)
    bus.publish(OrderPlaced("o-1", 5.0), metadata={"tenant": "t"})
    bus.publish(OrderPlaced("o-1", 5.0), metadata={"tenant": 1})  # type: ignore[dict-item]
    bus.publish(OrderPlaced("o-1", 5.0), {"tenant": "t"})  # type: ignore[call-arg]


async def publishing_async(bus: EventBus) -> None:
    assert_type(await bus.publish_async(OrderPlaced("o-1", 5.0)), Offset | None)
    await bus.publish_async(OrderPlaced("o-1", 5.0), expected_offset=OLDEST)


def publishing_conditionally(bus: EventBus, end: Offset) -> None:
    assert_type(bus.publish(OrderPlaced("o-1", 5.0), expected_offset=end), Offset | None)
    bus.publish_many([OrderPlaced("o-1", 5.0)], expected_offset=OLDEST)
    bus.publish(OrderPlaced("o-1", 5.0), expected_offset=NEWEST)  # type: ignore[arg-type]
    bus.publish(OrderPlaced("o-1", 5.0), expected_offset=3)  # type: ignore[arg-type]
    try:
        bus.publish(OrderPlaced("o-2", 5.0), expected_offset=end)
    except AppendConflictError as conflict:
        assert_type(conflict.current, Checkpoint)


def event_sourcing(bus: EventBus, store: SQLiteStore) -> None:
    totals = Projection(bus, "totals", 0, lambda total, event: total + 1)
    assert_type(totals, Projection[int])
    assert_type(totals.catch_up(), int)
    assert_type(totals.offset, Checkpoint)
    Projection(bus, "totals", 0, lambda total, event: str(total))  # type: ignore[arg-type,return-value]
    snapshot = store.load_snapshot("totals")
    assert_type(snapshot, Snapshot | None)
    store.save_snapshot("totals", OLDEST, b"{}")  # type: ignore[arg-type]
    assert_type(store.compact("00000000000000000001", snapshots=["totals"]), int)
    users = Materializer()
    assert_type(users.collection("user"), Collection[Any])
    assert_type(users.collection("user", str).get("u1"), str | None)
    assert_type(users.catch_up(store), int)
    bus.publish(ChangeMessage.insert("user", "u1", {"name": "Ann"}))
    ChangeMessage("user", "u1", "merge")  # type: ignore[arg-type]


def reading(bus: EventBus) -> None:
    for stored in bus.replay(OLDEST, batch_size=100):
        assert_type(stored, StoredEvent)
        assert_type(stored.offset, Offset)
    for event, stored in bus.replay_events():
        assert_type(event, Any)
        assert_type(stored, StoredEvent)
    bus.replay(batch_size="100")  # type: ignore[arg-type]


def consuming(bus: EventBus) -> None:
    durable = bus.subscribe_durable(
        "audit", on_order, event_type=OrderPlaced, on_poison=PoisonPolicy.SKIP
    )
    assert_type(durable, DurableSubscription)
    bus.subscribe_durable("audit", on_order, max_attempts=1.5)  # type: ignore[arg-type]
    bus.subscribe_durable("audit", on_order, on_unknown=PoisonPolicy.ABORT)
    bus.subscribe_durable("audit", on_order, on_unknown="skip")  # type: ignore[arg-type]
    assert_type(durable.drain(), bool)
    assert_type(durable.drain(until=durable.position, timeout=5.0), bool)
    assert_type(durable.unknown_names["x"], int)
    durable.drain(timeout="5")  # type: ignore[arg-type]
    assert_type(bus.durable_subscriptions["audit"], DurableSubscription)


async def draining(durable: DurableSubscription) -> None:
    assert_type(await durable.adrain(timeout=5.0), bool)


def closing(bus: EventBus) -> None:
    assert_type(bus.shutdown(5.0, drain=False), bool)
    bus.close(timeout=5.0)
    bus.shutdown(drain="no")  # type: ignore[arg-type]


def stores() -> None:
    assert_type(EventBus(store=MemoryStore()), EventBus)
    assert_type(EventBus(store=SQLiteStore("events.db", durability="full")), EventBus)
    EventBus(store=DurableStreamStore("http://127.0.0.1:4437", "/v1/stream/orders"))
    DurableStreamStore("http://127.0.0.1:4437", "/v1/stream/orders", retry=RetryPolicy())
    EventBus(store="sqlite:///events.db")  # type: ignore[arg-type]
    assert_type(EventBus(check_encoding=True), EventBus)
    EventBus(check_encoding="yes")  # type: ignore[arg-type]
    SQLiteStore("events.db", durability="fast")  # type: ignore[arg-type]


def client() -> None:
    with DurableStreamClient("http://127.0.0.1:4437/v1/stream") as c:
        c.append("/orders", b"raw bytes", content_type="application/octet-stream")
        c.append("/orders", 42)  # type: ignore[arg-type]
