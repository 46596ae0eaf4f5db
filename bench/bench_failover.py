"""Failover: how long a durable subscription id goes unhandled when its owner goes away.

Consumer processes (``tests/_ownership_child.py``) share the subscription id
``billing``; this process publishes and reads their logs. Per store, 20 times each:

- *close*: the owner gets SIGTERM (its bus closes and releases the lease); timed from
  the signal to the standby finishing an event published as soon as the owner exited;
- *kill*: the owner gets SIGKILL; timed the same way, minus the lease ttl (a killed
  owner cannot hand over: the standby waits the ttl out, counted from the last renewal
  it saw, up to ttl / 3 before the kill, so this can be below zero).

The floor is the same event's way when nothing fails: published, then handled by a
live owner in another process, in the same run. The bar for *close* is the issue's
"well under a second"; *kill* minus the ttl is reported. Idle renewal cost: lease
renewals per minute of one owner at the default ttl (10 s).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _common import Row, parse_args, report
from bench_ds_store import running_server

from eventbus.core import ClosableStore, EventBus, LeaseStore, open_store

CHILD = Path(__file__).resolve().parent.parent / "tests" / "_ownership_child.py"
ROUNDS = 20
TTL = 1.0
DEADLINE = 60.0


@dataclass(frozen=True)
class Charged:
    __event_name__ = "billing.charged"
    order_id: str


class Fleet:
    """Consumer processes on one store, and their shared log."""

    def __init__(self, url: str, folder: Path, ttl: float) -> None:
        self.url, self.log, self.ttl = url, folder / "log.txt", ttl
        self.log.touch()
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> int:
        child = subprocess.Popen(
            [sys.executable, CHILD, self.url, self.log, str(self.ttl), "1", "0"],
            stderr=subprocess.DEVNULL,
        )
        self.children[child.pid] = child
        wait_for(lambda: f"ready {child.pid} " in self.log.read_text())
        return child.pid

    def handled_at(self, order_id: str) -> int | None:
        for line in self.log.read_text().splitlines():
            kind, _, ns, *rest = line.split(" ", 3)
            if kind == "end" and rest == [order_id]:
                return int(ns)
        return None

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.kill()
            child.wait(DEADLINE)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("bench_failover: a consumer did not respond in time")
        time.sleep(0.001)


def handled_after(fleet: Fleet, bus: EventBus, since_ns: int) -> float:
    """Publish one event; seconds from ``since_ns`` until a consumer handled it."""
    order_id = uuid.uuid4().hex
    bus.publish(Charged(order_id))
    wait_for(lambda: fleet.handled_at(order_id) is not None)
    finished = fleet.handled_at(order_id)
    assert finished is not None
    return (finished - since_ns) / 1e9


def owner_pid(store: LeaseStore, fleet: Fleet) -> int:
    def live_owner() -> int | None:
        lease = store.read_lease("billing")
        if lease is None or lease.released:
            return None
        child = fleet.children.get(lease.owner.pid)
        return lease.owner.pid if child is not None and child.poll() is None else None

    wait_for(lambda: live_owner() is not None)
    pid = live_owner()
    assert pid is not None
    return pid


def measure(url: str, folder: Path, how: signal.Signals) -> tuple[list[float], list[float]]:
    """Failover times (seconds) and, in the same run, live publish → handle latencies."""
    fleet = Fleet(url, folder, TTL)
    store = open_store(url)
    assert isinstance(store, LeaseStore)
    failovers, live = [], []
    try:
        fleet.start()
        fleet.start()
        with EventBus(store=open_store(url)) as bus:
            for _ in range(ROUNDS):
                pid = owner_pid(store, fleet)
                live.append(handled_after(fleet, bus, time.monotonic_ns()))
                signalled = time.monotonic_ns()
                os.kill(pid, how)
                # A closing owner drains what was stored before it closed: the event
                # timed is published once it is gone, so only the standby can handle it.
                fleet.children.pop(pid).wait(DEADLINE)
                took = handled_after(fleet, bus, signalled)
                failovers.append(took - (TTL if how is signal.SIGKILL else 0.0))
                fleet.start()
    finally:
        fleet.stop()
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return failovers, live


def renewals_per_minute(url: str, window: float = 20.0) -> float:
    """Beats of one idle owner at the default ttl over ``window`` seconds, per minute."""
    store = open_store(url)
    assert isinstance(store, LeaseStore)
    with EventBus(store=open_store(url)) as bus:
        bus.subscribe_durable("idle", lambda event: None, event_type=Charged)
        first = store.read_lease("idle")
        time.sleep(window)
        last = store.read_lease("idle")
    assert first is not None
    assert last is not None
    return (last.beat - first.beat) * 60.0 / window


@contextmanager
def stores(folder: Path) -> Iterator[list[tuple[str, str]]]:
    sqlite_url = f"sqlite:{folder / 'events.db'}"
    store = open_store(sqlite_url)
    assert isinstance(store, ClosableStore)
    store.close()  # the schema exists before the consumers open it
    found = [("SQLite", sqlite_url)]
    with running_server(str(folder / "ds")) as ds_url:
        url = f"durablestream+{ds_url}/v1/stream/failover-{uuid.uuid4().hex}"
        if isinstance(open_store(url), LeaseStore):
            found.append(("Durable Streams", url))
        yield found


def main() -> None:
    args = parse_args(__doc__ or "")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, stores(Path(tmp)) as found:
        for name, url in found:
            for how, label in ((signal.SIGTERM, "close"), (signal.SIGKILL, "kill - ttl")):
                folder = Path(tmp) / f"{name}-{label}".replace(" ", "_")
                folder.mkdir()
                times, live = measure(url, folder, how)
                floor = statistics.median(live) * 1000
                for stat, value in (("median", statistics.median(times)), ("worst", max(times))):
                    ms = value * 1000
                    rows.append(
                        Row(
                            name=f"{name}: failover on {label}, {stat} of {ROUNDS}",
                            unit="ms",
                            value=ms,
                            floor_name="live publish → handle",
                            floor=floor,
                            ratio=ms / floor,
                            bar="< 1000 ms" if label == "close" and stat == "median" else "-",
                            passed=ms < 1000 if label == "close" and stat == "median" else None,
                        )
                    )
            per_minute = renewals_per_minute(url)
            rows.append(
                Row(
                    name=f"{name}: lease renewals of one idle owner (ttl 10 s)",
                    unit="/min",
                    value=per_minute,
                    floor_name="ttl / 3 cadence",
                    floor=18.0,
                    ratio=per_minute / 18.0,
                    bar="-",
                    passed=None,
                )
            )
    report("Failover and lease cost", rows, args.json)


if __name__ == "__main__":
    main()
