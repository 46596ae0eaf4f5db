"""Process A of the two-process test (run as a script): publish under a span.

Usage::

    python _publisher.py PATH   # publish one OrderPlaced to the SQLite file at PATH

Prints the trace id and the producer span id (hex) of what it published.
"""

from __future__ import annotations

import sys

from _events import OrderPlaced  # type: ignore[import-not-found]  # run as a script
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventbus.core import EventBus
from eventbus.otel import EventBusInstrumentor
from eventbus.sqlite import SQLiteStore


def main(path: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    EventBusInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("checkout")
    with EventBus(store=SQLiteStore(path)) as bus, tracer.start_as_current_span("checkout") as span:
        bus.publish(OrderPlaced("o-1"))
    (producer,) = [s for s in exporter.get_finished_spans() if s.name.startswith("publish")]
    print(f"{span.get_span_context().trace_id:032x} {producer.context.span_id:016x}")


if __name__ == "__main__":
    main(sys.argv[1])
