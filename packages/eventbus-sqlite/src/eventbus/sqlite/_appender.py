"""Appending from threads with group commit (coroutines: :mod:`._async_appender`).

Each caller queues its rows; one caller at a time leads, writing everything queued
in one transaction (one multi-row ``INSERT``), then wakes the callers it committed.
Nobody returns before their own rows are committed. A caller that finds no group
forming and the write lock free skips the queue and writes at once (the
single-publisher case).

The leader wakes only the first caller of its group, and each woken caller wakes the
next one as it returns (a wake chain): woken all at once, they would all wake only to
queue for the GIL, which one of them holds, a second sleep and a second wake each.
While a chain wakes, new callers queue and nobody leads; the last caller of the
chain, once awake, leads them: under load they are the callers woken before it,
appending again, so they share the next transaction with no leader sleeping to
wait for them. A leader with nobody to wake promotes the first caller queued since.
Context switches were most of the CPU an event cost with 8 threads
(docs/decisions.md, "Group commit wakes its callers in a chain, and the chain's end
leads the next group").
"""

from __future__ import annotations

import _thread
import sqlite3
import threading
from typing import TYPE_CHECKING

from eventbus.core import StoreClosedError, StoreUnavailableError

from ._errors import translate_sqlite_error
from ._rows import INSERT_ONE, ROWS_PER_INSERT, insert_sql, row_values

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventbus.core import EventRecord, Offset

    from ._connection import Connections
    from ._rows import Row

__all__ = ["Appender"]


class _Pending:
    """Rows waiting to be committed, and what became of them.

    A caller that queues behind a running leader sleeps on ``wake``, which is released
    when the rows are committed (or failed), or to make it the next leader. Once
    awake, it releases ``chain``: the wake of the next caller of its group.
    """

    __slots__ = ("abandoned", "chain", "error", "last", "offsets", "rows", "wake")

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.offsets: list[Offset] | None = None
        self.error: BaseException | None = None
        self.wake: _thread.LockType | None = None
        self.chain: _thread.LockType | None = None
        self.abandoned = False  # its caller left while the leader wrote its rows
        self.last = False  # the end of its group's wake chain: it leads the next group


class Appender:
    """Commits appended records through the writer connection, grouping concurrent callers.

    Args:
        db: The store's connections; the writer is used only under its write lock.
        on_commit: Called (with the write lock held) after every commit or failed
            attempt, to wake the store's ``tail`` calls.
    """

    def __init__(self, db: Connections, on_commit: Callable[[], None]) -> None:
        self._db = db
        self._writer = db.writer
        self._write_lock = db.write_lock
        # A single-row append reuses this cursor instead of creating one per execute.
        self._cursor = db.writer.cursor()
        self._committed = on_commit
        self._pending: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._leading = False  # a thread is committing the queue (under _queue_lock)
        # A wake chain is running (under _queue_lock): callers queue, and its last
        # caller leads them once it wakes.
        self._waking = False

    def append(self, record: EventRecord) -> Offset:
        """Store one record; see ``SQLiteStore.append``."""
        rows = [row_values(record)]
        self._db.check_open()
        # Nobody leads a group, nor was just woken (and may append again): write now.
        if not (self._leading or self._waking):
            last = self._commit_alone(rows)
            if last is not None:
                return "%020d" % last  # noqa: UP031 - the fastest formatting
        return self._submit(rows)[0]

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        """Store records atomically; see ``SQLiteStore.append_batch``."""
        rows = [row_values(record) for record in records]
        self._db.check_open()
        if not rows:
            return []
        if not (self._leading or self._waking):
            last = self._commit_alone(rows)
            if last is not None:
                return [f"{position:020d}" for position in range(last - len(rows) + 1, last + 1)]
        return self._submit(rows)

    def _insert(self, rows: list[Row]) -> int:
        """Insert ``rows`` with one statement; return the position of the last one."""
        cursor = self._writer.execute(insert_sql(len(rows)), [v for row in rows for v in row])
        return cursor.lastrowid  # type: ignore[return-value]

    def _store_rows(self, rows: list[Row]) -> int:
        """Commit ``rows`` atomically and return the last one's position; the write lock is held.

        Up to ``ROWS_PER_INSERT`` rows go in one multi-row ``INSERT`` in autocommit
        mode: one statement is one transaction, and the whole group costs one call
        into SQLite (one release of the GIL, which matters when threads wait for it).
        Larger groups use ``BEGIN IMMEDIATE`` around several such statements. The
        rows get consecutive positions (the write lock is held throughout), so the
        last position gives all the others.
        """
        if len(rows) == 1:  # the common case, without flattening the parameters
            return self._cursor.execute(INSERT_ONE, rows[0]).lastrowid  # type: ignore[return-value]
        if len(rows) <= ROWS_PER_INSERT:
            return self._insert(rows)
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), ROWS_PER_INSERT):
                last = self._insert(rows[start : start + ROWS_PER_INSERT])
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()  # a no-op when SQLite already rolled back by itself
            raise
        return last

    def _write(self, batch: list[_Pending]) -> None:
        """Commit every row of ``batch`` atomically and give each caller its offsets."""
        rows = [row for pending in batch for row in pending.rows]
        position = self._store_rows(rows) - len(rows)
        for pending in batch:
            offsets = []
            for _ in pending.rows:
                position += 1
                offsets.append(f"{position:020d}")
            pending.offsets = offsets

    def _commit(self, batch: list[_Pending]) -> None:
        """Commit ``batch``, giving each caller its offsets or its own error."""
        if self._db.closed:
            return  # _drain tells each caller the store was closed
        try:
            self._write(batch)
        except sqlite3.IntegrityError:
            # One bad record (a duplicate event id) must not fail its neighbours:
            # retry each caller's records in a transaction of their own.
            for pending in batch:
                try:
                    self._write([pending])
                except sqlite3.Error as exc:
                    pending.error = self._translate(exc)
        except sqlite3.Error as exc:
            for pending in batch:
                pending.error = self._translate(exc)

    def _closed_before_commit(self) -> StoreClosedError:
        return StoreClosedError(
            f"The SQLiteStore {self._db.path!r} was closed before the append was committed; "
            "nothing was stored."
        )

    def _drain(self, batch: list[_Pending]) -> None:
        """Commit ``batch``; make sure every caller in it gets offsets or an error."""
        try:
            with self._write_lock:
                try:
                    self._commit(batch)
                finally:
                    self._committed()
        finally:
            for pending in batch:
                if pending.offsets is None and pending.error is None:
                    # Closed before the write, or the leader was interrupted mid-write.
                    pending.error = (
                        self._closed_before_commit()
                        if self._db.closed
                        else StoreUnavailableError(
                            f"The append to {self._db.path!r} was interrupted before it "
                            "committed; nothing was stored."
                        )
                    )

    def _commit_alone(self, rows: list[Row]) -> int | None:
        """Commit ``rows`` at once if the write lock is free; return the last position.

        The uncontended case (one publishing thread): no place in the queue, nobody
        to wake, one lock. Callers arriving meanwhile queue as usual, and their leader
        waits for the write lock like any writer. Called only while no group forms
        (nobody leads, nobody was just woken); the reads of that are unlocked, as a
        stale one costs only a detour through the queue, or the leader a short wait.

        Returns:
            The last row's position, or None when another writer holds the lock (then
            nothing was done, and the caller queues).
        """
        if not self._write_lock.acquire(False):
            return None
        error: Exception
        try:
            if self._db.closed:
                error = self._closed_before_commit()
            else:
                try:
                    return self._store_rows(rows)
                except sqlite3.Error as exc:
                    # Alone, a duplicate event id fails only this caller: no retry.
                    error = self._translate(exc)
        finally:
            try:
                self._committed()
            finally:
                self._write_lock.release()
        raise error

    def _lead(self, own: _Pending | None) -> None:
        """Commit everything queued, in one transaction, then hand over and wake the group.

        Exactly one thread leads at a time (``_leading``). Callers that queue while it
        writes sleep on their own lock. Afterwards the leader starts the wake chain of
        the callers it committed (``own`` is the leader's own entry, or None), whose
        last caller leads whatever queued meanwhile: under load that is everyone
        woken before it, appending again, so they share the next transaction. With
        nobody to wake, the leader promotes the first caller queued since, so no
        caller wakes just to find it must wait again.
        """
        with self._queue_lock:
            batch = self._pending
            self._pending = []
        self._commit_group(batch, own)

    def _commit_group(self, batch: list[_Pending], own: _Pending | None) -> None:
        """Commit the group ``batch`` taken from the queue, then wake it and hand over."""
        try:
            self._drain(batch)
        finally:
            with self._queue_lock:
                # Under the lock: a caller abandoning its wait either is left out here,
                # or finds its link set and passes the chain on itself.
                first = _chain(batch, own)
                successor = None
                if first is not None:
                    self._waking = True
                    self._leading = False
                elif self._pending:
                    successor = self._pending[0].wake
                else:
                    self._leading = False
            if first is not None:
                first.release()
            if successor is not None:
                successor.release()

    def _abandon(self, pending: _Pending) -> None:
        """Withdraw a queued caller whose wait was interrupted (KeyboardInterrupt).

        Rows not yet taken by a leader are dropped, so nothing is stored half-known;
        if the caller had just been made leader, the role passes on, so later appends
        never wait for a leader that left.
        """
        with self._queue_lock:
            if pending not in self._pending:
                # A leader already took the rows; their outcome is unknown. Whoever
                # comes after it in the wake chain must still be woken.
                pending.abandoned = True
                chain, pending.chain = pending.chain, None
                if chain is None and pending.last and self._end_chain():
                    chain = self._pending[0].wake  # promote the first queued caller
                if chain is not None:
                    chain.release()
                return
            wake = pending.wake
            assert wake is not None  # only queued followers wait, so only they abandon
            promoted = pending is self._pending[0] and not wake.locked()
            self._pending.remove(pending)
            if promoted:
                if self._pending:
                    successor = self._pending[0].wake
                    assert successor is not None
                    successor.release()
                else:
                    self._leading = False

    def _end_chain(self) -> bool:
        """The last caller of a wake chain woke, or gave up waiting: close the chain.

        Called with the queue lock held. Returns whether callers queued meanwhile;
        then the queue is marked led, and the caller must see that someone leads it.
        """
        self._waking = False
        if not self._pending:
            return False
        self._leading = True
        return True

    def _translate(self, exc: sqlite3.Error) -> Exception:
        error = translate_sqlite_error(exc, self._db.path)
        error.__cause__ = exc
        return error

    def _submit(self, rows: list[Row]) -> list[Offset]:
        """Queue ``rows`` for the next group commit and wait until they are committed."""
        pending = _Pending(rows)
        with self._queue_lock:
            self._pending.append(pending)
            if self._leading or self._waking:
                pending.wake = wake = _thread.allocate_lock()
                wake.acquire()
            else:
                self._leading = True
        if pending.wake is not None:
            # A leader is writing: sleep until it committed our rows, or made us lead.
            try:
                pending.wake.acquire()
            except BaseException:
                self._abandon(pending)
                raise
            if pending.chain is not None:
                pending.chain.release()  # the next caller of our group
            elif pending.last:
                # The end of our group's chain: lead the callers that queued while the
                # group woke (not ourselves: our rows are done), then return our own
                # outcome.
                with self._queue_lock:
                    group = None
                    if self._end_chain():
                        group = self._pending
                        self._pending = []
                if group is not None:
                    self._commit_group(group, None)
        if pending.offsets is None and pending.error is None:
            self._lead(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.offsets is not None  # the leader set offsets or an error
        return pending.offsets


def _chain(batch: list[_Pending], own: _Pending | None) -> _thread.LockType | None:
    """Link the sleeping callers of ``batch`` into a wake chain; return its first wake.

    Each caller releases the next one's wake when it wakes, so they take the GIL one
    after the other instead of all queueing for it at once; the last one is marked
    to lead the next group. The leader (``own``) and callers that gave up waiting
    are left out.
    """
    first: _thread.LockType | None = None
    last: _Pending | None = None
    for pending in batch:
        if pending is own or pending.wake is None or pending.abandoned:
            continue
        if last is None:
            first = pending.wake
        else:
            last.chain = pending.wake
        last = pending
    if last is not None:
        last.last = True
    return first
