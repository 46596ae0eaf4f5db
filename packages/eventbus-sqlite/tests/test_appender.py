"""Appending: duplicate ids, group commit, and interrupted or closed writers."""

from __future__ import annotations

import _thread
import dataclasses
import functools
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import (
    NEWEST,
    StoreClosedError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore
from eventbus.sqlite import _appender as appender_module

from ._support import Call, raw, wait_until


def test_duplicate_event_id_is_refused_clearly(store: SQLiteStore) -> None:
    record = make_record()
    store.append(record)
    with pytest.raises(StoreError, match="already stored") as caught:
        store.append(dataclasses.replace(record, data='{"other": 1}'))
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert len(store.read().events) == 1


def test_batch_with_duplicate_event_id_stores_nothing(store: SQLiteStore) -> None:
    record = make_record()
    with pytest.raises(StoreError, match="already stored"):
        store.append_batch([record, make_record(), record])
    assert store.read().events == []


def _leads_alone(store: SQLiteStore) -> bool:
    """A caller is leading a group and took every queued row (so it waits for the lock)."""
    return store._appender._leading and not store._appender._pending


def _append_n(store: SQLiteStore, n: int) -> str:
    return store.append(make_record({"n": n}))


def test_appends_queued_behind_a_writer_share_one_transaction(store: SQLiteStore) -> None:
    inserts: list[str] = []
    store._db.writer.set_trace_callback(
        lambda sql: inserts.append(sql) if sql.startswith("INSERT INTO events") else None
    )
    store._db.write_lock.acquire()  # a long write in progress
    try:
        leader = Call(lambda: store.append(make_record({"n": 0})))
        wait_until(
            lambda: _leads_alone(store),
            "the leader to take its batch",
        )
        followers = [Call(functools.partial(_append_n, store, i)) for i in (1, 2, 3)]
        wait_until(lambda: len(store._appender._pending) == 3, "three queued followers")
    finally:
        store._db.write_lock.release()
    offsets = [leader.join()] + [f.join() for f in followers]
    assert len(set(offsets)) == 4
    # The leader's own statement, then one statement (one transaction) for all three.
    assert [sql.count('{"n": ') for sql in inserts] == [1, 3]
    stored = {e.offset: e.data for e in store.read().events}
    assert stored == {offsets[i]: f'{{"n": {i}}}' for i in range(4)}
    assert not store._appender._leading


def test_large_batches_span_several_statements_in_one_transaction(store: SQLiteStore) -> None:
    first = store.append(make_record())
    records = [make_record({"n": n}) for n in range(150)]
    offsets = store.append_batch(records)
    assert offsets == [f"{n:020d}" for n in range(2, 152)]
    assert [e.data for e in store.read(first, limit=200).events] == [r.data for r in records]
    taken = records[140]
    with pytest.raises(StoreError, match="already stored"):
        store.append_batch([make_record() for _ in range(100)] + [taken])  # fails in chunk 2
    assert store.read(NEWEST).next == offsets[-1]
    assert not store._db.writer.in_transaction


def test_one_bad_record_does_not_fail_its_group(store: SQLiteStore) -> None:
    taken = make_record()
    store.append(taken)
    store._db.write_lock.acquire()
    try:
        leader = Call(lambda: store.append(make_record()))
        wait_until(lambda: _leads_alone(store), "the leader")
        duplicate = Call(lambda: store.append(taken))
        wait_until(lambda: len(store._appender._pending) == 1, "the duplicate to queue")
        good = Call(lambda: store.append(make_record()))
        wait_until(lambda: len(store._appender._pending) == 2, "the good record to queue")
    finally:
        store._db.write_lock.release()
    leader.join()
    good_offset = good.join()
    duplicate.join()
    assert isinstance(duplicate.error, StoreError)
    assert "already stored" in str(duplicate.error)
    assert good.error is None
    assert store.read().events[-1].offset == good_offset


def test_busy_database_fails_every_queued_append(db: Path) -> None:
    with SQLiteStore(db, busy_timeout=0) as store:
        blocker = raw(db)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            store._db.write_lock.acquire()
            try:
                first = Call(lambda: store.append(make_record()))
                wait_until(lambda: _leads_alone(store), "the leader")
                second = Call(lambda: store.append(make_record()))
                third = Call(lambda: store.append(make_record()))
                wait_until(lambda: len(store._appender._pending) == 2, "two followers")
            finally:
                store._db.write_lock.release()
            for call in (first, second, third):
                call.join()
                assert isinstance(call.error, StoreTimeoutError)
            assert second.error is not third.error
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.append(make_record()) == "00000000000000000001"


def test_close_fails_queued_appends_cleanly(store: SQLiteStore) -> None:
    store._db.write_lock.acquire()
    try:
        leader = Call(lambda: store.append(make_record()))
        wait_until(lambda: _leads_alone(store), "the leader")
        follower = Call(lambda: store.append(make_record()))
        wait_until(lambda: len(store._appender._pending) == 1, "the follower")
        closer = Call(store.close)
        wait_until(lambda: store._db.closed, "close to begin")
    finally:
        store._db.write_lock.release()
    closer.join()
    for call in (leader, follower):
        call.join()
        assert isinstance(call.error, StoreClosedError)
        assert "before the append was committed" in str(call.error)


class _ClosingLock:
    """The store's write lock, except that taking it without waiting starts a close."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._lock = store._db.write_lock
        self.closers: list[Call] = []

    def acquire(self, blocking: bool = True) -> bool:
        took = self._lock.acquire(blocking)
        if took and not blocking:  # the uncontended append: close() now waits for it
            self.closers.append(Call(self._store.close))
            wait_until(lambda: self._store._db.closed, "close to begin")
        return took

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def test_close_just_before_an_uncontended_write_stores_nothing(
    db: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = _ClosingLock(store)
    monkeypatch.setattr(store._appender, "_write_lock", lock)
    with pytest.raises(StoreClosedError, match="before the append was committed"):
        store.append(make_record())
    (closer,) = lock.closers
    closer.join()
    assert closer.error is None
    monkeypatch.undo()
    assert not store._db.write_lock.locked()
    with SQLiteStore(db) as reopened:
        assert reopened.read().events == []


def test_uncontended_appends_skip_the_queue(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_queue(rows: list[Any]) -> list[str]:
        raise AssertionError("an uncontended append went through the queue")

    monkeypatch.setattr(store._appender, "_submit", no_queue)
    assert store.append(make_record()) == "00000000000000000001"
    assert store.append_batch([make_record(), make_record()]) == [
        "00000000000000000002",
        "00000000000000000003",
    ]
    assert not store._db.write_lock.locked()
    assert not store._appender._leading


def test_batches_queue_behind_a_busy_writer(store: SQLiteStore) -> None:
    store._db.write_lock.acquire()  # another writer, such as save_checkpoint
    try:
        first = Call(lambda: store.append_batch([make_record({"n": 0}), make_record({"n": 1})]))
        wait_until(
            lambda: _leads_alone(store),
            "the first batch to lead",
        )
        second = Call(lambda: store.append_batch([make_record({"n": 2}), make_record({"n": 3})]))
        wait_until(lambda: len(store._appender._pending) == 1, "the second batch to queue")
    finally:
        store._db.write_lock.release()
    assert first.join() == ["00000000000000000001", "00000000000000000002"]
    assert second.join() == ["00000000000000000003", "00000000000000000004"]
    assert [e.data for e in store.read().events] == [f'{{"n": {n}}}' for n in range(4)]
    assert not store._appender._leading


def test_interrupted_leader_fails_its_batch_and_steps_down(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = store._appender._write

    def write(batch: list[Any]) -> None:
        if len(batch) > 1:
            raise KeyboardInterrupt  # the leader of the second batch is interrupted
        real_write(batch)

    monkeypatch.setattr(store._appender, "_write", write)
    store._db.write_lock.acquire()
    try:
        first = Call(lambda: store.append(make_record()))
        wait_until(lambda: _leads_alone(store), "the leader")
        second = Call(lambda: store.append(make_record()))
        wait_until(lambda: len(store._appender._pending) == 1, "the second")
        third = Call(lambda: store.append(make_record()))
        wait_until(lambda: len(store._appender._pending) == 2, "the third")
    finally:
        store._db.write_lock.release()
    for call in (first, second, third):
        call.join()
    assert first.error is None
    assert isinstance(second.error, KeyboardInterrupt)
    assert isinstance(third.error, StoreUnavailableError)
    assert "interrupted before it committed" in str(third.error)
    assert not store._appender._leading
    assert len(store.read().events) == 1
    monkeypatch.undo()
    assert store.append(make_record()) == "00000000000000000002"


class _InterruptedWake:
    """A follower's wake lock whose blocking wait is interrupted (as by Ctrl-C).

    ``after`` decides when: at once, or once the leader released it (committed the
    rows, or promoted the follower to leader).
    """

    def __init__(self, after_release: bool) -> None:
        self._lock = threading.Lock()
        self._after_release = after_release

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking or not self._lock.locked():
            return self._lock.acquire(blocking)
        if self._after_release:
            wait_until(lambda: not self._lock.locked(), "the leader to release the wake")
        raise KeyboardInterrupt

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def _interrupt_next_follower(
    monkeypatch: pytest.MonkeyPatch, *, after_release: bool, skip: int = 0
) -> None:
    made = iter([*([None] * skip), _InterruptedWake(after_release)])
    real = _thread.allocate_lock

    class _Thread:
        @staticmethod
        def allocate_lock() -> Any:
            return next(made, None) or real()

    monkeypatch.setattr(appender_module, "_thread", _Thread)


def test_follower_interrupted_while_queued_stores_nothing(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=False)
    store._db.write_lock.acquire()
    try:
        leader = Call(lambda: store.append(make_record({"who": "leader"})))
        wait_until(lambda: _leads_alone(store), "the leader")
        quitter = Call(lambda: store.append(make_record({"who": "quitter"})))
        quitter.join()
        assert isinstance(quitter.error, KeyboardInterrupt)
        assert store._appender._pending == []
    finally:
        store._db.write_lock.release()
    leader.join()
    assert [e.data for e in store.read().events] == ['{"who": "leader"}']
    assert not store._appender._leading


def test_promoted_follower_interrupted_with_nobody_behind_steps_down(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=True)
    store._db.write_lock.acquire()
    try:
        leader = Call(lambda: store.append(make_record()))
        wait_until(lambda: _leads_alone(store), "the leader")
        follower = Call(lambda: store.append(make_record()))
        wait_until(lambda: len(store._appender._pending) == 1, "the follower")
        # The leader promotes the follower, whose wait is then interrupted.
    finally:
        store._db.write_lock.release()
    leader.join()
    follower.join()
    assert isinstance(follower.error, KeyboardInterrupt)
    assert not store._appender._leading  # it handed the role back: later appends do not hang
    assert len(store.read().events) == 1
    store.append(make_record())
    assert len(store.read().events) == 2


def test_promoted_follower_interrupted_passes_leadership_on(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=True)
    store._db.write_lock.acquire()
    try:
        leader = Call(lambda: store.append(make_record({"n": 0})))
        wait_until(lambda: _leads_alone(store), "the leader")
        quitter = Call(lambda: store.append(make_record({"n": 1})))
        wait_until(lambda: len(store._appender._pending) == 1, "the quitter")
        last = Call(lambda: store.append(make_record({"n": 2})))
        wait_until(lambda: len(store._appender._pending) == 2, "the last follower")
    finally:
        store._db.write_lock.release()
    leader.join()
    quitter.join()
    last.join()
    assert isinstance(quitter.error, KeyboardInterrupt)
    assert last.error is None
    assert [e.data for e in store.read().events] == ['{"n": 0}', '{"n": 2}']
    assert not store._appender._leading


def test_follower_interrupted_after_its_rows_were_taken_keeps_them(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=True, skip=1)
    store._db.write_lock.acquire()
    try:
        leader = Call(lambda: store.append(make_record({"n": 0})))
        wait_until(lambda: _leads_alone(store), "the leader")
        successor = Call(lambda: store.append(make_record({"n": 1})))
        wait_until(lambda: len(store._appender._pending) == 1, "the successor")
        quitter = Call(lambda: store.append(make_record({"n": 2})))
        wait_until(lambda: len(store._appender._pending) == 2, "the quitter")
    finally:
        store._db.write_lock.release()
    for call in (leader, successor, quitter):
        call.join()
    assert successor.error is None
    # Its rows were committed in the successor's batch before the interrupt landed.
    assert isinstance(quitter.error, KeyboardInterrupt)
    assert [e.data for e in store.read().events] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert not store._appender._leading


def _group_behind_a_promoted_leader(store: SQLiteStore, members: int) -> tuple[Call, list[Call]]:
    """The leader writes alone (the write lock held); ``members`` callers queue behind it.

    Once the lock is released, the leader promotes the first follower, which commits
    itself and the others in one group, then wakes them through the wake chain.
    """
    leader = Call(lambda: store.append(make_record({"n": 0})))
    wait_until(lambda: _leads_alone(store), "the leader")
    followers = []
    for n in range(1, members + 1):
        followers.append(Call(functools.partial(_append_n, store, n)))
        wait_until(functools.partial(_queued, store, n), f"follower {n} to queue")
    return leader, followers


def _queued(store: SQLiteStore, count: int) -> bool:
    return len(store._appender._pending) == count


def test_every_caller_of_a_group_is_woken_through_the_chain(store: SQLiteStore) -> None:
    store._db.write_lock.acquire()
    try:
        leader, followers = _group_behind_a_promoted_leader(store, 7)
    finally:
        store._db.write_lock.release()
    offsets = [leader.join()] + [f.join() for f in followers]
    assert offsets == [f"{n:020d}" for n in range(1, 9)]
    assert [f.error for f in followers] == [None] * 7
    assert not store._appender._leading


class _WakeInterruptedOnSignal:
    """A follower's wake lock whose blocking wait is interrupted once ``signal`` is set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.signal = threading.Event()
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking or not self._lock.locked():
            return self._lock.acquire(blocking)
        self.waiting.set()
        assert self.signal.wait(10), "the test never interrupted the wait"
        raise KeyboardInterrupt

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def _next_wakes(monkeypatch: pytest.MonkeyPatch, wakes: list[Any]) -> None:
    """The next locks the appender allocates are ``wakes`` (None: a real lock)."""
    made = iter(wakes)
    real = _thread.allocate_lock

    class _Thread:
        @staticmethod
        def allocate_lock() -> Any:
            return next(made, None) or real()

    monkeypatch.setattr(appender_module, "_thread", _Thread)


@pytest.mark.parametrize("when", ["chain already linked", "chain not linked yet"])
def test_caller_leaving_mid_chain_still_wakes_the_callers_after_it(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # Followers 1..3 queue; 1 is promoted and commits [1, 2, 3]; 2 gives up waiting
    # after its rows were taken, which must not leave 3 asleep.
    quitter_wake = _WakeInterruptedOnSignal()
    _next_wakes(monkeypatch, [None, quitter_wake])
    if when == "chain not linked yet":
        real_drain = store._appender._drain

        def drain(batch: list[Any]) -> None:
            if len(batch) > 1:  # the group: the quitter leaves before it is written
                quitter_wake.signal.set()
                wait_until(lambda: quitter.error is not None, "the quitter to leave")
            real_drain(batch)

        monkeypatch.setattr(store._appender, "_drain", drain)
    store._db.write_lock.acquire()
    try:
        leader, (successor, quitter, last) = _group_behind_a_promoted_leader(store, 3)
        wait_until(quitter_wake.waiting.is_set, "the quitter to sleep")
    finally:
        store._db.write_lock.release()
    if when == "chain already linked":
        wait_until(lambda: successor.result is not None, "the group to commit")
        quitter_wake.signal.set()
    for call in (leader, successor, quitter, last):
        call.join()
    assert isinstance(quitter.error, KeyboardInterrupt)
    assert last.error is None
    assert last.result == "00000000000000000004"
    # The quitter's rows were taken by the group: they were committed all the same.
    assert [e.data for e in store.read().events] == [f'{{"n": {n}}}' for n in range(4)]
    assert not store._appender._leading


class _HeldWake:
    """A follower's wake lock: once released, its sleeper stays asleep until ``go``.

    Holds the end of a wake chain still, so the test can queue callers meanwhile.
    With ``interrupt``, the sleeper then gives up waiting instead (as by Ctrl-C).
    """

    def __init__(self, *, interrupt: bool = False) -> None:
        self._lock = threading.Lock()
        self._interrupt = interrupt
        self.go = threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking or not self._lock.locked():
            return self._lock.acquire(blocking)
        wait_until(lambda: not self._lock.locked(), "the wake to be released")
        assert self.go.wait(10), "the test never let the sleeper go"
        if self._interrupt:
            raise KeyboardInterrupt
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def _inserts(store: SQLiteStore) -> list[str]:
    """The INSERT statements the writer runs from now on."""
    inserts: list[str] = []
    store._db.writer.set_trace_callback(
        lambda sql: inserts.append(sql) if sql.startswith("INSERT INTO events") else None
    )
    return inserts


@pytest.mark.parametrize("interrupt", [False, True])
def test_the_end_of_a_wake_chain_leads_the_callers_queued_meanwhile(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, interrupt: bool
) -> None:
    # Followers 1 and 2 queue behind the leader; 1 is promoted and commits [1, 2];
    # 2 ends the wake chain. While it is still waking, 3 and 4 queue (no caller
    # leads while a chain wakes) and are then committed together: by 2, or, when 2
    # gives up waiting, by 3, which 2 promotes.
    last_wake = _HeldWake(interrupt=interrupt)
    _next_wakes(monkeypatch, [None, last_wake])
    inserts = _inserts(store)
    store._db.write_lock.acquire()
    try:
        leader, (successor, last) = _group_behind_a_promoted_leader(store, 2)
    finally:
        store._db.write_lock.release()
    wait_until(lambda: successor.result is not None, "the group [1, 2] to commit")
    assert store._appender._waking
    late = []
    for n in (3, 4):
        late.append(Call(functools.partial(_append_n, store, n)))
        wait_until(functools.partial(_queued, store, n - 2), f"caller {n} to queue")
    assert not store._appender._leading  # nobody took the lead while the chain woke
    last_wake.go.set()
    for call in (leader, successor, last, *late):
        call.join()
    assert [call.error for call in late] == [None, None]
    assert [call.result for call in late] == ["00000000000000000004", "00000000000000000005"]
    if interrupt:
        assert isinstance(last.error, KeyboardInterrupt)
    else:
        assert last.result == "00000000000000000003"
    # One statement each: the leader's own, the group [1, 2], the late callers [3, 4].
    assert [sql.count('{"n": ') for sql in inserts] == [1, 2, 2]
    assert [e.data for e in store.read().events] == [f'{{"n": {n}}}' for n in range(5)]
    assert not store._appender._leading
    assert not store._appender._waking
