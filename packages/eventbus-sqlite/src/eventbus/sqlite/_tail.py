"""Live tailing: waiting for events after a position, and noticing new ones cheaply.

Two ways an event arrives while ``tail`` waits:

* an append through this store: the appender calls :meth:`Tailer.committed`, which
  wakes the waiters at once (a condition variable);
* a commit by another connection (another process, or another store on the file):
  ``PRAGMA data_version`` on the waiting thread's reader connection changes only then.
  It is checked with a back-off from 1 ms to 50 ms that follows how long the database
  has been quiet, and the page query runs again only after it changed. An idle tail
  costs one ``PRAGMA data_version`` per wake-up, about 20 a second.

A private ``:memory:`` database has no other connections: its tail only waits.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final

from eventbus.core import NEWEST

from ._reads import check_count

if TYPE_CHECKING:
    from eventbus.core import Position, ReadResult

    from ._connection import Connections
    from ._reads import Reads

__all__ = ["Tailer"]

_MIN_POLL: Final = 0.001
_MAX_POLL: Final = 0.05
_DATA_VERSION: Final = "PRAGMA data_version"


class _Watch:
    """One thread's view of the database: the data_version its reader last saw, and when."""

    __slots__ = ("changed_at", "version")

    def __init__(self) -> None:
        self.version: int | None = None
        self.changed_at = 0.0


class Tailer:
    """The ``tail`` of a store, and the signal its appends send to it.

    Args:
        db: The store's connections.
        reads: The store's read side, for the pages.
    """

    def __init__(self, db: Connections, reads: Reads) -> None:
        self._db = db
        self._reads = reads
        self._changed = threading.Condition(threading.Lock())
        self._commits = 0  # bumped after every commit of this store (under the write lock)
        self._tailing = 0  # tail calls waiting for a commit (under _changed)
        self._local = threading.local()

    def committed(self) -> None:
        """Wake the ``tail`` calls of this store after a commit (or a failed attempt).

        Called with the write lock held, so ``_commits`` has one writer at a time.
        """
        self._commits += 1
        if self._tailing:  # an unlocked read: tail counts itself before reading _commits
            with self._changed:
                self._changed.notify_all()

    def wake_all(self) -> None:
        """Wake every waiting ``tail``, so it can see that the store was closed."""
        with self._changed:
            self._changed.notify_all()

    def _watch(self) -> _Watch:
        watch: _Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            watch = self._local.watch = _Watch()
        return watch

    def _look(self, watch: _Watch) -> bool:
        """Whether another connection (this store's writer too) committed since the last look."""
        version: int = self._db.query(_DATA_VERSION, ())[0][0]
        if version == watch.version:
            return False
        watch.version = version
        watch.changed_at = time.monotonic()
        return True

    def tail(self, after: Position, *, timeout: float, limit: int) -> ReadResult:
        """Wait for events after ``after``; see ``SQLiteStore.tail``."""
        check_count("limit", limit)
        if not timeout >= 0:  # also rejects NaN
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}.")
        db = self._db
        db.check_open()
        deadline = time.monotonic() + timeout
        changed = self._changed
        with changed:
            # Counted before ``seen`` is read, so every later commit notifies.
            self._tailing += 1
            seen = self._commits
        try:
            reads = self._reads
            start = reads.start(after)
            # The state of the database is taken before the page is read, so a commit
            # landing after the read is noticed as a change.
            watch = self._watch()
            if not db.memory:
                self._look(watch)
            result = reads.page(start, limit, None if after is NEWEST else after)
            while not result.events:
                now = time.monotonic()
                wait = deadline - now
                if wait <= 0:
                    return result
                if not db.memory:
                    # Poll as often as the database has been quiet long: at least 1 ms,
                    # at most 50 ms (a back-off that carries over from call to call).
                    wait = min(wait, max(_MIN_POLL, min(now - watch.changed_at, _MAX_POLL)))
                with changed:
                    changed.wait_for(
                        lambda seen=seen: self._commits != seen or db.closed,  # type: ignore[misc]
                        wait,
                    )
                    committed = self._commits != seen
                    seen = self._commits
                db.check_open()
                # Checked even after a commit here, so that commit is not taken for
                # another connection's on the next look.
                if (not db.memory and self._look(watch)) or committed:
                    result = reads.page(start, limit, None)
            return result
        finally:
            with changed:
                self._tailing -= 1
