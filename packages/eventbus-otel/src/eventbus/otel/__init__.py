"""eventbus.otel: OpenTelemetry spans, metrics and trace context for eventbus."""

from __future__ import annotations

from ._instrumentor import EventBusInstrumentor as EventBusInstrumentor
from ._metrics import LAG_CAP as LAG_CAP
from ._tracing import TelemetryMiddleware as TelemetryMiddleware

__all__ = ["LAG_CAP", "EventBusInstrumentor", "TelemetryMiddleware"]
