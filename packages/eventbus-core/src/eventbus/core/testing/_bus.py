"""The bus-level guarantees every store must let the bus keep: the ``BusContract`` kit.

A backend subclasses :class:`BusContract` next to its ``StoreContract``: the same
``make_store``/``reopen_store`` factories, and optionally ``write_corrupt_record``.
Each test drives a real :class:`~eventbus.core.EventBus` over the store and checks one
guarantee of docs/guarantees.md: exact resume, a checkpoint that never passes a running
handler, selection by wire name before decoding, drain, and the shutdown deadline.

Every wait has a deadline; no test measures speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from eventbus.core._bus import EventBus
from eventbus.core._durable import DurableSubscription
from eventbus.core._exceptions import (
    LeaseLostError,
    StoreClosedError,
    StoreCorruptError,
    UnknownEventError,
    UpcastRegistrationError,
)
from eventbus.core._failures import HandlerFailure, PoisonPolicy
from eventbus.core._ids import new_event_id
from eventbus.core._ownership import SubscriptionState
from eventbus.core._store import (
    OLDEST,
    CheckpointStore,
    ClosableStore,
    EventRecord,
    EventStore,
    LeaseStore,
    Offset,
    Owner,
    StoredEvent,
)

from ._bus_es import EventSourcingBusContract

__all__ = ["BusContract"]

WAIT: float = 10.0
"""The deadline, in seconds, of every wait in the kit (never reached when things work)."""


@dataclasses.dataclass(frozen=True)
class Deposited:
    """The kit's main event."""

    __event_name__: ClassVar[str] = "eventbus.contract.Deposited"
    account: str
    amount: int


@dataclasses.dataclass(frozen=True)
class Withdrawn:
    """Another class on the same log, which a Deposited subscription must not decode."""

    __event_name__: ClassVar[str] = "eventbus.contract.Withdrawn"
    account: str
    amount: int


@dataclasses.dataclass(frozen=True)
class Movement:
    """A base class: a durable subscription to it receives its registered subclasses."""

    __event_name__: ClassVar[str] = "eventbus.contract.Movement"
    account: str


@dataclasses.dataclass(frozen=True)
class Transfer(Movement):
    """A subclass of :class:`Movement`."""

    __event_name__: ClassVar[str] = "eventbus.contract.Transfer"
    to: str


def raw_record(type_name: str, data: str) -> EventRecord:
    """A record as another program (or an old version) may have stored it."""
    return EventRecord(new_event_id(), type_name, data, datetime.now(UTC), {}, "contract")


class _Seen:
    """A handler that records what it got, and can be made to block."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(WAIT)
        with self._lock:
            self.events.append(event)


class BusContract(EventSourcingBusContract):
    """Pytest base class: the bus-level durable guarantees over one store implementation.

    Override :meth:`make_store` (and :meth:`reopen_store` for a store whose data outlives
    an instance; the default hands back the same instance). Override
    :meth:`write_corrupt_record` to prove that an unreadable record is handled by policy.
    """

    # -- what a backend provides ------------------------------------------------------

    def make_store(self, directory: Path) -> EventStore:
        """Return a new, empty store keeping its data under ``directory``."""
        raise NotImplementedError(f"{type(self).__name__} must override make_store().")

    def reopen_store(self, store: EventStore, directory: Path) -> EventStore:
        """Return another instance on the same data as the open ``store``."""
        return store

    def write_corrupt_record(self, store: EventStore, directory: Path, type_name: str) -> None:
        """Append a record of ``type_name`` whose metadata the store cannot read back."""
        pytest.skip(f"{type(self).__name__} does not override write_corrupt_record().")

    def write_nameless_record(self, store: EventStore, directory: Path) -> None:
        """Append a record whose wire name cannot be read (another writer's, say); by
        default an unreadable record with an empty name."""
        self.write_corrupt_record(store, directory, "")

    # -- fixtures ----------------------------------------------------------------------

    @pytest.fixture
    def directory(self, tmp_path: Path) -> Path:
        """Where the test's store keeps its data."""
        return tmp_path

    @pytest.fixture
    def store(self, directory: Path) -> Iterator[EventStore]:
        """A fresh store, closed after the test."""
        store = self.make_store(directory)
        assert isinstance(store, CheckpointStore), "BusContract needs a CheckpointStore"
        yield store
        close = store.close if isinstance(store, ClosableStore) else _nothing
        close()

    @pytest.fixture
    def failures(self) -> list[HandlerFailure]:
        """What the buses of a test reported to their error hook."""
        return []

    @pytest.fixture
    def bus(self, store: EventStore, failures: list[HandlerFailure]) -> Iterator[EventBus]:
        """A bus over ``store``; shut down (without waiting) after the test."""
        bus = EventBus(store=store, on_error=failures.append)
        yield bus
        bus.shutdown(timeout=WAIT, drain=False)

    # -- exact resume, checkpoints -------------------------------------------------------

    def test_a_restarted_subscription_resumes_exactly_after_its_checkpoint(
        self, store: EventStore, directory: Path
    ) -> None:
        first = EventBus(store=store)
        for n in range(5):
            first.publish(Deposited("a", n))
        seen = _Seen()
        durable = first.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        assert durable.stop(WAIT)
        for n in range(5, 8):
            first.publish(Deposited("a", n))
        again = _Seen()
        second = EventBus(store=self.reopen_store(store, directory))
        resumed = second.subscribe_durable("ledger", again, event_type=Deposited)
        assert resumed.drain(timeout=WAIT)
        assert [e.amount for e in seen.events] == [0, 1, 2, 3, 4]
        assert [e.amount for e in again.events] == [5, 6, 7]
        second.shutdown(WAIT, drain=False)

    def test_the_checkpoint_never_passes_a_running_handler(
        self, bus: EventBus, store: EventStore
    ) -> None:
        assert isinstance(store, CheckpointStore)
        first = bus.publish(Deposited("a", 1))
        bus.publish(Deposited("a", 2))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        seen.gate = threading.Event()
        seen.entered.clear()
        blocked = bus.publish(Deposited("a", 3))
        assert seen.entered.wait(WAIT)
        saved = store.load_checkpoint("ledger")
        assert saved is not None
        assert saved != blocked
        seen.gate.set()
        assert durable.drain(timeout=WAIT)
        assert durable.stop(WAIT)
        assert store.load_checkpoint("ledger") == blocked
        assert first is not None

    def test_concurrent_publish_async_returns_each_events_own_offset(self, bus: EventBus) -> None:
        # Many tasks awaiting publish_async at once: the path of the store's own
        # append_async when it has one (which may batch them), else of worker threads.
        async def publisher(task: int) -> list[tuple[int, Offset | None]]:
            amounts = range(task * 10, task * 10 + 10)
            return [(n, await bus.publish_async(Deposited(f"t{task}", n))) for n in amounts]

        async def everyone() -> list[list[tuple[int, Offset | None]]]:
            return list(await asyncio.gather(*(publisher(task) for task in range(8))))

        published = asyncio.run(everyone())
        stored = {e.offset: json.loads(e.data)["amount"] for e in bus.replay()}
        assert len(stored) == 80
        for mine in published:
            assert [stored[offset] for _, offset in mine if offset is not None] == [
                n for n, _ in mine
            ], "an offset publish_async returned is not its own event's"
        log_order = list(stored.values())
        for mine in published:
            own = [log_order.index(n) for n, _ in mine]
            assert own == sorted(own), "one task's events must keep their order"
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        assert [e.amount for e in seen.events] == log_order

    # -- selection before decoding --------------------------------------------------------

    def test_another_classs_undecodable_record_is_never_decoded(
        self, bus: EventBus, store: EventStore
    ) -> None:
        bus.register(Withdrawn)
        store.append(raw_record(Withdrawn.__event_name__, json.dumps({"amount": "lots"})))
        bus.publish(Deposited("a", 1))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.wait_caught_up(WAIT)
        assert durable.running
        assert durable.error is None
        assert [e.amount for e in seen.events] == [1]

    def test_another_classs_failing_upcaster_is_never_run(
        self, bus: EventBus, store: EventStore
    ) -> None:
        runs: list[object] = []

        def broken(old: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - never runs
            runs.append(old)  # the test asserts that it never runs
            raise ValueError("this upcaster is broken")

        bus.register(Withdrawn)
        bus.register_upcaster("eventbus.contract.Withdrawn.v0", Withdrawn.__event_name__, broken)
        store.append(raw_record("eventbus.contract.Withdrawn.v0", "{}"))
        bus.publish(Deposited("a", 1))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        assert durable.running
        assert runs == []
        assert [e.amount for e in seen.events] == [1]

    def test_unknown_wire_names_are_reported_once_and_counted(
        self, bus: EventBus, store: EventStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        for _ in range(3):
            store.append(raw_record("nobody.claims.this", "{}"))
        last = bus.publish(Deposited("a", 1))
        seen = _Seen()
        with caplog.at_level(logging.WARNING, logger="eventbus"):
            durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
            assert durable.drain(timeout=WAIT)
        assert durable.unknown_names == {"nobody.claims.this": 3}
        warnings = [r for r in caplog.records if "nobody.claims.this" in r.getMessage()]
        assert len(warnings) == 1
        assert "ledger" in warnings[0].getMessage()
        assert [e.amount for e in seen.events] == [1]
        assert durable.stop(WAIT)
        assert isinstance(store, CheckpointStore)
        assert store.load_checkpoint("ledger") == last

    def test_unknown_wire_names_stop_the_subscription_when_asked(
        self, bus: EventBus, store: EventStore
    ) -> None:
        store.append(raw_record("nobody.claims.this", "{}"))
        bus.publish(Deposited("a", 1))
        seen = _Seen()
        durable = bus.subscribe_durable(
            "ledger", seen, event_type=Deposited, on_unknown=PoisonPolicy.ABORT
        )
        assert not durable.wait_caught_up(WAIT)
        assert isinstance(durable.error, UnknownEventError)
        assert "nobody.claims.this" in str(durable.error)
        assert seen.events == []

    def test_registering_what_a_running_subscription_passed_over_is_refused(
        self, bus: EventBus, store: EventStore
    ) -> None:
        store.append(raw_record("eventbus.contract.Deposited.v0", json.dumps({"account": "a"})))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        with pytest.raises(UpcastRegistrationError, match="'ledger'"):
            bus.register_upcaster(
                "eventbus.contract.Deposited.v0",
                Deposited.__event_name__,
                lambda old: {**old, "amount": 0},
            )
        assert seen.events == []

    def test_upcasters_registered_before_subscribing_deliver_old_records(
        self, bus: EventBus, store: EventStore
    ) -> None:
        store.append(raw_record("eventbus.contract.Deposited.v0", json.dumps({"account": "a"})))
        bus.register_upcaster(
            "eventbus.contract.Deposited.v0",
            Deposited.__event_name__,
            lambda old: {**old, "amount": 0},
        )
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        assert seen.events == [Deposited("a", 0)]

    def test_a_base_class_subscription_receives_registered_subclasses(self, bus: EventBus) -> None:
        plain: list[Movement] = []
        bus.subscribe(Movement, plain.append)
        bus.register(Transfer)
        bus.publish(Transfer("a", to="b"))
        bus.publish(Movement("c"))
        bus.publish(Deposited("a", 1))
        seen = _Seen()
        durable = bus.subscribe_durable("movements", seen, event_type=Movement)
        assert durable.drain(timeout=WAIT)
        assert seen.events == [Transfer("a", to="b"), Movement("c")]
        assert plain == seen.events

    # -- unreadable records ---------------------------------------------------------------

    def test_an_unreadable_record_is_skipped_by_policy_and_the_rest_delivered(
        self, bus: EventBus, store: EventStore, directory: Path, failures: list[HandlerFailure]
    ) -> None:
        bus.publish(Deposited("a", 1))
        self.write_corrupt_record(store, directory, Deposited.__event_name__)
        bus.publish(Deposited("a", 2))
        seen = _Seen()
        durable = bus.subscribe_durable(
            "ledger", seen, event_type=Deposited, on_poison=PoisonPolicy.SKIP
        )
        assert durable.drain(timeout=WAIT)
        assert [e.amount for e in seen.events] == [1, 2]
        corrupt = [f.exception for f in failures if isinstance(f.exception, StoreCorruptError)]
        assert len(corrupt) == 1
        assert corrupt[0].offset is not None
        assert corrupt[0].offset in str(corrupt[0])

    @pytest.mark.parametrize("name", ["of its class", "none"])
    def test_an_unreadable_record_goes_to_the_dead_letter_handler(
        self, bus: EventBus, store: EventStore, directory: Path, name: str
    ) -> None:
        # A record without a readable name (another writer's, say) cannot be routed by
        # name: the poison policy decides about it too, not the unknown-name policy.
        if name == "none":
            self.write_nameless_record(store, directory)
        else:
            self.write_corrupt_record(store, directory, Deposited.__event_name__)
        bus.publish(Deposited("a", 2))
        dead: list[tuple[StoredEvent, BaseException]] = []
        seen = _Seen()
        durable = bus.subscribe_durable(
            "ledger", seen, event_type=Deposited, on_poison=lambda s, e: dead.append((s, e))
        )
        assert durable.drain(timeout=WAIT)
        assert [e.amount for e in seen.events] == [2]
        assert len(dead) == 1
        stored, error = dead[0]
        assert stored.type_name == ("" if name == "none" else Deposited.__event_name__)
        assert isinstance(error, StoreCorruptError)
        assert error.offset == stored.offset
        assert durable.unknown_names == {}

    def test_an_unreadable_record_stops_an_aborting_subscription_with_its_error(
        self, bus: EventBus, store: EventStore, directory: Path
    ) -> None:
        bus.publish(Deposited("a", 1))
        self.write_corrupt_record(store, directory, Deposited.__event_name__)
        bus.publish(Deposited("a", 2))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert not durable.drain(timeout=WAIT)
        assert isinstance(durable.error, StoreCorruptError)
        assert [e.amount for e in seen.events] == [1]

    def test_an_unreadable_record_of_an_unknown_name_counts_as_unknown(
        self, bus: EventBus, store: EventStore, directory: Path
    ) -> None:
        self.write_corrupt_record(store, directory, "nobody.claims.this")
        bus.publish(Deposited("a", 2))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        assert durable.running
        assert durable.unknown_names == {"nobody.claims.this": 1}
        assert [e.amount for e in seen.events] == [2]

    def test_another_classs_unreadable_record_is_passed_over(
        self, bus: EventBus, store: EventStore, directory: Path
    ) -> None:
        bus.register(Withdrawn)
        self.write_corrupt_record(store, directory, Withdrawn.__event_name__)
        bus.publish(Deposited("a", 2))
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        assert durable.drain(timeout=WAIT)
        assert durable.running
        assert [e.amount for e in seen.events] == [2]

    # -- drain and the shutdown deadline --------------------------------------------------

    def test_drain_waits_until_the_handler_has_seen_everything_stored(self, bus: EventBus) -> None:
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)
        offsets = bus.publish_many([Deposited("a", n) for n in range(20)])
        assert durable.drain(timeout=WAIT)
        assert [e.amount for e in seen.events] == list(range(20))
        assert durable.position == offsets[-1]
        assert durable.drain(until=offsets[3], timeout=WAIT)

    def test_adrain_waits_from_asyncio_code(self, bus: EventBus) -> None:
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited)

        async def main() -> bool:
            await bus.publish_async(Deposited("a", 1))
            return await durable.adrain(timeout=WAIT)

        assert asyncio.run(main())
        assert [e.amount for e in seen.events] == [1]

    def test_closing_the_bus_drains_its_durable_subscriptions(
        self, store: EventStore, directory: Path
    ) -> None:
        bus = EventBus(store=self.reopen_store(store, directory))
        seen = _Seen()
        bus.subscribe_durable("ledger", seen, event_type=Deposited)
        for n in range(10):
            bus.publish(Deposited("a", n))
        bus.close(timeout=WAIT)
        assert [e.amount for e in seen.events] == list(range(10))

    def test_wait_caught_up_is_false_for_a_stopped_subscription(self, bus: EventBus) -> None:
        def fails(event: Deposited) -> None:
            raise ValueError("no")

        bus.publish(Deposited("a", 1))
        durable = bus.subscribe_durable("ledger", fails, max_attempts=1, retry_backoff=0.001)
        assert not durable.wait_caught_up(WAIT)
        assert not durable.running
        assert not durable.drain(timeout=WAIT)

    @pytest.mark.parametrize("kind", ["sync", "coroutine"])
    def test_shutdown_returns_by_its_deadline_while_a_handler_blocks(
        self, store: EventStore, kind: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        release = threading.Event()
        entered = threading.Event()

        def blocks(event: Deposited) -> None:
            entered.set()
            release.wait(WAIT)

        async def blocks_async(event: Deposited) -> None:
            entered.set()
            await asyncio.sleep(WAIT)  # cancelled by the shutdown deadline

        handler: Callable[..., Any] = blocks if kind == "sync" else blocks_async
        failures: list[HandlerFailure] = []
        bus = EventBus(store=store, on_error=failures.append)
        durable = bus.subscribe_durable("stuck", handler, event_type=Deposited)
        bus.publish(Deposited("a", 1))
        assert entered.wait(WAIT)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="eventbus"):
            finished = bus.shutdown(timeout=0.5)
        elapsed = time.monotonic() - started
        release.set()
        assert not finished
        # A deadline, not a speed: the call must not wait for the handler (WAIT seconds).
        assert elapsed < 0.5 + WAIT / 4
        if kind == "sync":
            assert any("'stuck'" in r.getMessage() for r in caplog.records)
        # The handler left behind finishes against a closed store: that is no failure.
        assert durable.join(WAIT)
        assert not [f for f in failures if isinstance(f.exception, StoreClosedError)]

    def test_a_subscription_id_has_one_owner_per_bus(self, bus: EventBus) -> None:
        first = bus.subscribe_durable("ledger", _Seen(), event_type=Deposited)
        assert bus.durable_subscriptions == {"ledger": first}
        assert first.stop(WAIT)
        assert bus.durable_subscriptions == {}
        second = bus.subscribe_durable("ledger", _Seen(), event_type=Deposited)
        assert isinstance(second, DurableSubscription)

    # -- one owner per id across buses (stores with LeaseStore) ---------------------------

    def test_a_second_bus_stands_by_and_takes_over_when_the_owner_stops(
        self, bus: EventBus, store: EventStore, directory: Path
    ) -> None:
        _needs_leases(store)
        other = EventBus(store=self.reopen_store(store, directory))
        try:
            first_seen, second_seen = _Seen(), _Seen()
            first = bus.subscribe_durable("ledger", first_seen, event_type=Deposited)
            second = other.subscribe_durable("ledger", second_seen, event_type=Deposited)
            assert first.state is SubscriptionState.ACTIVE
            assert second.state is SubscriptionState.STANDBY
            bus.publish(Deposited("a", 1))
            assert first.drain(timeout=WAIT)
            assert first.stop(WAIT)
            assert second.wait_active(WAIT), "the standby did not take over"
            other.publish(Deposited("a", 2))
            assert second.drain(timeout=WAIT)
            assert [e.amount for e in first_seen.events] == [1]
            assert [e.amount for e in second_seen.events] == [2]
        finally:
            other.shutdown(WAIT, drain=False)

    def test_an_owner_whose_lease_is_taken_reports_it_and_stands_by(
        self, bus: EventBus, store: EventStore, failures: list[HandlerFailure]
    ) -> None:
        leases = _needs_leases(store)
        seen = _Seen()
        # The thief never renews: after a ttl this owner rightly takes the lease back, so
        # the ttl must outlast the checks below on a loaded host (and over HTTP).
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited, lease_ttl=3.0)
        bus.publish(Deposited("a", 1))
        assert durable.drain(timeout=WAIT)
        saved = leases.load_checkpoint("ledger")
        thief = Owner("elsewhere", 1, "thief")
        assert leases.claim_lease("ledger", thief, leases.read_lease("ledger")) is not None
        _soon(lambda: durable.state is SubscriptionState.STANDBY, "the owner noticed the loss")
        assert isinstance(durable.error, LeaseLostError)
        # The error hook is told from the lease thread just after the state flipped.
        _soon(
            lambda: any(isinstance(f.exception, LeaseLostError) for f in failures),
            "the loss reached the error hook",
        )
        bus.publish(Deposited("a", 2))
        assert not durable.drain(timeout=0), "a standby drains nothing"
        assert leases.load_checkpoint("ledger") == saved, "nothing written after the loss"
        assert [e.amount for e in seen.events] == [1]

    def test_a_silent_owners_lease_is_taken_over_after_the_ttl(
        self, bus: EventBus, store: EventStore
    ) -> None:
        leases = _needs_leases(store)
        silent = leases.claim_lease("ledger", Owner("elsewhere", 1, "silent"), None)
        assert silent is not None
        bus.publish(Deposited("a", 1))
        started = time.monotonic()
        seen = _Seen()
        durable = bus.subscribe_durable("ledger", seen, event_type=Deposited, lease_ttl=0.5)
        assert durable.state is SubscriptionState.STANDBY
        assert durable.wait_active(WAIT)
        assert time.monotonic() - started >= 0.5, "took over before the ttl passed"
        assert durable.drain(timeout=WAIT)
        assert [e.amount for e in seen.events] == [1]
        with pytest.raises(LeaseLostError):
            leases.save_checkpoint_fenced(silent, OLDEST)


def _soon(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds; fail after WAIT seconds, saying what was awaited."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def _needs_leases(store: EventStore) -> LeaseStore:
    if not isinstance(store, LeaseStore):
        pytest.skip("the store does not implement LeaseStore")
    return store


def _nothing() -> None:
    """Closes a store that has nothing to close."""
