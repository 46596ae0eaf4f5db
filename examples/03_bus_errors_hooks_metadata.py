"""Failures are isolated and reported; before/after hooks; publish metadata.

Run: python examples/03_bus_errors_hooks_metadata.py
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from eventbus.core import Envelope, EventBus, HandlerFailure, publish_metadata


@dataclass(frozen=True)
class PaymentReceived:
    payment_id: str
    amount: float


def custom_error_hook() -> None:
    print("a failing handler, with a custom error hook:")
    failures: list[HandlerFailure] = []
    with EventBus(on_error=failures.append) as bus:

        @bus.subscribe
        def flaky(event: PaymentReceived) -> None:
            raise ValueError(f"cannot book {event.payment_id}")

        @bus.subscribe
        def ledger(event: PaymentReceived) -> None:
            print(f"  ledger      booked {event.payment_id} (the failure did not stop me)")

        bus.publish(PaymentReceived("p-1", 10.0))  # does not raise
    for failure in failures:
        handler = failure.subscription
        print(f"  reported    stage={failure.stage} exception={failure.exception!r}")
        print(f"              subscription={handler!r}")


def default_error_hook() -> None:
    print("the default error hook logs on the 'eventbus' logger:")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_NoTraceback("  log: %(levelname)s %(message)s"))
    logging.getLogger("eventbus").addHandler(handler)
    with EventBus() as bus:

        @bus.subscribe
        def broken(event: PaymentReceived) -> None:
            raise RuntimeError("boom")

        bus.publish(PaymentReceived("p-2", 5.0))
    logging.getLogger("eventbus").removeHandler(handler)


class _NoTraceback(logging.Formatter):
    """The default hook logs the traceback too; the demo keeps its output short."""

    def formatException(self, ei: object) -> str:  # noqa: N802 - logging's name
        return "  (traceback omitted here)"


def hooks() -> None:
    print("before/after publish hooks:")
    with EventBus() as bus:

        @bus.before_publish
        def before(event: object) -> None:
            print(f"  before      {event!r}")

        @bus.after_publish
        def after(event: object) -> None:
            print(f"  after       {type(event).__name__} handled")

        bus.subscribe(PaymentReceived, lambda e: print(f"  handler     {e.payment_id}"))
        bus.publish(PaymentReceived("p-3", 1.0))


def metadata() -> None:
    print("publish metadata, from the context and per call:")
    with EventBus() as bus:

        @bus.subscribe
        def show(event: PaymentReceived, envelope: Envelope) -> None:
            print(f"  {event.payment_id}: metadata={dict(envelope.metadata)}")

        with publish_metadata(tenant="acme", request_id="r-42"):
            bus.publish(PaymentReceived("p-4", 1.0))
            with publish_metadata(request_id="r-43"):  # nested: adds and overrides
                bus.publish(PaymentReceived("p-5", 1.0))
            bus.publish(PaymentReceived("p-6", 1.0), metadata={"source": "batch"})
        bus.publish(PaymentReceived("p-7", 1.0))


if __name__ == "__main__":
    custom_error_hook()
    default_error_hook()
    hooks()
    metadata()
