"""EventBusInstrumentor: contrib conventions, per-bus installation, and a clean undo."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventbus.core import BusUsageError, EventBus, MemoryStore
from eventbus.otel import EventBusInstrumentor, TelemetryMiddleware

from ._events import OrderPlaced
from .conftest import Telemetry

ORIGINAL_INIT = EventBus.__init__


def test_it_is_a_singleton_that_names_what_it_instruments() -> None:
    assert EventBusInstrumentor() is EventBusInstrumentor()
    assert list(EventBusInstrumentor().instrumentation_dependencies()) == ["eventbus-core >= 0.1.0"]
    assert not EventBusInstrumentor().is_instrumented_by_opentelemetry


def test_every_bus_created_while_instrumented_is_traced(telemetry: Telemetry) -> None:
    assert EventBusInstrumentor().is_instrumented_by_opentelemetry
    bus = EventBus()
    assert [type(m) for m in bus.middleware] == [TelemetryMiddleware]
    bus.subscribe(OrderPlaced, lambda e: None)
    bus.publish(OrderPlaced("o-1"))
    assert [s.name for s in telemetry.spans()] == [
        "publish shop.OrderPlaced",
        "process shop.OrderPlaced",
    ]
    bus.close()


def test_uninstrument_removes_everything(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore())
    bus.subscribe(OrderPlaced, lambda e: None)
    durable = bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    EventBusInstrumentor().uninstrument()
    assert not EventBusInstrumentor().is_instrumented_by_opentelemetry
    assert EventBus.__init__ is ORIGINAL_INIT
    assert bus.middleware == ()
    bus.publish(OrderPlaced("o-1"))
    assert durable.drain(timeout=5)
    later = EventBus()
    assert later.middleware == ()
    assert telemetry.spans() == []
    assert "traceparent" not in next(iter(bus.replay())).metadata
    # The durable gauges observe no bus any more.
    assert telemetry.points("messaging.eventbus.consumer.lag") == []
    EventBusInstrumentor().uninstrument()  # a second call does nothing
    bus.close()
    later.close()


def test_a_bus_created_before_instrument_is_instrumented_on_request() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = EventBus()
    with pytest.raises(BusUsageError, match=r"instrument\(\.\.\.\) before instrument_bus"):
        EventBusInstrumentor().instrument_bus(bus)
    EventBusInstrumentor().instrument(tracer_provider=provider)
    try:
        assert bus.middleware == ()
        EventBusInstrumentor().instrument_bus(bus)
        EventBusInstrumentor().instrument_bus(bus)  # idempotent
        assert len(bus.middleware) == 1
        bus.publish(OrderPlaced("o-1"))
        assert [s.name for s in exporter.get_finished_spans()] == ["publish shop.OrderPlaced"]
    finally:
        EventBusInstrumentor().uninstrument()
    assert bus.middleware == ()
    bus.close()


def test_instrumenting_twice_warns_and_keeps_the_first(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="eventbus.otel"):
        EventBusInstrumentor().instrument()
    assert "already instrumented" in caplog.text
    bus = EventBus()
    assert len(bus.middleware) == 1
    bus.publish(OrderPlaced("o-1"))
    assert len(telemetry.spans("publish")) == 1
    bus.close()


def test_the_entry_point_names_the_instrumentor() -> None:
    (entry,) = importlib.metadata.entry_points(group="opentelemetry_instrumentor", name="eventbus")
    assert entry.load() is EventBusInstrumentor


APP = """
from dataclasses import dataclass

from eventbus.core import EventBus


@dataclass(frozen=True)
class OrderPlaced:
    __event_name__ = "shop.OrderPlaced"
    order_id: str


with EventBus() as bus:
    bus.subscribe(OrderPlaced, lambda e: print("handled", e.order_id))
    bus.publish(OrderPlaced("o-1"))
"""


def test_opentelemetry_instrument_picks_it_up_with_no_code_change(tmp_path: Path) -> None:
    # The contrib launcher (opentelemetry-distro, a test dependency) loads the entry
    # point and configures the SDK from the environment: spans to the console.
    app = tmp_path / "app.py"
    app.write_text(APP)
    environment = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "shop",
    }
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    result = subprocess.run(
        [str(launcher), sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "handled o-1" in result.stdout
    assert '"name": "publish shop.OrderPlaced"' in result.stdout
    assert '"name": "process shop.OrderPlaced"' in result.stdout


def test_an_earlier_instrumentation_observes_nothing_after_a_new_one(
    telemetry: Telemetry,
) -> None:
    EventBusInstrumentor().uninstrument()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    EventBusInstrumentor().instrument(meter_provider=provider)
    try:
        bus = EventBus(store=MemoryStore())
        durable = bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
        assert durable.wait_active(5)
        # The first instrumentation's gauge is silent; the new one sees the bus.
        assert telemetry.points("messaging.eventbus.consumer.lag") == []
        data = reader.get_metrics_data()
        assert data is not None
        names = [
            metric.name
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]
        assert "messaging.eventbus.consumer.lag" in names
        bus.close()
    finally:
        EventBusInstrumentor().uninstrument()
        provider.shutdown()
