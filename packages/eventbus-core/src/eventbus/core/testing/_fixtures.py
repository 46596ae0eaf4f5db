"""What both contracts share: the store hooks a backend overrides, fixtures and helpers."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar, NoReturn

import pytest

from eventbus.core._exceptions import UnsupportedStoreFeatureError
from eventbus.core._store import OLDEST, ClosableStore, EventStore, OffsetOrdering, ReadResult

from ._records import assert_stored, make_record

if TYPE_CHECKING:
    from pathlib import Path

    from eventbus.core._store import EventRecord, Offset, Position, StoredEvent

__all__ = ["StoreFixtures", "lacks", "supported"]


def lacks(capability: type) -> NoReturn:
    """Skip the running test: the store does not implement ``capability``."""
    pytest.skip(f"the store does not implement {capability.__name__}")


@contextlib.contextmanager
def supported() -> Iterator[None]:
    """Skip the running test when the store says it cannot do the call.

    A store may have a capability's methods and still refuse them with
    UnsupportedStoreFeatureError (an append-only backend asked to compact, a server
    without a needed feature); that is a documented answer, not a failure.
    """
    try:
        yield
    except UnsupportedStoreFeatureError as exc:
        pytest.skip(f"the store cannot: {exc}")


class StoreFixtures:
    """The hooks, fixtures and helpers of :class:`StoreContract` and :class:`AsyncStoreContract`.

    Both contracts make their stores the same way, so one test class may subclass both.
    """

    offsets_sort_as_strings: ClassVar[bool] = False
    """Set when the store documents that comparing offsets as strings follows log order."""

    multi_instance: ClassVar[bool] = True
    """Whether two open instances on the same data (see :meth:`reopen_store`) see each
    other's appends. Clear it for a store that allows one instance at a time; the
    cross-instance tests then skip."""

    # -- hooks --------------------------------------------------------------------------

    def make_store(self, directory: Path) -> EventStore:
        """Return a new, empty store, independent of every other store made.

        Args:
            directory: A new empty directory that belongs to this store alone.

        Returns:
            The store. The suite closes it after the test if it is closable.
        """
        raise NotImplementedError(f"{type(self).__name__} must override make_store().")

    def reopen_store(self, store: EventStore, directory: Path) -> EventStore:
        """Return another instance on the same data as ``store``.

        The persistence tests close ``store`` first and expect the new instance to
        see its events and checkpoints. The cross-instance tests keep ``store`` open
        and expect each instance to see the other's appends, as two processes would.
        The default skips both; override it for a store whose data outlives an
        instance (a file, a server).

        Args:
            store: An instance :meth:`make_store` returned, open or closed.
            directory: The directory :meth:`make_store` was given for it.

        Returns:
            A new store instance on the same data.
        """
        pytest.skip(f"{type(self).__name__} does not override reopen_store().")

    # -- fixtures -----------------------------------------------------------------------

    @pytest.fixture
    def new_store(self, tmp_path: Path) -> Iterator[Callable[[], EventStore]]:
        """A factory of fresh stores, each with its own directory; closed at teardown."""
        made: list[EventStore] = []

        def factory() -> EventStore:
            directory = tmp_path / f"store-{len(made)}"
            directory.mkdir()
            store = self.make_store(directory)
            made.append(store)
            self._instances_made[id(store)] = (store, directory)
            return store

        # id -> (store, its directory); holding the store keeps its id unique.
        self._instances_made: dict[int, tuple[EventStore, Path]] = {}
        yield factory
        for store in made:
            if isinstance(store, ClosableStore):
                store.close()

    @pytest.fixture
    def store(self, new_store: Callable[[], EventStore]) -> EventStore:
        """A fresh, empty store."""
        return new_store()

    @pytest.fixture
    def reopen(
        self, new_store: Callable[[], EventStore]
    ) -> Iterator[Callable[[EventStore], EventStore]]:
        """Close a store and return a new instance on its data (see reopen_store)."""
        with self._instances() as another:

            def reopen(store: EventStore) -> EventStore:
                if isinstance(store, ClosableStore):
                    store.close()
                return another(store)

            yield reopen

    @pytest.fixture
    def second_instance(
        self, new_store: Callable[[], EventStore]
    ) -> Iterator[Callable[[EventStore], EventStore]]:
        """Open another instance on a store's data, leaving the store open."""
        if not self.multi_instance:
            pytest.skip(f"{type(self).__name__}.multi_instance is False.")
        with self._instances() as another:
            yield another

    def _directory_of(self, store: EventStore) -> Path:
        """The directory :meth:`make_store` (or :meth:`reopen_store`) was given for ``store``."""
        return self._instances_made[id(store)][1]

    @contextlib.contextmanager
    def _instances(self) -> Iterator[Callable[[EventStore], EventStore]]:
        opened: list[EventStore] = []

        def another(store: EventStore) -> EventStore:
            original, directory = self._instances_made[id(store)]
            again = self.reopen_store(original, directory)
            opened.append(again)
            self._instances_made[id(again)] = (again, directory)
            return again

        try:
            yield another
        finally:
            for store in opened:
                if isinstance(store, ClosableStore):
                    store.close()

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def read_all(
        store: EventStore, after: Position = OLDEST, limit: int = 100
    ) -> list[StoredEvent]:
        """Page through ``store`` from ``after`` with ``read``, checking each page."""
        events: list[StoredEvent] = []
        seen: set[Offset] = set()
        position = after
        while True:
            page = store.read(position, limit)
            assert isinstance(page, ReadResult), f"read() must return a ReadResult, got {page!r}"
            assert len(page.events) <= limit, f"read(limit={limit}) returned {len(page.events)}"
            if not page.events:
                assert page.next == position, "an empty page must keep the position"
                return events
            assert page.next == page.events[-1].offset, "next must be the last offset read"
            for event in page.events:
                assert event.offset not in seen, f"read() returned {event.offset!r} twice"
                seen.add(event.offset)
            events.extend(page.events)
            position = page.next

    @staticmethod
    def append_many(store: EventStore, count: int) -> tuple[list[EventRecord], list[Offset]]:
        """Append ``count`` fresh records one by one; return them and their offsets."""
        records = [make_record() for _ in range(count)]
        return records, [store.append(record) for record in records]

    def assert_log(
        self, store: EventStore, records: list[EventRecord], offsets: list[Offset]
    ) -> None:
        """Assert the whole log is exactly ``records`` at ``offsets``, in order."""
        events = self.read_all(store)
        assert [e.event_id for e in events] == [r.event_id for r in records]
        for event, record, offset in zip(events, records, offsets, strict=True):
            assert_stored(event, record, offset)

    def assert_increasing(self, store: EventStore, offsets: list[Offset]) -> None:
        """Assert ``offsets`` are distinct and in log order, by every documented order."""
        assert len(set(offsets)) == len(offsets), "offsets must be unique"
        assert all(isinstance(o, str) for o in offsets), "offsets must be strings"
        if self.offsets_sort_as_strings:
            assert offsets == sorted(offsets), "offsets must sort as strings in log order"
        if isinstance(store, OffsetOrdering):
            for before, after in itertools.pairwise(offsets):
                assert store.compare_offsets(before, after) < 0
                assert store.compare_offsets(after, before) > 0
