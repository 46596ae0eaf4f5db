"""Live tailing: waiting for events after a position, and noticing new ones cheaply.

Two ways an event arrives while ``tail`` waits:

* an append through this store: the appender calls :meth:`Tailer.committed`, which
  wakes the waiters at once (a condition variable);
* a commit by another connection (another process, or another store on the file):
  one watcher thread per store, alive while anybody tails (and a second after), checks
  ``PRAGMA data_version`` on its own reader connection (it changes only then) with a
  back-off from 1 ms to 50 ms that follows how long the database has been quiet, and
  wakes every waiter when it changed. Waiters run their page query again only then, so
  any number of idle tails (ten durable subscriptions) cost one change check per
  wake-up of one thread, about 20 a second, and no thread is started per call.

A private ``:memory:`` database has no other connections: its tail only waits.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Final, TypeVar

from eventbus.core import NEWEST, StoreError, check_limit

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventbus.core import Position, ReadResult

    from ._connection import Connections
    from ._reads import Reads

__all__ = ["Tailer", "check_timeout"]

_T = TypeVar("_T")

_MIN_POLL: Final = 0.001
_MAX_POLL: Final = 0.05
# The watcher outlives the last tail call by this long, so a loop of tail calls (a
# durable subscription's) keeps one watcher instead of starting one per call.
_LINGER: Final = 1.0
_DATA_VERSION: Final = "PRAGMA data_version"


class _Watch:
    """The watcher's view of the database: the data_version it last saw, and when."""

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
        self._external = 0  # bumped by the watcher on another connection's commit
        self._tailing = 0  # tail calls waiting for a commit (under _changed)
        self._watcher: threading.Thread | None = None  # alive while anybody tails
        self._idle_since = 0.0  # when the last tail call returned

    def committed(self) -> None:
        """Wake the ``tail`` calls of this store after a commit (or a failed attempt).

        Called with the write lock held, so ``_commits`` has one writer at a time.
        """
        self._commits += 1
        if self._tailing:  # an unlocked read: tail counts itself before reading _commits
            with self._changed:
                self._changed.notify_all()

    def wake_all(self) -> None:
        """Wake every waiting ``tail`` (and the watcher), to see that the store closed."""
        with self._changed:
            self._changed.notify_all()

    # -- the watcher -----------------------------------------------------------------

    def _start_watcher(self) -> threading.Event | None:
        """Start the watcher unless it runs (called under ``_changed``).

        Returns:
            Set once its first look is taken (before that a change could be missed),
            or None when it was already running.
        """
        if self._watcher is not None:
            return None
        ready = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, args=(ready,), name="eventbus-sqlite-watcher", daemon=True
        )
        self._watcher.start()
        return ready

    def _watch(self, ready: threading.Event) -> None:
        db, changed, watch = self._db, self._changed, _Watch()
        try:
            self._look(watch)
            ready.set()
            while True:
                with changed:
                    idle = not self._tailing and time.monotonic() - self._idle_since >= _LINGER
                    if idle or db.closed:
                        self._watcher = None  # the next tail starts a new one
                        return
                    quiet = time.monotonic() - watch.changed_at
                    # Poll as often as the database has been quiet long: at least 1 ms,
                    # at most 50 ms. An append through this store wakes it early.
                    changed.wait(max(_MIN_POLL, min(quiet, _MAX_POLL)))
                if self._look(watch):
                    with changed:
                        self._external += 1
                        changed.notify_all()
        except StoreError:
            # Closed (or failing) under the watcher: waiters see it through check_open.
            with changed:
                self._watcher = None
                changed.notify_all()
        finally:
            ready.set()

    def _look(self, watch: _Watch) -> bool:
        """Whether another connection (this store's writer too) committed since the last look."""
        version: int = self._db.query(_DATA_VERSION, ())[0][0]
        if version == watch.version:
            return False
        watch.version = version
        watch.changed_at = time.monotonic()
        return True

    # -- tail ------------------------------------------------------------------------

    def _moved_from(self, seen: tuple[int, int]) -> bool:
        """Whether a commit happened since ``seen`` was taken, or the store closed."""
        return (self._commits, self._external) != seen or self._db.closed

    def tail(self, after: Position, *, timeout: float, limit: int) -> ReadResult:
        """Wait for events after ``after``; see ``SQLiteStore.tail``."""
        check_limit("limit", limit)
        check_timeout(timeout)
        self._db.check_open()
        reads = self._reads
        starts: list[int] = []  # resolved by the first look, after the watcher's first

        def page() -> ReadResult:
            if starts:
                return reads.page(starts[0], limit, None)
            starts.append(reads.start(after))
            return reads.page(starts[0], limit, None if after is NEWEST else after)

        return self.wait_until(page, lambda result: bool(result.events), timeout)

    def wait_until(self, look: Callable[[], _T], done: Callable[[_T], bool], timeout: float) -> _T:
        """Call ``look`` until ``done`` accepts its value or ``timeout`` seconds pass.

        ``look`` runs once at first, then again only after some connection committed,
        so an idle wait costs the watcher's change checks and nothing more.

        Returns:
            The last value ``look`` returned.
        """
        db = self._db
        db.check_open()
        deadline = time.monotonic() + timeout
        changed = self._changed
        with changed:
            # Counted before ``seen`` is read, so every later commit notifies.
            self._tailing += 1
            seen = (self._commits, self._external)
            ready = None if db.memory else self._start_watcher()
        try:
            if ready is not None:
                # The watcher's first look must come before ``look`` reads, so a
                # commit landing after the read is noticed as a change.
                ready.wait()
            value = look()
            while not done(value):
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return value
                with changed:
                    changed.wait_for(partial(self._moved_from, seen), wait)
                    now = (self._commits, self._external)
                    moved, seen = now != seen, now
                db.check_open()
                if moved:
                    value = look()
            return value
        finally:
            with changed:
                self._tailing -= 1
                if not self._tailing:
                    self._idle_since = time.monotonic()


def check_timeout(timeout: float) -> None:
    """Refuse a timeout that is not a number of seconds >= 0 (NaN included)."""
    if not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}.")
