"""Compaction: deleting the events up to an offset, unless something still needs them.

The check (every checkpoint, the named snapshots) and the delete are one write
transaction, so a subscription cannot save an older checkpoint in between. Positions
are never reused (AUTOINCREMENT), so the remaining offsets keep their meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from eventbus.core import OLDEST, CompactionRefusedError

from ._checkpoints import parse_checkpoint
from ._conditional import end_position
from ._errors import _map_sqlite_errors
from ._reads import past_the_tail, position
from ._transaction import write_transaction

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

    from eventbus.core import Checkpoint, Offset

    from ._connection import Connections

__all__ = ["Compactor"]

_CHECKPOINTS: Final = "SELECT subscription_id, checkpoint FROM checkpoints"
_SNAPSHOT: Final = "SELECT checkpoint FROM snapshots WHERE snapshot_id = ?"
_DELETE: Final = "DELETE FROM events WHERE position <= ?"


class Compactor:
    """Removes a prefix of the log.

    Args:
        db: The store's connections.
        on_commit: Wakes the store's waiters after the transaction.
    """

    def __init__(self, db: Connections, on_commit: Callable[[], None]) -> None:
        self._db = db
        self._committed = on_commit

    def compact(self, through: Offset, snapshots: Sequence[str], vacuum: bool) -> int:
        """See ``SQLiteStore.compact``."""
        limit = position(through)
        names = list(snapshots)
        path = self._db.path

        def covered(value: object, what: str) -> tuple[Checkpoint, bool]:
            checkpoint = parse_checkpoint(value, path, what)
            return checkpoint, checkpoint is not OLDEST and int(checkpoint) >= limit

        def delete(conn: sqlite3.Connection) -> int:
            end = end_position(conn)
            if limit > end:
                raise past_the_tail(through, path, end)
            needed: dict[str, Checkpoint] = {}
            for name, value in conn.execute(_CHECKPOINTS).fetchall():
                checkpoint, ok = covered(value, f"checkpoint of {name!r}")
                if not ok:
                    needed[f"the checkpoint of durable subscription {name!r}"] = checkpoint
            for name in names:
                row = conn.execute(_SNAPSHOT, (name,)).fetchone()
                if row is None:
                    needed[f"snapshot {name!r}, which was never saved"] = OLDEST
                    continue
                checkpoint, ok = covered(row[0], f"snapshot {name!r}")
                if not ok:
                    needed[f"snapshot {name!r}"] = checkpoint
            if needed:
                raise CompactionRefusedError(through, needed)
            return conn.execute(_DELETE, (limit,)).rowcount

        removed = write_transaction(self._db, delete, self._committed)
        if vacuum and removed:
            self._shrink()
        return removed

    def _shrink(self) -> None:
        """Give the freed pages back to the file system (rewrites the file)."""
        db = self._db
        with _map_sqlite_errors(db.path), db.write_lock:
            db.check_open()
            db.writer.execute("VACUUM")
            db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
