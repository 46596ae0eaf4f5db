"""What idle durable subscriptions cost: CPU, store calls, HTTP requests and threads.

Ten durable subscriptions on one bus wait for events that never come, for a fixed
window, on each store: the in-memory store, a SQLite file, and the Durable Streams
reference server (started here with its production long-poll of 30 s). The floor is
the same bus with no subscription, measured over the same window in the same run.

A fourth measurement is the cost of a lease on Durable Streams while nothing happens: a
holder renewing every RENEW_EVERY seconds and a standby watching it with ``wait_lease``,
in HTTP requests per minute each.

Reported, not gated: the issue's bar is structural (at most one outstanding long-poll
per subscription on Durable Streams, a cheap change check on SQLite, no thread started
per poll), and these numbers show it holding.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from _common import Row, parse_args, report
from bench_ds_store import running_server

from eventbus.core import EventBus, EventStore, MemoryStore, Owner, StoreClosedError
from eventbus.durablestream import DurableStreamStore
from eventbus.sqlite import SQLiteStore

SUBSCRIPTIONS = 10
WINDOW = 12.0  # seconds of idling measured per store
RENEW_EVERY = 2.0  # seconds between renewals of the idle lease


@dataclass(frozen=True)
class Nothing:
    __event_name__: ClassVar[str] = "bench.Nothing"
    n: int


class CountingTransport(httpx.BaseTransport):
    """Counts the HTTP requests a store sends."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@contextmanager
def counting_thread_starts() -> Iterator[list[int]]:
    """Count threads started while the block runs (the patch is undone after)."""
    count = [0]
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        count[0] += 1
        original(self)

    threading.Thread.start = start  # type: ignore[method-assign]
    try:
        yield count
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]


def idle(store: EventStore, subscriptions: int, requests: Callable[[], int]) -> dict[str, float]:
    """Idle ``subscriptions`` durable subscriptions for WINDOW seconds; per-minute costs."""
    bus = EventBus(store=store)
    subs = [
        bus.subscribe_durable(f"idle-{n}", lambda e: None, event_type=Nothing)
        for n in range(subscriptions)
    ]
    for sub in subs:
        assert sub.wait_caught_up(30)
    time.sleep(1.0)  # settle: every worker is in its live wait
    with counting_thread_starts() as threads:
        sent = requests()
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(WINDOW)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        sent = requests() - sent
    bus.shutdown(10, drain=False)
    per_minute = 60.0 / wall
    return {
        "cpu_ms": cpu * 1000 * per_minute,
        "requests": sent * per_minute,
        "threads": threads[0] * per_minute,
    }


def idle_lease(url: str) -> dict[str, float]:
    """A holder renews a Durable Streams lease and a standby waits on it, for WINDOW seconds;
    HTTP requests per minute of each."""
    counted = {"holder": CountingTransport(), "standby": CountingTransport()}
    path = f"/v1/stream/idle-lease-{uuid.uuid4().hex}"
    holder = DurableStreamStore(url, path, transport=counted["holder"])
    standby = DurableStreamStore(url, path, transport=counted["standby"])
    lease = holder.claim_lease("idle", Owner("bench", 1, "holder"), None)
    assert lease is not None

    def watch() -> None:
        seen = standby.read_lease("idle")
        try:
            while True:
                seen = standby.wait_lease("idle", seen, timeout=10.0)
        except StoreClosedError:
            return

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1.0)  # settle: the standby is in its wait
    before = {name: transport.requests for name, transport in counted.items()}
    wall = time.monotonic()
    while time.monotonic() - wall < WINDOW:
        time.sleep(RENEW_EVERY)
        lease = holder.renew_lease(lease)
    wall = time.monotonic() - wall
    sent = {name: counted[name].requests - before[name] for name in counted}
    standby.close()
    holder.close()
    watcher.join()
    return {name: value * 60.0 / wall for name, value in sent.items()}


def main() -> None:
    args = parse_args(__doc__ or "")
    rows: list[Row] = []
    extra: dict[str, Any] = {}

    def add(store_name: str, measure: Callable[[int], dict[str, float]], calls: str) -> None:
        floor = measure(0)
        value = measure(SUBSCRIPTIONS)
        extra[store_name] = {"floor": floor, "idle": value}
        for key, unit, what in (
            ("cpu_ms", "CPU ms/min", "CPU"),
            ("requests", f"{calls}/min", calls),
            ("threads", "threads/min", "thread starts"),
        ):
            rows.append(
                Row(
                    name=f"{store_name}: {SUBSCRIPTIONS} idle subscriptions, {what}",
                    unit=unit,
                    value=value[key],
                    floor_name="no subscription",
                    floor=floor[key],
                    ratio=value[key] / max(floor[key], 1.0),
                    bar="reported",
                    passed=None,
                )
            )

    add("MemoryStore", lambda n: idle(MemoryStore(), n, lambda: 0), "requests")
    with tempfile.TemporaryDirectory() as folder:
        sqlite_calls = [0]

        def sqlite(n: int) -> dict[str, float]:
            store = SQLiteStore(Path(folder) / f"{uuid.uuid4().hex}.db")
            original = store.tail

            def counted(*a: Any, **k: Any) -> Any:
                sqlite_calls[0] += 1
                return original(*a, **k)

            store.tail = counted  # type: ignore[method-assign]
            return idle(store, n, lambda: sqlite_calls[0])

        add("SQLiteStore", sqlite, "tail calls")
    with running_server(None) as url:

        def durable_streams(n: int) -> dict[str, float]:
            transport = CountingTransport()
            store = DurableStreamStore(
                url, f"/v1/stream/idle-{uuid.uuid4().hex}", transport=transport
            )
            return idle(store, n, lambda: transport.requests)

        add("DurableStreamStore", durable_streams, "HTTP requests")
        lease_cost = idle_lease(url)
        extra["lease"] = {"renew_every_s": RENEW_EVERY, "requests_per_min": lease_cost}
        for who, value in lease_cost.items():
            rows.append(
                Row(
                    name=f"DurableStreamStore: idle lease renewed every {RENEW_EVERY:g} s, {who}",
                    unit="HTTP requests/min",
                    value=value,
                    floor_name="renewals/min",
                    floor=60.0 / RENEW_EVERY,
                    ratio=value / (60.0 / RENEW_EVERY),
                    bar="reported",
                    passed=None,
                )
            )
    report("Idle durable subscriptions", rows, args.json, extra)


if __name__ == "__main__":
    main()
