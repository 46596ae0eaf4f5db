"""Conditional appends: the end check and the insert in one write transaction.

The check reads the last position ever issued (``sqlite_sequence``, which AUTOINCREMENT
keeps even when compaction removed the events), under the write lock and SQLite's
``BEGIN IMMEDIATE``, so no thread of this process (the group-commit leader included)
and no other process can append between the check and the insert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventbus.core import OLDEST, AppendConflictError

from ._reads import END, past_the_tail, position
from ._rows import ROWS_PER_INSERT, insert_sql, row_values
from ._transaction import write_transaction

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

    from eventbus.core import Checkpoint, EventRecord, Offset

    from ._connection import Connections

__all__ = ["ConditionalAppender"]


class ConditionalAppender:
    """Appends records only while the log still ends where the caller expects.

    Args:
        db: The store's connections.
        on_commit: Wakes the store's ``tail`` calls after the transaction.
    """

    def __init__(self, db: Connections, on_commit: Callable[[], None]) -> None:
        self._db = db
        self._committed = on_commit

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        """See ``SQLiteStore.append_expecting``."""
        rows = [row_values(record) for record in records]
        expected = 0 if expected_end is OLDEST else position(expected_end)

        def append(conn: sqlite3.Connection) -> int:
            end = end_position(conn)
            if expected > end:
                raise past_the_tail(expected_end, self._db.path, end)
            if expected != end:
                raise AppendConflictError(expected_end, f"{end:020d}" if end else OLDEST)
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                conn.execute(insert_sql(len(chunk)), [v for row in chunk for v in row])
            return end

        end = write_transaction(self._db, append, self._committed)
        return [f"{number:020d}" for number in range(end + 1, end + 1 + len(rows))]


def end_position(conn: sqlite3.Connection) -> int:
    """The last position ever issued (0 for a new file), in ``conn``'s transaction."""
    row = conn.execute(END).fetchone()
    return 0 if row is None else int(row[0])
