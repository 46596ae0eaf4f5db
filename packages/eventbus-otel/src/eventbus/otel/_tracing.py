"""The middleware that turns publishes and handler calls into spans and measurements.

A producer span per publish, whose context is written into the event's metadata
(W3C ``traceparent``/``tracestate``, through the global propagator); a consumer span
per handler call, plain or durable, whose parent is the context read back from the
envelope's metadata, so a consumer in another process continues the publisher's
trace. Context managers are small classes, not generators: they run on every call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from eventbus.core import Delivery, Middleware, Publication

from ._semconv import (
    ATTEMPT,
    CONSUMER_GROUP,
    DESTINATION,
    ERROR_TYPE,
    HANDLER,
    MESSAGE_ID,
    OFFSET,
    OPERATION_NAME,
    OPERATION_TYPE,
    SYSTEM,
    SYSTEM_NAME,
)

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.trace import Span, Tracer

    from ._metrics import Instruments

__all__ = ["TelemetryMiddleware"]

_clock: Final = time.perf_counter


class TelemetryMiddleware(Middleware):
    """Spans and measurements for one instrumentation (see :class:`EventBusInstrumentor`).

    Args:
        tracer: Where spans go.
        instruments: Where measurements go.
    """

    def __init__(self, tracer: Tracer, instruments: Instruments) -> None:
        self.tracer = tracer
        self.instruments = instruments

    def publishing(self, publication: Publication) -> _PublishScope:
        """A producer span around the event's hand-over; its context goes into metadata."""
        return _PublishScope(self, publication)

    def handling(self, delivery: Delivery) -> _HandleScope:
        """A consumer span around one handler call, child of the publisher's span."""
        return _HandleScope(self, delivery)


def _failed(span: Span, exc: BaseException, attributes: dict[str, Any]) -> None:
    error_type = type(exc).__qualname__
    attributes[ERROR_TYPE] = error_type
    span.set_attribute(ERROR_TYPE, error_type)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exc}"))


class _PublishScope:
    __slots__ = ("_middleware", "_publication", "_span", "_started")

    def __init__(self, middleware: TelemetryMiddleware, publication: Publication) -> None:
        self._middleware = middleware
        self._publication = publication

    def __enter__(self) -> None:
        name = self._publication.type_name
        # Not made current: publish_many enters one of these per event, and the spans
        # of a batch are siblings, not a chain.
        span = self._middleware.tracer.start_span(
            f"publish {name}",
            kind=SpanKind.PRODUCER,
            attributes={
                SYSTEM: SYSTEM_NAME,
                DESTINATION: name,
                OPERATION_NAME: "publish",
                OPERATION_TYPE: "send",
            },
        )
        propagate.inject(self._publication.metadata, context=trace.set_span_in_context(span))
        self._span = span
        self._started = _clock()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = _clock() - self._started
        span = self._span
        attributes: dict[str, Any] = {
            SYSTEM: SYSTEM_NAME,
            DESTINATION: self._publication.type_name,
            OPERATION_NAME: "publish",
        }
        envelope = self._publication.envelope
        if envelope is not None:
            span.set_attribute(MESSAGE_ID, envelope.event_id)
            if envelope.offset is not None:
                span.set_attribute(OFFSET, envelope.offset)
        if exc is not None:
            _failed(span, exc, attributes)
        span.end()
        self._middleware.instruments.publish_duration.record(elapsed, attributes)


class _HandleScope:
    __slots__ = ("_delivery", "_middleware", "_span", "_started", "_token")

    def __init__(self, middleware: TelemetryMiddleware, delivery: Delivery) -> None:
        self._middleware = middleware
        self._delivery = delivery

    def __enter__(self) -> None:
        delivery = self._delivery
        envelope = delivery.envelope
        attributes: dict[str, Any] = {
            SYSTEM: SYSTEM_NAME,
            DESTINATION: envelope.type_name,
            MESSAGE_ID: envelope.event_id,
            OPERATION_NAME: "process",
            OPERATION_TYPE: "process",
            HANDLER: getattr(delivery.handler, "__qualname__", repr(delivery.handler)),
        }
        if delivery.subscription_id is not None:
            attributes[CONSUMER_GROUP] = delivery.subscription_id
            attributes[ATTEMPT] = delivery.attempt
        if envelope.offset is not None:
            attributes[OFFSET] = envelope.offset
        # The publisher's context, when the metadata carries one; else the caller's.
        parent = propagate.extract(envelope.metadata, context=context.get_current())
        span = self._middleware.tracer.start_span(
            f"process {envelope.type_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        # Current while the handler runs, so its own spans are children of this one.
        self._token = context.attach(trace.set_span_in_context(span, parent))
        self._span = span
        self._started = _clock()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = _clock() - self._started
        context.detach(self._token)
        delivery = self._delivery
        instruments = self._middleware.instruments
        attributes: dict[str, Any] = {
            SYSTEM: SYSTEM_NAME,
            DESTINATION: delivery.envelope.type_name,
            OPERATION_NAME: "process",
        }
        if delivery.subscription_id is not None:
            attributes[CONSUMER_GROUP] = delivery.subscription_id
            instruments.event_age(delivery.envelope.timestamp, attributes)
        if exc is not None:
            _failed(self._span, exc, attributes)
            instruments.handler_errors.add(1, attributes)
        self._span.end()
        instruments.process_duration.record(elapsed, attributes)
