"""Where coroutine handlers run, and how the bus knows when they have finished.

All coroutine handlers of one bus run on one event loop, so ``sequential`` handlers
see events in publish order and the concurrency limit is one semaphore. That loop is
the first running loop the bus meets (a ``publish_async`` call, a sync ``publish`` made
from inside a coroutine, or a coroutine handler subscribed from inside one). A program
with no event loop at all gets a loop on a thread the bus owns and stops at close.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._exceptions import BusClosedError, BusUsageError

if TYPE_CHECKING:
    import contextvars

__all__ = ["AsyncRunner", "running_loop"]

Reporter = Callable[[BaseException, Any, Any], None]

# asyncio.get_running_loop without the exception: bind_running_loop runs on every
# publish_async.
_get_running_loop = asyncio.events._get_running_loop

# How long a shutdown that timed out waits for cancelled handlers to unwind (run
# their ``except CancelledError``/``finally`` blocks) before the loop is stopped.
CANCEL_GRACE = 1.0
# How often a shutdown waiting for handlers checks that their loop still runs.
STALL_CHECK = 0.05


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
        # Keyed by the subscription, weakly: a lock goes with its subscription.
        self._sequential_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._report = report
        # Set by wait_idle: from then on no new handler may start (see schedule).
        self._closing = False
        # Set by stop(): the loop was told to stop (a later call only waits for it).
        self._stop_requested = False

    # -- binding -------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop coroutine handlers run on, once bound."""
        return self._loop

    def bind_running_loop(self) -> None:
        """Bind to the running loop if the bus has none (or its loop was closed)."""
        running = _get_running_loop()
        if running is None or running is self._loop:
            return  # no loop, or bound to this one already (open: it is running)
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
            # Refuse before starting a loop: after shutdown stopped the bus's loop
            # thread, a racing publish must not start another one.
            self._check_accepting()
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
            # The thread closes its own loop once it stops, whoever stopped it: stop()
            # may have given up waiting (a handler blocked the loop).
            loop.close()

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
        sequential_key: object | None,
        subscription: Any,
        context: contextvars.Context,
    ) -> asyncio.Future[Any] | None:
        """Start a handler on the handler loop.

        The in-flight count rises before this returns, so a shutdown that starts
        right after a publish still waits for the handler.

        Returns:
            Something the caller's running loop can await until the handler is done:
            the handler's task when it runs on the caller's loop, a future of the
            caller's loop when it runs on another one; None when no loop is running.
        """
        loop = self._loop_for_dispatch()
        with self._lock:
            # Checked again under the lock wait_idle holds: a handler is either counted
            # before a shutdown starts waiting (and waited for), or refused.
            self._check_accepting()
            self._inflight += 1
        coro = self._run(coroutine_function, args, sequential_key, subscription)
        running = running_loop()
        if running is loop:
            return self._create_task(loop, coro, context)
        if running is None:
            loop.call_soon_threadsafe(self._create_task, loop, coro, context)
            return None
        # The caller is a coroutine on another loop (the bus's handler loop was bound
        # elsewhere first): give it a future of its own loop to wait on.
        done: asyncio.Future[Any] = running.create_future()

        def start() -> None:
            task = self._create_task(loop, coro, context)
            task.add_done_callback(lambda _: _resolve_threadsafe(running, done))

        loop.call_soon_threadsafe(start)
        return done

    def _check_accepting(self) -> None:
        if self._closing:
            raise BusClosedError(
                "The bus was closed while this event was being published; its remaining "
                "coroutine handlers were not started."
            )

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
        sequential_key: object | None,
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
        sequential_key: object | None,
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

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Start a coroutine on the handler loop from another thread; cancellable."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop_for_dispatch())

    # -- waiting and stopping ------------------------------------------------------

    @property
    def inflight(self) -> int:
        """How many coroutine handlers are scheduled or running."""
        return self._inflight

    def wait_idle(self, timeout: float | None) -> bool:
        """Block until no handler is in flight; False if ``timeout`` passed first.

        From this call on (unless it raises) no new handler is accepted: ``schedule``
        raises :class:`BusClosedError`, so a publish racing a shutdown can neither
        start a handler after the wait nor restart a stopped loop.

        Handlers on a loop that is not running (stopped, or closed) cannot finish, so
        the wait ends as soon as their loop is found not running, with False.

        Raises:
            BusUsageError: called on the handler loop's own thread while handlers are
                pending: they could never finish while this call blocks that loop.
        """
        with self._lock:
            if self._inflight and running_loop() is self._loop:
                raise BusUsageError(
                    "Cannot block the event loop that runs the bus's coroutine handlers "
                    "while waiting for them; use 'await bus.ashutdown(timeout)' or "
                    "'await bus.aclose()' from asyncio code."
                )
            self._closing = True
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._inflight:
                loop = self._loop
                if loop is None or not loop.is_running():
                    return False
                wait = STALL_CHECK
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return False
                self._idle.wait(wait)
            return True

    def cancel_pending(self, grace: float = CANCEL_GRACE) -> bool:
        """Cancel every handler still in flight, and let them unwind.

        Waits up to ``grace`` seconds for the cancelled handlers to finish
        their ``except``/``finally`` blocks, so a loop stopped afterwards does not
        destroy them mid-flight.

        Returns:
            True if every cancelled handler finished unwinding in that time.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return self._inflight == 0
        # On the loop's thread: the task set is only touched there, and tasks whose
        # creation is still queued are created (and so cancelled) first.
        loop.call_soon_threadsafe(self._cancel_all)
        return self.wait_idle(grace)

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the loop thread the bus owns, if any. The user's loop is left alone.

        Args:
            timeout: Seconds to wait for the loop thread; a loop blocked by a handler
                that never yields is left running (its thread is a daemon).

        Returns:
            True if the loop thread ended (or there was none).
        """
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return True
        if not self._stop_requested:
            self._stop_requested = True
            # Coroutines still on the loop (a durable handler cancelled at the shutdown
            # deadline) unwind before it stops, instead of being destroyed while pending;
            # the loop stops itself once they did.
            if not loop.is_closed():  # else it was stopped (and closed) by someone else
                leftovers = _cancel_leftovers_and_stop()
                try:
                    asyncio.run_coroutine_threadsafe(leftovers, loop)
                except RuntimeError:  # pragma: no cover - closed between the check and here
                    leftovers.close()
        thread.join(timeout)
        if thread.is_alive():
            return False
        loop.close()
        self._thread = None
        self._stop_requested = False  # a later owned loop is stopped afresh
        return True


async def _cancel_leftovers_and_stop() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CANCEL_GRACE)
    asyncio.get_running_loop().stop()


def _resolve_threadsafe(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
    """Mark ``future`` (of ``loop``, maybe another thread's) done, if anyone still waits."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    # A closed loop raises RuntimeError: then nobody waits on the future any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(resolve)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread, or None (without raising, so it is cheap)."""
    return _get_running_loop()
