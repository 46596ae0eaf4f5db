"""Store-to-store copy (``eventbus copy``, ``eventbus.core.copy_events``) against a raw loop.

The floor is the simplest correct copy a user could write over the same stores: read a
page of ``BATCH`` events, append them with one ``append_batch``, repeat; no checkpoint,
no dedupe. ``copy_events`` does the same reads and appends plus what makes it
resumable (a checkpoint saved per batch, an id check per event). Each round copies into
a fresh destination; ours and the floor alternate (each going first in turn), and the
medians are compared.

Cases: SQLite -> SQLite (files in one temporary folder) and SQLite -> Durable Streams
(the pinned reference server, started here). Bar: >= 0.7x the floor's events/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import Row, report
from bench_ds_store import running_server

from eventbus.core import OLDEST, EventRecord, EventStore, copy_events, open_store
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

BATCH = 500
BAR = 0.7


def raw_copy(src: EventStore, dst: EventStore) -> int:
    """The floor: read a page, append it, until the source is exhausted."""
    copied = 0
    page = src.read(OLDEST, BATCH)
    while page.events:
        dst.append_batch(
            [
                EventRecord(e.event_id, e.type_name, e.data, e.timestamp, e.metadata, e.origin)
                for e in page.events
            ]
        )
        copied += len(page.events)
        page = src.read(page.next, BATCH)
    return copied


def our_copy(src: EventStore, dst: EventStore) -> int:
    return copy_events(src, dst, batch_size=BATCH).copied


def measure(
    src: EventStore, new_destination: Callable[[], EventStore], total: int, rounds: int
) -> tuple[float, float, float]:
    """Median events/s of ours and of the floor, and their ratio."""
    ours: list[float] = []
    floor: list[float] = []
    cases = [(our_copy, ours), (raw_copy, floor)]
    for _ in range(rounds):
        cases.reverse()  # neither always runs first (a fresh file, a warm cache)
        for copy, samples in cases:
            dst = new_destination()
            try:
                started = time.perf_counter()
                assert copy(src, dst) == total
                samples.append(total / (time.perf_counter() - started))
            finally:
                dst.close()  # type: ignore[attr-defined]
    mine, base = statistics.median(ours), statistics.median(floor)
    return mine, base, mine / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    scale = 5 if args.quick else 1
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder, running_server(None) as server:
        sqlite_total, ds_total = 50_000 // scale, 30_000 // scale
        src = SQLiteStore(Path(folder) / "source.db")
        records = [make_record({"order": f"o-{i}", "amount": i * 1.5}) for i in range(sqlite_total)]
        for start in range(0, sqlite_total, 5_000):
            src.append_batch(records[start : start + 5_000])

        def sqlite_destination() -> EventStore:
            return SQLiteStore(Path(folder) / f"copy-{uuid.uuid4().hex}.db")

        rows.append(
            _row(
                "copy SQLite -> SQLite",
                measure(src, sqlite_destination, sqlite_total, 7),
            )
        )
        src.close()

        small = SQLiteStore(Path(folder) / "small.db")
        small.append_batch(records[:ds_total])

        def ds_destination() -> EventStore:
            url = f"durablestream+{server}/v1/stream/bench-copy-{uuid.uuid4().hex}"
            return open_store(url)

        rows.append(
            _row("copy SQLite -> Durable Streams", measure(small, ds_destination, ds_total, 7))
        )
        small.close()
    report("eventbus copy vs a raw read-then-append loop", rows, args.json)


def _row(name: str, measured: tuple[float, float, float]) -> Row:
    ours, floor, ratio = measured
    return Row(
        name,
        "events/s",
        ours,
        f"raw read + append_batch ({BATCH})",
        floor,
        ratio,
        f">= {BAR}x",
        ratio >= BAR,
    )


if __name__ == "__main__":
    main()
