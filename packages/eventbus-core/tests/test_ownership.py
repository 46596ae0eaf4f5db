"""One owner per durable subscription id: standby, takeover, fencing, lost leases.

Two buses on one MemoryStore are two owners, as two processes on one file would be;
the multi-process versions (SIGKILL, SIGSTOP) run in the SQLite package's tests.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from eventbus.core import (
    OLDEST,
    Checkpoint,
    DurableSubscription,
    EventBus,
    HandlerFailure,
    Lease,
    LeaseLostError,
    MemoryStore,
    Owner,
    StoreClosedError,
    StoreUnavailableError,
    SubscriptionInUseError,
    SubscriptionState,
)
from eventbus.core._ownership import SoleOwnership

from ._support import (
    WAIT,
    CheckpointingPlainStore,
    OrderPlaced,
    eventually,
)


class Calls:
    """Which bus handled which order, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def handler(self, name: str) -> Callable[[OrderPlaced], None]:
        def handle(event: OrderPlaced) -> None:
            with self.lock:
                self.seen.append((name, event.order_id))

        return handle

    def ids(self) -> list[str]:
        with self.lock:
            return [order for _, order in self.seen]

    def by(self, name: str) -> list[str]:
        with self.lock:
            return [order for who, order in self.seen if who == name]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def failures() -> list[HandlerFailure]:
    return []


@pytest.fixture
def buses(store: MemoryStore, failures: list[HandlerFailure]) -> Iterator[list[EventBus]]:
    made = [EventBus(store=store, on_error=failures.append) for _ in range(3)]
    yield made
    for bus in made:
        bus.shutdown(timeout=WAIT)


def publish(bus: EventBus, *ids: str) -> None:
    for order_id in ids:
        bus.publish(OrderPlaced(order_id, 1.0))


def test_the_first_subscriber_owns_the_id_and_the_others_stand_by(
    buses: list[EventBus], store: MemoryStore
) -> None:
    calls = Calls()
    first = buses[0].subscribe_durable("billing", calls.handler("first"))
    second = buses[1].subscribe_durable("billing", calls.handler("second"))
    third = buses[2].subscribe_durable("billing", calls.handler("third"))
    assert first.state is SubscriptionState.ACTIVE
    assert second.state is SubscriptionState.STANDBY
    assert third.state is SubscriptionState.STANDBY
    assert second.running, "a standby runs: it is waiting to take over"
    assert first.owner != second.owner
    assert (first.owner.host, first.owner.pid) == (socket.gethostname(), os.getpid())
    lease = store.read_lease("billing")
    assert lease is not None
    assert lease.owner == first.owner
    publish(buses[2], "a", "b", "c")
    assert first.drain(timeout=WAIT)
    assert calls.seen == [("first", "a"), ("first", "b"), ("first", "c")]
    assert second.drain(timeout=WAIT) is False, "a standby has nothing to drain"
    started = time.monotonic()
    assert second.wait_active(timeout=0.2) is False
    assert time.monotonic() - started >= 0.2
    assert first.wait_active(timeout=0) is True
    assert repr(SubscriptionState.STANDBY) == "SubscriptionState.STANDBY"


def test_a_standby_takes_over_at_once_when_the_owner_stops(
    buses: list[EventBus], store: MemoryStore
) -> None:
    calls = Calls()
    first = buses[0].subscribe_durable("billing", calls.handler("first"), lease_ttl=30)
    second = buses[1].subscribe_durable("billing", calls.handler("second"), lease_ttl=30)
    publish(buses[2], "a", "b")
    assert first.drain(timeout=WAIT)
    stopped_at = time.monotonic()
    assert first.stop(timeout=WAIT)
    assert first.state is SubscriptionState.STOPPED
    assert second.wait_active(timeout=WAIT)
    assert time.monotonic() - stopped_at < 5, "a release must not wait for the 30 s ttl"
    assert first.wait_active(timeout=WAIT) is False, "a stopped subscription owns nothing"
    publish(buses[2], "c")
    assert second.drain(timeout=WAIT)
    assert calls.ids() == ["a", "b", "c"], "resumes exactly after the released checkpoint"
    assert calls.by("second") == ["c"]
    lease = store.read_lease("billing")
    assert lease is not None
    assert lease.owner == second.owner


def test_a_standby_takes_over_after_the_ttl_when_the_owner_stops_renewing(
    buses: list[EventBus], store: MemoryStore
) -> None:
    dead = Owner("elsewhere", 1, "dead")
    claimed = store.claim_lease("billing", dead, None)
    assert claimed is not None
    store.save_checkpoint_fenced(claimed, OLDEST)
    calls = Calls()
    publish(buses[0], "a")
    started = time.monotonic()
    sub = buses[1].subscribe_durable("billing", calls.handler("standby"), lease_ttl=0.5)
    assert sub.state is SubscriptionState.STANDBY
    eventually(lambda: calls.ids() == ["a"])
    assert time.monotonic() - started >= 0.5, "took over before the ttl ran out"
    lease = store.read_lease("billing")
    assert lease is not None
    assert lease.owner == sub.owner
    assert lease.token > claimed.token


def test_a_renewing_owner_keeps_its_lease_past_many_ttls(
    buses: list[EventBus], store: MemoryStore
) -> None:
    calls = Calls()
    # A renewal every ttl / 3: with a 0.3 s ttl, one renewal late by 0.2 s on a loaded
    # host let the standby rightly take over. 1 s leaves it 0.67 s.
    owner = buses[0].subscribe_durable("billing", calls.handler("owner"), lease_ttl=1.0)
    standby = buses[1].subscribe_durable("billing", calls.handler("standby"), lease_ttl=1.0)
    first = store.read_lease("billing")
    assert first is not None
    eventually(lambda: (store.read_lease("billing") or first).beat >= 8)  # ~2.7 s: 2.7 ttls
    assert owner.state is SubscriptionState.ACTIVE
    assert standby.state is SubscriptionState.STANDBY
    current = store.read_lease("billing")
    assert current is not None
    assert current.token == first.token


def test_an_owner_whose_lease_was_taken_stops_handling_and_reports_it(
    buses: list[EventBus], store: MemoryStore, failures: list[HandlerFailure]
) -> None:
    calls = Calls()
    # The intruder never renews: after a ttl the standby takes its lease, so the ttl
    # must outlast the checks below on a loaded machine (the loss is seen at ttl / 3).
    sub = buses[0].subscribe_durable("billing", calls.handler("old"), lease_ttl=3.0)
    publish(buses[1], "a")
    assert sub.drain(timeout=WAIT)
    current = store.read_lease("billing")
    intruder = store.claim_lease("billing", Owner("elsewhere", 2, "new"), current)
    assert intruder is not None
    eventually(lambda: sub.state is SubscriptionState.STANDBY)
    assert isinstance(sub.error, LeaseLostError)
    assert "elsewhere:2:new" in str(sub.error)
    # Reported from the lease thread after the state flipped: wait for it.
    eventually(lambda: any(isinstance(f.exception, LeaseLostError) for f in failures))
    assert sub.running, "it stands by again"
    publish(buses[1], "b")
    time.sleep(0.3)  # not the proof: the lease record below is
    assert calls.ids() == ["a"]
    assert store.load_checkpoint("billing") == store.read().events[0].offset
    store.release_lease(intruder)
    eventually(lambda: calls.ids() == ["a", "b"])
    assert sub.state is SubscriptionState.ACTIVE


def test_a_lost_lease_reads_as_the_error_as_soon_as_the_state_reads_standby(
    buses: list[EventBus],
    store: MemoryStore,
    failures: list[HandlerFailure],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The report of the loss runs the bus's error hook (user code) outside the lease
    # lock, so it may come after the state flipped; the error it names may not.
    held = threading.Event()
    go_on = threading.Event()
    report = DurableSubscription._lost

    def held_report(self: DurableSubscription, exc: LeaseLostError) -> None:
        held.set()
        assert go_on.wait(WAIT)
        report(self, exc)

    monkeypatch.setattr(DurableSubscription, "_lost", held_report)
    sub = buses[0].subscribe_durable("billing", Calls().handler("old"), lease_ttl=0.6)
    current = store.read_lease("billing")
    assert store.claim_lease("billing", Owner("elsewhere", 2, "new"), current) is not None
    assert held.wait(WAIT)
    assert sub.state is SubscriptionState.STANDBY
    assert isinstance(sub.error, LeaseLostError)
    assert "elsewhere:2:new" in str(sub.error)
    go_on.set()
    eventually(lambda: any(isinstance(f.exception, LeaseLostError) for f in failures))


def test_a_lost_lease_mid_retries_leaves_the_event_to_the_next_owner(
    buses: list[EventBus], store: MemoryStore
) -> None:
    attempts: list[str] = []
    taken = threading.Event()

    def flaky(event: OrderPlaced) -> None:
        attempts.append(event.order_id)
        if not taken.is_set():
            current = store.read_lease("billing")
            assert store.claim_lease("billing", Owner("x", 3, "thief"), current) is not None
            taken.set()
        raise RuntimeError("try again")

    # The thief never renews: the ttl must outlast the wait below, or this owner
    # takes the lease back and rightly retries.
    sub = buses[0].subscribe_durable(
        "billing", flaky, lease_ttl=3.0, max_attempts=1000, retry_backoff=0.05
    )
    publish(buses[1], "a")
    eventually(lambda: sub.state is SubscriptionState.STANDBY)
    count = len(attempts)
    time.sleep(0.3)  # not the proof: the checkpoint below is
    assert len(attempts) == count, "no retry after the lease was lost"
    assert store.load_checkpoint("billing") is OLDEST, "the event stays for the next owner"


def test_a_standby_stops_promptly_and_never_owned_anything(
    buses: list[EventBus], store: MemoryStore
) -> None:
    calls = Calls()
    buses[0].subscribe_durable("billing", calls.handler("owner"))
    standby = buses[1].subscribe_durable("billing", calls.handler("standby"))
    started = time.monotonic()
    assert standby.stop(timeout=WAIT)
    assert time.monotonic() - started < 2
    assert standby.state is SubscriptionState.STOPPED
    lease = store.read_lease("billing")
    assert lease is not None
    assert not lease.released, "stopping a standby must not release the owner's lease"


def test_a_store_without_leases_refuses_a_second_owner_in_this_process() -> None:
    store = CheckpointingPlainStore()
    first, second = EventBus(store=store), EventBus(store=store)
    sub = first.subscribe_durable("billing", Calls().handler("a"))
    with pytest.raises(SubscriptionInUseError) as caught:
        second.subscribe_durable("billing", Calls().handler("b"))
    assert "LeaseStore" in str(caught.value)
    assert "CheckpointingPlainStore" in str(caught.value)
    assert sub.state is SubscriptionState.ACTIVE
    second.subscribe_durable("other-id", Calls().handler("b"))  # other ids are free
    assert sub.stop(timeout=WAIT)
    again = second.subscribe_durable("billing", Calls().handler("b"))
    assert again.state is SubscriptionState.ACTIVE
    first.close()
    second.close()


@pytest.mark.parametrize("ttl", [0, -1, math.inf, math.nan, True])
def test_lease_ttl_must_be_a_positive_finite_number(buses: list[EventBus], ttl: float) -> None:
    with pytest.raises(ValueError, match="lease_ttl"):
        buses[0].subscribe_durable("billing", Calls().handler("a"), lease_ttl=ttl)


def test_owner_text_round_trips_and_bad_text_is_refused() -> None:
    owner = Owner("host.example:8", 123, "abc")
    assert Owner.parse(str(owner)) == owner
    for bad in ("", "host", "host:1", "host:x:abc", ":1:abc", "host:1:"):
        with pytest.raises(ValueError, match="host:pid:instance"):
            Owner.parse(bad)


class FlakyLeases(MemoryStore):
    """A MemoryStore whose lease calls fail while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = threading.Event()
        self.release_error: Exception | None = None

    def renew_lease(self, lease: Lease) -> Lease:
        if self.failing.is_set():
            raise StoreUnavailableError("the lease table is busy")
        return super().renew_lease(lease)

    def release_lease(self, lease: Lease) -> None:
        if self.release_error is not None:
            raise self.release_error
        super().release_lease(lease)


def test_an_owner_that_cannot_renew_pauses_and_resumes_when_the_store_recovers() -> None:
    store = FlakyLeases()
    failures: list[HandlerFailure] = []
    bus = EventBus(store=store, on_error=failures.append)
    calls = Calls()
    sub = bus.subscribe_durable("billing", calls.handler("owner"), lease_ttl=0.3)
    store.failing.set()
    eventually(lambda: sub.state is SubscriptionState.STANDBY)  # its lease ran out
    assert any(isinstance(f.exception, StoreUnavailableError) for f in failures)
    publish(bus, "a")
    time.sleep(0.2)  # not the proof: the handled list below is
    assert calls.ids() == [], "no event handled without a valid lease"
    store.failing.clear()
    eventually(lambda: calls.ids() == ["a"])
    assert sub.state is SubscriptionState.ACTIVE
    assert sub.error is None, "nobody took the lease: nothing was lost"
    bus.close()


@pytest.mark.parametrize("error", [StoreUnavailableError("gone"), StoreClosedError("closed")])
def test_a_failed_release_is_reported_unless_the_store_was_closed(error: Exception) -> None:
    store = FlakyLeases()
    failures: list[HandlerFailure] = []
    bus = EventBus(store=store, on_error=failures.append)
    sub = bus.subscribe_durable("billing", Calls().handler("owner"))
    store.release_error = error
    assert sub.stop(timeout=WAIT)
    reported = [f.exception for f in failures]
    assert reported == ([] if isinstance(error, StoreClosedError) else [error])
    bus.close()


class CountingCheckpoints(MemoryStore):
    """Records every fenced checkpoint write and who made it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int, Checkpoint]] = []
        self.released: list[Lease] = []

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        super().save_checkpoint_fenced(lease, offset)
        self.writes.append((lease.token, offset))

    def release_lease(self, lease: Lease) -> None:
        super().release_lease(lease)
        self.released.append(lease)


def test_checkpoints_are_written_fenced_with_the_current_token() -> None:
    store = CountingCheckpoints()
    bus = EventBus(store=store)
    sub = bus.subscribe_durable("billing", Calls().handler("owner"))
    publish(bus, "a", "b")
    assert sub.drain(timeout=WAIT)
    lease = store.read_lease("billing")
    assert lease is not None
    assert [token for token, _ in store.writes] == [lease.token] * len(store.writes)
    assert store.writes[0][1] is OLDEST
    assert store.writes[-1][1] == store.read().events[-1].offset
    bus.close()
    assert [lease.token for lease in store.released] == [lease.token], (
        "closing the bus hands the id over, before it closes the store"
    )


def test_subscribe_fails_cleanly_when_the_first_checkpoint_cannot_be_saved() -> None:
    class Refusing(MemoryStore):
        def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
            raise StoreUnavailableError("disk full")

    store = Refusing()
    bus = EventBus(store=store)
    with pytest.raises(StoreUnavailableError, match="disk full"):
        bus.subscribe_durable("billing", Calls().handler("owner"))
    lease = store.read_lease("billing")
    assert lease is not None
    assert lease.released, "a failed subscribe gives its lease back"
    assert bus.durable_subscriptions == {}
    bus.close()


class SlowFence(MemoryStore):
    """Holds fenced writes back until a renewal was refused: both see the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.renew_refused = threading.Event()
        self.hold_saves = False
        self.renewals = threading.Event()  # cleared: renewals wait until it is set
        self.renewals.set()

    def renew_lease(self, lease: Lease) -> Lease:
        assert self.renewals.wait(WAIT)
        try:
            return super().renew_lease(lease)
        except LeaseLostError:
            self.renew_refused.set()
            raise

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        if self.hold_saves:
            assert self.renew_refused.wait(WAIT)
        super().save_checkpoint_fenced(lease, offset)


def test_a_refused_checkpoint_write_and_a_refused_renewal_report_one_loss() -> None:
    store = SlowFence()
    failures: list[HandlerFailure] = []
    bus = EventBus(store=store, on_error=failures.append)
    calls = Calls()
    # A ttl the test outlasts: the thief never renews, and the old owner must not take
    # the lease back (and checkpoint 'b' rightly) before the checks below.
    sub = bus.subscribe_durable("billing", calls.handler("old"), lease_ttl=3.0)
    publish(bus, "a")
    assert sub.drain(timeout=WAIT)
    saved = store.load_checkpoint("billing")
    store.hold_saves = True
    # No renewal until 'b' was handled: one due right after the theft would see the
    # loss first, and 'b' would wait for the next owner instead.
    store.renewals.clear()
    thief = store.claim_lease("billing", Owner("x", 4, "thief"), store.read_lease("billing"))
    assert thief is not None
    publish(bus, "b")  # handled in the window before the lease thread notices
    eventually(lambda: calls.ids() == ["a", "b"])
    store.renewals.set()
    eventually(lambda: sub.state is SubscriptionState.STANDBY)
    store.hold_saves = False
    eventually(lambda: sub.error is not None)
    time.sleep(0.2)  # not the proof: a second report would have come by now
    lost = [f for f in failures if isinstance(f.exception, LeaseLostError)]
    assert len(lost) == 1, lost
    assert store.load_checkpoint("billing") == saved, "the late owner's write was fenced off"
    bus.close()


class LosesTheRace(MemoryStore):
    """The first standby claim loses to a rival that claims the same record first."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: Lease | None = None

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        if self.rival is None and seen is not None:
            self.rival = super().claim_lease(subscription_id, Owner("r", 5, "rival"), seen)
        return super().claim_lease(subscription_id, owner, seen)


def test_a_standby_that_loses_a_claim_watches_the_winner() -> None:
    store = LosesTheRace()
    dead = store.claim_lease("billing", Owner("d", 6, "dead"), None)
    assert dead is not None
    store.save_checkpoint_fenced(dead, OLDEST)
    bus = EventBus(store=store)
    # The rival never renews: the ttl must outlast the check below on a loaded machine
    # (0.3 s left 0.2 s for the test thread to wake from its sleep).
    sub = bus.subscribe_durable("billing", Calls().handler("standby"), lease_ttl=1.0)
    eventually(lambda: store.rival is not None)
    time.sleep(0.1)  # not the proof: the lease record below is
    assert sub.state is SubscriptionState.STANDBY, "the rival renews nothing, yet it won"
    eventually(lambda: sub.state is SubscriptionState.ACTIVE)  # the rival's ttl ran out
    lease = store.read_lease("billing")
    assert store.rival is not None
    assert lease is not None
    assert lease.token == store.rival.token + 1
    bus.close()


def test_sole_ownership_is_active_until_stopped() -> None:
    sole = SoleOwnership("billing", MemoryStore())
    stopping = threading.Event()
    assert sole.wait_active(stopping)
    assert sole.state is SubscriptionState.ACTIVE
    stopping.set()
    assert not sole.wait_active(stopping)
