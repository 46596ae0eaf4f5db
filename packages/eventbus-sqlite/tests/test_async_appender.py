"""append_async: one commit per event-loop turn, each caller its own outcome.

Real files throughout. A batch is held at the write lock (taken by the test, as a long
write by another thread would hold it) to see what queues behind it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventbus.core import StoreClosedError, StoreError
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

from ._support import Call

on_a_loop = pytest.mark.asyncio(loop_scope="function")


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Let the loop run until ``predicate`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


@pytest.fixture
def statements(store: SQLiteStore) -> Iterator[list[str]]:
    """Every statement the store's writer runs from now on; an INSERT as its row count.

    (The traced text holds the values: each row has one timestamp, ending "+00:00'".)
    """
    seen: list[str] = []

    def trace(sql: str) -> None:
        if sql.startswith("INSERT INTO events"):
            sql = "INSERT x%d" % sql.count("+00:00'")  # noqa: UP031
        seen.append(sql)

    store._db.writer.set_trace_callback(trace)
    yield seen
    store._db.writer.set_trace_callback(None)


def _handed_over(store: SQLiteStore) -> bool:
    """The running loop's rows went to the worker: its queue is empty but active."""
    queues = list(store._async_appender._queues.values())
    return len(queues) == 1 and queues[0].active and not queues[0].rows


def _queued(store: SQLiteStore) -> int:
    return sum(len(queue.rows) for queue in store._async_appender._queues.values())


async def _stored(store: SQLiteStore) -> list[tuple[str, str]]:
    events = (await asyncio.to_thread(store.read, limit=1000)).events
    return [(e.offset, e.event_id) for e in events]


@on_a_loop
async def test_the_appends_of_one_loop_turn_share_one_statement(
    store: SQLiteStore, statements: list[str]
) -> None:
    records = [make_record({"n": n}) for n in range(10)]
    offsets = await asyncio.gather(*(store.append_async(r) for r in records))
    assert statements == ["INSERT x10"]
    assert await _stored(store) == [(o, r.event_id) for o, r in zip(offsets, records, strict=True)]
    assert store._async_appender._queues == {}  # the idle loop is not kept


@on_a_loop
async def test_more_rows_than_one_statement_takes_are_one_transaction(
    store: SQLiteStore, statements: list[str]
) -> None:
    records = [make_record({"n": n}) for n in range(100)]
    offsets = await asyncio.gather(*(store.append_async(r) for r in records))
    assert statements == ["BEGIN IMMEDIATE", "INSERT x64", "INSERT x36", "COMMIT"]
    assert [int(o) for o in offsets] == list(range(1, 101))
    assert await _stored(store) == [(o, r.event_id) for o, r in zip(offsets, records, strict=True)]


@on_a_loop
async def test_rows_queued_during_a_write_go_in_the_next_batch_in_order(
    store: SQLiteStore, statements: list[str]
) -> None:
    store._db.write_lock.acquire()  # a long write in progress
    try:
        first = asyncio.ensure_future(store.append_async(make_record({"n": 0})))
        await until(lambda: _handed_over(store), "the first batch to reach the worker")
        behind = [make_record({"n": n}) for n in (1, 2, 3)]
        later = [asyncio.ensure_future(store.append_async(r)) for r in behind]
        await until(lambda: _queued(store) == 3, "three appends queued behind it")
    finally:
        store._db.write_lock.release()
    offsets = [await first, *[await task for task in later]]
    assert statements == ["INSERT x1", "INSERT x3"]
    assert offsets == sorted(offsets)
    assert [e for _, e in await _stored(store)][1:] == [r.event_id for r in behind]


@on_a_loop
async def test_a_duplicate_event_id_fails_only_its_caller(
    store: SQLiteStore, statements: list[str]
) -> None:
    taken = make_record()
    await store.append_async(taken)
    statements.clear()
    duplicate = dataclasses.replace(taken, data='{"other": 1}')
    records = [make_record({"n": n}) for n in range(3)]
    outcomes = await asyncio.gather(
        store.append_async(records[0]),
        store.append_async(duplicate),
        *(store.append_async(r) for r in records[1:]),
        return_exceptions=True,
    )
    error = outcomes.pop(1)
    assert isinstance(error, StoreError)
    assert "already stored" in str(error)
    assert isinstance(error.__cause__, sqlite3.IntegrityError)
    # The batch failed as a whole, then each row went alone.
    assert statements == ["INSERT x4"] + ["INSERT x1"] * 4
    stored = await _stored(store)
    assert [e for _, e in stored] == [taken.event_id, *(r.event_id for r in records)]
    assert [o for o, _ in stored[1:]] == outcomes


@on_a_loop
async def test_a_duplicate_in_a_large_batch_rolls_back_then_fails_only_its_caller(
    store: SQLiteStore, statements: list[str]
) -> None:
    taken = make_record()
    await store.append_async(taken)
    records = [make_record({"n": n}) for n in range(80)]
    records[70] = dataclasses.replace(taken, data='{"other": 1}')
    outcomes = await asyncio.gather(
        *(store.append_async(r) for r in records), return_exceptions=True
    )
    assert isinstance(outcomes.pop(70), StoreError)
    assert all(isinstance(o, str) for o in outcomes)
    assert "ROLLBACK" in statements
    stored = await _stored(store)
    assert len(stored) == 80
    assert [o for o, _ in stored[1:]] == outcomes


@on_a_loop
async def test_a_caller_cancelled_while_queued_stores_nothing(store: SQLiteStore) -> None:
    kept = make_record({"n": "kept"})
    withdrawn = asyncio.ensure_future(store.append_async(make_record({"n": "withdrawn"})))
    other = asyncio.ensure_future(store.append_async(kept))
    await asyncio.sleep(0)  # both queued; the flush runs at the end of the next turn
    assert _queued(store) == 2
    withdrawn.cancel()
    offset = await other
    with pytest.raises(asyncio.CancelledError):
        await withdrawn
    assert await _stored(store) == [(offset, kept.event_id)]


@on_a_loop
async def test_a_turn_whose_callers_were_all_cancelled_writes_nothing(
    store: SQLiteStore, statements: list[str]
) -> None:
    task = asyncio.ensure_future(store.append_async(make_record()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: not store._async_appender._queues, "the queue to be dropped")
    assert statements == []
    assert await _stored(store) == []
    record = make_record()
    assert await store.append_async(record) == "%020d" % 1  # noqa: UP031 - it still works


@on_a_loop
async def test_a_caller_cancelled_after_the_hand_over_does_not_undo_the_commit(
    store: SQLiteStore,
) -> None:
    record = make_record()
    store._db.write_lock.acquire()
    try:
        task = asyncio.ensure_future(store.append_async(record))
        await until(lambda: _handed_over(store), "the batch to reach the worker")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        store._db.write_lock.release()
    await until(lambda: not store._async_appender._queues, "the batch to be settled")
    assert [e for _, e in await _stored(store)] == [record.event_id]


@on_a_loop
async def test_closing_while_a_batch_waits_for_the_lock_fails_it_cleanly(
    store: SQLiteStore,
) -> None:
    store._db.write_lock.acquire()
    try:
        waiting = [asyncio.ensure_future(store.append_async(make_record())) for _ in range(3)]
        await until(lambda: _handed_over(store), "the batch to reach the worker")
        closing = Call(store.close)  # blocks on the write lock after marking the store closed
        await until(lambda: store._db.closed, "the store to be marked closed")
    finally:
        store._db.write_lock.release()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, StoreClosedError), outcome
        assert "closed before the append was committed; nothing was stored" in str(outcome)
    await asyncio.to_thread(closing.join)
    with SQLiteStore(store.path) as reopened:
        assert reopened.read().events == []


@on_a_loop
async def test_a_failure_outside_sqlite_reaches_every_caller_of_the_batch(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:  # a bug after the commit: the rows are stored, the callers told
        raise RuntimeError("the tail wake-up failed")

    monkeypatch.setattr(store._async_appender, "_committed", broken)
    outcomes = await asyncio.gather(
        *(store.append_async(make_record()) for _ in range(3)), return_exceptions=True
    )
    assert [str(o) for o in outcomes] == ["the tail wake-up failed"] * 3
    assert store._async_appender._queues == {}


@on_a_loop
async def test_appends_after_the_loops_executor_shut_down_fail_with_its_error(
    store: SQLiteStore,
) -> None:
    await asyncio.get_running_loop().shutdown_default_executor()
    with pytest.raises(RuntimeError, match="shutdown"):
        await store.append_async(make_record())
    assert store._async_appender._queues == {}


@on_a_loop
async def test_a_busy_database_fails_every_caller_of_the_batch(db: Path) -> None:
    with SQLiteStore(db, busy_timeout=0.05) as store:
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            outcomes = await asyncio.gather(
                *(store.append_async(make_record()) for _ in range(3)), return_exceptions=True
            )
        finally:
            other.execute("ROLLBACK")
            other.close()
        for outcome in outcomes:
            assert isinstance(outcome, StoreError), outcome
            assert not isinstance(outcome, StoreClosedError)
        assert len(outcomes) == 3
        assert outcomes[0] is outcomes[2]  # one failure, told to each caller
        assert await _stored(store) == []


@on_a_loop
async def test_append_async_refuses_what_append_refuses(store: SQLiteStore) -> None:
    with pytest.raises(TypeError, match="EventRecord"):
        await store.append_async("not a record")  # type: ignore[arg-type]
    naive = dataclasses.replace(
        make_record(), timestamp=make_record().timestamp.replace(tzinfo=None)
    )
    with pytest.raises(ValueError, match="naive"):
        await store.append_async(naive)
    assert store._async_appender._queues == {}


def test_threads_and_loops_appending_together_keep_every_row(store: SQLiteStore) -> None:
    """Two loops in threads and a thread appender at once: every row lands exactly once."""
    per_loop = 200
    results: dict[str, list[str]] = {}

    async def publish(name: str) -> None:
        records = [make_record({"w": name, "n": n}) for n in range(per_loop)]
        mine = []
        for start in range(0, per_loop, 20):
            mine += await asyncio.gather(
                *(store.append_async(r) for r in records[start : start + 20])
            )
        results[name] = mine

    def loop_writer(name: str) -> Callable[[], None]:
        return lambda: asyncio.run(publish(name))

    def thread_writer() -> None:
        results["thread"] = [store.append(make_record({"w": "thread"})) for _ in range(per_loop)]

    calls = [Call(loop_writer("a")), Call(loop_writer("b")), Call(thread_writer)]
    for call in calls:
        call.join()
        assert call.error is None, call.error
    everything = [o for offsets in results.values() for o in offsets]
    assert len(set(everything)) == 3 * per_loop
    assert sorted(everything) == [e.offset for e in store.iter_events()]
    for offsets in results.values():
        assert offsets == sorted(offsets)
