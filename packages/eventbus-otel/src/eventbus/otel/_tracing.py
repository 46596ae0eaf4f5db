"""The middleware that turns publishes and handler calls into spans and measurements.

A producer span per publish, whose context is written into the event's metadata
(W3C ``traceparent``/``tracestate``, through the global propagator); a consumer span
per handler call, plain or durable, whose parent is the context read back from the
envelope's metadata, so a consumer in another process continues the publisher's
trace. This runs on every call: the scopes are small classes rather than generators,
attributes shared by all calls of a kind are built once, and per-event attributes are
set only on a span that records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

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

    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Span, Tracer

    from ._metrics import Instruments

__all__ = ["TelemetryMiddleware"]

_clock: Final = time.perf_counter
# The operation name and type of each kind of span (messaging conventions).
_PUBLISH: Final = ("publish", "send")
_PROCESS: Final = ("process", "process")


class TelemetryMiddleware(Middleware):
    """Spans and measurements for one instrumentation (see :class:`EventBusInstrumentor`).

    Args:
        tracer: Where spans go.
        instruments: Where measurements go.
    """

    def __init__(self, tracer: Tracer, instruments: Instruments) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self._attributes: dict[tuple[str, str, str | None], _Kind] = {}

    def publishing(self, publication: Publication) -> _PublishScope:
        """A producer span around the event's hand-over; its context goes into metadata."""
        return _PublishScope(self, publication)

    def handling(self, delivery: Delivery) -> _HandleScope:
        """A consumer span around one handler call, child of the publisher's span."""
        return _HandleScope(self, delivery)

    def kind(self, operation: tuple[str, str], type_name: str, group: str | None) -> _Kind:
        """The span name, span-start and measurement attributes of one kind of call.

        Built once per (operation, wire name, consumer group) and never mutated: an
        error adds ``error.type`` to a copy.
        """
        key = (operation[0], type_name, group)
        found = self._attributes.get(key)
        if found is None:
            measured: dict[str, Any] = {
                SYSTEM: SYSTEM_NAME,
                DESTINATION: type_name,
                OPERATION_NAME: operation[0],
            }
            if group is not None:
                measured[CONSUMER_GROUP] = group
            started = {**measured, OPERATION_TYPE: operation[1]}
            found = _Kind(
                f"{operation[0]} {type_name}", MappingProxyType(started), MappingProxyType(measured)
            )
            found = self._attributes.setdefault(key, found)
        return found


class _Kind(NamedTuple):
    name: str
    started: Mapping[str, Any]
    measured: Mapping[str, Any]


def _failed(span: Span, exc: BaseException, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Record ``exc`` on the span; return the measurement attributes with ``error.type``."""
    error_type = type(exc).__qualname__
    span.set_attribute(ERROR_TYPE, error_type)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exc}"))
    return {**attributes, ERROR_TYPE: error_type}


# The last propagator seen and the metadata keys it reads: one identity check per call.
_carrier_fields: tuple[object, frozenset[str]] = (None, frozenset())


def _fields(textmap: TextMapPropagator) -> frozenset[str]:
    global _carrier_fields
    seen, fields = _carrier_fields
    if seen is not textmap:
        fields = frozenset(textmap.fields)
        _carrier_fields = (textmap, fields)
    return fields


class _PublishScope:
    __slots__ = ("_measured", "_middleware", "_publication", "_span", "_started")

    def __init__(self, middleware: TelemetryMiddleware, publication: Publication) -> None:
        self._middleware = middleware
        self._publication = publication

    def __enter__(self) -> None:
        kind = self._middleware.kind(_PUBLISH, self._publication.type_name, None)
        self._measured = kind.measured
        # Not made current: publish_many enters one of these per event, and the spans
        # of a batch are siblings, not a chain.
        span = self._middleware.tracer.start_span(
            kind.name, kind=SpanKind.PRODUCER, attributes=kind.started
        )
        if span.get_span_context().is_valid:  # a no-op tracer's span has nothing to carry
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
        attributes = self._measured
        envelope = self._publication.envelope
        if envelope is not None and span.is_recording():
            span.set_attribute(MESSAGE_ID, envelope.event_id)
            if envelope.offset is not None:
                span.set_attribute(OFFSET, envelope.offset)
        if exc is not None:
            attributes = _failed(span, exc, attributes)
        span.end()
        self._middleware.instruments.publish_duration.record(elapsed, attributes)


class _HandleScope:
    __slots__ = ("_delivery", "_measured", "_middleware", "_span", "_started", "_token")

    def __init__(self, middleware: TelemetryMiddleware, delivery: Delivery) -> None:
        self._middleware = middleware
        self._delivery = delivery

    def __enter__(self) -> None:
        delivery = self._delivery
        envelope = delivery.envelope
        group = delivery.subscription_id
        kind = self._middleware.kind(_PROCESS, envelope.type_name, group)
        self._measured = kind.measured
        # The publisher's context, when the metadata carries one; else the caller's.
        parent = context.get_current()
        textmap = propagate.get_global_textmap()
        if not _fields(textmap).isdisjoint(envelope.metadata):
            parent = textmap.extract(envelope.metadata, context=parent)
        span = self._middleware.tracer.start_span(
            kind.name, context=parent, kind=SpanKind.CONSUMER, attributes=kind.started
        )
        self._token = None
        if span.get_span_context().is_valid:
            # Current while the handler runs, so its own spans are children of this one.
            self._token = context.attach(trace.set_span_in_context(span, parent))
            if span.is_recording():
                span.set_attribute(MESSAGE_ID, envelope.event_id)
                span.set_attribute(HANDLER, _name(delivery.handler))
                if envelope.offset is not None:
                    span.set_attribute(OFFSET, envelope.offset)
                if group is not None:
                    span.set_attribute(ATTEMPT, delivery.attempt)
        self._span = span
        self._started = _clock()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = _clock() - self._started
        if self._token is not None:
            context.detach(self._token)
        delivery = self._delivery
        instruments = self._middleware.instruments
        attributes = self._measured
        if delivery.subscription_id is not None:
            instruments.event_age(delivery.envelope.timestamp, attributes)
        if exc is not None:
            attributes = _failed(self._span, exc, attributes)
            instruments.handler_errors.add(1, attributes)
        self._span.end()
        instruments.process_duration.record(elapsed, attributes)


def _name(handler: object) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)
