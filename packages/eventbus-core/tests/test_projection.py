"""Projection: restore from the latest snapshot, fold the events after it, save."""

from __future__ import annotations

from typing import Any

import pytest

from eventbus.core import OLDEST, BusUsageError, EventBus, MemoryStore, Projection, Snapshot

from ._support import OrderPlaced, PlainStore


def _count(state: dict[str, Any], event: Any) -> dict[str, Any]:
    if isinstance(event, OrderPlaced):
        return {"orders": state["orders"] + 1, "last": event.order_id}
    return state


def test_a_projection_needs_a_snapshot_store() -> None:
    empty: dict[str, Any] = {}
    with EventBus() as bus, pytest.raises(BusUsageError, match=r"SnapshotStore.*None"):
        Projection(bus, "p", empty, _count)
    with EventBus(store=PlainStore()) as bus, pytest.raises(BusUsageError, match="'p' needs"):
        Projection(bus, "p", empty, _count)


def test_json_state_round_trips_through_a_snapshot() -> None:
    store = MemoryStore()
    with EventBus(store=store) as bus:
        bus.publish(OrderPlaced("o-1", 1.0))
        projection = Projection(bus, "orders", {"orders": 0, "last": None}, _count)
        assert repr(projection) == "<Projection 'orders' at OLDEST>"
        assert projection.catch_up() == 1
        projection.save_snapshot()
        saved = store.load_snapshot("orders")
        assert saved == Snapshot("orders", projection.offset, '{"orders": 1, "last": "o-1"}')
        restored = Projection(bus, "orders", {"orders": 0, "last": None}, _count)
        assert restored.restore()
        assert (restored.state, restored.offset) == (projection.state, projection.offset)


def test_a_failing_apply_leaves_the_projection_after_the_last_folded_event() -> None:
    def fragile(state: int, event: Any) -> int:
        if event.order_id == "bad":
            raise ValueError("cannot fold")
        return state + 1

    with EventBus(store=MemoryStore()) as bus:
        first = bus.publish(OrderPlaced("o-1", 1.0))
        bus.publish(OrderPlaced("bad", 1.0))
        projection = Projection(bus, "n", 0, fragile, event_types=[OrderPlaced])
        with pytest.raises(ValueError, match="cannot fold"):
            projection.catch_up()
        assert (projection.state, projection.offset) == (1, first)
        projection.save_snapshot()
        restored = Projection(bus, "n", 0, fragile)
        assert restored.restore()
        assert restored.offset == first
    assert projection.offset != OLDEST
