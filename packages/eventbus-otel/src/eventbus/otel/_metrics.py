"""The metric instruments: durations, errors, and how far durable consumers are behind.

Durations and errors are recorded by the middleware as calls happen. The lag of a
durable subscription is observed when the meter collects: for each active subscription
of each instrumented bus, the events stored after its position (counted up to
:data:`LAG_CAP`) and the age of the oldest event its checkpoint has not passed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.metrics import CallbackOptions, Observation

from eventbus.core import EventBusError, SubscriptionState

from ._semconv import CONSUMER_GROUP, SYSTEM, SYSTEM_NAME

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from eventbus.core import DurableSubscription, EventBus

__all__ = ["LAG_CAP", "Instruments"]

LAG_CAP: Final = 10_000
"""The events-behind gauge counts at most this many: one collection reads no more."""

logger: Final = logging.getLogger("eventbus.otel")


class Instruments:
    """The instruments of one instrumentation, created from its meter.

    Args:
        meter: Where the measurements go.
        buses: The instrumented buses, read at each collection.
    """

    def __init__(self, meter: Meter, buses: Callable[[], Iterable[EventBus]]) -> None:
        self._buses = buses
        self.publish_duration = meter.create_histogram(
            "messaging.client.operation.duration",
            unit="s",
            description="Duration of publishing one event: its append to the store.",
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Duration of one handler call, plain or durable.",
        )
        self.handler_errors = meter.create_counter(
            "messaging.eventbus.handler.errors",
            unit="{error}",
            description="Handler calls that raised.",
        )
        self._event_age = meter.create_gauge(
            "messaging.eventbus.consumer.lag.seconds",
            unit="s",
            description="Age of the event a durable subscription handles: seconds behind.",
        )
        meter.create_observable_gauge(
            "messaging.eventbus.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{event}",
            description=f"Events stored after a durable subscription's position, up to {LAG_CAP}.",
        )
        meter.create_observable_gauge(
            "messaging.eventbus.checkpoint.age",
            callbacks=[self._observe_checkpoint_age],
            unit="s",
            description="Age of the oldest event a durable subscription has not checkpointed.",
        )

    def event_age(self, stored_at: datetime, attributes: Mapping[str, Any]) -> None:
        """Record how old the event a durable subscription starts handling is."""
        self._event_age.set((datetime.now(UTC) - stored_at).total_seconds(), attributes)

    def _observe_lag(self, options: CallbackOptions) -> Iterator[Observation]:
        for bus, durable in self._active():
            try:
                behind = sum(1 for _ in itertools.islice(bus.replay(durable.position), LAG_CAP))
            except EventBusError as exc:
                _unreadable(durable, exc)
                continue
            yield Observation(behind, _attributes(durable))

    def _observe_checkpoint_age(self, options: CallbackOptions) -> Iterator[Observation]:
        now = datetime.now(UTC)
        for bus, durable in self._active():
            saved = durable.checkpoint
            try:
                oldest = None if saved is None else next(bus.replay(saved, batch_size=1), None)
            except EventBusError as exc:
                _unreadable(durable, exc)
                continue
            age = 0.0 if oldest is None else (now - oldest.timestamp).total_seconds()
            yield Observation(max(age, 0.0), _attributes(durable))

    def _active(self) -> Iterator[tuple[EventBus, DurableSubscription]]:
        for bus in list(self._buses()):
            for durable in bus.durable_subscriptions.values():
                # A standby's position is another owner's business.
                if durable.state is SubscriptionState.ACTIVE:
                    yield bus, durable


def _unreadable(durable: DurableSubscription, exc: EventBusError) -> None:
    # A closed or failing store: no observation this time; the bus reports its own errors.
    logger.debug("eventbus.otel: no lag observed for %r: %r", durable, exc)


def _attributes(durable: DurableSubscription) -> dict[str, Any]:
    return {SYSTEM: SYSTEM_NAME, CONSUMER_GROUP: durable.subscription_id}
