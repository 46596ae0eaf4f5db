"""What each step of typed replay through SQLiteStore costs, per event.

A breakdown behind ``bench_sqlite.py``'s typed-replay bar (docs/benchmarks.md): the
same 100,000 rows, each step timed alone, minimum of several runs with the garbage
collector off. It shows how much of the gap to the raw floor is the store's own
work (fetching the offset as text, building each StoredEvent) and how much is the
typed work the bench asks of the store case only (``OrderPlaced(**json.loads(...))``
where the raw case reads a field from the dict).

Usage::

    python bench/sqlite_replay_costs.py [--n 100000] [--runs 15]
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_sqlite import OrderPlaced, _Files, _filled, _records

from eventbus.core import StoredEvent
from eventbus.sqlite._rows import SELECT, STORED_EVENT_FIELDS, decode

PAGE = 500


def _pages(conn: sqlite3.Connection, sql: str) -> list[list[Any]]:
    pages: list[list[Any]] = []
    position = 0
    while True:
        rows = conn.execute(sql, (position, PAGE)).fetchall()
        if not rows:
            return pages
        pages.append(rows)
        position = int(rows[-1][0])


def main(argv: list[str] | None = None) -> int:
    """Time each step and print microseconds per event."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="rows")
    parser.add_argument("--runs", type=int, default=15, help="runs per step (minimum)")
    args = parser.parse_args(argv)
    n: int = args.n
    select_int = SELECT.replace("printf('%020d', position)", "position")
    setters = tuple(getattr(StoredEvent, name).__set__ for name in STORED_EVENT_FIELDS)

    with tempfile.TemporaryDirectory(prefix="replay-costs-") as tmp:
        path = _filled(_Files(Path(tmp)), _records(n))
        conn = sqlite3.connect(path)
        pages = _pages(conn, SELECT)
        rows = [row for page in pages for row in page]
        datas = [row[3] for row in rows]
        stamps = [row[4] for row in rows]

        def loop() -> None:
            for _offset, _id, _name, _data, _stamp, _meta, _origin in rows:
                pass

        def construct() -> None:
            new = object.__new__
            s0, s1, s2, s3, s4, s5, s6 = setters
            for offset, event_id, name, data, stamp, meta, origin in rows:
                event = new(StoredEvent)
                s0(event, offset)
                s1(event, event_id)
                s2(event, name)
                s3(event, data)
                s4(event, stamp)
                s5(event, meta)
                s6(event, origin)

        def parse() -> None:
            fromisoformat = datetime.fromisoformat
            for stamp in stamps:
                fromisoformat(stamp)

        def decode_pages() -> None:
            for page in pages:
                decode(page, path)

        def raw_work() -> None:
            loads = json.loads
            for data in datas:
                loads(data)["items"]

        def typed_work() -> None:
            loads = json.loads
            for data in datas:
                OrderPlaced(**loads(data)).items  # noqa: B018 - read, as a projection would

        steps: list[tuple[str, Callable[[], object]]] = [
            ("fetch, offset as an int (the raw floor's query)", lambda: _pages(conn, select_int)),
            ("fetch, offset as text by printf (the store's query)", lambda: _pages(conn, SELECT)),
            ("a bare loop over the rows", loop),
            ("StoredEvent: object.__new__ + 7 slot writes (with the loop)", construct),
            ("datetime.fromisoformat of the timestamp", parse),
            ("decode: the store's whole per-row work (with the loop)", decode_pages),
            ("json.loads + one field (the raw floor's work)", raw_work),
            ("OrderPlaced(**json.loads) + one field (the store case's work)", typed_work),
        ]
        for label, step in steps:
            times = []
            for _ in range(args.runs):
                gc.collect()
                gc.disable()
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
                gc.enable()
            print(f"{min(times) / n * 1e6:6.3f} us  {label}")
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
