"""The in-process bus: the four ways to subscribe, sync and coroutine handlers, the envelope.

Run: python examples/01_bus_basics.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from eventbus.core import Envelope, EventBus


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    amount: float


@dataclass(frozen=True)
class ExpressOrderPlaced(OrderPlaced):
    """A subclass: handlers of OrderPlaced receive it too."""


@dataclass(frozen=True)
class OrderShipped:
    order_id: str


def main() -> None:
    with EventBus() as bus:
        # 1. Decorator; the event type comes from the annotation.
        @bus.subscribe
        def audit(event: OrderPlaced) -> None:
            print(f"  audit       got {type(event).__name__} {event.order_id}")

        # 2. Decorator with an explicit type (the annotation is then not read) and options.
        def is_big(event: OrderPlaced) -> bool:
            return event.amount > 100

        @bus.subscribe(OrderPlaced, where=is_big)
        def big_orders(event: OrderPlaced) -> None:
            print(f"  big_orders  got {event.order_id} ({event.amount})")

        # 3. Imperative, explicit type; 4. imperative, type from the annotation.
        def on_shipped(event: OrderShipped) -> None:
            print(f"  on_shipped  got {event.order_id}")

        def on_express(event: ExpressOrderPlaced) -> None:
            print(f"  on_express  got {event.order_id}")

        bus.subscribe(OrderShipped, on_shipped)
        express_only = bus.subscribe(on_express)

        # A handler that declares a second parameter receives the envelope.
        @bus.subscribe
        def with_envelope(event: OrderShipped, envelope: Envelope) -> None:
            print(f"  envelope    id={envelope.event_id} type={envelope.type_name.split('.')[-1]}")

        print("publish OrderPlaced o-1 (99.5):")
        bus.publish(OrderPlaced("o-1", 99.5))
        print("publish ExpressOrderPlaced o-2 (250):")
        bus.publish(ExpressOrderPlaced("o-2", 250.0))
        print("publish OrderShipped o-1:")
        bus.publish(OrderShipped("o-1"))

        print(f"handlers reached by OrderPlaced: {bus.handler_count(OrderPlaced)}")
        print(f"handlers reached by ExpressOrderPlaced: {bus.handler_count(ExpressOrderPlaced)}")
        express_only.unsubscribe()
        print(f"after unsubscribe: {bus.handler_count(ExpressOrderPlaced)}")
        print("the decorated name still calls the function directly:")
        audit(OrderPlaced("direct", 1.0))

    # Coroutine handlers are first-class; publish_async waits for them.
    async def run_async() -> None:
        async with EventBus() as bus:

            @bus.subscribe
            async def send_receipt(event: OrderPlaced) -> None:
                await asyncio.sleep(0.01)
                print(f"  send_receipt finished for {event.order_id}")

            print("await publish_async(OrderPlaced o-3):")
            await bus.publish_async(OrderPlaced("o-3", 12.0))
            print("publish_async returned: the coroutine handler had finished")

    asyncio.run(run_async())


if __name__ == "__main__":
    main()
