"""The bus's persistence guarantees, on every bundled store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eventbus.core import NEWEST, OLDEST, EventBus

from .conftest import StoreFactory

WAIT = 10.0


@dataclass(frozen=True)
class Deposited:
    __event_name__ = "bank.deposited"
    account: str
    cents: int


def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


def test_publish_replay_and_exact_resume(new_store: StoreFactory) -> None:
    with EventBus(store=new_store()) as bus:
        offsets = [bus.publish(Deposited("a", n)) for n in range(5)]
        assert [s.offset for s in bus.replay()] == offsets
        for i, offset in enumerate(offsets):
            assert offset is not None
            assert [e.cents for e, _ in bus.replay_events(offset)] == list(range(i + 1, 5))
        assert list(bus.replay(NEWEST)) == []


def test_durable_subscription_resumes_after_restart_without_loss_or_repeat(
    new_store: StoreFactory,
) -> None:
    seen: list[int] = []
    with EventBus(store=new_store()) as first:
        first.publish_many(Deposited("a", n) for n in range(3))
        first.subscribe_durable("ledger", lambda e: seen.append(e.cents), event_type=Deposited)
        eventually(lambda: seen == [0, 1, 2])
    with EventBus(store=new_store()) as writer:
        writer.publish(Deposited("a", 3))  # appended while the consumer is down
    again: list[int] = []
    with EventBus(store=new_store()) as second:
        second.subscribe_durable("ledger", lambda e: again.append(e.cents), event_type=Deposited)
        second.publish(Deposited("a", 4))
        eventually(lambda: again == [3, 4])


def test_two_subscription_ids_each_see_every_event_once_in_order(
    new_store: StoreFactory,
) -> None:
    a: list[int] = []
    b: list[int] = []
    lock = threading.Lock()
    with EventBus(store=new_store()) as bus:
        bus.subscribe_durable("a", lambda e: a.append(e.cents), event_type=Deposited)
        bus.subscribe_durable("b", lambda e: b.append(e.cents), event_type=Deposited)

        def publisher(start: int) -> None:
            for n in range(start, start + 50):
                with lock:  # publish order = log order, so "in order" is checkable
                    bus.publish(Deposited("x", n))

        threads = [threading.Thread(target=publisher, args=(k * 50,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        logged = [e.cents for e, _ in bus.replay_events()]
        eventually(lambda: len(a) == 200 and len(b) == 200)
        assert a == logged
        assert b == logged


def test_checkpoint_starts_at_oldest_and_never_stores_newest(new_store: StoreFactory) -> None:
    store = new_store()
    with EventBus(store=store) as bus:
        sub = bus.subscribe_durable("s", lambda e: None, event_type=Deposited, start=NEWEST)
        assert sub.wait_caught_up(WAIT)
        assert sub.checkpoint is OLDEST
