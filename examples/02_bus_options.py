"""Subscription options: once, where, sequential, and the bus-wide max_concurrent_handlers.

Run: python examples/02_bus_options.py
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from eventbus.core import EventBus


@dataclass(frozen=True)
class Tick:
    n: int


def once_and_where() -> None:
    print("once and where:")
    with EventBus() as bus:

        @bus.subscribe(once=True)
        def first_tick(event: Tick) -> None:
            print(f"  once        ran for tick {event.n} (and never again)")

        @bus.subscribe(where=lambda e: e.n % 2 == 0)
        def even_ticks(event: Tick) -> None:
            print(f"  where       tick {event.n} is even")

        # once + where: the first event the filter accepts uses the once up.
        @bus.subscribe(once=True, where=lambda e: e.n > 2)
        def first_big(event: Tick) -> None:
            print(f"  once+where  first tick above 2: {event.n}")

        for n in range(6):
            bus.publish(Tick(n))
        print(f"  still subscribed: first_tick={first_tick.active} first_big={first_big.active}")


async def sequential_async() -> None:
    print("sequential coroutine handler (publish order kept, never overlapping):")
    async with EventBus() as bus:
        order: list[int] = []

        @bus.subscribe(sequential=True)
        async def ordered(event: Tick) -> None:
            await asyncio.sleep(0.001 * (5 - event.n))  # later events are quicker...
            order.append(event.n)

        await asyncio.gather(*(bus.publish_async(Tick(n)) for n in range(5)))
        print(f"  completion order: {order}")  # ...but still finish in publish order


async def bounded_concurrency() -> None:
    print("max_concurrent_handlers=2:")
    async with EventBus(max_concurrent_handlers=2) as bus:
        running = 0
        peak = 0

        @bus.subscribe
        async def slow(event: Tick) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

        await asyncio.gather(*(bus.publish_async(Tick(n)) for n in range(8)))
        print(f"  8 handlers ran, at most {peak} at a time")


def sequential_sync_threads() -> None:
    print("sequential sync handler called from 4 threads:")
    with EventBus() as bus:
        inside = 0
        peak = 0
        calls = 0
        lock = threading.Lock()

        @bus.subscribe(sequential=True)
        def critical(event: Tick) -> None:
            nonlocal inside, peak, calls
            with lock:
                inside += 1
                peak = max(peak, inside)
            with lock:
                inside -= 1
                calls += 1

        def publisher() -> None:
            for n in range(250):
                bus.publish(Tick(n))

        threads = [threading.Thread(target=publisher) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"  {calls} calls, at most {peak} inside the handler at once")


if __name__ == "__main__":
    once_and_where()
    asyncio.run(sequential_async())
    asyncio.run(bounded_concurrency())
    sequential_sync_threads()
