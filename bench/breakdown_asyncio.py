"""Where the time of one ``await bus.publish_async(e)`` goes: 64 publishers, SQLiteStore.

``bench_sqlite.py`` holds 64 asyncio publishers on one loop to at least 0.5x one raw
``executemany`` transaction of the same rows, so an event may cost at most twice the
floor's time per row. This script measures, in one process and interleaved run by run
(median of the runs, each a fresh database file), the steps no implementation of that
path can skip, each on its own, in microseconds per event:

* ``floor``: the raw ``executemany`` transaction, per row (the bar allows 2x this);
* ``sql``: the same rows committed as SQLiteStore commits them, one multi-row
  ``INSERT`` per 64 rows (one transaction each), in one thread, no asyncio;
* ``handoff``: one round trip loop -> worker thread -> loop (``run_in_executor`` of a
  no-op), divided by the 64 events of a batch;
* ``await``: 64 tasks each awaiting a future of its own, settled 64 at a time by one
  callback, as the store settles a committed batch: asyncio's own cost of suspending
  and resuming a publisher, with nothing else done;
* ``row``: turning the event into the row to insert: the bus's codec (JSON text), a new
  event id, the UTC timestamp and its text, the ``EventRecord``; of which ``encode`` is
  the codec alone (shown, not added again);
* ``bus``: the measured ``bench_sqlite`` case itself.

Their sum is what the path costs with zero overhead of its own; ``bus`` minus the sum is
the rest (planning, hooks, envelope, the per-loop queue, the futures' bookkeeping).

Usage::

    python bench/breakdown_asyncio.py [--n 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from bench_sqlite import PUBLISHERS, _events, _Files, _raw_connect, _records, _rows, bus_asyncio

from eventbus.core import EventBus
from eventbus.sqlite._rows import ROWS_PER_INSERT, insert_sql, row_values


def floor(files: _Files, rows: list[tuple[str, str, str, str, str | None, str]]) -> float:
    conn = _raw_connect(files.new(), "NORMAL")
    start = time.perf_counter()
    conn.executemany(insert_sql(1), rows)
    conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / len(rows)


def grouped_sql(files: _Files, rows: list[tuple[str, str, str, str, str | None, str]]) -> float:
    conn = _raw_connect(files.new(), "NORMAL")
    conn.isolation_level = None  # autocommit: each multi-row INSERT is a transaction
    flatten = itertools.chain.from_iterable
    start = time.perf_counter()
    for at in range(0, len(rows), ROWS_PER_INSERT):
        part = rows[at : at + ROWS_PER_INSERT]
        conn.execute(insert_sql(len(part)), list(flatten(part)))
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / len(rows)


def handoff(batches: int) -> float:
    async def trips() -> float:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, int)  # start the worker thread first
        start = time.perf_counter()
        for _ in range(batches):
            await loop.run_in_executor(None, int)
        return time.perf_counter() - start

    return asyncio.run(trips()) / (batches * PUBLISHERS)


def awaits(n: int) -> float:
    per_task = n // PUBLISHERS
    waiting: list[asyncio.Future[None]] = []

    def settle() -> None:
        batch = waiting[:]
        waiting.clear()
        for future in batch:
            future.set_result(None)

    async def publisher() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(per_task):
            future = loop.create_future()
            waiting.append(future)
            if len(waiting) == 1:
                loop.call_soon(settle)
            await future

    async def everyone() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(PUBLISHERS)))
        return time.perf_counter() - start

    return asyncio.run(everyone()) / (per_task * PUBLISHERS)


def to_rows(events: list[object]) -> float:
    bus = EventBus()
    journal = bus._journal
    empty: MappingProxyType[str, str] = MappingProxyType({})
    record_for = journal.record_for
    start = time.perf_counter()
    for event in events:
        row_values(record_for(event, empty))
    elapsed = time.perf_counter() - start
    bus.close()
    return elapsed / len(events)


def encode(events: list[object]) -> float:
    bus = EventBus()
    codec = bus._journal._mapper.codec_for_event(type(events[0]))
    start = time.perf_counter()
    for event in events:
        codec.encode(event)
    elapsed = time.perf_counter() - start
    bus.close()
    return elapsed / len(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20000, help="events per run")
    parser.add_argument("--runs", type=int, default=5, help="runs (median)")
    args = parser.parse_args(argv)
    records = _records(args.n)
    rows = _rows(records)
    events = _events(records)
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="breakdown-") as tmp:
        files = _Files(Path(tmp))
        cases: dict[str, Callable[[], float]] = {
            "floor": lambda: floor(files, rows),
            "sql": lambda: grouped_sql(files, rows),
            "handoff": lambda: handoff(args.n // PUBLISHERS),
            "await": lambda: awaits(args.n),
            "row": lambda: to_rows(list(events)),
            "encode": lambda: encode(list(events)),
            "bus": lambda: 1 / bus_asyncio(files, events),
        }
        for _ in range(args.runs):
            for name, case in cases.items():
                gc.collect()
                gc.disable()
                try:
                    samples.setdefault(name, []).append(case() * 1e6)
                finally:
                    gc.enable()
    us = {name: statistics.median(values) for name, values in samples.items()}
    steps = ("sql", "handoff", "await", "row")
    needed = sum(us[name] for name in steps)
    print(f"Python {sys.version.split()[0]}; microseconds per event, median of {args.runs} runs")
    for name in ("floor", *steps, "encode", "bus"):
        print(f"  {name:<8} {us[name]:6.2f}{'  (part of row)' if name == 'encode' else ''}")
    print(f"  budget   {2 * us['floor']:6.2f}  (0.5x the floor: twice its time per row)")
    print(f"  steps    {needed:6.2f}  (sql + handoff + await + row: no overhead at all)")
    print(f"  rest     {us['bus'] - needed:6.2f}  (the bus's and the store's own work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
