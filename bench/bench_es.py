"""Event sourcing on SQLiteStore: projection start-up from a snapshot, and compaction.

(a) Start-up of a projection over ``--n`` events (default 100,000): a fresh bus and
    ``Projection`` on the file, ``restore()`` + ``catch_up()``, from its snapshot (which
    covers all but the last ``--tail`` events, default 1,000) vs from the beginning (no
    snapshot). The ratio is the speed-up; bar ≥ 10x.
(b) Compaction of ``--compact-n`` events (default 1,000,000) up to all but the last
    ``--tail``, with a checkpoint and a named snapshot at the end (so the checks run):
    ``store.compact(...)`` vs a raw ``DELETE FROM events WHERE position <= ?`` on a copy of
    the same file (bar ≥ 0.8x), then ``compact(..., vacuum=True)``. File sizes (database
    plus WAL) before, after the delete and after the vacuum are printed and kept in the JSON.

Usage::

    python bench/bench_es.py [--n 100000] [--compact-n 1000000] [--tail 1000] [--json out.json]

Medians of ``--runs`` (default 3) for (a); (b) runs once (it destroys its input).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from _common import Row, report

from eventbus.core import EventBus, Projection
from eventbus.sqlite import SQLiteStore

BATCH = 1000


@dataclasses.dataclass(frozen=True)
class Deposited:
    __event_name__: ClassVar[str] = "bench.Deposited"
    account: str
    amount: int


@dataclasses.dataclass(frozen=True)
class Totals:
    __event_name__: ClassVar[str] = "bench.Totals"
    count: int = 0
    total: int = 0


def fold(state: Totals, event: Any) -> Totals:
    return Totals(state.count + 1, state.total + event.amount)


def fill(path: Path, count: int) -> None:
    """Append ``count`` events in batches through the bus (as an application would)."""
    with EventBus(store=SQLiteStore(path)) as bus:
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            bus.publish_many([Deposited(f"a{(start + i) % 100}", 1) for i in range(size)])


def projection(bus: EventBus, snapshot_id: str) -> Projection[Totals]:
    return Projection(bus, snapshot_id, Totals(), fold, event_types=[Deposited], state_type=Totals)


def start_up(path: Path, snapshot_id: str) -> float:
    """Seconds from opening the file to a projection that has folded every event."""
    started = time.perf_counter()
    with EventBus(store=SQLiteStore(path)) as bus:
        built = projection(bus, snapshot_id)
        built.restore()
        built.catch_up()
    return time.perf_counter() - started


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def bench_start_up(folder: Path, n: int, tail: int, runs: int) -> Row:
    path = folder / "projection.db"
    fill(path, n - tail)
    with EventBus(store=SQLiteStore(path)) as bus:
        built = projection(bus, "totals")
        built.catch_up()
        built.save_snapshot()
    fill(path, tail)
    cold = statistics.median(start_up(path, "never-saved") for _ in range(runs))
    warm = statistics.median(start_up(path, "totals") for _ in range(runs))
    return Row(
        name=f"projection start-up over {n:,} events, from a snapshot ({tail:,} after it)",
        unit="ms",
        value=warm * 1000,
        floor_name="from the beginning",
        floor=cold * 1000,
        ratio=cold / warm,
        bar=">= 10x faster",
        passed=cold / warm >= 10,
    )


def bench_compaction(folder: Path, n: int, tail: int) -> tuple[list[Row], dict[str, Any]]:
    path = folder / "compact.db"
    fill(path, n)
    through = f"{n - tail:020d}"
    end = f"{n:020d}"
    with SQLiteStore(path) as store:
        store.save_checkpoint("reader", end)
        store.save_snapshot("totals", end, "{}")
    copy = folder / "raw.db"
    shutil.copy(path, copy)
    before = size(path)

    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    started = time.perf_counter()
    conn.execute("DELETE FROM events WHERE position <= ?", (n - tail,))
    raw = time.perf_counter() - started
    conn.close()

    with SQLiteStore(path) as store:
        started = time.perf_counter()
        removed = store.compact(through, snapshots=["totals"])
        compact = time.perf_counter() - started
        after_delete = size(path)
        started = time.perf_counter()
        store.compact(end, snapshots=["totals"], vacuum=True)  # removes the tail, then VACUUM
        vacuum = time.perf_counter() - started
        after_vacuum = size(path)
    assert removed == n - tail
    sizes = {"before": before, "after_delete": after_delete, "after_vacuum": after_vacuum}
    print(
        f"\ncompaction of {n:,} events: {removed:,} removed in {compact:.2f} s "
        f"(raw DELETE {raw:.2f} s), then the rest + VACUUM in {vacuum:.2f} s; file "
        f"{before / 1e6:,.1f} MB -> {after_delete / 1e6:,.1f} MB after the delete -> "
        f"{after_vacuum / 1e6:,.2f} MB after VACUUM"
    )
    rows = [
        Row(
            name=f"compact {n - tail:,} of {n:,} events (checks + DELETE)",
            unit="ms",
            value=compact * 1000,
            floor_name="raw DELETE",
            floor=raw * 1000,
            ratio=raw / compact,
            bar=">= 0.8x",
            passed=raw / compact >= 0.8,
        ),
        Row(
            name="compact the rest with vacuum=True",
            unit="ms",
            value=vacuum * 1000,
            floor_name="compact without vacuum",
            floor=compact * 1000,
            ratio=compact / vacuum,
            bar="-",
            passed=None,
        ),
    ]
    return rows, {"compaction_sizes_bytes": sizes, "compaction_events": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--compact-n", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows = [bench_start_up(folder, args.n, args.tail, args.runs)]
        compaction, extra = bench_compaction(folder, args.compact_n, args.tail)
    report("Event sourcing on SQLiteStore", rows + compaction, args.json, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
