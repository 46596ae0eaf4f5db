"""Live tailing: waiting for events after a position.

An append through this store wakes the waiters at once: the appender calls
:meth:`Tailer.committed`, which notifies a condition variable. Appends by other
processes (or other stores on the file) are noticed by polling with a back-off from
1 ms to 50 ms.
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

    def tail(self, after: Position, *, timeout: float, limit: int) -> ReadResult:
        """Wait for events after ``after``; see ``SQLiteStore.tail``."""
        check_count("limit", limit)
        if not timeout >= 0:  # also rejects NaN
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}.")
        db = self._db
        db.check_open()
        deadline = time.monotonic() + timeout
        with self._changed:
            # Counted before ``seen`` is read, so every later commit notifies.
            self._tailing += 1
            seen = self._commits
        try:
            start = self._reads.start(after)
            result = self._reads.page(start, limit, None if after is NEWEST else after)
            delay = _MIN_POLL
            while not result.events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return result
                with self._changed:
                    self._changed.wait_for(
                        lambda seen=seen: self._commits != seen or db.closed,  # type: ignore[misc]
                        min(delay, remaining),
                    )
                    seen = self._commits
                db.check_open()
                delay = min(delay * 2, _MAX_POLL)
                # A polled read is an index seek that finds nothing: cheap enough to be
                # the cross-process change check.
                result = self._reads.page(start, limit, None)
            return result
        finally:
            with self._changed:
                self._tailing -= 1
