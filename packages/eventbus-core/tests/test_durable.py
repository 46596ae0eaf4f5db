"""Durable subscriptions: ordered, checkpointed, resumable, with explicit poison policies."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    BusClosedError,
    BusUsageError,
    Checkpoint,
    DurableSubscription,
    Envelope,
    EventBus,
    EventRecord,
    HandlerFailure,
    MemoryStore,
    OffsetError,
    PoisonEventError,
    PoisonPolicy,
    RegistrationError,
    StoredEvent,
    StoreUnavailableError,
    SubscriptionInUseError,
    SubscriptionState,
)

from ._support import (
    V1,
    V2,
    WAIT,
    CheckpointingPlainStore,
    OrderPlaced,
    OrderShipped,
    PlainStore,
    eventually,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: OrderPlaced) -> None:
        with self.lock:
            self.events.append(event)

    def ids(self) -> list[str]:
        return [e.order_id for e in self.events]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def failures() -> list[HandlerFailure]:
    return []


@pytest.fixture
def bus(store: MemoryStore, failures: list[HandlerFailure]) -> Iterator[EventBus]:
    bus = EventBus(store=store, on_error=failures.append)
    yield bus
    bus.close()


def publish(bus: EventBus, *ids: str) -> list[str]:
    return [bus.publish(OrderPlaced(i, 1.0)) or "" for i in ids]


def test_history_then_live_in_log_order_with_checkpoints(bus: EventBus, store: MemoryStore) -> None:
    offsets = publish(bus, "a", "b")
    seen = Recorder()
    durable = bus.subscribe_durable("mailer", seen)
    assert durable.wait_caught_up(WAIT)
    assert seen.ids() == ["a", "b"]
    assert store.load_checkpoint("mailer") == offsets[-1]

    live = publish(bus, "c")
    eventually(lambda: seen.ids() == ["a", "b", "c"])
    eventually(lambda: store.load_checkpoint("mailer") == live[0])
    assert durable.running
    assert durable.subscription_id == "mailer"
    assert "mailer" in repr(durable)


def test_restart_on_the_same_store_delivers_only_new_events() -> None:
    store = PlainStoreWithMemory()
    first = EventBus(store=store)
    publish(first, "a", "b")
    seen = Recorder()
    first.subscribe_durable("s", seen).wait_caught_up(WAIT)
    first.shutdown()  # closing the bus does not close a store that has no close()
    publish_direct(store, "c")

    second = EventBus(store=store)
    again = Recorder()
    second.subscribe_durable("s", again).wait_caught_up(WAIT)
    assert again.ids() == ["c"]
    second.close()


class PlainStoreWithMemory(CheckpointingPlainStore):
    """Checkpoints and events survive a bus closing: the store has no close()."""


def publish_direct(store: Any, order_id: str) -> str:
    """Append the way another process would: straight to the store."""
    bus = EventBus(store=store)
    offset = bus.publish(OrderPlaced(order_id, 1.0))
    assert offset is not None
    return offset


def test_start_newest_is_saved_before_reading_so_downtime_events_are_kept() -> None:
    store = PlainStoreWithMemory()
    bus = EventBus(store=store)
    publish(bus, "old")
    seen = Recorder()
    durable = bus.subscribe_durable("s", seen, start=NEWEST)
    assert durable.wait_caught_up(WAIT)
    assert seen.ids() == []
    saved = store.load_checkpoint("s")
    assert saved == store.read().events[-1].offset
    durable.stop()
    publish_direct(store, "during-downtime")
    again = Recorder()
    bus.subscribe_durable("s", again, start=NEWEST).wait_caught_up(WAIT)
    assert again.ids() == ["during-downtime"]
    bus.close()


def test_start_at_an_offset_and_bad_offsets(bus: EventBus) -> None:
    offsets = publish(bus, "a", "b", "c")
    seen = Recorder()
    bus.subscribe_durable("s", seen, start=offsets[0]).wait_caught_up(WAIT)
    assert seen.ids() == ["b", "c"]
    with pytest.raises(OffsetError):
        bus.subscribe_durable("t", Recorder(), event_type=OrderPlaced, start="not-an-offset")
    # The failed setup released the id.
    bus.subscribe_durable("t", Recorder(), event_type=OrderPlaced).wait_caught_up(WAIT)


def test_checkpoint_never_passes_an_unfinished_event(bus: EventBus, store: MemoryStore) -> None:
    release = threading.Event()
    started = threading.Event()
    seen: list[str] = []

    def slow(event: OrderPlaced) -> None:
        started.set()
        if event.order_id == "first":
            release.wait(WAIT)
        seen.append(event.order_id)

    bus.subscribe_durable("s", slow)
    publish(bus, "first", "second")
    assert started.wait(WAIT)
    # "second" is stored and newer, but "first" is still running: nothing is saved.
    assert store.load_checkpoint("s") is OLDEST
    release.set()
    eventually(lambda: seen == ["first", "second"])
    eventually(lambda: store.load_checkpoint("s") == store.read().events[-1].offset)


def test_failures_are_retried_with_backoff_then_delivered(
    bus: EventBus, store: MemoryStore, failures: list[HandlerFailure]
) -> None:
    attempts: list[str] = []

    def flaky(event: OrderPlaced) -> None:
        attempts.append(event.order_id)
        if len(attempts) < 3:
            raise RuntimeError("transient")

    bus.subscribe_durable("s", flaky, retry_backoff=0.001, max_backoff=0.002)
    publish(bus, "a")
    eventually(lambda: store.load_checkpoint("s") == store.read().events[0].offset)
    assert attempts == ["a", "a", "a"]
    assert [f.stage for f in failures] == ["durable", "durable"]
    assert all(isinstance(f.detail, StoredEvent) for f in failures)


def always_fails(event: OrderPlaced) -> None:
    raise RuntimeError(f"cannot handle {event.order_id}")


def test_poison_abort_stops_and_keeps_the_checkpoint_before_the_event(
    bus: EventBus, store: MemoryStore, failures: list[HandlerFailure]
) -> None:
    offsets = publish(bus, "ok", "bad")
    handled: list[str] = []

    def handler(event: OrderPlaced) -> None:
        if event.order_id == "bad":
            raise RuntimeError("poison")
        handled.append(event.order_id)

    durable = bus.subscribe_durable("s", handler, max_attempts=2, retry_backoff=0.001)
    eventually(lambda: not durable.running)
    assert isinstance(durable.error, PoisonEventError)
    assert "bad" not in handled
    assert store.load_checkpoint("s") == offsets[0]
    assert durable.checkpoint == offsets[0]
    assert isinstance(failures[-1].exception, PoisonEventError)
    # The id is free again, and a new owner meets the same event first.
    retry: list[str] = []
    bus.subscribe_durable("s", lambda e: retry.append(e.order_id), event_type=OrderPlaced)
    eventually(lambda: retry == ["bad"])


class HeldReleaseStore(MemoryStore):
    """Holds ``release_lease`` until told: the worker's teardown, made slow."""

    def __init__(self) -> None:
        super().__init__()
        self.releasing = threading.Event()
        self.go_on = threading.Event()

    def release_lease(self, lease: Any) -> None:
        self.releasing.set()
        assert self.go_on.wait(WAIT)
        super().release_lease(lease)


def state_of(durable: DurableSubscription) -> SubscriptionState:
    return durable.state  # read afresh: a property mypy would narrow across asserts


def test_a_failed_subscription_reads_running_until_its_id_is_free() -> None:
    # The handler failed, but the worker still holds the id while it lets go of its
    # lease: reading `running` as False must mean the id can be subscribed again.
    store = HeldReleaseStore()
    bus = EventBus(store=store)
    publish(bus, "bad")

    def handler(event: OrderPlaced) -> None:
        raise RuntimeError("poison")

    durable = bus.subscribe_durable("s", handler, max_attempts=1)
    assert store.releasing.wait(WAIT)
    assert isinstance(durable.error, PoisonEventError)
    assert durable.running
    assert durable.state in (SubscriptionState.ACTIVE, SubscriptionState.STANDBY)
    assert not durable.wait_caught_up(0.05)  # a deadline, not a stop: it still runs
    with pytest.raises(SubscriptionInUseError):
        bus.subscribe_durable("s", handler)
    store.go_on.set()
    eventually(lambda: not durable.running)
    assert state_of(durable) is SubscriptionState.STOPPED
    again = bus.subscribe_durable("s", lambda e: None, event_type=OrderPlaced)
    assert again.running
    bus.close()


def test_poison_skip_reports_checkpoints_past_it_and_goes_on(
    bus: EventBus, store: MemoryStore, failures: list[HandlerFailure]
) -> None:
    publish(bus, "bad")  # a trailing poison event: no later event is needed to skip it
    durable = bus.subscribe_durable(
        "s", always_fails, event_type=OrderPlaced, max_attempts=1, on_poison=PoisonPolicy.SKIP
    )
    last = store.read().events[-1].offset
    eventually(lambda: store.load_checkpoint("s") == last)
    assert durable.running
    poison = [f for f in failures if isinstance(f.exception, PoisonEventError)]
    assert len(poison) == 1
    assert isinstance(poison[0].detail, StoredEvent)
    durable.stop()
    # Restarting does not report the skipped event again.
    before = len(failures)
    bus.subscribe_durable(
        "s", always_fails, event_type=OrderPlaced, max_attempts=1, on_poison=PoisonPolicy.SKIP
    ).wait_caught_up(WAIT)
    assert len(failures) == before


def test_dead_letter_callable_receives_the_event_and_the_error(
    bus: EventBus, store: MemoryStore
) -> None:
    dead: list[tuple[StoredEvent, BaseException]] = []
    publish(bus, "bad", "next")
    seen: list[str] = []

    def handler(event: OrderPlaced) -> None:
        if event.order_id == "bad":
            raise ValueError("bad order")
        seen.append(event.order_id)

    bus.subscribe_durable(
        "s", handler, max_attempts=1, on_poison=lambda stored, exc: dead.append((stored, exc))
    )
    eventually(lambda: seen == ["next"])
    [(stored, exc)] = dead
    assert stored.offset == store.read().events[0].offset
    assert isinstance(exc, ValueError)


def test_failing_dead_letter_aborts(bus: EventBus) -> None:
    publish(bus, "bad")

    def broken_dead_letter(stored: StoredEvent, exc: BaseException) -> None:
        raise OSError("dead-letter queue down")

    durable = bus.subscribe_durable(
        "s", always_fails, event_type=OrderPlaced, max_attempts=1, on_poison=broken_dead_letter
    )
    eventually(lambda: not durable.running)
    assert isinstance(durable.error, PoisonEventError)
    assert "dead-letter" in str(durable.error)


def test_undecodable_stored_event_is_poison(bus: EventBus, store: MemoryStore) -> None:
    publish(bus, "a")
    name = store.read().events[0].type_name
    store.append(EventRecord("x", name, '{"order_id": 5}', datetime.now(UTC), {}, "other"))
    durable = bus.subscribe_durable("s", Recorder())
    eventually(lambda: not durable.running)
    assert isinstance(durable.error, PoisonEventError)
    assert store.load_checkpoint("s") == store.read().events[0].offset


def test_filter_applies_in_replay_and_filtered_events_are_checkpointed(
    bus: EventBus, store: MemoryStore
) -> None:
    publish(bus, "keep-1", "drop", "keep-2")
    seen = Recorder()
    bus.subscribe_durable("s", seen, where=lambda e: e.order_id.startswith("keep"))
    eventually(lambda: store.load_checkpoint("s") == store.read().events[-1].offset)
    assert seen.ids() == ["keep-1", "keep-2"]


def test_failing_filter_is_poison(bus: EventBus) -> None:
    publish(bus, "a")

    def broken(event: OrderPlaced) -> bool:
        raise KeyError("oops")

    durable = bus.subscribe_durable("s", Recorder(), where=broken)
    eventually(lambda: not durable.running)
    assert isinstance(durable.error, PoisonEventError)


def test_other_types_are_skipped_and_checkpointed(bus: EventBus, store: MemoryStore) -> None:
    bus.publish(OrderShipped("x"))
    publish(bus, "a")
    seen = Recorder()
    bus.subscribe_durable("s", seen).wait_caught_up(WAIT)
    assert seen.ids() == ["a"]
    assert store.load_checkpoint("s") == store.read().events[-1].offset


def test_one_owner_per_subscription_id(bus: EventBus) -> None:
    first = bus.subscribe_durable("s", Recorder())
    with pytest.raises(SubscriptionInUseError, match="'s'"):
        bus.subscribe_durable("s", Recorder())
    assert first.stop(WAIT)
    assert not first.running
    bus.subscribe_durable("s", Recorder())


def test_checkpoint_load_failure_aborts_setup(failures: list[HandlerFailure]) -> None:
    class BrokenCheckpoints(CheckpointingPlainStore):
        def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
            raise StoreUnavailableError("checkpoint table unreadable")

    store = BrokenCheckpoints()
    bus = EventBus(store=store)
    publish(bus, "a")
    seen = Recorder()
    with pytest.raises(StoreUnavailableError):
        bus.subscribe_durable("s", seen)
    assert seen.events == []
    # Nothing was saved, and the id was released.
    assert store.inner.load_checkpoint("s") is None
    with pytest.raises(StoreUnavailableError):
        bus.subscribe_durable("s", seen)


def test_checkpoint_every_n_and_the_flush_on_stop(bus: EventBus, store: MemoryStore) -> None:
    offsets = publish(bus, "1", "2", "3", "4", "5")
    seen = Recorder()
    durable = bus.subscribe_durable("s", seen, checkpoint_every=2)
    eventually(lambda: len(seen.events) == 5)
    # Caught up: the batch end flushed everything.
    eventually(lambda: store.load_checkpoint("s") == offsets[-1])
    durable.stop()


class CountingStore(CheckpointingPlainStore):
    """Records every checkpoint it is asked to save."""

    def __init__(self) -> None:
        super().__init__()
        self.saves: list[Checkpoint] = []

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        self.saves.append(offset)
        super().save_checkpoint(subscription_id, offset)


def test_checkpoint_every_n_saves_only_every_n_while_busy(store: MemoryStore) -> None:
    counting = CountingStore()
    saves = counting.saves
    bus = EventBus(store=counting)
    offsets = publish(bus, "1", "2", "3", "4", "5")
    bus.subscribe_durable("s", Recorder(), checkpoint_every=2, batch_size=10).wait_caught_up(WAIT)
    # First-run start, then every second event, then the flush at the end of history.
    assert saves == [OLDEST, offsets[1], offsets[3], offsets[4]]
    bus.close()


def test_checkpoint_interval_saves_by_time(store: MemoryStore) -> None:
    counting = CountingStore()
    saves = counting.saves
    bus = EventBus(store=counting)
    gate = threading.Event()

    def handler(event: OrderPlaced) -> None:
        if event.order_id == "1":
            time.sleep(0.01)  # make sure the 1 ms interval has passed when "1" completes
        if event.order_id == "2":
            gate.wait(WAIT)

    bus.subscribe_durable(
        "s", handler, checkpoint_every=1000, checkpoint_interval=0.001, batch_size=10
    )
    offsets = publish(bus, "1", "2")
    # While "2" is blocked, the interval has long passed since "1": it was saved.
    eventually(lambda: offsets[0] in saves)
    assert offsets[1] not in saves
    gate.set()
    eventually(lambda: counting.load_checkpoint("s") == offsets[1])
    bus.close()


def test_checkpoint_save_failure_is_reported_not_fatal(failures: list[HandlerFailure]) -> None:
    class FlakyCheckpoints(CheckpointingPlainStore):
        fail = True

        def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
            if offset is not OLDEST and self.fail:
                self.fail = False
                raise StoreUnavailableError("checkpoint write failed")
            super().save_checkpoint(subscription_id, offset)

    store = FlakyCheckpoints()
    bus = EventBus(store=store, on_error=failures.append)
    offsets = publish(bus, "a")
    durable = bus.subscribe_durable("s", Recorder())
    durable.wait_caught_up(WAIT)
    assert any(isinstance(f.exception, StoreUnavailableError) for f in failures)
    assert durable.running
    more = publish(bus, "b")
    eventually(lambda: store.load_checkpoint("s") == more[0])
    assert offsets


def test_coroutine_handlers_and_the_envelope(bus: EventBus, store: MemoryStore) -> None:
    envelopes: list[Envelope] = []

    async def handler(event: OrderPlaced, envelope: Envelope) -> None:
        await asyncio.sleep(0)
        envelopes.append(envelope)

    offsets = publish(bus, "a")
    bus.subscribe_durable("s", handler).wait_caught_up(WAIT)
    [envelope] = envelopes
    stored = store.read().events[0]
    assert envelope.offset == offsets[0] == stored.offset
    assert envelope.event_id == stored.event_id


def test_events_appended_by_another_writer_arrive_live(bus: EventBus, store: MemoryStore) -> None:
    seen = Recorder()
    bus.subscribe_durable("s", seen).wait_caught_up(WAIT)
    other = EventBus(store=store)  # another publisher sharing the store, not this bus
    other.publish(OrderPlaced("from-elsewhere", 1.0))
    eventually(lambda: seen.ids() == ["from-elsewhere"])


def test_polling_fallback_without_tail_is_woken_by_publishes() -> None:
    store = CheckpointingPlainStore()
    bus = EventBus(store=store)
    seen = Recorder()
    bus.subscribe_durable("s", seen, poll_interval=30).wait_caught_up(WAIT)
    publish(bus, "a")
    # poll_interval is 30 s: only the publish wake-up can deliver this in time.
    eventually(lambda: seen.ids() == ["a"])
    bus.close()


def test_reentrant_publish_from_a_durable_handler(bus: EventBus) -> None:
    seen: list[str] = []

    def handler(event: OrderPlaced) -> None:
        seen.append(event.order_id)
        if event.order_id == "a":
            bus.publish(OrderPlaced("b", 1.0))

    bus.subscribe_durable("s", handler)
    publish(bus, "a")
    eventually(lambda: seen == ["a", "b"])


def test_stop_interrupts_retry_backoff_without_poisoning(bus: EventBus, store: MemoryStore) -> None:
    publish(bus, "a")
    attempted = threading.Event()

    def fails(event: OrderPlaced) -> None:
        attempted.set()
        always_fails(event)

    durable = bus.subscribe_durable(
        "s", fails, event_type=OrderPlaced, max_attempts=3, retry_backoff=60
    )
    # The first attempt failed: the worker is (about to be) in its 60 s backoff. A 50 ms
    # sleep here was no proof; on a loaded host the stop could come before any attempt.
    assert attempted.wait(WAIT)
    assert durable.stop(WAIT)
    assert durable.error is None
    assert store.load_checkpoint("s") is OLDEST


def test_invalid_options_deliver_nothing_and_save_nothing(
    bus: EventBus, store: MemoryStore
) -> None:
    publish(bus, "a")
    bad: list[dict[str, Any]] = [
        {"start": 5},
        {"start": ""},
        {"where": "yes"},
        {"on_poison": "skip"},
        {"max_attempts": 0},
        {"checkpoint_every": True},
        {"batch_size": 0},
        {"retry_backoff": 0},
        {"max_backoff": -1},
        {"poll_interval": "1"},
        {"checkpoint_interval": 0},
    ]
    seen = Recorder()
    for options in bad:
        with pytest.raises((ValueError, TypeError)):
            bus.subscribe_durable("s", seen, **options)
    with pytest.raises(RegistrationError):
        bus.subscribe_durable("", seen)
    with pytest.raises(RegistrationError):
        bus.subscribe_durable("s", "not callable")  # type: ignore[arg-type]
    assert seen.events == []
    assert store.load_checkpoint("s") is None


def test_durable_needs_checkpoints_and_an_open_bus() -> None:
    bus = EventBus(store=PlainStore())
    with pytest.raises(BusUsageError, match="checkpoints"):
        bus.subscribe_durable("s", Recorder())
    separate = MemoryStore()
    with_separate = EventBus(store=PlainStore(), checkpoints=separate)
    with_separate.subscribe_durable("s", Recorder()).wait_caught_up(WAIT)
    assert separate.load_checkpoint("s") is OLDEST
    with_separate.close()
    with pytest.raises(BusClosedError):
        with_separate.subscribe_durable("t", Recorder())


def test_close_stops_durable_subscriptions(store: MemoryStore) -> None:
    bus = EventBus(store=store)
    durable: DurableSubscription = bus.subscribe_durable("s", Recorder())
    bus.close()
    assert not durable.running
    assert durable.stop() is True  # idempotent once the worker is gone


def test_a_handler_may_stop_its_own_subscription(bus: EventBus) -> None:
    holder: list[DurableSubscription] = []
    ready = threading.Event()
    seen: list[str] = []

    def handler(event: OrderPlaced) -> None:
        ready.wait(WAIT)
        seen.append(event.order_id)
        assert holder[0].stop() is True  # from its own worker thread: no self-join

    publish(bus, "a", "b")
    holder.append(bus.subscribe_durable("s", handler, checkpoint_every=1))
    ready.set()
    eventually(lambda: not holder[0].running)
    assert seen == ["a"]


def test_transient_read_errors_are_retried_permanent_ones_stop(
    failures: list[HandlerFailure],
) -> None:
    class Unsteady(CheckpointingPlainStore):
        errors: ClassVar[list[Exception]] = []

        def read(self, after: Any = OLDEST, limit: int = 100) -> Any:
            if self.errors:
                raise self.errors.pop(0)
            return super().read(after, limit)

    store = Unsteady()
    bus = EventBus(store=store, on_error=failures.append)
    publish(bus, "a")
    Unsteady.errors = [StoreUnavailableError("server restarting"), StoreUnavailableError("again")]
    seen = Recorder()
    durable = bus.subscribe_durable("s", seen, retry_backoff=0.001)
    eventually(lambda: seen.ids() == ["a"])
    assert [type(f.exception) for f in failures] == [StoreUnavailableError] * 2

    Unsteady.errors = [OffsetError("the log was replaced")]
    publish(bus, "b")
    eventually(lambda: not durable.running)
    assert isinstance(durable.error, OffsetError)
    bus.close()


def test_polling_wait_is_skipped_once_stopping() -> None:
    store = CheckpointingPlainStore()
    bus = EventBus(store=store)
    durable = bus.subscribe_durable("s", Recorder(), poll_interval=30)
    durable.wait_caught_up(WAIT)
    durable.stop(WAIT)
    # The guard for a stop() that lands between the loop check and the wait:
    started = time.monotonic()
    result = durable._wait_for_events(OLDEST)
    assert time.monotonic() - started < 30
    assert result.events == []
    bus.close()


def test_caught_up_is_reached_while_a_hot_publisher_keeps_appending(
    bus: EventBus, store: MemoryStore
) -> None:
    publish(bus, *[str(i) for i in range(50)])
    stop = threading.Event()

    def hot() -> None:
        # The log never stops growing, but the publisher lets go of the GIL between
        # publishes as any real one does (I/O, awaiting): a pure spin loop would starve
        # every other thread of CPython's GIL and store lock, whatever the bus did.
        while not stop.wait(0.0001):
            bus.publish(OrderPlaced("hot", 1.0))

    publisher = threading.Thread(target=hot)
    publisher.start()
    try:
        seen = Recorder()
        durable = bus.subscribe_durable("s", seen)
        # The history present at start is a bounded target: this returns although the
        # log never stops growing (ebu bug 40).
        assert durable.wait_caught_up(WAIT)
        assert seen.ids()[:50] == [str(i) for i in range(50)]
    finally:
        stop.set()
        publisher.join()


def test_resuming_at_the_tail_is_caught_up_at_once(bus: EventBus, store: MemoryStore) -> None:
    offsets = publish(bus, "a")
    durable = bus.subscribe_durable("s", Recorder(), start=offsets[0])
    assert durable.wait_caught_up(0)


def test_an_old_schema_publish_wakes_a_subscription_to_the_new_schema(
    bus: EventBus, store: MemoryStore
) -> None:
    def v1_to_v2(old: V1) -> V2:
        return V2(old.n, old.n * 2)

    bus.upcaster(v1_to_v2)
    got: list[V2] = []
    bus.subscribe_durable("s", got.append, event_type=V2, poll_interval=30).wait_caught_up(WAIT)
    bus.publish(V1(21))
    eventually(lambda: got == [V2(21, 42)])
