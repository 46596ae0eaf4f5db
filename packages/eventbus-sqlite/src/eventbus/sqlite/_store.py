"""SQLiteStore: the local durable store on the stdlib ``sqlite3`` module (WAL).

The class is the public face; the work is done by one object per responsibility,
each in its own module:

* :mod:`._connection`: the path check, the writer and per-thread reader
  connections, pragmas and schema, closing;
* :mod:`._appender`: appends, with group commit;
* :mod:`._async_appender`: ``append_async``, one commit per event-loop turn;
* :mod:`._reads`: offsets, pages and streaming reads (rows decoded by :mod:`._rows`);
* :mod:`._tail`: live tailing and change detection;
* :mod:`._checkpoints`: durable-subscription checkpoints;
* :mod:`._leases`: one owner per durable subscription id, fenced checkpoint writes;
* :mod:`._conditional`: appends that check the log's end in their transaction;
* :mod:`._snapshots`: the latest snapshot of each id;
* :mod:`._compaction`: removing a prefix of the log nobody needs any more.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Final

from eventbus.core import OLDEST, StoreReadOnlyError, check_limit

from ._appender import Appender
from ._async_appender import AsyncAppender
from ._checkpoints import Checkpoints
from ._compaction import Compactor
from ._conditional import ConditionalAppender
from ._connection import Connections, Durability
from ._leases import Leases
from ._reads import Reads
from ._snapshots import Snapshots
from ._tail import Tailer

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import TracebackType

    from eventbus.core import (
        Checkpoint,
        EventRecord,
        Lease,
        Offset,
        Owner,
        Position,
        ReadResult,
        Snapshot,
        StoredEvent,
    )

__all__ = ["SQLiteStore"]


class SQLiteStore:
    """A durable event store in one SQLite file, shared safely by threads and processes.

    It implements :class:`~eventbus.core.EventStore` and every optional capability: a
    native coroutine append (``append_async``), checkpoints (and listing them), streaming
    reads, live tailing (including appends by other processes), offset ordering, leases
    (one owner per durable subscription among every process using the file), conditional
    appends, snapshots, compaction and ``close``.

    Example::

        store = SQLiteStore("events.db", durability="full")
        inspector = SQLiteStore("events.db", read_only=True)  # never writes the file

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
        read_only: bool = False,
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
            read_only: Open an existing database without ever writing to it (SQLite's
                ``mode=ro``): no pragma is set, no schema is created or migrated, and
                appends and checkpoint changes raise
                :class:`~eventbus.core.StoreReadOnlyError`. Reads and ``tail`` work as
                usual, including while other processes write.

        Raises:
            DatabasePathError: The path is empty, contains ``?`` or ``#``, names a
                folder, its folder is missing or read-only, or the file is read-only;
                with ``read_only``, the file does not exist or is unreadable.
            StoreCorruptError: The file is not a SQLite database, is damaged, or belongs
                to another application.
            SchemaVersionError: The database was written by a newer eventbus-sqlite
                (with ``read_only``: or needs a schema created or migrated).
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
        check_limit("read_batch_size", read_batch_size)
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be True or False, got {read_only!r}.")
        self.path: Final = text
        self.durability: Final = durability
        self.read_only: Final = read_only
        self._db = Connections(
            text, durability=durability, busy_timeout=float(busy_timeout), read_only=read_only
        )
        self._reads = Reads(self._db, batch_size=read_batch_size)
        self._tailer = Tailer(self._db, self._reads)
        self._appender = Appender(self._db, self._tailer.committed)
        self._async_appender = AsyncAppender(self._db, self._tailer.committed)
        self._checkpoints = Checkpoints(self._db, self._reads)
        self._leases = Leases(self._db, self._checkpoints, self._tailer)
        self._conditional = ConditionalAppender(self._db, self._tailer.committed)
        self._snapshots = Snapshots(self._db, self._reads)
        self._compactor = Compactor(self._db, self._tailer.committed)

    def __repr__(self) -> str:
        if self._db.closed:
            state = "closed"
        elif self.read_only:
            state = "read-only"
        else:
            state = f"durability={self.durability!r}"
        return f"<SQLiteStore {self.path!r} {state}>"

    def _refuse_write(self, what: str) -> None:
        if self.read_only:
            self._db.check_open()
            raise StoreReadOnlyError(
                f"The SQLiteStore {self.path!r} was opened read-only; it cannot {what}. "
                "Open it with SQLiteStore(path) (or a URL without mode=ro) to write."
            )

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- EventStore -------------------------------------------------------------------

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
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("append events")
        return self._appender.append(record)

    async def append_async(self, record: EventRecord) -> Offset:
        """Store one record durably without blocking the event loop; return its offset.

        ``publish_async`` uses this. The appends made during one turn of the event
        loop are committed together, in one transaction on a worker thread (one thread
        handoff per batch, not per event); each call still returns only after its own
        record is committed at the configured durability, and a failure reaches only
        the calls whose records it kept from being stored. A call cancelled before its
        batch was handed to the worker stores nothing.

        Args:
            record: The event to store.

        Returns:
            The new event's offset.

        Raises:
            The same errors as :meth:`append`.
        """
        self._refuse_write("append events")
        return await self._async_appender.submit(record)

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
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("append events")
        return self._appender.append_batch(records)

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        """Return up to ``limit`` events strictly after ``after``.

        Each call is one short read transaction; it never waits for writers. A page
        stops before a row this version cannot read (see Raises).

        Args:
            after: OLDEST, NEWEST or an offset this store returned.
            limit: The most events to return, at least 1.

        Returns:
            The events and the position to read after next. ``read(NEWEST)`` returns
            no events and the offset of the last event (OLDEST when empty).

        Raises:
            StoreCorruptError: The first event after ``after`` cannot be read (another
                tool wrote it); its ``offset`` is the position to read after to skip
                it, its ``record`` what could be read.
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``limit`` is less than 1.
            TypeError: ``limit`` is not an int.
            StoreClosedError: The store was closed.
        """
        return self._reads.read(after, limit)

    # -- StreamingReader --------------------------------------------------------------

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
            is closed before iteration ends, rather than stopping short, and
            StoreCorruptError (as :meth:`read` does) after yielding every event before
            an unreadable one.

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``batch_size`` is less than 1.
            TypeError: ``batch_size`` is not an int.
            StoreClosedError: The store was closed.
        """
        return self._reads.iter_events(after, batch_size)

    # -- TailingStore -----------------------------------------------------------------

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        """Wait until events exist after ``after``, then return them like :meth:`read`.

        An append through this store wakes the waiter at once. Commits by other
        processes (or other SQLiteStore instances on the same file) are noticed by
        ``PRAGMA data_version``, checked with a back-off from 1 ms to 50 ms as the
        database stays quiet; the events are queried again only after it changed.
        No thread is started. :meth:`close` wakes waiters with StoreClosedError.

        Args:
            after: OLDEST, NEWEST (the tail at the time of the call) or an offset.
            timeout: The most seconds to wait; 0 polls once.
            limit: The most events to return, at least 1.

        Returns:
            The new events, or none and ``next`` equal to the resolved ``after`` when
            ``timeout`` passed first.

        Raises:
            StoreCorruptError: The first event after ``after`` cannot be read, as for
                :meth:`read`.
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``limit`` is less than 1 or ``timeout`` is negative or NaN.
            TypeError: ``limit`` is not an int.
            StoreClosedError: The store was closed, before or during the wait.
        """
        return self._tailer.tail(after, timeout=timeout, limit=limit)

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
        return self._reads.compare_offsets(a, b)

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
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("save checkpoints")
        self._checkpoints.save(subscription_id, offset)

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
        return self._checkpoints.load(subscription_id)

    # -- LeaseStore ----------------------------------------------------------------------

    def read_lease(self, subscription_id: str) -> Lease | None:
        """Return who holds ``subscription_id``, or None when nobody ever claimed it.

        Raises:
            StoreCorruptError: The lease row was edited into something unreadable.
        """
        return self._leases.read(subscription_id)

    def wait_lease(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        """Block until the lease record differs from ``seen`` or ``timeout`` seconds pass.

        Changes by other processes are noticed by the store's change watcher, so an idle
        wait runs no query.
        """
        return self._leases.wait(subscription_id, seen, timeout)

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        """Take ``subscription_id`` for ``owner`` if its record still equals ``seen``.

        Returns:
            The new lease (a larger token than any before), or None when the record
            changed since ``seen``.
        """
        self._refuse_write("claim leases")
        return self._leases.claim(subscription_id, owner, seen)

    def renew_lease(self, lease: Lease) -> Lease:
        """Extend ``lease`` (the next beat, the same token).

        Raises:
            LeaseLostError: Another owner claimed the id, or the lease was released.
        """
        self._refuse_write("renew leases")
        return self._leases.renew(lease)

    def release_lease(self, lease: Lease) -> None:
        """Give ``lease`` up so a standby takes over at once; nothing if it was lost."""
        self._refuse_write("release leases")
        self._leases.release(lease)

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        """Save the checkpoint of ``lease.subscription_id`` in the transaction that
        checks ``lease`` is still current.

        Raises:
            LeaseLostError: It is not; the checkpoint is unchanged.
        """
        self._refuse_write("save checkpoints")
        self._leases.save_checkpoint(lease, offset)

    # -- ConditionalAppendStore -----------------------------------------------------------

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        """Store ``records`` atomically if the log's last offset is still ``expected_end``.

        The check and the insert are one ``BEGIN IMMEDIATE`` transaction, so no thread
        and no other process using the file can append in between.

        Args:
            records: The events to store; may be empty (then it only checks).
            expected_end: The offset of the last event the caller saw, or OLDEST for a
                file that never held an event.

        Returns:
            Their offsets, in order.

        Raises:
            AppendConflictError: The log ends elsewhere; nothing was stored.
            OffsetError: ``expected_end`` is not an offset of this file.
            StoreTimeoutError: Another process held the write lock past ``busy_timeout``.
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("append events")
        return self._conditional.append_expecting(records, expected_end)

    # -- SnapshotStore ---------------------------------------------------------------------

    def save_snapshot(self, snapshot_id: str, offset: Checkpoint, data: str) -> None:
        """Durably save ``data`` as the snapshot of ``snapshot_id``, covering up to ``offset``.

        Raises:
            ValueError: ``snapshot_id`` is empty, or ``offset`` is NEWEST.
            TypeError: ``data`` is not a str.
            OffsetError: ``offset`` is not an offset of this file.
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("save snapshots")
        self._snapshots.save(snapshot_id, offset, data)

    def load_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """Return the latest snapshot of ``snapshot_id``, or None when none was saved.

        Raises:
            ValueError: ``snapshot_id`` is empty.
            StoreCorruptError: The stored offset is not an offset.
            StoreClosedError: The store was closed.
        """
        return self._snapshots.load(snapshot_id)

    # -- CompactingStore -------------------------------------------------------------------

    def compact(
        self, through: Offset, *, snapshots: Sequence[str] = (), vacuum: bool = False
    ) -> int:
        """Delete the events up to and including ``through``; later offsets stay valid.

        Refused while any durable subscription's checkpoint (in this file) is before
        ``through``, or a snapshot named in ``snapshots`` is missing or older.

        Args:
            through: The last event to delete.
            snapshots: Ids of snapshots that must cover ``through``.
            vacuum: Also rewrite the file (``VACUUM``) so it shrinks on disk; this
                holds the write lock for as long as copying the remaining events takes.

        Returns:
            How many events were deleted.

        Raises:
            CompactionRefusedError: A checkpoint or snapshot still needs the events;
                nothing was deleted.
            OffsetError: ``through`` is not an offset of this file.
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("compact the log")
        return self._compactor.compact(through, snapshots, vacuum)

    # -- CheckpointListing -----------------------------------------------------------

    def list_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every saved checkpoint by subscription id, sorted by id.

        Raises:
            StoreCorruptError: A stored checkpoint is not an offset.
            StoreClosedError: The store was closed.
        """
        return self._checkpoints.list()

    def delete_checkpoint(self, subscription_id: str) -> bool:
        """Forget the checkpoint of ``subscription_id``: it then loads as ``None``.

        Args:
            subscription_id: A non-empty name for the durable subscription.

        Returns:
            True if a checkpoint was saved, False if there was none.

        Raises:
            ValueError: ``subscription_id`` is empty.
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
        """
        self._refuse_write("delete checkpoints")
        return self._checkpoints.delete(subscription_id)

    # -- ClosableStore ----------------------------------------------------------------

    def close(self) -> None:
        """Close every connection: later calls raise StoreClosedError and waiters wake.

        Appends already committed stay committed; closing twice is allowed.
        """
        if not self._db.mark_closed():
            return
        self._tailer.wake_all()
        self._db.close()
