"""Store factories for the cross-package tests: every bundled store, on real resources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventbus.core import EventStore, MemoryStore
from eventbus.sqlite import SQLiteStore

StoreFactory = Callable[[], EventStore]


@pytest.fixture(params=["memory", "sqlite"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of stores that share one log: each call opens the same log again."""
    if request.param == "memory":
        shared = MemoryStore()

        def memory() -> EventStore:
            return _Unclosable(shared)

        yield memory
    else:
        path = tmp_path / "events.db"
        yield lambda: SQLiteStore(path)


class _Unclosable:
    """MemoryStore cannot be reopened after close: a view of one that ignores close()."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner
        self.append = inner.append
        self.append_batch = inner.append_batch
        self.read = inner.read
        self.tail = inner.tail
        self.iter_events = inner.iter_events
        self.save_checkpoint = inner.save_checkpoint
        self.load_checkpoint = inner.load_checkpoint

    def close(self) -> None:
        """The shared log outlives every bus that used it."""
