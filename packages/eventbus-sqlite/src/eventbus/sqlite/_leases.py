"""Leases: one owner per durable subscription id among every process on the file.

A lease is a row of the ``leases`` table. Every change is one ``BEGIN IMMEDIATE``
transaction that reads the row and writes it, so two processes claiming at once are
serialized by SQLite's write lock and exactly one finds the row it expected. The
fenced checkpoint write checks the token in the transaction that writes the
checkpoint. Rows are never deleted: a token can only grow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

from eventbus.core import Lease, LeaseLostError, Owner, StoreCorruptError

from ._checkpoints import check_subscription_id
from ._errors import _map_sqlite_errors
from ._tail import check_timeout

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from eventbus.core import Checkpoint

    from ._checkpoints import Checkpoints
    from ._connection import Connections
    from ._tail import Tailer

__all__ = ["Leases"]

_T = TypeVar("_T")

_READ: Final = "SELECT owner, token, beat, released FROM leases WHERE subscription_id = ?"
_WRITE: Final = (
    "INSERT INTO leases (subscription_id, owner, token, beat, released) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (subscription_id) DO UPDATE SET owner = excluded.owner, "
    "token = excluded.token, beat = excluded.beat, released = excluded.released, "
    "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
)


class Leases:
    """Claims, renews, releases and watches leases; fences checkpoint writes.

    Args:
        db: The store's connections; changes go through the writer, under its lock.
        checkpoints: Where fenced checkpoint writes go, in the lease's transaction.
        tailer: Wakes this store's waiters after a change and watches other processes'.
    """

    def __init__(self, db: Connections, checkpoints: Checkpoints, tailer: Tailer) -> None:
        self._db = db
        self._checkpoints = checkpoints
        self._tailer = tailer

    def read(self, subscription_id: str) -> Lease | None:
        """The current record; see ``SQLiteStore.read_lease``."""
        check_subscription_id(subscription_id)
        self._db.check_open()
        return self._parse(subscription_id, self._db.query(_READ, (subscription_id,)))

    def wait(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        """Wait for the record to differ from ``seen``; see ``SQLiteStore.wait_lease``."""
        check_subscription_id(subscription_id)
        check_timeout(timeout)
        return self._tailer.wait_until(
            lambda: self.read(subscription_id), lambda lease: lease != seen, timeout
        )

    def claim(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        """Take the id if its record still equals ``seen``; see ``SQLiteStore.claim_lease``."""
        check_subscription_id(subscription_id)

        def claim(conn: sqlite3.Connection) -> Lease | None:
            current = self._current(conn, subscription_id)
            if current != seen:
                return None
            lease = Lease(subscription_id, owner, 1 if current is None else current.token + 1)
            self._write(conn, lease)
            return lease

        return self._transaction(claim)

    def renew(self, lease: Lease) -> Lease:
        """Extend ``lease``; see ``SQLiteStore.renew_lease``."""

        def renew(conn: sqlite3.Connection) -> Lease:
            self._check_current(conn, lease)
            renewed = Lease(lease.subscription_id, lease.owner, lease.token, lease.beat + 1)
            self._write(conn, renewed)
            return renewed

        return self._transaction(renew)

    def release(self, lease: Lease) -> None:
        """Give ``lease`` up if it is current; see ``SQLiteStore.release_lease``."""

        def release(conn: sqlite3.Connection) -> None:
            current = self._current(conn, lease.subscription_id)
            if current is not None and current.token == lease.token and not current.released:
                self._write(
                    conn,
                    Lease(lease.subscription_id, current.owner, current.token, current.beat, True),
                )

        self._transaction(release)

    def save_checkpoint(self, lease: Lease, offset: Checkpoint) -> None:
        """Save a checkpoint while ``lease`` is current; see ``save_checkpoint_fenced``."""
        self._checkpoints.save(
            lease.subscription_id, offset, fence=lambda conn: self._check_current(conn, lease)
        )

    # -- one transaction, one row --------------------------------------------------------

    def _transaction(self, change: Callable[[sqlite3.Connection], _T]) -> _T:
        db = self._db
        db.check_open()
        with _map_sqlite_errors(db.path), db.write_lock:
            db.check_open()
            conn = db.writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = change(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
            finally:
                self._tailer.committed()
        return result

    def _current(self, conn: sqlite3.Connection, subscription_id: str) -> Lease | None:
        return self._parse(subscription_id, conn.execute(_READ, (subscription_id,)).fetchall())

    def _check_current(self, conn: sqlite3.Connection, lease: Lease) -> None:
        current = self._current(conn, lease.subscription_id)
        if current is None or current.token != lease.token or current.released:
            raise LeaseLostError.superseded(lease, current)

    @staticmethod
    def _write(conn: sqlite3.Connection, lease: Lease) -> None:
        conn.execute(
            _WRITE,
            (lease.subscription_id, str(lease.owner), lease.token, lease.beat, lease.released),
        )

    def _parse(self, subscription_id: str, rows: list[tuple[object, ...]]) -> Lease | None:
        if not rows:
            return None
        owner, token, beat, released = rows[0]
        try:
            if not (type(token) is int and type(beat) is int and released in (0, 1)):
                raise ValueError(f"token {token!r}, beat {beat!r}, released {released!r}")
            return Lease(subscription_id, Owner.parse(str(owner)), token, beat, bool(released))
        except ValueError as exc:
            raise StoreCorruptError(
                f"The lease of {subscription_id!r} in {self._db.path!r} is unreadable ({exc}); "
                "the leases table was edited by hand.",
                store=self._db.path,
                field="lease",
            ) from exc
