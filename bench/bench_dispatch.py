"""Dispatch cost of EventBus.publish against a bare loop, pyee and blinker.

Publishes one small frozen-dataclass event to 1 and to 10 distinct no-op sync
handlers, N times per run, and reports the median of several runs in ns per publish,
with the garbage collector disabled while timing. Every case is measured in the same
process and run, so the ratios against the floor (a bare loop calling the handlers
directly) are what matter, not the absolute figures.

Also measures coroutine handlers: ``await bus.publish_async(event)`` with one
coroutine handler against a bare ``await handler(event)`` loop.

Usage::

    python bench/bench_dispatch.py [--n 200000] [--runs 5] [--json results.json]

pyee and blinker are bench-only dependencies; a missing one is reported and skipped.
The bars are printed as PASS/FAIL; the script exits 0 either way (it measures, it does
not gate).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventbus.core import EventBus

HANDLER_COUNTS = (1, 10)
BARS = {1: 4.0, 10: 1.5}


@dataclass(frozen=True, slots=True)
class Ping:
    """The event published in every case."""

    n: int


@dataclass
class Row:
    """One measured case."""

    case: str
    version: str
    handlers: int
    n: int
    median_ns: float
    min_ns: float
    max_ns: float


def _sync_handlers(count: int) -> list[Callable[[Any], None]]:
    """Distinct no-op handler functions (distinct objects, as a real app has)."""

    def make() -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            pass

        return handler

    return [make() for _ in range(count)]


def _async_handler() -> Callable[[Any], Awaitable[None]]:
    async def handler(event: Any) -> None:
        pass

    return handler


def _time(loop_fn: Callable[[int], None], n: int, runs: int) -> list[float]:
    """Run ``loop_fn(n)`` ``runs`` times with GC off; return ns per iteration of each run."""
    loop_fn(min(n, 1000))  # warm up caches and plans
    results: list[float] = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            loop_fn(n)
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()
        results.append(elapsed / n)
    return results


def _row(case: str, version: str, handlers: int, n: int, samples: list[float]) -> Row:
    return Row(case, version, handlers, n, statistics.median(samples), min(samples), max(samples))


# -- the cases -------------------------------------------------------------------------


def floor_loop(count: int) -> Callable[[int], None]:
    """A bare loop calling the handler(s) directly."""
    handlers = _sync_handlers(count)
    event = Ping(1)
    if count == 1:
        (handler,) = handlers

        def run_one(n: int) -> None:
            for _ in range(n):
                handler(event)

        return run_one

    def run_many(n: int) -> None:
        for _ in range(n):
            for handler in handlers:
                handler(event)

    return run_many


def eventbus_loop(count: int) -> Callable[[int], None]:
    """EventBus.publish with ``count`` plain sync handlers."""
    bus = EventBus()
    for handler in _sync_handlers(count):
        bus.subscribe(Ping, handler)
    event = Ping(1)
    publish = bus.publish

    def run(n: int) -> None:
        for _ in range(n):
            publish(event)

    return run


def pyee_loop(count: int) -> Callable[[int], None]:
    """pyee's EventEmitter.emit."""
    from pyee import EventEmitter

    emitter = EventEmitter()
    for handler in _sync_handlers(count):
        emitter.add_listener("ping", handler)
    event = Ping(1)
    emit = emitter.emit

    def run(n: int) -> None:
        for _ in range(n):
            emit("ping", event)

    return run


def blinker_loop(count: int) -> Callable[[int], None]:
    """blinker's Signal.send (the event is the sender)."""
    from blinker import Signal

    signal = Signal()
    handlers = _sync_handlers(count)
    for handler in handlers:
        signal.connect(handler, weak=False)
    event = Ping(1)
    send = signal.send

    def run(n: int) -> None:
        for _ in range(n):
            send(event)

    return run


def async_floor(n: int, runs: int) -> list[float]:
    """A bare ``await handler(event)`` loop."""
    handler = _async_handler()
    event = Ping(1)

    async def loop(count: int) -> None:
        for _ in range(count):
            await handler(event)

    return _time(lambda count: asyncio.run(loop(count)), n, runs)


def async_eventbus(n: int, runs: int) -> list[float]:
    """``await bus.publish_async(event)`` with one coroutine handler."""
    event = Ping(1)

    async def loop(count: int) -> None:
        bus = EventBus()
        bus.subscribe(Ping, _async_handler())
        publish_async = bus.publish_async
        for _ in range(count):
            await publish_async(event)
        await bus.aclose()

    return _time(lambda count: asyncio.run(loop(count)), n, runs)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- reporting -------------------------------------------------------------------------


def _print_table(rows: list[Row]) -> None:
    header = f"{'case':<26} {'version':<10} {'handlers':>8} {'N':>8} {'median ns':>10} "
    header += f"{'min':>9} {'max':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.case:<26} {row.version:<10} {row.handlers:>8} {row.n:>8} "
            f"{row.median_ns:>10,.0f} {row.min_ns:>9,.0f} {row.max_ns:>9,.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table, ratios and bars; optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="publishes per run (sync)")
    parser.add_argument("--async-n", type=int, default=20_000, help="publishes per run (async)")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; the median is kept")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    n: int = args.n
    runs: int = args.runs

    core_version = _version("eventbus-core") or "dev"
    python = platform.python_version()
    rows: list[Row] = []
    skipped: list[str] = []
    for count in HANDLER_COUNTS:
        rows.append(_row("floor", python, count, n, _time(floor_loop(count), n, runs)))
        rows.append(_row("eventbus", core_version, count, n, _time(eventbus_loop(count), n, runs)))
        for name, distribution, factory in (
            ("pyee", "pyee", pyee_loop),
            ("blinker", "blinker", blinker_loop),
        ):
            version = _version(distribution)
            if version is None:
                skipped.append(f"{name} (not installed)")
                continue
            rows.append(_row(name, version, count, n, _time(factory(count), n, runs)))
    async_n: int = args.async_n
    rows.append(_row("async floor (await h(e))", python, 1, async_n, async_floor(async_n, runs)))
    rows.append(
        _row("eventbus publish_async", core_version, 1, async_n, async_eventbus(async_n, runs))
    )

    print(
        f"Dispatch, ns per publish (median of {runs} runs, GC off while timing), "
        f"Python {python} on {platform.machine()}"
    )
    _print_table(rows)
    if skipped:
        print("skipped: " + ", ".join(sorted(set(skipped))))

    def median(case: str, count: int) -> float | None:
        return next((r.median_ns for r in rows if r.case == case and r.handlers == count), None)

    ratios: dict[str, float] = {}
    verdicts: dict[str, str] = {}
    print()
    for count in HANDLER_COUNTS:
        floor = median("floor", count)
        assert floor is not None
        for case in ("eventbus", "pyee", "blinker"):
            value = median(case, count)
            if value is not None:
                ratios[f"{case}/{count}"] = value / floor
                print(f"{case:>8} / floor, {count:>2} handler(s): {value / floor:6.2f}x")
        ratio = ratios[f"eventbus/{count}"]
        bar = BARS[count]
        verdict = "PASS" if ratio <= bar else "FAIL"
        verdicts[f"eventbus/{count}"] = verdict
        print(f"  bar: eventbus <= {bar}x the floor with {count} handler(s): {verdict}")
    async_floor_ns = median("async floor (await h(e))", 1)
    async_bus_ns = median("eventbus publish_async", 1)
    assert async_floor_ns is not None
    assert async_bus_ns is not None
    ratios["eventbus publish_async/1"] = async_bus_ns / async_floor_ns
    print(
        f"publish_async / await floor, 1 coroutine handler: {async_bus_ns / async_floor_ns:6.2f}x"
        " (no bar)"
    )

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "dispatch",
                    "python": python,
                    "implementation": platform.python_implementation(),
                    "machine": platform.machine(),
                    "argv": sys.argv[1:],
                    "runs": runs,
                    "unit": "ns per publish",
                    "rows": [row.__dict__ for row in rows],
                    "ratios_to_floor": ratios,
                    "bars": {f"eventbus/{k}": v for k, v in BARS.items()},
                    "verdicts": verdicts,
                    "skipped": sorted(set(skipped)),
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
