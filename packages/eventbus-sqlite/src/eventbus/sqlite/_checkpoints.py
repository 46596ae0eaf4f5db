"""Durable-subscription checkpoints, kept in the ``checkpoints`` table of the same file.

A saved OLDEST is stored as the text ``oldest``, so "never saved" (no row) and "saved
OLDEST" stay apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from eventbus.core import NEWEST, OLDEST, Boundary, OffsetError, StoreCorruptError

from ._errors import _map_sqlite_errors
from ._reads import position

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from eventbus.core import Checkpoint

    from ._connection import Connections
    from ._reads import Reads

__all__ = ["Checkpoints", "check_subscription_id"]

_OLDEST_TEXT: Final = "oldest"  # how a saved OLDEST checkpoint is stored
_SAVE: Final = (
    "INSERT INTO checkpoints (subscription_id, checkpoint) VALUES (?, ?) "
    "ON CONFLICT (subscription_id) DO UPDATE SET checkpoint = excluded.checkpoint, "
    "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
)
_LOAD: Final = "SELECT checkpoint FROM checkpoints WHERE subscription_id = ?"
_LIST: Final = "SELECT subscription_id, checkpoint FROM checkpoints ORDER BY subscription_id"
_DELETE: Final = "DELETE FROM checkpoints WHERE subscription_id = ?"


def check_subscription_id(subscription_id: object) -> None:
    """Refuse a subscription id that is not a non-empty string."""
    if not isinstance(subscription_id, str) or not subscription_id:
        raise ValueError(f"A subscription id must be a non-empty string, got {subscription_id!r}.")


class Checkpoints:
    """Saves and loads checkpoints through the store's connections.

    Args:
        db: The store's connections; saves go through the writer, under its lock.
        reads: The store's read side, to check that an offset is one of its own.
    """

    def __init__(self, db: Connections, reads: Reads) -> None:
        self._db = db
        self._reads = reads

    def save(
        self,
        subscription_id: str,
        offset: Checkpoint,
        *,
        fence: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Save a checkpoint; see ``SQLiteStore.save_checkpoint``.

        Args:
            subscription_id: Whose checkpoint.
            offset: The checkpoint.
            fence: Run in the write's transaction first; what it raises aborts the write.
        """
        check_subscription_id(subscription_id)
        given: object = offset  # NEWEST is outside the declared type, but callers err
        if given is NEWEST:
            raise ValueError(
                "NEWEST is a query position, not a checkpoint: save the concrete "
                "offset from store.read(NEWEST).next instead."
            )
        self._db.check_open()
        if isinstance(offset, Boundary):
            value = _OLDEST_TEXT
        else:
            self._reads.check_known(position(offset), offset)
            value = offset
        self._write(_SAVE, (subscription_id, value), fence)

    def delete(self, subscription_id: str) -> bool:
        """Delete a checkpoint; see ``SQLiteStore.delete_checkpoint``."""
        check_subscription_id(subscription_id)
        self._db.check_open()
        return self._write(_DELETE, (subscription_id,)) > 0

    def _write(
        self,
        sql: str,
        params: tuple[str, ...],
        fence: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """Run one statement in its own write transaction; the number of rows changed.

        ``fence`` runs in the transaction first; what it raises aborts the write."""
        db = self._db
        with _map_sqlite_errors(db.path), db.write_lock:
            db.check_open()
            conn = db.writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                if fence is not None:
                    fence(conn)
                changed = conn.execute(sql, params).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
        return changed

    def load(self, subscription_id: str) -> Checkpoint | None:
        """Load a checkpoint; see ``SQLiteStore.load_checkpoint``."""
        check_subscription_id(subscription_id)
        self._db.check_open()
        rows = self._db.query(_LOAD, (subscription_id,))
        if not rows:
            return None
        return self._decode(subscription_id, rows[0][0])

    def list(self) -> dict[str, Checkpoint]:
        """Every checkpoint by id; see ``SQLiteStore.list_checkpoints``."""
        self._db.check_open()
        return {name: self._decode(name, value) for name, value in self._db.query(_LIST, ())}

    def _decode(self, subscription_id: str, value: object) -> Checkpoint:
        """A stored checkpoint's text as a Checkpoint; StoreCorruptError if it is none."""
        if value == _OLDEST_TEXT:
            return OLDEST
        try:
            position(value)
        except OffsetError as exc:
            raise StoreCorruptError(
                f"The checkpoint of {subscription_id!r} in {self._db.path!r} is {value!r}, "
                "which is not an offset; the checkpoints table was edited by hand.",
                store=self._db.path,
                field="checkpoint",
            ) from exc
        return str(value)
