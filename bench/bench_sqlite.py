"""SQLiteStore against raw ``sqlite3`` floors and eventsourcing's SQLite persistence.

Every workload is measured in the same process and run, median of several runs, each
on a fresh database file in one temporary folder, with the garbage collector disabled
while timing (as ``timeit`` does). Each ratio is the median over the runs of the case
divided by the raw floor measured just before it in the same run, so the ratios are
what matter, not the absolute figures:

(a) single thread, commit per event: ``store.append(record)`` vs a raw
    ``INSERT`` + ``commit()`` per row into the same table with the same pragmas
    (WAL, ``synchronous=NORMAL``; and again both with ``synchronous=FULL``). Bar ≥ 0.8x.
(b) 8 threads appending concurrently (group commit) vs raw ``executemany`` of the same
    rows in one transaction (reported: CPython's thread hand-offs cap it), and vs the
    naive alternative, 8 threads sharing one connection under a lock with a commit per
    event: bar ≥ 1.5x for the bus and the store. 64 asyncio publishers on one loop
    (``publish_async``) vs the one ``executemany`` transaction: bar ≥ 0.5x. Also shown:
    the cost of one thread handoff on this machine (every append of a waiting thread
    needs one); and,
    with ``synchronous=FULL``, 8 threads through SQLiteStore vs the naive alternative,
    where group commit saves an ``fsync`` per event (informational, no bar).
(c) typed replay: ``store.iter_events()`` with every event's data decoded into a small
    frozen dataclass and one field read (as a projection would), vs a raw ``SELECT``
    of the same rows in pages of 500 + ``json.loads`` of the data and the same field
    read from the dict. Bar ≥ 0.6x.
(d) the same three workloads on eventsourcing's SQLite persistence (one aggregate per
    ``save``; 8 threads saving; notifications read back in pages of 500 and mapped to
    domain events), at its shipped settings.

Usage::

    python bench/bench_sqlite.py [--n 5000] [--runs 5] [--json results.json]

eventsourcing is a bench-only dependency; when missing, (d) is reported and skipped.
Bars print as PASS/FAIL; the script exits 0 either way (it measures, it does not gate).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib.metadata
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eventbus.core import EventBus, EventRecord
from eventbus.sqlite import SQLiteStore
from eventbus.sqlite._schema import MIGRATIONS

THREADS = 8
BARS = {"append": 0.8, "append_full": 0.8, "replay": 0.6}
PUBLISHERS = 64  # asyncio tasks publishing on one loop
# Bars against another floor than the workload's raw one: (case, its workload, floor
# case, floor workload, bar). 8 threads through the bus against 8 threads each
# committing with raw sqlite3 (the same pragmas); 64 asyncio publishers against one raw
# executemany transaction of as many rows.
CROSS_BARS = [
    ("EventBus", "threads", "raw, no group", "threads", 1.5, "8 threads, each raw commit"),
    ("SQLiteStore", "threads", "raw, no group", "threads", 1.5, "8 threads, each raw commit"),
    ("EventBus", "asyncio", "raw sqlite3", "threads", 0.5, "one executemany transaction"),
]

_INSERT = (
    "INSERT INTO events (event_id, type_name, data, timestamp, metadata, origin) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT position, event_id, type_name, data, timestamp, metadata, origin "
    "FROM events WHERE position > ? ORDER BY position LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The event every case writes and reads back (about 140 bytes of JSON)."""

    __event_name__: ClassVar[str] = "shop.OrderPlaced"
    order_id: str
    customer: str
    amount: float
    currency: str
    items: int
    note: str


@dataclass
class Row:
    """One measured case: events per second, median and spread over the runs."""

    case: str
    workload: str
    n: int
    median_eps: float
    min_eps: float
    max_eps: float


def _payload(i: int) -> dict[str, Any]:
    return {
        "order_id": f"order-{i:08d}",
        "customer": f"customer-{i % 977:05d}",
        "amount": round(10 + (i % 1000) * 0.37, 2),
        "currency": "EUR",
        "items": 1 + i % 7,
        "note": "deliver to the back door, ring twice",
    }


def _records(n: int) -> list[EventRecord]:
    now = datetime.now(UTC)
    return [
        EventRecord(
            event_id=f"01J{i:023d}",
            type_name="shop.OrderPlaced",
            data=json.dumps(_payload(i), separators=(",", ":")),
            timestamp=now,
            metadata={"trace": f"t-{i}"} if i % 10 == 0 else {},
            origin="bench-bus",
        )
        for i in range(n)
    ]


def _rows(records: list[EventRecord]) -> list[tuple[str, str, str, str, str | None, str]]:
    return [
        (
            r.event_id,
            r.type_name,
            r.data,
            r.timestamp.isoformat(),
            json.dumps(dict(r.metadata)) if r.metadata else None,
            r.origin,
        )
        for r in records
    ]


class _Files:
    """Fresh database paths in one temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def new(self) -> str:
        self.count += 1
        return str(self.root / f"bench-{self.count}.db")


def _raw_connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA busy_timeout = 5000")
    for statement in MIGRATIONS[1]:  # the very table SQLiteStore writes
        conn.execute(statement)
    conn.commit()
    return conn


def _eps(n: int, seconds: float) -> float:
    return n / seconds


# -- (a) single thread, commit per event ------------------------------------------------


def raw_commit_each(files: _Files, records: list[EventRecord], synchronous: str) -> float:
    rows = _rows(records)
    conn = _raw_connect(files.new(), synchronous)
    start = time.perf_counter()
    for row in rows:
        conn.execute(_INSERT, row)
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return _eps(len(rows), elapsed)


def store_append_each(files: _Files, records: list[EventRecord], durability: str) -> float:
    store = SQLiteStore(files.new(), durability=durability)  # type: ignore[arg-type]
    append = store.append
    start = time.perf_counter()
    for record in records:
        append(record)
    elapsed = time.perf_counter() - start
    store.close()
    return _eps(len(records), elapsed)


# -- (b) 8 threads ----------------------------------------------------------------------


def raw_executemany(files: _Files, records: list[EventRecord]) -> float:
    rows = _rows(records)
    conn = _raw_connect(files.new(), "NORMAL")
    start = time.perf_counter()
    conn.executemany(_INSERT, rows)
    conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return _eps(len(rows), elapsed)


def raw_threads_commit_each(
    files: _Files, records: list[EventRecord], synchronous: str = "NORMAL"
) -> float:
    """The naive way without group commit: 8 threads share a connection and a lock,
    one transaction per event."""
    rows = _rows(records)
    conn = _raw_connect(files.new(), synchronous)
    conn.close()
    conn = sqlite3.connect(files.root / f"bench-{files.count}.db", check_same_thread=False)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    lock = threading.Lock()
    shares = [rows[i::THREADS] for i in range(THREADS)]

    def work(index: int) -> None:
        for row in shares[index]:
            with lock:
                conn.execute(_INSERT, row)
                conn.commit()

    elapsed = _in_threads(work)
    conn.close()
    return _eps(len(rows), elapsed)


def _in_threads(work: Callable[[int], None]) -> float:
    """Run ``work(thread_index)`` in THREADS threads released together; return seconds."""
    barrier = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def store_threads(files: _Files, records: list[EventRecord], durability: str = "normal") -> float:
    store = SQLiteStore(files.new(), durability=durability)  # type: ignore[arg-type]
    shares = [records[i::THREADS] for i in range(THREADS)]

    def work(index: int) -> None:
        append = store.append
        for record in shares[index]:
            append(record)

    elapsed = _in_threads(work)
    count = len(store.read(limit=len(records) + 1).events)
    store.close()
    assert count == len(records), f"stored {count} of {len(records)}"
    return _eps(len(records), elapsed)


def thread_round_trip(n: int = 20000) -> float:
    """Two threads handing a token back and forth: handoffs per second on this machine."""
    ping, pong = threading.Lock(), threading.Lock()
    ping.acquire()
    pong.acquire()

    def other() -> None:
        for _ in range(n):
            ping.acquire()
            pong.release()

    thread = threading.Thread(target=other)
    thread.start()
    start = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - start
    thread.join()
    return _eps(2 * n, elapsed)


# -- (c) typed replay -------------------------------------------------------------------


def _filled(files: _Files, records: list[EventRecord]) -> str:
    path = files.new()
    with SQLiteStore(path) as store:
        for start in range(0, len(records), 1000):
            store.append_batch(records[start : start + 1000])
    return path


def raw_replay(path: str, n: int, batch: int = 500) -> float:
    conn = sqlite3.connect(path)
    loads = json.loads
    start = time.perf_counter()
    position = 0
    count = 0
    total = 0
    while True:
        rows = conn.execute(_SELECT, (position, batch)).fetchall()
        if not rows:
            break
        for row in rows:
            total += loads(row[3])["items"]
        count += len(rows)
        position = rows[-1][0]
    elapsed = time.perf_counter() - start
    conn.close()
    assert count == n
    return _eps(n, elapsed)


def store_replay(path: str, n: int, batch: int = 500) -> float:
    store = SQLiteStore(path, read_batch_size=batch)
    loads = json.loads
    cls = OrderPlaced
    start = time.perf_counter()
    count = 0
    total = 0
    for event in store.iter_events():
        total += cls(**loads(event.data)).items
        count += 1
    elapsed = time.perf_counter() - start
    store.close()
    assert count == n
    return _eps(n, elapsed)


# -- the same workloads through the bus: what a user's publish and replay cost ----------


def _events(records: list[EventRecord]) -> list[OrderPlaced]:
    return [OrderPlaced(**json.loads(r.data)) for r in records]


def bus_publish_each(files: _Files, events: list[OrderPlaced], durability: str) -> float:
    bus = EventBus(store=SQLiteStore(files.new(), durability=durability))  # type: ignore[arg-type]
    publish = bus.publish
    start = time.perf_counter()
    for event in events:
        publish(event)
    elapsed = time.perf_counter() - start
    bus.close()
    return _eps(len(events), elapsed)


def bus_threads(files: _Files, events: list[OrderPlaced]) -> float:
    bus = EventBus(store=SQLiteStore(files.new()))
    shares = [events[i::THREADS] for i in range(THREADS)]

    def work(index: int) -> None:
        publish = bus.publish
        for event in shares[index]:
            publish(event)

    elapsed = _in_threads(work)
    bus.close()
    return _eps(len(events), elapsed)


def bus_asyncio(files: _Files, events: list[OrderPlaced]) -> float:
    """PUBLISHERS asyncio tasks on one loop, each awaiting publish_async in turn."""
    bus = EventBus(store=SQLiteStore(files.new()))
    shares = [events[i::PUBLISHERS] for i in range(PUBLISHERS)]

    async def publisher(share: list[OrderPlaced]) -> None:
        for event in share:
            await bus.publish_async(event)

    async def everyone() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(publisher(share) for share in shares))
        return time.perf_counter() - start

    elapsed = asyncio.run(everyone())
    bus.close()
    return _eps(len(events), elapsed)


def bus_replay(path: str, n: int, batch: int = 500) -> float:
    bus = EventBus(store=SQLiteStore(path, read_batch_size=batch))
    bus.register(OrderPlaced)
    start = time.perf_counter()
    count = 0
    total = 0
    for event, _ in bus.replay_events(batch_size=batch):
        total += event.items
        count += 1
    elapsed = time.perf_counter() - start
    bus.close()
    assert count == n
    return _eps(n, elapsed)


# -- (d) eventsourcing ------------------------------------------------------------------


@functools.cache
def _eventsourcing_classes() -> tuple[Any, Any]:
    """Define the aggregate and application once: eventsourcing registers topics."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate

    class Order(Aggregate):
        def __init__(
            self,
            order_id: str,
            customer: str,
            amount: float,
            currency: str,
            items: int,
            note: str,
        ) -> None:
            self.order_id = order_id

    class Shop(Application[Any]):
        pass

    return Shop, Order


def _eventsourcing_app(path: str) -> Any:
    shop, order = _eventsourcing_classes()
    app = shop(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path})
    return app, order


def es_save_each(files: _Files, n: int) -> float:
    app, order = _eventsourcing_app(files.new())
    payloads = [_payload(i) for i in range(n)]
    start = time.perf_counter()
    for payload in payloads:
        app.save(order(**payload))
    elapsed = time.perf_counter() - start
    app.close()
    return _eps(n, elapsed)


def es_threads(files: _Files, n: int) -> float:
    app, order = _eventsourcing_app(files.new())
    payloads = [_payload(i) for i in range(n)]
    shares = [payloads[i::THREADS] for i in range(THREADS)]

    def work(index: int) -> None:
        for payload in shares[index]:
            app.save(order(**payload))

    elapsed = _in_threads(work)
    app.close()
    return _eps(n, elapsed)


def es_replay(files: _Files, n: int, batch: int = 500) -> float:
    path = files.new()
    app, order = _eventsourcing_app(path)
    payloads = [_payload(i) for i in range(n)]
    for start in range(0, n, 1000):
        app.save(*(order(**p) for p in payloads[start : start + 1000]))
    app.close()
    app, _ = _eventsourcing_app(path)
    recorder = app.recorder
    to_domain_event = app.mapper.to_domain_event
    began = time.perf_counter()
    position: int | None = None
    count = 0
    while True:
        notifications = recorder.select_notifications(
            position, batch, inclusive_of_start=position is None
        )
        if not notifications:
            break
        for notification in notifications:
            to_domain_event(notification).order_id  # noqa: B018 - touch it, as a projection would
        count += len(notifications)
        position = notifications[-1].id
    elapsed = time.perf_counter() - began
    app.close()
    assert count == n, f"read {count} of {n}"
    return _eps(n, elapsed)


# -- driver -----------------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _row(case: str, workload: str, n: int, samples: list[float]) -> Row:
    return Row(case, workload, n, statistics.median(samples), min(samples), max(samples))


def main(argv: list[str] | None = None) -> int:
    """Run every case, print the table and the bars, and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000, help="events per commit-each run")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for database files")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    n_each = args.n
    n_threads = args.n * 4
    n_replay = args.n * 20
    es_version = _version("eventsourcing")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-sqlite-") as tmp:
        files = _Files(Path(tmp))
        each = _records(n_each)
        many = _records(n_threads)
        replay_records = _records(n_replay)
        replay_path = _filled(files, replay_records)
        each_events = _events(each)
        many_events = _events(many)
        samples: dict[tuple[str, str], list[float]] = {}

        def measure(case: str, workload: str, fn: Callable[[], float]) -> None:
            gc.collect()
            gc.disable()  # as timeit does: collections would land on whichever case
            try:
                samples.setdefault((case, workload), []).append(fn())
            finally:
                gc.enable()

        # Interleave the cases run by run, so drift in the machine hits all alike.
        for _ in range(args.runs):
            measure("raw sqlite3", "append", lambda: raw_commit_each(files, each, "NORMAL"))
            measure("SQLiteStore", "append", lambda: store_append_each(files, each, "normal"))
            measure("EventBus", "append", lambda: bus_publish_each(files, each_events, "normal"))
            measure("raw sqlite3", "append_full", lambda: raw_commit_each(files, each, "FULL"))
            measure("SQLiteStore", "append_full", lambda: store_append_each(files, each, "full"))
            measure("EventBus", "append_full", lambda: bus_publish_each(files, each_events, "full"))
            measure("raw sqlite3", "threads", lambda: raw_executemany(files, many))
            measure("SQLiteStore", "threads", lambda: store_threads(files, many))
            measure("EventBus", "threads", lambda: bus_threads(files, many_events))
            measure("raw, no group", "threads", lambda: raw_threads_commit_each(files, many))
            measure("EventBus", "asyncio", lambda: bus_asyncio(files, many_events))
            measure(
                "raw sqlite3",
                "threads_full",
                lambda: raw_threads_commit_each(files, each, "FULL"),
            )
            measure("SQLiteStore", "threads_full", lambda: store_threads(files, each, "full"))
            measure("handoffs", "handoff", thread_round_trip)
            measure("raw sqlite3", "replay", lambda: raw_replay(replay_path, n_replay))
            measure("SQLiteStore", "replay", lambda: store_replay(replay_path, n_replay))
            measure("EventBus", "replay", lambda: bus_replay(replay_path, n_replay))
            if es_version is not None:
                measure("eventsourcing", "append_full", lambda: es_save_each(files, n_each))
                measure("eventsourcing", "threads", lambda: es_threads(files, n_threads))
                measure("eventsourcing", "replay", lambda: es_replay(files, n_replay))
        sizes = {
            "append": n_each,
            "append_full": n_each,
            "threads": n_threads,
            "asyncio": n_threads,
            "threads_full": n_each,
            "handoff": 40000,
        }
        for (case, workload), values in samples.items():
            rows.append(_row(case, workload, sizes.get(workload, n_replay), values))

    def median(case: str, workload: str) -> float | None:
        for row in rows:
            if row.case == case and row.workload == workload:
                return row.median_eps
        return None

    labels = {
        "append": "single thread, commit per event (WAL, synchronous=NORMAL)",
        "append_full": "single thread, commit per event (WAL, synchronous=FULL)",
        "threads": f"{THREADS} threads appending (raw: executemany, one transaction)",
        "threads_full": f"{THREADS} threads, synchronous=FULL (raw: shared conn, commit each)",
        "replay": "typed replay (raw: SELECT + json.loads)",
        "asyncio": f"{PUBLISHERS} asyncio publishers on one loop",
    }
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, ", end="")
    print(f"eventsourcing {es_version or 'not installed'}; median of {args.runs} runs\n")
    print(f"{'workload':<64} {'case':<14} {'events/s':>10} {'min..max':>21} {'ratio':>6}")
    handoffs = median("handoffs", "handoff")
    ratios: dict[str, dict[str, float]] = {}
    for workload, label in labels.items():
        if workload == "asyncio":
            continue  # it has no raw case of its own: see CROSS_BARS
        for row in rows:
            if row.workload != workload:
                continue
            # Paired: each run's case over the floor measured right before it, then the
            # median of those ratios, so load from elsewhere on the machine cancels out.
            floors = samples[("raw sqlite3", workload)]
            ratio = statistics.median(
                case / raw for case, raw in zip(samples[(row.case, workload)], floors, strict=True)
            )
            ratios.setdefault(workload, {})[row.case] = ratio
            spread = f"{row.min_eps:,.0f}..{row.max_eps:,.0f}"
            print(
                f"{label:<64} {row.case:<14} {row.median_eps:>10,.0f} {spread:>21} {ratio:>5.2f}x"
            )
    assert handoffs is not None
    print(
        f"\nthread handoffs on this machine: {handoffs:,.0f}/s "
        f"({1e6 / handoffs:.1f} us each); every append from a waiting thread needs one.\n"
    )
    verdicts = {}
    for case in ("SQLiteStore", "EventBus"):
        for workload, bar in BARS.items():
            ratio = ratios[workload][case]
            verdicts[f"{case}: {workload}"] = ratio >= bar
            verdict = "PASS" if ratio >= bar else "FAIL"
            print(f"bar {case}, {labels[workload]}: {ratio:.2f}x >= {bar}x  {verdict}")
    for case, workload, floor_case, floor_workload, bar, floor_label in CROSS_BARS:
        ratio = statistics.median(
            measured / floor
            for measured, floor in zip(
                samples[(case, workload)], samples[(floor_case, floor_workload)], strict=True
            )
        )
        what = "8 threads" if workload == "threads" else labels[workload]
        name = f"{case}, {what} vs {floor_label}"
        verdicts[name] = ratio >= bar
        ratios.setdefault(workload, {})[f"{case} vs {floor_case}"] = ratio
        print(f"bar {name}: {ratio:.2f}x >= {bar}x  {'PASS' if ratio >= bar else 'FAIL'}")
    if es_version is None:
        print("eventsourcing is not installed: its rows were skipped.")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version,
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "eventsourcing": es_version,
                    "runs": args.runs,
                    "rows": [row.__dict__ for row in rows],
                    "ratios": ratios,
                    "bars": BARS,
                    "pass": verdicts,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
