"""When coroutine handlers run, publishing from threads, and shutting down.

Run: python examples/04_bus_asyncio_threads_shutdown.py
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from eventbus.core import BusClosedError, BusUsageError, EventBus


@dataclass(frozen=True)
class Job:
    name: str


async def publish_vs_publish_async() -> None:
    print("inside asyncio: publish schedules, publish_async waits:")
    async with EventBus() as bus:

        @bus.subscribe
        async def work(event: Job) -> None:
            await asyncio.sleep(0.05 if event.name == "scheduled" else 0.01)
            print(f"  handler     finished {event.name}")

        bus.publish(Job("scheduled"))  # returns at once; never blocks the loop
        print("  publish     returned (handler still pending)")
        await bus.publish_async(Job("awaited"))
        print("  publish_async returned (its handler is done)")
    print("  leaving 'async with' waited for the scheduled handler too")


def from_a_plain_thread() -> None:
    print("no event loop anywhere: the bus runs coroutine handlers on its own loop thread:")
    bus = EventBus()
    done = threading.Event()

    @bus.subscribe
    async def work(event: Job) -> None:
        print(f"  handler     {event.name} on thread {threading.current_thread().name!r}")
        done.set()

    bus.publish(Job("from main thread"))
    done.wait()
    bus.close()  # waits for handlers, then stops that thread
    names = [t.name for t in threading.enumerate()]
    print(f"  after close, 'eventbus-handlers' still running: {'eventbus-handlers' in names}")
    try:
        bus.publish(Job("too late"))
    except BusClosedError as exc:
        print(f"  publish after close: {type(exc).__name__}: {exc}")


def shutdown_with_timeout() -> None:
    print("shutdown(timeout) cancels handlers that outlive it:")
    bus = EventBus()
    started = threading.Event()

    @bus.subscribe
    async def stuck(event: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print(f"  handler     {event.name} was cancelled")
            raise

    bus.publish(Job("slow job"))
    started.wait()
    finished = bus.shutdown(timeout=0.1)
    print(f"  shutdown returned {finished} (False: a handler did not finish in time)")


async def shutdown_inside_asyncio() -> None:
    print("inside asyncio, use ashutdown/aclose, not the blocking shutdown:")
    bus = EventBus()

    @bus.subscribe
    async def work(event: Job) -> None:
        await asyncio.sleep(0.01)

    bus.publish(Job("pending"))
    try:
        bus.shutdown(1.0)  # would block the loop its handler needs
    except BusUsageError as exc:
        print(f"  {type(exc).__name__}: {exc}")
    print(f"  await ashutdown -> {await bus.ashutdown(1.0)}")


def many_threads() -> None:
    print("publish and subscribe from many threads at once:")
    with EventBus() as bus:
        count = 0
        lock = threading.Lock()

        def counter(event: Job) -> None:
            nonlocal count
            with lock:
                count += 1

        bus.subscribe(Job, counter)

        def worker() -> None:
            for i in range(500):
                temporary = bus.subscribe(Job, lambda e: None)
                bus.publish(Job(f"job {i}"))
                temporary.unsubscribe()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"  counter saw {count} events; handlers left: {bus.handler_count(Job)}")


if __name__ == "__main__":
    asyncio.run(publish_vs_publish_async())
    from_a_plain_thread()
    shutdown_with_timeout()
    asyncio.run(shutdown_inside_asyncio())
    many_threads()
