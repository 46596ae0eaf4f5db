"""Whether a store is open: the one lock and flag its parts share, and the error once closed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from eventbus.core import StoreClosedError

from ._errors import ClientClosedError

__all__ = ["Lifecycle"]


class Lifecycle:
    """The open/closed state of one store, shared by its appends, reads and long-polls.

    Args:
        name: How the store is named in errors (its ``repr``).
    """

    __slots__ = ("closed", "closing", "lock", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.closed = False
        # Set once closed, so a caller waiting for something else is woken at once.
        self.closing = threading.Event()

    def close(self) -> bool:
        """Mark the store closed and wake every waiter; ``True`` only the first time."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
        self.closing.set()
        return True

    def error(self) -> StoreClosedError:
        """Return the error a call on the closed store raises."""
        return StoreClosedError(f"{self.name} was closed; open a new store to use the stream.")

    @contextlib.contextmanager
    def open(self) -> Iterator[None]:
        """Run the body only while the store is open; a closed client means closed."""
        if self.closed:
            raise self.error()
        try:
            yield
        except ClientClosedError as exc:  # the store's client, closed by close()
            raise self.error() from exc
