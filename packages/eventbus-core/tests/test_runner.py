"""The loop coroutine handlers run on, the in-flight count, limits and locks (_runner.py)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from eventbus.core import BusClosedError, BusUsageError, _runner
from eventbus.core._runner import AsyncRunner

WAIT = 10.0  # generous: only ever reached when something is broken

Failures = list[tuple[BaseException, Any, Any]]


@pytest.fixture
def failures() -> Failures:
    return []


@pytest.fixture
def runner(failures: Failures) -> Iterator[AsyncRunner]:
    runner = AsyncRunner(
        limit=None, report=lambda exc, event, sub: failures.append((exc, event, sub))
    )
    yield runner
    runner.stop()


def _recorder(
    calls: list[tuple[str, Any]], done: threading.Event | None = None
) -> Callable[..., Coroutine[Any, Any, None]]:
    async def handler(event: Any) -> None:
        calls.append((threading.current_thread().name, event))
        if done is not None:
            done.set()

    return handler


class _Key:
    """A sequential key: any object the runner can hold a weak reference to."""


def _schedule(
    runner: AsyncRunner,
    handler: Callable[..., Coroutine[Any, Any, Any]],
    event: Any,
    *,
    key: object | None = None,
    subscription: Any = "sub",
) -> asyncio.Future[Any] | None:
    return runner.schedule(handler, (event,), key, subscription, contextvars.copy_context())


# -- binding ----------------------------------------------------------------------------


def test_no_loop_is_bound_outside_asyncio(runner: AsyncRunner) -> None:
    runner.bind_running_loop()
    assert runner.loop is None


def test_binds_the_first_running_loop_and_rebinds_after_it_closes(runner: AsyncRunner) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def bind() -> None:
        runner.bind_running_loop()
        loops.append(asyncio.get_running_loop())

    asyncio.run(bind())
    assert runner.loop is loops[0]
    asyncio.run(bind())  # the first loop is closed now
    assert runner.loop is loops[1]
    assert loops[0] is not loops[1]


def test_an_open_bound_loop_is_kept(runner: AsyncRunner) -> None:
    calls: list[tuple[str, Any]] = []
    done = threading.Event()
    assert _schedule(runner, _recorder(calls, done), "e1") is None  # starts the owned loop
    owned = runner.loop

    async def other() -> None:
        runner.bind_running_loop()

    asyncio.run(other())
    assert runner.loop is owned
    assert done.wait(WAIT)


# -- scheduling -------------------------------------------------------------------------


def test_without_a_loop_handlers_run_on_a_loop_thread_the_runner_owns(runner: AsyncRunner) -> None:
    calls: list[tuple[str, Any]] = []
    assert _schedule(runner, _recorder(calls), "e1") is None
    assert runner.wait_idle(WAIT) is True
    assert calls == [("eventbus-handlers", "e1")]
    loop = runner.loop
    assert loop is not None
    assert loop.is_running()
    thread = runner._thread
    assert thread is not None
    assert thread.is_alive()
    runner.stop()
    assert loop.is_closed()
    assert not thread.is_alive()
    runner.stop()  # idempotent


def test_a_stopped_owned_loop_is_replaced_when_needed(runner: AsyncRunner) -> None:
    calls: list[tuple[str, Any]] = []
    _schedule(runner, _recorder(calls), "e1")
    assert runner.wait_idle(WAIT)
    runner.stop()
    first = runner.loop
    runner._closing = False  # a runner is not reused after shutdown; simulate a fresh one
    _schedule(runner, _recorder(calls), "e2")
    assert runner.wait_idle(WAIT)
    assert runner.loop is not first
    assert [event for _, event in calls] == ["e1", "e2"]


@pytest.mark.asyncio
async def test_on_the_running_loop_schedule_returns_the_task(runner: AsyncRunner) -> None:
    calls: list[tuple[str, Any]] = []
    task = _schedule(runner, _recorder(calls), "e1")
    assert isinstance(task, asyncio.Task)
    assert runner.inflight == 1
    await task
    assert calls == [(threading.current_thread().name, "e1")]
    assert runner.inflight == 0


@pytest.mark.asyncio
async def test_from_another_loop_schedule_returns_a_future_of_the_callers_loop(
    runner: AsyncRunner,
) -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[tuple[str, Any]] = []

    async def blocker(event: Any) -> None:
        started.set()
        await asyncio.to_thread(release.wait, WAIT)
        calls.append((threading.current_thread().name, event))

    # Bind the runner to its own loop thread first, from a plain thread.
    thread = threading.Thread(target=_schedule, args=(runner, blocker, "first"))
    thread.start()
    thread.join()
    assert started.wait(WAIT)
    waiter = _schedule(runner, _recorder(calls), "second")
    assert isinstance(waiter, asyncio.Future)
    assert waiter.get_loop() is asyncio.get_running_loop()
    release.set()
    await asyncio.wait_for(waiter, WAIT)
    assert ("eventbus-handlers", "second") in calls
    assert await asyncio.to_thread(runner.wait_idle, WAIT)


@pytest.mark.asyncio
async def test_context_variables_reach_the_handler(runner: AsyncRunner) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def handler(event: Any) -> None:
        seen.append(var.get())

    var.set("from publisher")
    task = _schedule(runner, handler, "e")
    assert task is not None
    await task
    assert seen == ["from publisher"]


@pytest.mark.asyncio
async def test_handler_exceptions_are_reported_not_raised(
    runner: AsyncRunner, failures: Failures
) -> None:
    boom = ValueError("boom")

    async def handler(event: Any) -> None:
        raise boom

    task = _schedule(runner, handler, "the event", subscription="the subscription")
    assert task is not None
    await task
    assert failures == [(boom, "the event", "the subscription")]
    assert runner.inflight == 0


@pytest.mark.asyncio
async def test_limit_bounds_concurrent_handlers(failures: Failures) -> None:
    runner = AsyncRunner(limit=2, report=lambda *a: failures.append(a))
    gate = asyncio.Event()
    active = 0
    peak = 0
    finished: list[int] = []

    async def handler(event: int) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1
        finished.append(event)

    tasks = [_schedule(runner, handler, i) for i in range(6)]
    for _ in range(20):  # let every task reach the semaphore or the gate
        await asyncio.sleep(0)
    assert active == 2
    gate.set()
    await asyncio.gather(*(t for t in tasks if t is not None))
    assert peak == 2
    assert sorted(finished) == list(range(6))
    assert failures == []


@pytest.mark.asyncio
async def test_sequential_key_serialises_in_schedule_order(runner: AsyncRunner) -> None:
    active = 0
    overlaps = 0
    order: list[int] = []

    async def handler(event: int) -> None:
        nonlocal active, overlaps
        active += 1
        overlaps += active > 1
        for _ in range(3 - event % 3):  # later events finish sooner if not serialised
            await asyncio.sleep(0)
        order.append(event)
        active -= 1

    key = _Key()  # what the bus passes: the subscription (held weakly by the runner)
    tasks = [_schedule(runner, handler, i, key=key) for i in range(12)]
    await asyncio.gather(*(t for t in tasks if t is not None))
    assert order == list(range(12))
    assert overlaps == 0


@pytest.mark.asyncio
async def test_different_sequential_keys_run_concurrently(runner: AsyncRunner) -> None:
    gate = asyncio.Event()
    started: list[int] = []

    async def handler(event: int) -> None:
        started.append(event)
        await gate.wait()

    keys = [_Key() for _ in range(3)]
    tasks = [_schedule(runner, handler, i, key=keys[i]) for i in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(started) == [0, 1, 2]
    gate.set()
    await asyncio.gather(*(t for t in tasks if t is not None))


def test_submit_runs_the_coroutine_on_the_handler_loop(
    runner: AsyncRunner,
) -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert runner.submit(where()).result(timeout=5) == "eventbus-handlers"


# -- waiting, cancelling, stopping ------------------------------------------------------


def test_wait_idle_with_nothing_in_flight_is_immediate(runner: AsyncRunner) -> None:
    assert runner.wait_idle(0) is True


def test_wait_idle_times_out_and_then_refuses_new_handlers(runner: AsyncRunner) -> None:
    release = threading.Event()

    async def blocker(event: Any) -> None:
        await asyncio.to_thread(release.wait, WAIT)

    _schedule(runner, blocker, "e")
    assert runner.wait_idle(0.01) is False
    with pytest.raises(BusClosedError, match="coroutine handlers were not started"):
        _schedule(runner, blocker, "late")
    release.set()
    assert runner.wait_idle(WAIT) is True


def test_after_a_shutdown_no_handler_restarts_a_loop_thread(runner: AsyncRunner) -> None:
    calls: list[tuple[str, Any]] = []
    _schedule(runner, _recorder(calls), "e1")  # starts the owned loop thread
    assert runner.wait_idle(WAIT) is True
    runner.stop()
    with pytest.raises(BusClosedError):
        _schedule(runner, _recorder(calls), "racing publish")
    assert runner._thread is None  # refused before a new loop thread was started
    assert [event for _, event in calls] == ["e1"]


@pytest.mark.asyncio
async def test_wait_idle_on_the_handler_loop_with_work_pending_is_a_usage_error(
    runner: AsyncRunner,
) -> None:
    calls: list[tuple[str, Any]] = []
    task = _schedule(runner, _recorder(calls), "e")
    assert task is not None
    with pytest.raises(BusUsageError, match=r"await bus\.ashutdown"):
        runner.wait_idle(None)
    await task
    # The refused wait did not close the runner.
    second = _schedule(runner, _recorder(calls), "after")
    assert second is not None
    await second
    assert [event for _, event in calls] == ["e", "after"]


def test_cancel_pending_without_a_loop(runner: AsyncRunner) -> None:
    assert runner.cancel_pending() is True


def test_cancel_pending_with_a_closed_loop(runner: AsyncRunner) -> None:
    async def bind() -> None:
        runner.bind_running_loop()

    asyncio.run(bind())
    assert runner.loop is not None
    assert runner.loop.is_closed()
    assert runner.cancel_pending() is True


def test_cancel_pending_cancels_and_lets_handlers_unwind(runner: AsyncRunner) -> None:
    started = threading.Event()
    unwound: list[str] = []

    async def stuck(event: Any) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            unwound.append("cancelled")
            raise
        finally:
            unwound.append("finally")

    _schedule(runner, stuck, "e")
    assert started.wait(WAIT)
    assert runner.wait_idle(0.01) is False
    assert runner.cancel_pending() is True
    assert unwound == ["cancelled", "finally"]
    assert runner.inflight == 0


def test_cancel_pending_gives_up_on_a_handler_that_ignores_cancellation(
    runner: AsyncRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runner, "CANCEL_GRACE", 0.05)
    started = threading.Event()
    release = threading.Event()
    cancellations = 0

    async def stubborn(event: Any) -> None:
        nonlocal cancellations
        started.set()
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                cancellations += 1

    _schedule(runner, stubborn, "e")
    assert started.wait(WAIT)
    assert runner.cancel_pending() is False
    assert cancellations == 1
    release.set()
    assert runner.wait_idle(WAIT) is True


def test_stop_leaves_a_users_loop_alone(runner: AsyncRunner) -> None:
    async def main() -> asyncio.AbstractEventLoop:
        runner.bind_running_loop()
        runner.stop()
        loop = asyncio.get_running_loop()
        assert loop.is_running()
        return loop

    loop = asyncio.run(main())
    assert runner.loop is loop


# -- the cross-loop future helper -------------------------------------------------------


def test_resolve_threadsafe_ignores_a_closed_loop() -> None:
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    loop.close()
    _runner._resolve_threadsafe(loop, future)  # must not raise
    assert not future.done()


@pytest.mark.asyncio
async def test_resolve_threadsafe_leaves_a_finished_future_alone() -> None:
    loop = asyncio.get_running_loop()
    cancelled = loop.create_future()
    cancelled.cancel()
    pending = loop.create_future()
    _runner._resolve_threadsafe(loop, cancelled)
    _runner._resolve_threadsafe(loop, pending)
    await asyncio.wait_for(pending, WAIT)
    assert cancelled.cancelled()
    assert pending.result() is None


def test_stop_lets_coroutines_left_on_the_owned_loop_unwind() -> None:
    runner = AsyncRunner(limit=None, report=lambda exc, event, sub: None)
    unwound = threading.Event()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            unwound.set()

    runner.submit(forever())
    assert started.wait(5)
    runner.stop()
    assert unwound.is_set()


def test_stop_gives_up_on_a_loop_blocked_by_a_handler_that_never_yields() -> None:
    runner = AsyncRunner(limit=None, report=lambda exc, event, sub: None)
    release = threading.Event()
    started = threading.Event()

    async def blocks() -> None:
        started.set()
        release.wait(10)  # blocks the loop's thread: the bug being survived

    runner.submit(blocks())
    assert started.wait(5)
    assert not runner.stop(timeout=0.1)
    release.set()
    assert runner.stop(timeout=5)


def test_stop_after_someone_else_stopped_the_owned_loop_only_waits_for_its_thread() -> None:
    runner = AsyncRunner(limit=None, report=lambda exc, event, sub: None)

    async def nothing() -> None:
        return None

    runner.submit(nothing()).result(WAIT)
    loop, thread = runner.loop, runner._thread
    assert loop is not None
    assert thread is not None
    loop.call_soon_threadsafe(loop.stop)  # stopped behind the runner's back
    thread.join(WAIT)
    assert loop.is_closed()  # the loop's thread closed it on the way out
    assert runner.stop(timeout=WAIT)
