"""One write transaction: the in-process write lock, then SQLite's (``BEGIN IMMEDIATE``).

Every read-then-write step (leases, conditional appends, snapshots, compaction) runs
here, so another thread or process can never change what it read before it writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from ._errors import _map_sqlite_errors

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from ._connection import Connections

__all__ = ["write_transaction"]

_T = TypeVar("_T")


def write_transaction(
    db: Connections,
    change: Callable[[sqlite3.Connection], _T],
    committed: Callable[[], None] | None = None,
) -> _T:
    """Run ``change`` on the writer inside one immediate transaction and commit it.

    What ``change`` raises rolls everything back and propagates (sqlite3 errors as
    eventbus errors). ``committed`` runs afterwards, with the lock held, either way.
    """
    db.check_open()
    with _map_sqlite_errors(db.path), db.write_lock:
        db.check_open()
        conn = db.writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = change(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()  # a no-op when SQLite already rolled back by itself
            raise
        finally:
            if committed is not None:
                committed()
    return result
