"""One owner per durable subscription across real processes, killed and frozen for real.

Three consumer processes share the subscription id ``billing`` on one store while this
process publishes; the owner is SIGKILLed again and again, or SIGSTOPped past its lease
and resumed. Each consumer logs when every handler call starts and ends (see
``_ownership_child.py``), on the host's monotonic clock, so the test can prove that no
two processes ever handle events at the same time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pytest

from eventbus.core import (
    NEWEST,
    ClosableStore,
    EventBus,
    EventStore,
    LeaseStore,
    OffsetOrdering,
    open_store,
)

from ._ownership_child import Charged

CHILD = Path(__file__).with_name("_ownership_child.py")
TTL = 1.0
EVERY = 3
WAIT = 60.0


@runtime_checkable
class OwnedStore(EventStore, LeaseStore, OffsetOrdering, ClosableStore, Protocol):
    """What these tests need of a store: leases, comparable offsets, close."""


@contextlib.contextmanager
def owned_store(url: str) -> Iterator[OwnedStore]:
    store = open_store(url)
    assert isinstance(store, OwnedStore), f"{store!r} lacks leases, ordering or close"
    try:
        yield store
    finally:
        store.close()


@dataclass
class Line:
    kind: str
    pid: int
    ns: int
    text: str


def read_log(path: Path) -> list[Line]:
    lines = []
    for raw in path.read_text().splitlines():
        kind, pid, ns, *rest = raw.split(" ", 3)
        lines.append(Line(kind, int(pid), int(ns), rest[0] if rest else ""))
    return lines


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


@dataclass
class Consumers:
    url: str
    log: Path
    pause: float = 0.002
    ttl: float = TTL
    children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed_at: dict[int, int] = field(default_factory=dict)

    def start(self) -> int:
        with self.log.with_suffix(".err").open("ab") as errors:
            child = subprocess.Popen(
                [
                    sys.executable,
                    CHILD,
                    self.url,
                    self.log,
                    str(self.ttl),
                    str(EVERY),
                    str(self.pause),
                ],
                stderr=errors,
            )
        self.children[child.pid] = child
        eventually(
            lambda: any(x.kind == "ready" and x.pid == child.pid for x in read_log(self.log)),
            f"consumer {child.pid} ready",
        )
        return child.pid

    def owner_pid(self, store: LeaseStore) -> int | None:
        lease = store.read_lease("billing")
        if lease is None or lease.released:
            return None
        pid = lease.owner.pid
        return pid if pid in self.children and pid not in self.killed_at else None

    def kill(self, pid: int) -> None:
        self.killed_at[pid] = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        self.children[pid].wait(WAIT)

    def close(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.kill(child.pid, signal.SIGCONT)
                child.terminate()
        for child in self.children.values():
            child.wait(WAIT)


@pytest.fixture(params=["sqlite", "durablestream"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "durablestream":
        base = request.getfixturevalue("ds_file_server_url")
        url = f"durablestream+{base}/v1/stream/owners-{uuid.uuid4().hex}"
    else:
        url = f"sqlite:{tmp_path / 'events.db'}"
    with owned_store(url):
        pass  # the log exists before the children open it
    return url


@pytest.fixture
def consumers(store_url: str, tmp_path: Path) -> Iterator[Consumers]:
    made = Consumers(store_url, tmp_path / "log.txt")
    made.log.touch()
    yield made
    made.close()


class CheckpointWatch:
    """Polls the saved checkpoint in a thread and records every value it sees."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            self._look()

    def _look(self) -> None:
        saved = self.store.load_checkpoint("billing")
        if isinstance(saved, str) and (not self.seen or self.seen[-1] != saved):
            self.seen.append(saved)

    def close(self) -> list[str]:
        self.stop.set()
        self.thread.join(WAIT)
        self._look()
        return self.seen


def assert_never_concurrent(lines: list[Line], killed_at: dict[int, int]) -> None:
    """No handler call of one process overlaps a handler call of another."""
    open_calls: dict[int, int] = {}
    calls: list[tuple[int, int, int]] = []
    for line in lines:
        if line.kind == "start":
            open_calls[line.pid] = line.ns
        elif line.kind == "end":
            calls.append((open_calls.pop(line.pid), line.ns, line.pid))
    for pid, began in open_calls.items():  # killed in its handler: it ran until the kill
        calls.append((began, killed_at.get(pid, time.monotonic_ns()), pid))
    calls.sort()
    for (_, first_end, first_pid), (second_start, _, second_pid) in itertools.pairwise(calls):
        if first_pid != second_pid:
            assert first_end <= second_start, (
                f"process {first_pid} was handling until {first_end} while process "
                f"{second_pid} started at {second_start}"
            )


def handled(log: Path) -> set[str]:
    return {x.text for x in read_log(log) if x.kind == "end"}


def assert_checkpoints_only_advance(store: OwnedStore, seen: list[str]) -> None:
    for before, after in itertools.pairwise(seen):
        assert store.compare_offsets(before, after) < 0, "the checkpoint moved backwards"


def kill_working_owner(consumers: Consumers, store: OwnedStore, round_ids: set[str]) -> None:
    """SIGKILL the owner once it handled an event of this round: an owner at work."""

    def working_owner() -> int | None:
        owner = consumers.owner_pid(store)
        busy = any(x.pid == owner and x.text in round_ids for x in read_log(consumers.log))
        return owner if busy else None

    eventually(lambda: working_owner() is not None, "an owner at work")
    owner = working_owner()
    assert owner is not None
    consumers.kill(owner)


def test_three_consumers_one_owner_while_the_owner_is_killed_again_and_again(
    consumers: Consumers, store_url: str
) -> None:
    for _ in range(3):
        consumers.start()
    published: list[str] = []
    kills = 3
    with owned_store(store_url) as store, EventBus(store=open_store(store_url)) as bus:
        watch = CheckpointWatch(store)
        for round_number in range(kills + 1):
            round_ids = [f"{round_number}-{n}" for n in range(40)]
            for order_id in round_ids:
                bus.publish(Charged(order_id))
                published.append(order_id)
                time.sleep(0.005)
            if round_number < kills:
                kill_working_owner(consumers, store, set(round_ids))
                consumers.start()  # keep three consumers
        eventually(lambda: set(published) <= handled(consumers.log), "every event handled")
        assert_checkpoints_only_advance(store, watch.close())
    lines = read_log(consumers.log)
    assert_never_concurrent(lines, consumers.killed_at)
    ends = Counter(x.text for x in lines if x.kind == "end")
    assert set(ends) == set(published)
    extra = sum(count - 1 for count in ends.values())
    assert extra <= kills * EVERY, f"{extra} redeliveries after {kills} failovers"
    workers = {x.pid for x in lines if x.kind == "start"}
    assert len(workers) == kills + 1, "each failover was taken over by another process"


def test_a_frozen_owner_is_replaced_and_handles_nothing_when_it_wakes(
    consumers: Consumers, store_url: str
) -> None:
    first = consumers.start()
    second = consumers.start()

    def did(order_id: str) -> Callable[[], bool]:
        return lambda: order_id in handled(consumers.log)

    with owned_store(store_url) as store, EventBus(store=open_store(store_url)) as bus:

        def saved_up_to_the_end() -> bool:
            return store.load_checkpoint("billing") == store.read(NEWEST).next

        watch = CheckpointWatch(store)
        bus.publish(Charged("before"))
        eventually(did("before"), "the first owner handled 'before'")
        eventually(saved_up_to_the_end, "the first owner saved its checkpoint")
        assert consumers.owner_pid(store) == first
        os.kill(first, signal.SIGSTOP)
        frozen_at = time.monotonic_ns()
        eventually(lambda: consumers.owner_pid(store) == second, "the standby took over")
        bus.publish(Charged("during"))
        eventually(did("during"), "the new owner handled 'during'")
        eventually(saved_up_to_the_end, "the new owner saved its checkpoint")
        os.kill(first, signal.SIGCONT)
        eventually(
            lambda: any(x.kind == "lost" and x.pid == first for x in read_log(consumers.log)),
            "the woken owner reported LeaseLostError",
        )
        bus.publish(Charged("after"))
        eventually(did("after"), "the new owner handled 'after'")
        eventually(saved_up_to_the_end, "the new owner saved its checkpoint")
        seen = watch.close()
        assert_checkpoints_only_advance(store, seen)
        assert seen[-1] == store.read(NEWEST).next
    woken = [x for x in read_log(consumers.log) if x.pid == first and x.ns > frozen_at]
    assert [x.kind for x in woken if x.kind in ("start", "end")] == [], woken
    assert [x.text for x in woken if x.kind == "state"][-1:] == ["STANDBY"]
    lost = next(x for x in woken if x.kind == "lost")
    assert f":{second}:" in lost.text, "the error names the new owner"


def test_a_closing_owner_hands_over_at_once(consumers: Consumers, store_url: str) -> None:
    # A ttl no handover by expiry can beat: the owner renewed at most ttl / 3 before it
    # closed, so a standby could claim an unreleased lease only 2/3 ttl after the close.
    # Handing over within half the ttl proves the release, without timing a loaded host.
    consumers.ttl = 60.0
    first = consumers.start()
    second = consumers.start()
    with owned_store(store_url) as store:
        assert consumers.owner_pid(store) == first
        consumers.children[first].terminate()
        assert consumers.children[first].wait(WAIT) == 0
        eventually(
            lambda: consumers.owner_pid(store) == second, "handover", timeout=consumers.ttl / 2
        )
