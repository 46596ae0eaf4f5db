"""SQLiteStore: the local durable store on the stdlib ``sqlite3`` module (WAL).

Offsets are the ``INTEGER PRIMARY KEY`` of the ``events`` table written as 20
zero-padded decimal digits, so comparing offsets as strings compares log positions.

Concurrency model:

* one writer connection per store, used only under ``_write_lock``. Appends are
  *group committed*: each caller queues its rows; one caller at a time leads,
  writing everything queued in one transaction (one multi-row ``INSERT``), then
  wakes the callers it committed and promotes the first one queued since to lead the
  next group. Nobody returns before their own rows are committed. A caller that
  finds no group forming and the write lock free skips the queue and writes at once
  (the single-publisher case).
* one reader connection per thread (WAL: readers never wait for the writer); every
  statement is its own short read transaction, so no read holds the database
  between calls.
* ``tail`` wakes at once on an append of this store (a condition variable) and polls
  with a back-off from 1 ms to 50 ms for appends of other processes.
* ``:memory:`` uses the single writer connection for everything, under the lock.
"""

from __future__ import annotations

import _thread
import functools
import json
import math
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from eventbus.core import (
    NEWEST,
    OLDEST,
    Boundary,
    EventRecord,
    OffsetError,
    ReadResult,
    StoreClosedError,
    StoreCorruptError,
    StoredEvent,
    StoreTimeoutError,
    StoreUnavailableError,
)

from ._errors import DatabasePathError, _map_sqlite_errors, translate_sqlite_error
from ._schema import check_database, ensure_schema

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import TracebackType

    from eventbus.core import Checkpoint, Offset, Position

__all__ = ["MEMORY", "Durability", "SQLiteStore"]

MEMORY: Final = ":memory:"
"""The path of a private in-memory database: gone when the store closes."""

Durability = Literal["normal", "full"]
"""``"normal"``: WAL with ``synchronous=NORMAL``; ``"full"``: WAL with ``synchronous=FULL``."""

_WIDTH: Final = 20
_OLDEST_TEXT: Final = "oldest"  # how a saved OLDEST checkpoint is stored
_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_MIN_POLL: Final = 0.001
_MAX_POLL: Final = 0.05

_ROWS_PER_INSERT: Final = 64  # 6 parameters a row stays far below SQLite's limit of 999


@functools.cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO events (event_id, type_name, data, timestamp, metadata, origin) "
        f"VALUES {values}"
    )


_INSERT_ONE: Final = _insert_sql(1)
# The offset is formatted by SQLite (printf, as "%020d"): cheaper than in Python.
_SELECT: Final = (
    "SELECT printf('%020d', position), event_id, type_name, data, timestamp, metadata, "
    "origin FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
_TAIL: Final = "SELECT max(position) FROM events"

_fromisoformat = datetime.fromisoformat
_loads = json.loads
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}.")


def _check_subscription_id(subscription_id: object) -> None:
    if not isinstance(subscription_id, str) or not subscription_id:
        raise ValueError(f"A subscription id must be a non-empty string, got {subscription_id!r}.")


_Row = tuple[str, str, str, str, str | None, str]


def _row_values(record: EventRecord) -> _Row:
    """Check that ``record`` can be stored and return its row of the events table."""
    if not isinstance(record, EventRecord):
        raise TypeError(f"A store appends EventRecord instances, got {record!r}.")
    timestamp = record.timestamp
    if timestamp.tzinfo is UTC and type(timestamp) is datetime:
        # What the bus stamps. This writes what isoformat() writes, at two thirds
        # of the cost: isoformat() looks the offset up through the tzinfo.
        text = f"{timestamp.date().isoformat()}T{timestamp.time().isoformat()}+00:00"
    elif timestamp.utcoffset() is None:
        raise ValueError(
            f"EventRecord {record.event_id!r} has a naive timestamp "
            f"{timestamp!r}; stores keep timezone-aware UTC datetimes."
        )
    else:
        text = timestamp.isoformat()
    metadata = record.metadata
    return (
        record.event_id,
        record.type_name,
        record.data,
        text,
        _dumps(dict(metadata)) if metadata else None,
        record.origin,
    )


# StoredEvent is a frozen slotted dataclass: its __init__ pays an object.__setattr__
# per field. Replay builds millions of them, so _decode fills the slots directly
# through their descriptors (test_store checks these are exactly its fields).
STORED_EVENT_FIELDS: Final = (
    "offset",
    "event_id",
    "type_name",
    "data",
    "timestamp",
    "metadata",
    "origin",
)
_new_event = object.__new__
(
    _set_offset,
    _set_event_id,
    _set_type_name,
    _set_data,
    _set_timestamp,
    _set_metadata,
    _set_origin,
) = (getattr(StoredEvent, name).__set__ for name in STORED_EVENT_FIELDS)


def _decode(rows: list[Any]) -> list[StoredEvent]:
    """Turn ``_SELECT`` rows into StoredEvents: the hot loop of every replay."""
    events: list[StoredEvent] = []
    append = events.append
    for offset, event_id, type_name, data, timestamp, metadata, origin in rows:
        event = _new_event(StoredEvent)
        _set_offset(event, offset)
        _set_event_id(event, event_id)
        _set_type_name(event, type_name)
        _set_data(event, data)
        _set_timestamp(event, _fromisoformat(timestamp))
        _set_metadata(event, _EMPTY if metadata is None else MappingProxyType(_loads(metadata)))
        _set_origin(event, origin)
        append(event)
    return events


def _check_path(path: str) -> None:
    """Refuse paths SQLite would misread or could not open, before touching the disk."""
    if not path:
        raise DatabasePathError(
            "The SQLite database path is empty; pass a file name, or ':memory:' for a "
            "private in-memory database."
        )
    if "?" in path or "#" in path:
        raise DatabasePathError(
            f"The SQLite database path {path!r} contains '?' or '#', which URL and URI "
            "forms of the path would misread; rename the file or its folder."
        )
    file = Path(path)
    folder = file.parent
    if not folder.is_dir():
        raise DatabasePathError(
            f"The folder of the SQLite database {path!r} does not exist: {str(folder)!r}. "
            "Create it first; SQLiteStore does not create folders."
        )
    if file.is_dir():
        raise DatabasePathError(
            f"The SQLite database path {path!r} is a folder; pass a file path inside it."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabasePathError(
            f"The folder of the SQLite database {path!r} is read-only: {str(folder)!r}. "
            "SQLite needs to create its -wal and -shm files beside the database."
        )
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        raise DatabasePathError(
            f"The SQLite database {path!r} is read-only (or unreadable); the store needs "
            "to read and write it."
        )


class _Pending:
    """Rows waiting to be committed, and what became of them.

    A caller that queues behind a running leader sleeps on ``wake``, which the leader
    releases when the rows are committed (or failed), or to make it the next leader.
    """

    __slots__ = ("error", "offsets", "rows", "wake")

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows
        self.offsets: list[Offset] | None = None
        self.error: BaseException | None = None
        self.wake: _thread.LockType | None = None


class _Reader:
    """One thread's read connection; its lock lets ``close`` wait out a running query."""

    __slots__ = ("conn", "lock", "thread")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.thread = threading.current_thread()


class SQLiteStore:
    """A durable event store in one SQLite file, shared safely by threads and processes.

    It implements :class:`~eventbus.core.EventStore` and every optional capability:
    checkpoints, streaming reads, live tailing (including appends by other processes),
    offset ordering and ``close``.

    Example::

        store = SQLiteStore("events.db", durability="full")

    Attributes:
        path: The database path as given (``":memory:"`` for an in-memory store).
        durability: ``"normal"`` or ``"full"``; see :class:`SQLiteStore` options.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "normal",
        busy_timeout: float = 5.0,
        read_batch_size: int = 500,
    ) -> None:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        Args:
            path: A file path, or ``":memory:"`` for a private in-memory database
                that disappears when the store is closed.
            durability: ``"normal"`` (WAL, ``synchronous=NORMAL``): every committed
                append survives a crash of the process; the last commits before a power
                loss or OS crash may be lost (the database stays consistent).
                ``"full"`` (WAL, ``synchronous=FULL``): every committed append also
                survives power loss, at the cost of an fsync per commit.
            busy_timeout: Seconds to wait for another connection's write lock before
                failing with :class:`~eventbus.core.StoreTimeoutError`.
            read_batch_size: Events fetched per query by :meth:`iter_events` when no
                ``batch_size`` is given.

        Raises:
            DatabasePathError: The path is empty, contains ``?`` or ``#``, names a
                folder, its folder is missing or read-only, or the file is read-only.
            StoreCorruptError: The file is not a SQLite database, is damaged, or belongs
                to another application.
            SchemaVersionError: The database was written by a newer eventbus-sqlite.
            StoreTimeoutError: Another connection held the database locked longer than
                ``busy_timeout``.
            ValueError: An option is out of range.
            TypeError: An option has the wrong type.
        """
        text = os.fspath(path)
        if not isinstance(text, str):
            raise TypeError(f"SQLiteStore takes a str or os.PathLike[str] path, got {path!r}.")
        if durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', got {durability!r}.")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float):
            raise TypeError(f"busy_timeout must be a number of seconds, got {busy_timeout!r}.")
        if not (0 <= busy_timeout < math.inf):
            raise ValueError(
                f"busy_timeout must be a finite number of seconds >= 0, got {busy_timeout!r}."
            )
        _check_count("read_batch_size", read_batch_size)
        self.path: Final = text
        self.durability: Final = durability
        self._busy_timeout = float(busy_timeout)
        self._read_batch_size = read_batch_size
        self._memory = text == MEMORY
        self._closed = False
        self._write_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._woken = 0  # callers the last leader woke (under _queue_lock)
        self._leading = False  # a thread is committing the queue (under _queue_lock)
        self._changed = threading.Condition(threading.Lock())
        self._commits = 0  # bumped after every commit of this store (under _write_lock)
        self._tailing = 0  # tail calls waiting for a commit (under _changed)
        self._readers: list[_Reader] = []
        self._readers_lock = threading.Lock()
        self._local = threading.local()
        if not self._memory:
            _check_path(text)
        self._writer = self._connect_writer()
        # A single-row append reuses this cursor instead of creating one per execute.
        self._write_cursor = self._writer.cursor()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit: transactions are explicit BEGIN/COMMIT
            check_same_thread=False,
            cached_statements=_ROWS_PER_INSERT + 16,  # every INSERT size, and reads
        )

    def _connect_writer(self) -> sqlite3.Connection:
        # Opening races with other openers (switching to WAL, the first migration) can
        # get SQLITE_BUSY at once, without SQLite's busy handler waiting; retry those
        # until the busy timeout has passed, like any other wait for a lock.
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                return self._open_writer()
            except StoreTimeoutError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    def _open_writer(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            check_database(conn, self.path)  # before anything is written to the file
            if not self._memory:
                # Persistent in the file; the busy handler covers concurrent converters.
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                conn.execute(f"PRAGMA synchronous = {self.durability.upper()}")
            ensure_schema(conn, self.path)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise translate_sqlite_error(exc, self.path) from exc
            raise
        return conn

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"durability={self.durability!r}"
        return f"<SQLiteStore {self.path!r} {state}>"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- connections and queries ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"The SQLiteStore {self.path!r} was closed; it cannot be used again."
            )

    def _reader(self) -> _Reader:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is not None:
            return reader
        conn = self._connect()
        conn.execute("PRAGMA query_only = 1")
        reader = _Reader(conn)
        with self._readers_lock:
            if self._closed:  # closed while this thread was connecting
                conn.close()
                self._check_open()
            # Close the connections of threads that ended, so short-lived threads
            # do not pile up open files.
            alive = []
            for other in self._readers:
                if other.thread.is_alive():
                    alive.append(other)
                else:
                    other.conn.close()
            alive.append(reader)
            self._readers = alive
        self._local.reader = reader
        return reader

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        """Run one read statement on this thread's reader (its own short transaction)."""
        with _map_sqlite_errors(self.path):
            if self._memory:
                with self._write_lock:
                    self._check_open()
                    return self._writer.execute(sql, params).fetchall()
            reader = self._reader()
            with reader.lock:
                self._check_open()
                return reader.conn.execute(sql, params).fetchall()

    def _tail_position(self) -> int:
        value = self._query(_TAIL, ())[0][0]
        return 0 if value is None else int(value)

    def _position(self, offset: object) -> int:
        """Turn an offset this store issued into its position; anything else is an OffsetError."""
        if not (
            isinstance(offset, str)
            and len(offset) == _WIDTH
            and offset.isascii()
            and offset.isdigit()
        ):
            raise OffsetError(
                f"{offset!r} is not a SQLiteStore offset: expected {_WIDTH} decimal digits "
                "as returned by append or read, or OLDEST / NEWEST."
            )
        position = int(offset)
        if position == 0:
            raise OffsetError(
                f"{offset!r} is not a SQLiteStore offset: offsets start at 1; use OLDEST "
                "to read from the beginning."
            )
        return position

    def _check_known(self, position: int, offset: object) -> None:
        tail = self._tail_position()
        if position > tail:
            raise OffsetError(
                f"Offset {offset!r} is past the tail of {self.path!r} (last offset "
                f"{tail:0{_WIDTH}d}): it was issued by another store."
            )

    def _start(self, after: Position) -> int:
        if after is OLDEST:
            return 0
        if after is NEWEST:
            return self._tail_position()
        return self._position(after)

    def _page(self, start: int, limit: int, after: Position | None) -> ReadResult:
        """Read a page; on an empty one, check that ``after`` (if given) is ours."""
        rows = self._query(_SELECT, (start, limit))
        if rows:
            events = _decode(rows)
            return ReadResult(events, events[-1].offset)
        if start:
            # An empty page after a concrete offset: make sure the offset is ours, so a
            # checkpoint from another database fails loudly instead of waiting forever.
            if after is not None:
                self._check_known(start, after)
            return ReadResult([], f"{start:020d}")
        return ReadResult([], OLDEST)

    # -- writing ----------------------------------------------------------------------

    def _insert(self, rows: list[_Row]) -> int:
        """Insert ``rows`` with one statement; return the position of the last one."""
        cursor = self._writer.execute(_insert_sql(len(rows)), [v for row in rows for v in row])
        return cursor.lastrowid  # type: ignore[return-value]

    def _store_rows(self, rows: list[_Row]) -> int:
        """Commit ``rows`` atomically and return the last one's position; the write lock is held.

        Up to ``_ROWS_PER_INSERT`` rows go in one multi-row ``INSERT`` in autocommit
        mode: one statement is one transaction, and the whole group costs one call
        into SQLite (one release of the GIL, which matters when threads wait for it).
        Larger groups use ``BEGIN IMMEDIATE`` around several such statements. The
        rows get consecutive positions (the write lock is held throughout), so the
        last position gives all the others.
        """
        if len(rows) == 1:  # the common case, without flattening the parameters
            return self._write_cursor.execute(_INSERT_ONE, rows[0]).lastrowid  # type: ignore[return-value]
        if len(rows) <= _ROWS_PER_INSERT:
            return self._insert(rows)
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                last = self._insert(rows[start : start + _ROWS_PER_INSERT])
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
        if self._closed:
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
            f"The SQLiteStore {self.path!r} was closed before the append was committed; "
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
                        if self._closed
                        else StoreUnavailableError(
                            f"The append to {self.path!r} was interrupted before it "
                            "committed; nothing was stored."
                        )
                    )

    def _committed(self) -> None:
        """Wake the ``tail`` calls of this store after a commit (or a failed attempt).

        Called with the write lock held, so ``_commits`` has one writer at a time.
        """
        self._commits += 1
        if self._tailing:  # an unlocked read: tail counts itself before reading _commits
            with self._changed:
                self._changed.notify_all()

    def _commit_alone(self, rows: list[_Row]) -> int | None:
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
            if self._closed:
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

    def _lead(self) -> None:
        """Commit everything queued, in one transaction, then hand over and wake everyone.

        Exactly one thread leads at a time (``_leading``). Callers that queue while it
        writes sleep on their own lock; afterwards the leader wakes the ones it
        committed and promotes the first one queued since, so no caller wakes just to
        find it must wait again.
        """
        if self._woken:  # an unlocked read is enough for a heuristic
            # The last leader just woke other callers; under load they are about to
            # append again. Letting them run for a moment puts their records in this
            # transaction instead of a commit of their own.
            time.sleep(0)
        with self._queue_lock:
            batch = list(self._pending)
            self._pending.clear()
            self._woken = 0
        try:
            self._drain(batch)
        finally:
            with self._queue_lock:
                self._woken = len(batch) - 1  # everyone in it but this leader
                if self._pending:
                    successor = self._pending[0].wake
                else:
                    successor = None
                    self._leading = False
            for pending in batch:
                if pending.wake is not None:
                    pending.wake.release()
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
                return  # a leader already took the rows; their outcome is unknown
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

    def _translate(self, exc: sqlite3.Error) -> Exception:
        error = translate_sqlite_error(exc, self.path)
        error.__cause__ = exc
        return error

    def _submit(self, rows: list[_Row]) -> list[Offset]:
        """Queue ``rows`` for the next group commit and wait until they are committed."""
        pending = _Pending(rows)
        with self._queue_lock:
            self._pending.append(pending)
            if self._leading:
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
        if pending.offsets is None and pending.error is None:
            self._lead()
        if pending.error is not None:
            raise pending.error
        assert pending.offsets is not None  # the leader set offsets or an error
        return pending.offsets

    def append(self, record: EventRecord) -> Offset:
        """Store one record durably and return its offset.

        Concurrent appends from several threads share one transaction (group commit);
        each call still returns only after its own record is committed at the
        configured durability.

        Args:
            record: The event to store.

        Returns:
            The new event's offset.

        Raises:
            TypeError: ``record`` is not an :class:`~eventbus.core.EventRecord`.
            ValueError: ``record.timestamp`` is naive.
            StoreTimeoutError: Another process held the write lock past ``busy_timeout``.
            StoreUnavailableError: SQLite failed to write (disk full, I/O error, or a
                record whose event id is already stored).
            StoreClosedError: The store was closed.
        """
        rows = [_row_values(record)]
        self._check_open()
        # Nobody leads a group, nor was just woken (and may append again): write now.
        if not (self._leading or self._woken):
            last = self._commit_alone(rows)
            if last is not None:
                return "%020d" % last  # noqa: UP031 - the fastest formatting
        return self._submit(rows)[0]

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        """Store records atomically and contiguously, in order, and return their offsets.

        Args:
            records: The events to store; may be empty.

        Returns:
            Their offsets, in the order of ``records``.

        Raises:
            TypeError: An element is not an :class:`~eventbus.core.EventRecord`.
            ValueError: A record's timestamp is naive.
            StoreTimeoutError: Another process held the write lock past ``busy_timeout``.
            StoreUnavailableError: SQLite failed; nothing of the batch was stored.
            StoreClosedError: The store was closed.
        """
        rows = [_row_values(record) for record in records]
        self._check_open()
        if not rows:
            return []
        if not (self._leading or self._woken):
            last = self._commit_alone(rows)
            if last is not None:
                return [f"{position:020d}" for position in range(last - len(rows) + 1, last + 1)]
        return self._submit(rows)

    # -- reading ----------------------------------------------------------------------

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        """Return up to ``limit`` events strictly after ``after``.

        Each call is one short read transaction; it never waits for writers.

        Args:
            after: OLDEST, NEWEST or an offset this store returned.
            limit: The most events to return, at least 1.

        Returns:
            The events and the position to read after next. ``read(NEWEST)`` returns
            no events and the offset of the last event (OLDEST when empty).

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``limit`` is less than 1.
            TypeError: ``limit`` is not an int.
            StoreClosedError: The store was closed.
        """
        _check_count("limit", limit)
        self._check_open()
        start = self._start(after)
        if after is NEWEST:
            return ReadResult([], f"{start:020d}" if start else OLDEST)
        return self._page(start, limit, after)

    def iter_events(
        self, after: Position = OLDEST, *, batch_size: int | None = None
    ) -> Iterator[StoredEvent]:
        """Iterate the events after ``after``, including those appended meanwhile.

        Events are fetched ``batch_size`` at a time by keyset pagination, each batch
        in its own short read transaction, so a long replay never holds the database.
        ``iter_events(NEWEST)`` starts at the tail at the time of the call.

        Args:
            after: OLDEST, NEWEST or an offset this store returned.
            batch_size: Events per query, at least 1; defaults to the store's
                ``read_batch_size``.

        Returns:
            An iterator of events in log order. It raises StoreClosedError if the store
            is closed before iteration ends, rather than stopping short.

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``batch_size`` is less than 1.
            TypeError: ``batch_size`` is not an int.
            StoreClosedError: The store was closed.
        """
        size = self._read_batch_size if batch_size is None else batch_size
        _check_count("batch_size", size)
        self._check_open()
        start = self._start(after)
        if start and after is not NEWEST:
            self._check_known(start, after)
        return self._iterate(start, size)

    def _iterate(self, start: int, batch_size: int) -> Iterator[StoredEvent]:
        while True:
            rows = self._query(_SELECT, (start, batch_size))
            if not rows:
                return
            start = int(rows[-1][0])
            yield from _decode(rows)

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        """Wait until events exist after ``after``, then return them like :meth:`read`.

        An append through this store wakes the waiter at once; appends by other
        processes (or other SQLiteStore instances on the same file) are noticed by
        polling with a back-off from 1 ms to 50 ms. :meth:`close` wakes waiters with
        StoreClosedError.

        Args:
            after: OLDEST, NEWEST (the tail at the time of the call) or an offset.
            timeout: The most seconds to wait; 0 polls once.
            limit: The most events to return, at least 1.

        Returns:
            The new events, or none and ``next`` equal to the resolved ``after`` when
            ``timeout`` passed first.

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``limit`` is less than 1 or ``timeout`` is negative or NaN.
            TypeError: ``limit`` is not an int.
            StoreClosedError: The store was closed, before or during the wait.
        """
        _check_count("limit", limit)
        if not timeout >= 0:  # also rejects NaN
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}.")
        self._check_open()
        deadline = time.monotonic() + timeout
        with self._changed:
            # Counted before ``seen`` is read, so every later commit notifies.
            self._tailing += 1
            seen = self._commits
        try:
            start = self._start(after)
            result = self._page(start, limit, None if after is NEWEST else after)
            delay = _MIN_POLL
            while not result.events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return result
                with self._changed:
                    self._changed.wait_for(
                        lambda seen=seen: self._commits != seen or self._closed,  # type: ignore[misc]
                        min(delay, remaining),
                    )
                    seen = self._commits
                self._check_open()
                delay = min(delay * 2, _MAX_POLL)
                # A polled read is an index seek that finds nothing: cheap enough to be
                # the cross-process change check.
                result = self._page(start, limit, None)
            return result
        finally:
            with self._changed:
                self._tailing -= 1

    # -- OffsetOrdering ---------------------------------------------------------------

    def compare_offsets(self, a: Offset, b: Offset) -> int:
        """Compare two offsets of this store by log position.

        Args:
            a: An offset this store returned.
            b: Another one.

        Returns:
            -1, 0 or 1 as ``a`` is before, at or after ``b``.

        Raises:
            OffsetError: Either is not an offset of this store.
            StoreClosedError: The store was closed.
        """
        self._check_open()
        left, right = self._position(a), self._position(b)
        self._check_known(max(left, right), a if left >= right else b)
        return (left > right) - (left < right)

    # -- CheckpointStore --------------------------------------------------------------

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        """Durably record that ``subscription_id`` has processed everything up to ``offset``.

        Args:
            subscription_id: A non-empty name for the durable subscription.
            offset: OLDEST or an offset this store returned.

        Raises:
            ValueError: ``subscription_id`` is empty, or ``offset`` is NEWEST (resolve
                it with ``read(NEWEST).next`` first).
            OffsetError: ``offset`` is not an offset of this store.
            StoreClosedError: The store was closed.
        """
        _check_subscription_id(subscription_id)
        given: object = offset  # NEWEST is outside the declared type, but callers err
        if given is NEWEST:
            raise ValueError(
                "NEWEST is a query position, not a checkpoint: save the concrete "
                "offset from store.read(NEWEST).next instead."
            )
        self._check_open()
        if isinstance(offset, Boundary):
            value = _OLDEST_TEXT
        else:
            position = self._position(offset)
            self._check_known(position, offset)
            value = offset
        with _map_sqlite_errors(self.path), self._write_lock:
            self._check_open()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO checkpoints (subscription_id, checkpoint) VALUES (?, ?) "
                    "ON CONFLICT (subscription_id) DO UPDATE SET checkpoint = excluded.checkpoint, "
                    "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                    (subscription_id, value),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        """Return the checkpoint saved for ``subscription_id``.

        Args:
            subscription_id: A non-empty name for the durable subscription.

        Returns:
            The saved offset or OLDEST, or ``None`` when nothing was ever saved.

        Raises:
            ValueError: ``subscription_id`` is empty.
            StoreCorruptError: The stored checkpoint is not an offset.
            StoreClosedError: The store was closed.
        """
        _check_subscription_id(subscription_id)
        self._check_open()
        rows = self._query(
            "SELECT checkpoint FROM checkpoints WHERE subscription_id = ?", (subscription_id,)
        )
        if not rows:
            return None
        value = rows[0][0]
        if value == _OLDEST_TEXT:
            return OLDEST
        try:
            self._position(value)
        except OffsetError as exc:
            raise StoreCorruptError(
                f"The checkpoint of {subscription_id!r} in {self.path!r} is {value!r}, "
                "which is not an offset; the checkpoints table was edited by hand."
            ) from exc
        return str(value)

    # -- ClosableStore ----------------------------------------------------------------

    def close(self) -> None:
        """Close every connection: later calls raise StoreClosedError and waiters wake.

        Appends already committed stay committed; closing twice is allowed.
        """
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        with self._write_lock:
            self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            with reader.lock:
                reader.conn.close()
