"""Appending from asyncio code: the rows of one event-loop turn in one commit.

``append_async`` queues its row on the running loop and awaits a future. The first
row of a turn schedules a flush for the end of the turn, so every append made in
that turn joins it; the flush hands the rows to one worker thread, which commits them
in one transaction under the store's write lock (the lock the thread appender and
conditional appends take, so they all stay ordered). That is one thread handoff per
batch instead of one per event. Each loop has at most one batch in flight: rows
queued meanwhile go in the next one, handed over as soon as it is done, so the
appends of one task keep their order.

Every caller gets its own outcome, and only after its row is committed: a duplicate
event id fails only its caller (the batch is retried row by row); any other SQLite
failure fails the whole batch, of which nothing was stored; a store closed before
the write fails it with StoreClosedError. A caller cancelled before its row reached
the worker withdraws the row; after that, the row is committed or not exactly as if
the caller had waited.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import sqlite3
from typing import TYPE_CHECKING, TypeAlias

from eventbus.core import StoreClosedError

from ._errors import translate_sqlite_error
from ._rows import ROWS_PER_INSERT, insert_sql, row_values

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventbus.core import EventRecord, Offset

    from ._connection import Connections
    from ._rows import Row

__all__ = ["AsyncAppender"]

Outcome: TypeAlias = "Offset | Exception"
"""What became of one row: its offset, or the error its caller raises."""

_flatten = itertools.chain.from_iterable


class _Queue:
    """The rows one event loop queued, and whether a flush is scheduled or running.

    Touched only from its loop's thread.
    """

    __slots__ = ("active", "futures", "rows")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.futures: list[asyncio.Future[Offset]] = []
        self.active = False  # a flush is scheduled, or a batch is with the worker


class AsyncAppender:
    """Commits the rows of asyncio callers, one batch per loop turn, on a worker thread.

    Args:
        db: The store's connections; the writer is used only under its write lock.
        on_commit: Called (with the write lock held) after every commit or failed
            attempt, to wake the store's ``tail`` calls.
    """

    def __init__(self, db: Connections, on_commit: Callable[[], None]) -> None:
        self._db = db
        self._committed = on_commit
        # One queue per loop with appends under way; dropped when it runs dry, so a
        # finished loop is not kept alive. Each loop's thread touches only its own.
        self._queues: dict[asyncio.AbstractEventLoop, _Queue] = {}

    def submit(self, record: EventRecord) -> asyncio.Future[Offset]:
        """Queue ``record`` on the running loop; the future gets its offset or error.

        Raises:
            TypeError: ``record`` is not an EventRecord.
            ValueError: Its timestamp is naive.
            StoreClosedError: The store was closed.
            RuntimeError: No event loop is running in this thread.
        """
        row = row_values(record)
        self._db.check_open()
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[Offset] = loop.create_future()
        queue.rows.append(row)
        queue.futures.append(future)
        if not queue.active:
            queue.active = True
            # At the end of this turn, so that every append made in it joins the batch.
            # (Handing rows over sooner gains nothing: the worker needs the GIL, which
            # this thread holds until the turn ends.)
            loop.call_soon(self._flush, loop, queue)
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
        """Hand everything queued to a worker thread (on the loop's thread)."""
        rows, futures = queue.rows, queue.futures
        queue.rows, queue.futures = [], []
        if any(future.done() for future in futures):
            # Callers cancelled while queued withdraw their rows: nothing half-known.
            kept = [(r, f) for r, f in zip(rows, futures, strict=True) if not f.done()]
            rows = [r for r, _ in kept]
            futures = [f for _, f in kept]
        if not rows:
            self._idle(loop, queue)
            return
        try:
            writing = loop.run_in_executor(None, self._write, rows)
        except Exception as exc:  # the loop's executor was shut down: nothing was stored
            _settle(futures, [exc] * len(futures))
            self._next(loop, queue)
            return
        writing.add_done_callback(functools.partial(self._written, loop, queue, futures))

    def _written(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: _Queue,
        futures: list[asyncio.Future[Offset]],
        writing: asyncio.Future[list[Outcome]],
    ) -> None:
        """Give each caller its outcome, then hand over what queued meanwhile."""
        outcomes: list[Outcome]
        try:
            outcomes = writing.result()
        except Exception as exc:  # not an SQLite error (_write maps those): fail them all
            outcomes = [exc] * len(futures)
        _settle(futures, outcomes)
        self._next(loop, queue)

    def _next(self, loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
        if queue.rows:
            self._flush(loop, queue)  # queued while the last batch was being written
        else:
            self._idle(loop, queue)

    def _idle(self, loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
        queue.active = False
        self._queues.pop(loop, None)

    # -- on the worker thread ------------------------------------------------------------

    def _write(self, rows: list[Row]) -> list[Outcome]:
        """Commit ``rows`` in one transaction; return each row's outcome."""
        db = self._db
        with db.write_lock:
            try:
                if db.closed:
                    return [self._closed()] * len(rows)
                try:
                    last = self._store(rows)
                except sqlite3.IntegrityError:
                    # One bad row (a duplicate event id) must not fail its neighbours:
                    # each row again, in a transaction of its own.
                    return [self._store_one(row) for row in rows]
                except sqlite3.Error as exc:
                    return [self._translate(exc)] * len(rows)
                first = last - len(rows) + 1
                return ["%020d" % position for position in range(first, last + 1)]  # noqa: UP031 - the fastest formatting
            finally:
                self._committed()

    def _store(self, rows: list[Row]) -> int:
        """Insert ``rows`` atomically; return the last one's position (write lock held).

        Up to ``ROWS_PER_INSERT`` rows are one multi-row ``INSERT`` in autocommit mode,
        which is one transaction and one call into SQLite (one release of the GIL, which
        the loop's thread is waiting for). More go in ``BEGIN IMMEDIATE``, several
        statements. The write lock keeps the positions consecutive.
        """
        conn = self._db.writer
        if len(rows) <= ROWS_PER_INSERT:
            return conn.execute(insert_sql(len(rows)), list(_flatten(rows))).lastrowid  # type: ignore[return-value]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), ROWS_PER_INSERT):
                part = rows[start : start + ROWS_PER_INSERT]
                last = conn.execute(insert_sql(len(part)), list(_flatten(part))).lastrowid
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()  # a no-op when SQLite already rolled back by itself
            raise
        return last  # type: ignore[return-value]

    def _store_one(self, row: Row) -> Outcome:
        try:
            return "%020d" % self._store([row])  # noqa: UP031 - as above
        except sqlite3.Error as exc:
            return self._translate(exc)

    def _closed(self) -> StoreClosedError:
        return StoreClosedError(
            f"The SQLiteStore {self._db.path!r} was closed before the append was committed; "
            "nothing was stored."
        )

    def _translate(self, exc: sqlite3.Error) -> Exception:
        error = translate_sqlite_error(exc, self._db.path)
        error.__cause__ = exc
        return error


def _settle(futures: list[asyncio.Future[Offset]], outcomes: list[Outcome]) -> None:
    """Resolve each caller's future, skipping callers that were cancelled meanwhile."""
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, str):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
