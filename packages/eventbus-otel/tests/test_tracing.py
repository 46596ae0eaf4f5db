"""Spans: a producer per publish, a consumer per handler call, trace context in metadata."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from eventbus.core import EventBus, EventRecord, MemoryStore, StoreUnavailableError
from eventbus.otel import EventBusInstrumentor

from ._events import OrderPlaced
from .conftest import Telemetry

WAIT = 5.0


def _one(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, spans
    return spans[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_publish_is_a_producer_span_whose_context_is_stored(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore())
    offset = bus.publish(OrderPlaced("o-1"))
    producer = _one(telemetry.spans("publish"))
    assert producer.name == "publish shop.OrderPlaced"
    assert producer.kind is SpanKind.PRODUCER
    stored = next(iter(bus.replay()))
    assert dict(producer.attributes or {}) == {
        "messaging.system": "eventbus",
        "messaging.destination.name": "shop.OrderPlaced",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.message.id": stored.event_id,
        "messaging.eventbus.offset": offset,
    }
    context = producer.context
    assert stored.metadata["traceparent"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    bus.close()


def test_the_producer_span_is_a_child_of_the_publishers_span(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    bus = EventBus()
    with tracer.start_as_current_span("request") as request:
        assert bus.publish(OrderPlaced("o-1")) is None
    producer = _one(telemetry.spans("publish"))
    assert _parent_id(producer) == request.get_span_context().span_id
    assert "messaging.eventbus.offset" not in (producer.attributes or {})
    bus.close()


def test_a_plain_handler_call_is_a_consumer_span_under_the_producer(
    telemetry: Telemetry,
) -> None:
    bus = EventBus(store=MemoryStore())
    inner: list[trace.Span] = []

    def audit(event: OrderPlaced) -> None:
        inner.append(trace.get_current_span())

    bus.subscribe(OrderPlaced, audit)
    offset = bus.publish(OrderPlaced("o-1"))
    producer = _one(telemetry.spans("publish"))
    consumer = _one(telemetry.spans("process"))
    assert consumer.name == "process shop.OrderPlaced"
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.context.trace_id == producer.context.trace_id
    assert _parent_id(consumer) == producer.context.span_id
    attributes = dict(consumer.attributes or {})
    assert attributes["messaging.message.id"] == (producer.attributes or {})["messaging.message.id"]
    assert attributes["messaging.eventbus.offset"] == offset
    assert str(attributes["code.function.name"]).endswith("audit")
    assert "messaging.consumer.group.name" not in attributes
    # The consumer span is current inside the handler: its own spans nest under it.
    assert inner[0].get_span_context().span_id == consumer.context.span_id
    assert consumer.status.status_code is StatusCode.UNSET
    bus.close()


@pytest.mark.asyncio
async def test_a_coroutine_handler_runs_inside_its_consumer_span(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore())
    inner: list[int] = []

    @bus.subscribe
    async def notify(event: OrderPlaced) -> None:
        await asyncio.sleep(0)
        inner.append(trace.get_current_span().get_span_context().span_id)

    await bus.publish_async(OrderPlaced("o-1"))
    producer = _one(telemetry.spans("publish"))
    consumer = _one(telemetry.spans("process"))
    assert _parent_id(consumer) == producer.context.span_id
    assert inner == [consumer.context.span_id]
    await bus.aclose()


def test_a_handler_error_is_recorded_with_status_error(telemetry: Telemetry) -> None:
    bus = EventBus(on_error=lambda failure: None)

    @bus.subscribe
    def broken(event: OrderPlaced) -> None:
        raise ValueError("no stock")

    bus.publish(OrderPlaced("o-1"))
    consumer = _one(telemetry.spans("process"))
    assert consumer.status.status_code is StatusCode.ERROR
    assert consumer.status.description == "ValueError: no stock"
    assert (consumer.attributes or {})["error.type"] == "ValueError"
    assert [event.name for event in consumer.events] == ["exception"]
    bus.close()


def test_a_failed_append_is_recorded_on_the_producer_span(telemetry: Telemetry) -> None:
    class Broken(MemoryStore):
        def append(self, record: EventRecord) -> str:
            raise OSError("disk full")

    bus = EventBus(store=Broken())
    with pytest.raises(StoreUnavailableError):
        bus.publish(OrderPlaced("o-1"))
    producer = _one(telemetry.spans("publish"))
    assert producer.status.status_code is StatusCode.ERROR
    assert (producer.attributes or {})["error.type"] == "StoreUnavailableError"
    assert "messaging.message.id" not in (producer.attributes or {})
    bus.close()


def test_publish_many_makes_sibling_producer_spans(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore())
    bus.publish_many([OrderPlaced("a"), OrderPlaced("b")])
    first, second = telemetry.spans("publish")
    assert first.parent is None
    assert second.parent is None
    parents = [e.metadata["traceparent"].split("-")[2] for e in bus.replay()]
    assert sorted(parents) == sorted(f"{s.context.span_id:016x}" for s in (first, second))
    bus.close()


def test_a_durable_delivery_is_a_consumer_span_of_its_group(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore())
    offset = bus.publish(OrderPlaced("o-1"))
    durable = bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    assert durable.drain(timeout=WAIT)
    bus.close()
    producer = _one(telemetry.spans("publish"))
    consumer = _one(telemetry.spans("process"))
    assert _parent_id(consumer) == producer.context.span_id
    attributes = dict(consumer.attributes or {})
    assert attributes["messaging.consumer.group.name"] == "mailer"
    assert attributes["messaging.eventbus.offset"] == offset
    assert attributes["messaging.eventbus.attempt"] == 1


def test_a_durable_coroutine_handler_and_its_retries_are_spans(telemetry: Telemetry) -> None:
    bus = EventBus(store=MemoryStore(), on_error=lambda failure: None)
    calls: list[int] = []

    async def flaky(event: OrderPlaced) -> None:
        calls.append(trace.get_current_span().get_span_context().span_id)
        if len(calls) == 1:
            raise ConnectionError("smtp down")

    bus.publish(OrderPlaced("o-1"))
    durable = bus.subscribe_durable("mailer", flaky, event_type=OrderPlaced, retry_backoff=0.001)
    assert durable.drain(timeout=WAIT)
    bus.close()
    failed, succeeded = sorted(
        telemetry.spans("process"),
        key=lambda s: str((s.attributes or {})["messaging.eventbus.attempt"]),
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert succeeded.status.status_code is StatusCode.UNSET
    assert calls == [failed.context.span_id, succeeded.context.span_id]


def test_an_event_stored_without_trace_context_starts_a_trace(telemetry: Telemetry) -> None:
    # Published by an uninstrumented bus: a durable consumer has nothing to continue.
    store = MemoryStore()
    publisher = EventBus(store=store)
    assert publisher.remove_middleware(publisher.middleware[0])
    publisher.publish(OrderPlaced("o-1"))
    assert "traceparent" not in next(iter(publisher.replay())).metadata
    consumer_bus = EventBus(store=store)
    durable = consumer_bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
    assert durable.drain(timeout=WAIT)
    consumer_bus.close()
    publisher.close()
    assert telemetry.spans("publish") == []
    assert _one(telemetry.spans("process")).parent is None


def test_with_a_no_op_tracer_provider_nothing_is_carried_and_handlers_run() -> None:
    EventBusInstrumentor().instrument(tracer_provider=NoOpTracerProvider())
    try:
        bus = EventBus(store=MemoryStore())
        seen: list[str] = []
        bus.subscribe(OrderPlaced, lambda e: seen.append(e.order_id))
        durable = bus.subscribe_durable("mailer", lambda e: None, event_type=OrderPlaced)
        bus.publish(OrderPlaced("o-1"))
        assert durable.drain(timeout=WAIT)
        assert seen == ["o-1"]
        assert dict(next(iter(bus.replay())).metadata) == {}
        bus.close()
    finally:
        EventBusInstrumentor().uninstrument()


def test_a_sampled_out_trace_is_carried_but_not_recorded() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    EventBusInstrumentor().instrument(tracer_provider=provider)
    try:
        bus = EventBus(store=MemoryStore())
        inner: list[trace.SpanContext] = []
        bus.subscribe(
            OrderPlaced, lambda e: inner.append(trace.get_current_span().get_span_context())
        )
        bus.publish(OrderPlaced("o-1"))
        traceparent = next(iter(bus.replay())).metadata["traceparent"]
        # The decision travels (flags without "sampled"), and the handler's context is
        # the not-recorded consumer span of the same trace.
        assert not int(traceparent.rsplit("-", 1)[1], 16) & 1
        assert f"{inner[0].trace_id:032x}" == traceparent.split("-")[1]
        assert exporter.get_finished_spans() == ()
        bus.close()
    finally:
        EventBusInstrumentor().uninstrument()
