"""EventBusInstrumentor: the opentelemetry-python-contrib style switch for eventbus.

``instrument()`` installs one :class:`TelemetryMiddleware` on every bus created from
then on (by wrapping ``EventBus.__init__``) and on buses handed to
:meth:`EventBusInstrumentor.instrument_bus`; ``uninstrument()`` removes it from every
one of them and unwraps the constructor. Buses are tracked weakly.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import threading
import weakref
from collections.abc import Collection
from typing import Any, ClassVar, Final

from opentelemetry import metrics, trace

from eventbus.core import BusUsageError, EventBus

from ._metrics import Instruments
from ._tracing import TelemetryMiddleware

__all__ = ["EventBusInstrumentor"]

logger: Final = logging.getLogger("eventbus.otel")
_SCOPE: Final = "eventbus.otel"


class EventBusInstrumentor:
    """Traces and measures every :class:`~eventbus.core.EventBus` of the process.

    A singleton, as contrib instrumentors are: ``EventBusInstrumentor()`` always
    returns the same object. ``opentelemetry-instrument`` finds it through the
    ``opentelemetry_instrumentor`` entry point and calls :meth:`instrument`.

    Example::

        EventBusInstrumentor().instrument(tracer_provider=provider)
        bus = EventBus(store=store)  # traced
        EventBusInstrumentor().uninstrument()
    """

    _instance: ClassVar[EventBusInstrumentor | None] = None
    _lock: ClassVar = threading.Lock()

    def __new__(cls) -> EventBusInstrumentor:
        with cls._lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._middleware = None
                instance._buses = weakref.WeakSet()
                instance._original_init = None
                cls._instance = instance
            return cls._instance

    _middleware: TelemetryMiddleware | None
    _buses: weakref.WeakSet[EventBus]
    _original_init: Any

    def instrumentation_dependencies(self) -> Collection[str]:
        """The instrumented library's requirement, as contrib instrumentors declare it."""
        return ("eventbus-core >= 0.1.0",)

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        """Whether :meth:`instrument` is in force."""
        return self._middleware is not None

    def instrument(self, **kwargs: Any) -> None:
        """Trace and measure every bus created from now on.

        Args:
            **kwargs: ``tracer_provider`` and ``meter_provider`` (the global ones when
                absent); other keywords that ``opentelemetry-instrument`` passes to
                every instrumentor (such as ``skip_dep_check``) are accepted and ignored.
        """
        with self._lock:
            if self._middleware is not None:
                logger.warning("eventbus.otel: already instrumented; call uninstrument() first.")
                return
            version = importlib.metadata.version("eventbus-otel")
            tracer = trace.get_tracer(_SCOPE, version, kwargs.get("tracer_provider"))
            meter = metrics.get_meter(_SCOPE, version, kwargs.get("meter_provider"))
            # A set per instrumentation: once it is cleared by uninstrument(), this
            # instrumentation's gauges observe nothing, whatever is instrumented later.
            buses: weakref.WeakSet[EventBus] = weakref.WeakSet()
            self._buses = buses
            middleware = TelemetryMiddleware(
                tracer, Instruments(meter, functools.partial(_open_buses, buses))
            )
            self._middleware = middleware
            original = EventBus.__init__
            self._original_init = original

            @functools.wraps(original)
            def instrumented_init(bus: EventBus, *args: Any, **options: Any) -> None:
                original(bus, *args, **options)
                self.instrument_bus(bus)

            type.__setattr__(EventBus, "__init__", instrumented_init)

    def uninstrument(self, **kwargs: Any) -> None:
        """Remove the instrumentation from every bus and from bus creation.

        Args:
            **kwargs: Accepted for the contrib signature; none is used.
        """
        with self._lock:
            middleware = self._middleware
            if middleware is None:
                return
            type.__setattr__(EventBus, "__init__", self._original_init)
            self._original_init = None
            self._middleware = None
            buses = list(self._buses)
            self._buses.clear()
        for bus in buses:
            bus.remove_middleware(middleware)

    def instrument_bus(self, bus: EventBus) -> None:
        """Instrument a bus created before :meth:`instrument` (idempotent).

        Raises:
            BusUsageError: :meth:`instrument` has not been called.
        """
        middleware = self._middleware
        if middleware is None:
            raise BusUsageError(
                "EventBusInstrumentor is not instrumenting; call "
                "EventBusInstrumentor().instrument(...) before instrument_bus(bus)."
            )
        if middleware not in bus.middleware:
            bus.add_middleware(middleware)
        self._buses.add(bus)


def _open_buses(buses: weakref.WeakSet[EventBus]) -> list[EventBus]:
    return [bus for bus in list(buses) if not bus.closed]
