"""Snapshots, kept in the ``snapshots`` table of the same file (one row per id)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from eventbus.core import Snapshot

from ._checkpoints import check_subscription_id, checkpoint_text, parse_checkpoint
from ._transaction import write_transaction

if TYPE_CHECKING:
    import sqlite3

    from eventbus.core import Checkpoint

    from ._connection import Connections
    from ._reads import Reads

__all__ = ["Snapshots"]

_SAVE: Final = (
    "INSERT INTO snapshots (snapshot_id, checkpoint, data) VALUES (?, ?, ?) "
    "ON CONFLICT (snapshot_id) DO UPDATE SET checkpoint = excluded.checkpoint, "
    "data = excluded.data, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
)
_LOAD: Final = "SELECT checkpoint, data FROM snapshots WHERE snapshot_id = ?"


class Snapshots:
    """Saves and loads snapshots through the store's connections.

    Args:
        db: The store's connections; saves go through the writer, under its lock.
        reads: The store's read side, to check that an offset is one of its own.
    """

    def __init__(self, db: Connections, reads: Reads) -> None:
        self._db = db
        self._reads = reads

    def save(self, snapshot_id: str, offset: Checkpoint, data: str) -> None:
        """Save a snapshot; see ``SQLiteStore.save_snapshot``."""
        check_subscription_id(snapshot_id, "snapshot")
        if not isinstance(data, str):
            raise TypeError(f"Snapshot data must be text (str), got {type(data).__name__}.")
        self._db.check_open()
        value = checkpoint_text(offset, self._reads, "snapshot")

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(_SAVE, (snapshot_id, value, data))

        write_transaction(self._db, save)

    def load(self, snapshot_id: str) -> Snapshot | None:
        """Load a snapshot; see ``SQLiteStore.load_snapshot``."""
        check_subscription_id(snapshot_id, "snapshot")
        self._db.check_open()
        rows = self._db.query(_LOAD, (snapshot_id,))
        if not rows:
            return None
        value, data = rows[0]
        offset = parse_checkpoint(value, self._db.path, f"snapshot {snapshot_id!r}")
        return Snapshot(snapshot_id, offset, str(data))
