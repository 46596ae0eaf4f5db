"""The event-sourcing guarantees at the bus level: a mixin of :class:`BusContract`.

A projection restored from its snapshot continues exactly after the snapshot's offset
(after a compaction too), a durable subscription can start there, a conditional
publish through one bus conflicts with another bus's append, and the State Protocol
materializer applies messages from the store, skips foreign events and resumes from its
snapshot. Each test skips on a store
without the capability, or one that says it cannot (``UnsupportedStoreFeatureError``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from eventbus.core._bus import EventBus
from eventbus.core._exceptions import AppendConflictError
from eventbus.core._projection import Projection
from eventbus.core._store import (
    NEWEST,
    OLDEST,
    CompactingStore,
    ConditionalAppendStore,
    EventStore,
    SnapshotStore,
)
from eventbus.core.state import ChangeMessage, ControlMessage, Materializer

from ._fixtures import lacks, supported

__all__ = ["EventSourcingBusContract"]

_WAIT: float = 10.0


@dataclasses.dataclass(frozen=True)
class Credited:
    """The event the projections here fold."""

    __event_name__: ClassVar[str] = "eventbus.contract.Credited"
    amount: int


@dataclasses.dataclass(frozen=True)
class Balance:
    """A projection's state, encoded by the bus's codec in its snapshots."""

    __event_name__: ClassVar[str] = "eventbus.contract.Balance"
    total: int = 0
    count: int = 0


def _fold(state: Balance, event: Any) -> Balance:
    if isinstance(event, Credited):
        return Balance(state.total + event.amount, state.count + 1)
    return state


def _projection(bus: EventBus) -> Projection[Balance]:
    return Projection(bus, "balance", Balance(), _fold, event_types=[Credited], state_type=Balance)


class EventSourcingBusContract:
    """Projections from snapshots, durable starts after them, conditional publishes."""

    def reopen_store(self, store: EventStore, directory: Path) -> EventStore:
        """Overridden by :class:`BusContract` (declared here for the type checker)."""
        raise NotImplementedError  # pragma: no cover - BusContract's comes first

    @pytest.fixture
    def again(self, store: EventStore, directory: Path) -> Iterator[EventBus]:
        """A second bus on another instance of ``store``'s data, as after a restart.

        Shutting the bus down closes that instance (a closable store's close is idempotent).
        """
        bus = EventBus(store=self.reopen_store(store, directory))
        yield bus
        bus.shutdown(timeout=_WAIT, drain=False)

    def test_a_projection_restarts_from_its_snapshot_exactly_after_its_offset(
        self, bus: EventBus, again: EventBus
    ) -> None:
        if not isinstance(bus.store, SnapshotStore):
            lacks(SnapshotStore)
        for amount in (1, 2, 3):
            bus.publish(Credited(amount))
        first = _projection(bus)
        assert first.restore() is False, "nothing saved yet"
        assert first.catch_up() == 3
        first.save_snapshot()
        covered = first.offset
        for amount in (10, 20):
            bus.publish(Credited(amount))
        second = _projection(again)
        assert second.restore() is True
        assert (second.state, second.offset) == (Balance(6, 3), covered)
        assert second.catch_up() == 2, "exactly the events after the snapshot"
        assert second.state == Balance(36, 5)
        assert second.catch_up() == 0
        assert second.offset == _last_offset(again)

    def test_a_durable_subscription_can_start_after_a_snapshot(self, bus: EventBus) -> None:
        if not isinstance(bus.store, SnapshotStore):
            lacks(SnapshotStore)
        for amount in (1, 2):
            bus.publish(Credited(amount))
        projection = _projection(bus)
        projection.catch_up()
        projection.save_snapshot()
        bus.publish(Credited(5))
        snapshot = bus.store.load_snapshot("balance")
        assert snapshot is not None
        seen: list[int] = []
        durable = bus.subscribe_durable(
            "after-snapshot",
            lambda event: seen.append(event.amount),
            event_type=Credited,
            start=snapshot.offset,
        )
        assert durable.drain(timeout=_WAIT)
        assert seen == [5]

    def test_a_projection_survives_compaction_up_to_its_snapshot(self, bus: EventBus) -> None:
        store = bus.store
        if not isinstance(store, CompactingStore):
            lacks(CompactingStore)
        for amount in (1, 2, 3):
            bus.publish(Credited(amount))
        bus.publish(ControlMessage("snapshot-start"))  # an event the projection ignores
        projection = _projection(bus)
        projection.catch_up()
        projection.save_snapshot()
        bus.publish(Credited(4))
        assert projection.offset != OLDEST
        with supported():
            assert store.compact(projection.offset, snapshots=["balance"]) == 4
        restored = _projection(bus)
        assert restored.restore()
        assert restored.catch_up() == 1
        assert restored.state == Balance(10, 4)
        fresh = Projection(bus, "fresh", Balance(), _fold)
        fresh.catch_up()
        assert fresh.state == Balance(4, 1), "only the remaining events are left"

    def test_a_conditional_publish_conflicts_with_another_buss_append(
        self, bus: EventBus, again: EventBus
    ) -> None:
        if not isinstance(bus.store, ConditionalAppendStore):
            lacks(ConditionalAppendStore)
        with supported():
            first = bus.publish(Credited(1), expected_offset=OLDEST)
        assert first is not None
        second = again.publish(Credited(2), expected_offset=first)
        with pytest.raises(AppendConflictError) as caught:
            bus.publish(Credited(3), expected_offset=first)
        assert caught.value.current == second
        assert [e.amount for e, _ in bus.replay_events()] == [1, 2]

    def test_the_materializer_applies_state_messages_from_the_store(
        self, bus: EventBus, again: EventBus
    ) -> None:
        store = bus.store
        if not isinstance(store, SnapshotStore):
            lacks(SnapshotStore)
        bus.publish(ChangeMessage.insert("user", "u1", {"name": "Ann"}))
        bus.publish(Credited(5))  # foreign to the materializer
        bus.publish(ChangeMessage.insert("user", "u2", {"name": "Cy"}))
        first = Materializer()
        assert first.catch_up(store) == 2
        assert first.offset == _last_offset(bus)
        first.save_snapshot(store, "users")
        bus.publish(ChangeMessage.delete("user", "u1"))
        bus.publish(ControlMessage("snapshot-end"))
        other = again.store
        assert isinstance(other, SnapshotStore)
        second = Materializer()
        assert second.load_snapshot(other, "users")
        assert second.offset == first.offset
        assert second.catch_up(other) == 2, "exactly the messages after the snapshot"
        assert second.collection("user").items() == [("u2", {"name": "Cy"})]


def _last_offset(bus: EventBus) -> object:
    store = bus.store
    assert store is not None
    return store.read(NEWEST).next
