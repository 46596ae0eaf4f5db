"""What eventbus-otel costs when nobody records: instrumented vs plain publish → 1 handler.

The instrumentation is installed with OpenTelemetry's no-op tracer and meter providers,
as in an application that ships the instrumentation but has tracing switched off, so
what is measured is the instrumentation's own work: the middleware around the publish
and the handler call, the propagator writing and reading trace context, the span and
metric calls. Each case is timed against the same bus uninstrumented, in the same run:

- on a bus with a MemoryStore (events are encoded, stamped and stored: the durable
  setting tracing is for), with the bar: instrumented <= 2x uninstrumented;
- on a bus with a SQLite file (default durability), reported without a bar;
- on a bare bus (no store), reported without a bar: there the uninstrumented publish is
  a precomputed call of the handler (~0.1 µs), which any middleware leaves.

Usage::

    python bench/bench_otel.py [--json results.json]
"""

from __future__ import annotations

import statistics
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from _common import Row, median_seconds, parse_args, report
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider

from eventbus.core import EventBus, MemoryStore
from eventbus.otel import EventBusInstrumentor
from eventbus.sqlite import SQLiteStore

N = 20_000
REPEATS = 15
BAR = 2.0


@dataclass(frozen=True)
class Ping:
    __event_name__: ClassVar[str] = "bench.Ping"
    n: int


def _publish_loop(bus: EventBus) -> Callable[[], None]:
    bus.subscribe(Ping, lambda event: None)
    event = Ping(1)
    publish = bus.publish
    publish(event)  # warm: plans, codecs

    def run() -> None:
        for _ in range(N):
            publish(event)

    return run


def _paired_us(make_bus: Callable[[], EventBus]) -> tuple[float, float]:
    """Median µs per publish of the bus uninstrumented and instrumented, timed in turns.

    Both buses exist at once (one made before ``instrument()``, one after) and their
    runs alternate, so load from elsewhere on the machine falls on both alike.
    """
    plain_bus = make_bus()
    instrumentor = EventBusInstrumentor()
    instrumentor.instrument(
        tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
    )
    try:
        traced_bus = make_bus()
        assert traced_bus.middleware
        assert not plain_bus.middleware
        plain_run, traced_run = _publish_loop(plain_bus), _publish_loop(traced_bus)
        plain: list[float] = []
        traced: list[float] = []
        for _ in range(REPEATS):
            plain.append(median_seconds(plain_run, 1))
            traced.append(median_seconds(traced_run, 1))
    finally:
        instrumentor.uninstrument()
        plain_bus.close()
    traced_bus.close()
    return statistics.median(plain) / N * 1e6, statistics.median(traced) / N * 1e6


def main() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    rows: list[Row] = []
    folder = Path(tempfile.mkdtemp(prefix="eventbus-bench-otel-"))
    for label, make_bus, bar in (
        ("MemoryStore bus", lambda: EventBus(store=MemoryStore()), BAR),
        ("SQLite bus", lambda: EventBus(store=SQLiteStore(folder / f"{uuid.uuid4()}.db")), None),
        ("bare bus", EventBus, None),
    ):
        plain, traced = _paired_us(make_bus)
        ratio = traced / plain
        rows.append(
            Row(
                name=f"instrumented (no-op providers), {label}, publish → 1 handler",
                unit="µs",
                value=traced,
                floor_name="uninstrumented",
                floor=plain,
                ratio=ratio,
                bar="-" if bar is None else f"≤ {bar:g}x",
                passed=None if bar is None else ratio <= bar,
            )
        )
    report("eventbus-otel overhead with no-op providers", rows, args.json)


if __name__ == "__main__":
    main()
