"""Where coroutine handlers run, and how the bus knows when they have finished.

All coroutine handlers of one bus run on one event loop, so ``sequential`` handlers
see events in publish order and the concurrency limit is one semaphore. That loop is
the first running loop the bus meets (a ``publish_async`` call, a sync ``publish`` made
from inside a coroutine, or a coroutine handler subscribed from inside one). A program
with no event loop at all gets a loop on a thread the bus owns and stops at close.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from ._exceptions import BusUsageError

__all__ = ["AsyncRunner"]

Reporter = Callable[[BaseException, Any, Any], None]


class AsyncRunner:
    """Owns the handler loop binding, the in-flight count and the handler tasks."""

    def __init__(self, *, limit: int | None, report: Reporter) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._inflight = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self._limit = limit
        self._semaphore: asyncio.Semaphore | None = None
        self._sequential_locks: dict[int, asyncio.Lock] = {}
        self._report = report

    # -- binding -------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop coroutine handlers run on, once bound."""
        return self._loop

    def bind_running_loop(self) -> None:
        """Bind to the running loop if the bus has none (or its loop was closed)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._bind(running)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._semaphore = None
        self._sequential_locks.clear()

    def _loop_for_dispatch(self) -> asyncio.AbstractEventLoop:
        self.bind_running_loop()
        with self._lock:
            loop = self._loop
            if loop is None or loop.is_closed():
                loop = self._start_owned_loop()
            return loop

    def _start_owned_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="eventbus-handlers", daemon=True)
        self._thread.start()
        ready.wait()
        self._bind(loop)
        return loop

    # -- running -------------------------------------------------------------------

    def schedule(
        self,
        coroutine_function: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        sequential_key: int | None,
        subscription: Any,
        context: contextvars.Context,
    ) -> asyncio.Future[Any] | None:
        """Start a handler on the handler loop; return its task when created in this thread.

        The in-flight count rises before this returns, so a shutdown that starts
        right after a publish still waits for the handler.
        """
        loop = self._loop_for_dispatch()
        with self._lock:
            self._inflight += 1
        coro = self._run(coroutine_function, args, sequential_key, subscription)
        if _running_loop() is loop:
            return self._create_task(loop, coro, context)
        loop.call_soon_threadsafe(self._create_task, loop, coro, context)
        return None

    def _create_task(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, None],
        context: contextvars.Context,
    ) -> asyncio.Future[Any]:
        task = loop.create_task(coro, context=context)
        self._tasks.add(task)
        # A done callback, not a ``finally`` in the coroutine: a task cancelled before
        # its first step never enters the coroutine body.
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        with self._lock:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    async def _run(
        self,
        coroutine_function: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        sequential_key: int | None,
        subscription: Any,
    ) -> None:
        try:
            semaphore = self._get_semaphore()
            if semaphore is None:
                await self._call(coroutine_function, args, sequential_key)
            else:
                async with semaphore:
                    await self._call(coroutine_function, args, sequential_key)
        except Exception as exc:
            self._report(exc, args[0], subscription)

    async def _call(
        self,
        coroutine_function: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        sequential_key: int | None,
    ) -> None:
        if sequential_key is None:
            await coroutine_function(*args)
            return
        lock = self._sequential_locks.get(sequential_key)
        if lock is None:
            lock = self._sequential_locks.setdefault(sequential_key, asyncio.Lock())
        async with lock:
            await coroutine_function(*args)

    def _get_semaphore(self) -> asyncio.Semaphore | None:
        if self._limit is None:
            return None
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._limit)
        return self._semaphore

    async def gather(self, tasks: list[asyncio.Future[Any]]) -> None:
        """Wait for handler tasks started by this loop's ``publish_async``."""
        if tasks:
            await asyncio.wait(tasks)

    # -- waiting and stopping ------------------------------------------------------

    @property
    def inflight(self) -> int:
        """How many coroutine handlers are scheduled or running."""
        return self._inflight

    def wait_idle(self, timeout: float | None) -> bool:
        """Block until no handler is in flight; False if ``timeout`` passed first.

        Raises:
            BusUsageError: called on the handler loop's own thread while handlers are
                pending: they could never finish while this call blocks that loop.
        """
        with self._lock:
            if self._inflight and _running_loop() is self._loop:
                raise BusUsageError(
                    "Cannot block the event loop that runs the bus's coroutine handlers "
                    "while waiting for them; use 'await bus.ashutdown(timeout)' or "
                    "'await bus.aclose()' from asyncio code."
                )
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def cancel_pending(self) -> None:
        """Cancel every handler task still running."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for task in list(self._tasks):
            loop.call_soon_threadsafe(task.cancel)

    def stop(self) -> None:
        """Stop the loop thread the bus owns, if any. The user's loop is left alone."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._thread = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
