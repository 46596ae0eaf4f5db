"""DurableStreamStore against raw httpx on the same reference server, in the same run.

Starts its own reference server (``servers/durable-streams/start.mjs``, in memory unless
``--file``) and measures four ratios, each against a floor taken in the same process:

1. sequential ``EventBus.publish`` vs a raw httpx POST of the same envelope (>= 0.9x);
2. 64 concurrent asyncio publishers (``DurableStreamStore.append_async``) vs raw
   100-event JSON-array POSTs, in events/s (>= 0.5x);
3. typed catch-up replay (``EventBus.replay_events``) vs a raw GET + ``json.loads``,
   in events/s (>= 0.7x); reported too against a raw GET asking for no compression,
   as the store does on loopback;
4. append-to-durable-subscription latency p50 vs append-to-raw-long-poll-reader p50
   (<= 1.3x).

Raw and store rounds alternate, and each ratio is the median of the per-round ratios, so
drift on a shared machine hits both sides alike.

Usage::

    python bench/bench_ds_store.py [--json results.json] [--file]

It measures; it does not gate (exit status 0 either way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _common import Row, report

from eventbus.core import EventBus, EventRecord
from eventbus.durablestream import DurableStreamStore
from eventbus.durablestream._envelope_codec import encode_batch

ROOT = Path(__file__).resolve().parents[1]
SERVER_DIR = Path(os.environ.get("EVENTBUS_DS_SERVER_DIR", ROOT / "servers" / "durable-streams"))
JSON_TYPE = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The event every case publishes."""

    __event_name__ = "bench.OrderPlaced"
    order_id: str
    amount: float
    note: str


def _order(i: int) -> OrderPlaced:
    return OrderPlaced(f"o-{i}", 12.5 + i, "x" * 40)


@contextlib.contextmanager
def running_server(data_dir: str | None) -> Iterator[str]:
    """Run the pinned reference server on a free port; yield its URL; stop it by PID."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed to run the reference server")
    command = [node, "start.mjs", "--port", "0", "--long-poll-ms", "30000"]
    if data_dir:
        command += ["--data-dir", data_dir]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, cwd=SERVER_DIR, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                log.seek(0)
                found = re.search(r"DS_SERVER_URL=(\S+)", log.read())
                if found:
                    yield found.group(1)
                    return
                time.sleep(0.02)
            raise SystemExit("the reference server did not start")
        finally:
            process.terminate()
            process.wait(10)


def new_path() -> str:
    return f"/v1/stream/bench-{uuid.uuid4().hex}"


def sample_record(i: int = 0) -> EventRecord:
    """The stored form of one OrderPlaced, as the bus would make it."""
    return EventRecord(
        event_id=uuid.uuid4().hex,
        type_name="bench.OrderPlaced",
        data=json.dumps({"order_id": f"o-{i}", "amount": 12.5, "note": "x" * 40}),
        timestamp=datetime.now(UTC),
        metadata={},
        origin="bench",
    )


# -- 1. sequential publish ------------------------------------------------------------------


def bench_sequential(url: str, n: int, rounds: int) -> tuple[float, float, float]:
    envelope = encode_batch([sample_record()], "0000000000000000_0000000000000000")
    raw_rates, our_rates = [], []
    with (
        httpx.Client(base_url=url) as client,
        EventBus(store=DurableStreamStore(url, new_path())) as bus,
    ):
        raw_path = new_path()
        client.put(raw_path, headers=JSON_TYPE).raise_for_status()
        client.post(raw_path, content=envelope, headers=JSON_TYPE).raise_for_status()
        bus.publish(_order(-1))  # warm: codec built, connection open
        for _ in range(rounds):  # interleaved, so drift on a shared machine hits both
            started = time.perf_counter()
            for _ in range(n):
                client.post(raw_path, content=envelope, headers=JSON_TYPE).raise_for_status()
            raw_rates.append(n / (time.perf_counter() - started))
            started = time.perf_counter()
            for i in range(n):
                bus.publish(_order(i))
            our_rates.append(n / (time.perf_counter() - started))
    return _summary(our_rates, raw_rates)


def _summary(ours: list[float], raw: list[float]) -> tuple[float, float, float]:
    """Median of each side, and the median of the per-round ratios."""
    ratios = [o / r for o, r in zip(ours, raw, strict=True)]
    return statistics.median(ours), statistics.median(raw), statistics.median(ratios)


# -- 2. concurrent asyncio publishers ---------------------------------------------------------


async def _raw_batches(url: str, total: int) -> float:
    body = encode_batch([sample_record() for _ in range(100)], "0000000000000000_0000000000000000")
    async with httpx.AsyncClient(base_url=url) as client:
        path = new_path()
        (await client.put(path, headers=JSON_TYPE)).raise_for_status()
        started = time.perf_counter()
        for _ in range(total // 100):
            (await client.post(path, content=body, headers=JSON_TYPE)).raise_for_status()
        return total / (time.perf_counter() - started)


async def _ours_concurrent(url: str, total: int, publishers: int) -> float:
    records = [sample_record(i) for i in range(total)]
    with DurableStreamStore(url, new_path()) as store:
        await store.append_async(sample_record())
        per = total // publishers

        async def publisher(k: int) -> None:
            for record in records[k * per : (k + 1) * per]:
                await store.append_async(record)

        started = time.perf_counter()
        await asyncio.gather(*(publisher(k) for k in range(publishers)))
        return per * publishers / (time.perf_counter() - started)


def bench_concurrent(url: str, total: int, rounds: int) -> tuple[float, float, float]:
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(asyncio.run(_raw_batches(url, total)))
        ours.append(asyncio.run(_ours_concurrent(url, total, 64)))
    return _summary(ours, raw)


# -- 3. typed catch-up replay -------------------------------------------------------------------


def bench_replay(
    url: str, total: int, rounds: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Our replay against a raw read as httpx sends it, and against one asking for identity.

    The store asks a loopback server not to compress (``compression``); the second floor
    shows what that choice is worth on its own.
    """
    path = new_path()
    with EventBus(store=DurableStreamStore(url, path)) as bus:
        for start in range(0, total, 100):
            bus.publish_many([_order(i) for i in range(start, start + 100)])
    raw_rates: list[float] = []
    identity_rates: list[float] = []
    our_rates: list[float] = []
    for _ in range(rounds):
        for rates, headers in ((raw_rates, {}), (identity_rates, {"Accept-Encoding": "identity"})):
            with httpx.Client(base_url=url, headers=headers) as client:
                started = time.perf_counter()
                response = client.get(path, params={"offset": "-1"})
                items = json.loads(response.content)
                rates.append(total / (time.perf_counter() - started))
                assert len(items) == total
                del items, response
        with EventBus(store=DurableStreamStore(url, path)) as bus:
            bus.register(OrderPlaced)
            started = time.perf_counter()
            count = sum(1 for event, _ in bus.replay_events() if isinstance(event, OrderPlaced))
            our_rates.append(total / (time.perf_counter() - started))
            assert count == total, count
    return _summary(our_rates, raw_rates), _summary(our_rates, identity_rates)


# -- 4. append -> consumer latency ----------------------------------------------------------------


def _raw_latency(url: str, samples: int) -> list[float]:
    path = new_path()
    seen = threading.Event()
    stop = threading.Event()
    with httpx.Client(base_url=url, timeout=60) as writer:
        writer.put(path, headers=JSON_TYPE).raise_for_status()
        offset = writer.head(path).headers["Stream-Next-Offset"]

        def reader() -> None:
            position = offset
            with httpx.Client(base_url=url, timeout=60) as client:
                while not stop.is_set():
                    r = client.get(path, params={"offset": position, "live": "long-poll"})
                    position = r.headers["Stream-Next-Offset"]
                    if r.status_code == 200 and json.loads(r.content):
                        seen.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        time.sleep(0.2)
        envelope = encode_batch([sample_record()], "0")
        latencies = []
        for _ in range(samples):
            seen.clear()
            started = time.perf_counter()
            writer.post(path, content=envelope, headers=JSON_TYPE).raise_for_status()
            seen.wait(10)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
        stop.set()
        writer.post(path, content=envelope, headers=JSON_TYPE)
        thread.join(5)
    return latencies


def _our_latency(url: str, samples: int) -> list[float]:
    path = new_path()
    seen = threading.Event()
    with (
        EventBus(store=DurableStreamStore(url, path)) as consumer,
        EventBus(store=DurableStreamStore(url, path)) as publisher,
    ):

        def handler(event: OrderPlaced) -> None:
            seen.set()

        subscription = consumer.subscribe_durable("bench", handler, poll_interval=5.0)
        subscription.wait_caught_up(10)
        time.sleep(0.2)
        latencies = []
        for i in range(samples):
            seen.clear()
            started = time.perf_counter()
            publisher.publish(_order(i))
            seen.wait(10)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
        subscription.stop(10)
    return latencies


def bench_latency(url: str, samples: int, rounds: int) -> tuple[float, float, float]:
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(statistics.median(_raw_latency(url, samples)) * 1000)
        ours.append(statistics.median(_our_latency(url, samples)) * 1000)
    return _summary(ours, raw)


def _row(
    name: str,
    unit: str,
    measured: tuple[float, float, float],
    floor_name: str,
    bar: float,
    *,
    at_most: bool = False,
) -> Row:
    ours, floor, ratio = measured
    passed = ratio <= bar if at_most else ratio >= bar
    sign = "<=" if at_most else ">="
    return Row(name, unit, ours, floor_name, floor, ratio, f"{sign} {bar}x", passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--file", action="store_true", help="run the server file-backed")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    scale = 5 if args.quick else 1
    with tempfile.TemporaryDirectory() as data, running_server(data if args.file else None) as url:
        replay, replay_identity = bench_replay(url, 50_000 // scale, 5)
        rows = [
            _row(
                "sequential EventBus.publish",
                "events/s",
                bench_sequential(url, 400 // scale, 7),
                "raw httpx POST",
                0.9,
            ),
            _row(
                "64 asyncio publishers (append_async)",
                "events/s",
                bench_concurrent(url, 64 * 200 // scale, 9),
                "raw 100-event POSTs",
                0.5,
            ),
            _row(
                "typed catch-up replay (replay_events)",
                "events/s",
                replay,
                "raw GET + json.loads",
                0.7,
            ),
            Row(
                "typed catch-up replay (replay_events)",
                "events/s",
                replay_identity[0],
                "raw GET asking for identity + json.loads",
                replay_identity[1],
                replay_identity[2],
                "report only",
                None,
            ),
            _row(
                "publish -> durable subscription p50",
                "ms",
                bench_latency(url, 100 // scale, 5),
                "raw POST -> long-poll p50",
                1.3,
                at_most=True,
            ),
        ]
    mode = "file-backed" if args.file else "in-memory"
    report(
        f"DurableStreamStore vs raw httpx ({mode} reference server)",
        rows,
        args.json,
        {"server_mode": mode},
    )


if __name__ == "__main__":
    main()
