"""What idle durable subscriptions cost: CPU, store calls, HTTP requests and threads.

Ten durable subscriptions on one bus wait for events that never come, for a fixed
window, on each store: the in-memory store, a SQLite file, and the Durable Streams
reference server (started here with its production long-poll of 30 s). The floor is
the same bus with no subscription, measured over the same window in the same run.

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

from eventbus.core import EventBus, EventStore, MemoryStore
from eventbus.durablestream import DurableStreamStore
from eventbus.sqlite import SQLiteStore

SUBSCRIPTIONS = 10
WINDOW = 12.0  # seconds of idling measured per store


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
    report("Idle durable subscriptions", rows, args.json, extra)


if __name__ == "__main__":
    main()
