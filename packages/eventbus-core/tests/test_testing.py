"""The conformance kit itself: capability skipping, reopening, and catching broken stores.

``test_memory.py`` runs the kit against MemoryStore. Here it runs against stores that
lack capabilities (so their tests must skip, not fail), against a store that can be
reopened (so the persistence tests run), and its tests are called directly on stores
with the bugs of ``reference/ebu.md`` §5 to show that they fail.
"""

from __future__ import annotations

import ast
import dataclasses
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    EventRecord,
    MemoryStore,
    ReadResult,
    StoreClosedError,
    StoredEvent,
    UnsupportedStoreFeatureError,
    testing,
)
from eventbus.core.testing import StoreContract, make_record
from eventbus.core.testing._threads import run_threads

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventbus.core import Checkpoint, EventStore, Lease, Offset, Owner, Position, Snapshot


class BasicStore:
    """Only the required EventStore methods; reads return tuples and plain dicts."""

    def __init__(self, backend: MemoryStore | None = None) -> None:
        self.backend = MemoryStore() if backend is None else backend

    def append(self, record: EventRecord) -> Offset:
        return self.backend.append(record)

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        return self.backend.append_batch(records)

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        page = self.backend.read(after, limit)
        copies = tuple(dataclasses.replace(e, metadata=dict(e.metadata)) for e in page.events)
        return ReadResult(copies, page.next)


class ClosableBasicStore(BasicStore):
    """BasicStore plus close, and nothing else."""

    def close(self) -> None:
        self.backend.close()


class Handle:
    """A closable handle on a shared MemoryStore: closing it leaves the data to reopen."""

    def __init__(self, backend: MemoryStore) -> None:
        self.backend = backend
        self.closed = False

    def _open(self) -> MemoryStore:
        if self.closed:
            raise StoreClosedError("This handle was closed.")
        return self.backend

    def append(self, record: EventRecord) -> Offset:
        return self._open().append(record)

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        return self._open().append_batch(records)

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        return self._open().read(after, limit)

    def iter_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[StoredEvent]:
        inner = self._open().iter_events(after, batch_size=batch_size)

        def guarded() -> Iterator[StoredEvent]:
            for event in inner:
                yield event
                self._open()

        return guarded()

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        # Poll in short waits so that closing the handle wakes a waiter.
        after = self._open().read(NEWEST).next if after is NEWEST else after
        deadline = time.monotonic() + timeout
        while True:
            page = self._open().tail(after, timeout=min(0.01, timeout), limit=limit)
            if page.events or time.monotonic() >= deadline:
                return page

    def compare_offsets(self, a: Offset, b: Offset) -> int:
        return self._open().compare_offsets(a, b)

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        self._open().save_checkpoint(subscription_id, offset)

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        return self._open().load_checkpoint(subscription_id)

    def read_lease(self, subscription_id: str) -> Lease | None:
        return self._open().read_lease(subscription_id)

    def wait_lease(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        return self._open().wait_lease(subscription_id, seen, timeout)

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        return self._open().claim_lease(subscription_id, owner, seen)

    def renew_lease(self, lease: Lease) -> Lease:
        return self._open().renew_lease(lease)

    def release_lease(self, lease: Lease) -> None:
        self._open().release_lease(lease)

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        self._open().save_checkpoint_fenced(lease, offset)

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        return self._open().append_expecting(records, expected_end)

    def save_snapshot(self, snapshot_id: str, offset: Checkpoint, data: str) -> None:
        self._open().save_snapshot(snapshot_id, offset, data)

    def load_snapshot(self, snapshot_id: str) -> Snapshot | None:
        return self._open().load_snapshot(snapshot_id)

    def compact(self, through: Offset, *, snapshots: Sequence[str] = ()) -> int:
        return self._open().compact(through, snapshots=snapshots)

    def close(self) -> None:
        self.closed = True


class CompactingBasicStore(BasicStore):
    """BasicStore plus compaction, without checkpoints or snapshots to guard it."""

    def compact(self, through: Offset, *, snapshots: Sequence[str] = ()) -> int:
        return self.backend.compact(through, snapshots=snapshots)


class RefusingStore(MemoryStore):
    """Has the event-sourcing methods but says it cannot, as an append-only backend does."""

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        raise UnsupportedStoreFeatureError("no conditional appends here")

    def compact(self, through: Offset, *, snapshots: Sequence[str] = ()) -> int:
        raise UnsupportedStoreFeatureError("append-only")


class TestBasicStore(StoreContract):
    multi_instance = False

    def make_store(self, directory: Path) -> BasicStore:
        return BasicStore()

    def reopen_store(self, store: EventStore, directory: Path) -> BasicStore:
        assert isinstance(store, BasicStore)
        return BasicStore(store.backend)


class TestClosableBasicStore(StoreContract):
    def make_store(self, directory: Path) -> ClosableBasicStore:
        return ClosableBasicStore()


class TestCompactingBasicStore(StoreContract):
    def make_store(self, directory: Path) -> CompactingBasicStore:
        return CompactingBasicStore()


class TestRefusingStore(StoreContract):
    def make_store(self, directory: Path) -> RefusingStore:
        return RefusingStore()


class TestReopenableStore(StoreContract):
    offsets_sort_as_strings = True

    def make_store(self, directory: Path) -> Handle:
        backend = MemoryStore()
        self.backends = {**getattr(self, "backends", {}), directory: backend}
        return Handle(backend)

    def reopen_store(self, store: EventStore, directory: Path) -> Handle:
        assert isinstance(store, Handle)
        assert store.backend is self.backends[directory]
        return Handle(store.backend)


# -- the kit's tests fail on broken stores ---------------------------------------------


class DropsLastOfFullPage(MemoryStore):
    """Bug 9: a limit-truncated page reports an offset past an event it did not return."""

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        page = super().read(after, limit)
        if len(page.events) == limit and limit > 1:
            return ReadResult(page.events[:-1], page.next)
        return page


class NewestReplaysEverything(MemoryStore):
    """Bug 19: read(NEWEST) replays history instead of returning the tail."""

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        return super().read(OLDEST if after is NEWEST else after, limit)


class SharesCallerMetadata(MemoryStore):
    """Bug 22: stored history aliases the caller's metadata dict."""

    def append(self, record: EventRecord) -> Offset:
        offset = super().append(record)
        self._events[-1] = dataclasses.replace(self._events[-1], metadata=record.metadata)
        return offset


class BadNewestCheckpoint(MemoryStore):
    """Bug 32: NEWEST saved as a checkpoint."""

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        self._checkpoints[subscription_id] = offset


class SleepyTail(MemoryStore):
    """A tail that ignores appends and sleeps until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        self.release.wait(timeout)
        return ReadResult([], OLDEST)


def test_kit_catches_limit_truncation_that_skips_events() -> None:
    kit = StoreContract()
    with pytest.raises(AssertionError):
        kit.test_resume_after_every_offset_yields_exactly_the_rest(DropsLastOfFullPage(), 3)


def test_kit_catches_newest_replaying_history() -> None:
    with pytest.raises(AssertionError, match="must not replay history"):
        StoreContract().test_read_newest_returns_concrete_tail_not_history(
            NewestReplaysEverything()
        )


def test_kit_catches_history_mutable_through_caller_references() -> None:
    with pytest.raises(AssertionError):
        StoreContract().test_history_is_immutable_through_caller_references(SharesCallerMetadata())


def test_kit_catches_a_saved_newest_checkpoint() -> None:
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        StoreContract().test_checkpoint_rejects_newest_and_keeps_the_old_value(
            BadNewestCheckpoint()
        )


def test_kit_catches_a_tail_that_does_not_wake() -> None:
    class Impatient(StoreContract):
        wake_timeout = 0.3

    store = SleepyTail()
    try:
        with pytest.raises(AssertionError, match="did not wake up"):
            Impatient().test_tail_wakes_when_another_thread_appends(store)
    finally:
        store.release.set()


def test_thread_failures_are_raised_in_the_test() -> None:
    def boom() -> None:
        raise KeyError("from a worker")

    with pytest.raises(KeyError, match="from a worker"):
        run_threads([boom, lambda: None], timeout=10)


def test_threads_that_do_not_finish_fail_the_test() -> None:
    release = threading.Event()

    def stuck() -> None:
        release.wait(30)

    try:
        with pytest.raises(AssertionError, match="still running"):
            run_threads([stuck], timeout=0.2)
    finally:
        release.set()


def test_make_record_defaults_and_overrides() -> None:
    first, second = make_record(), make_record()
    assert first.data != second.data, "default payloads are unique"
    assert first.event_id < second.event_id
    assert first.metadata == {"source": "conformance"}
    chosen = make_record([1], event_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", type_name="t", origin="o")
    assert (chosen.event_id, chosen.data, chosen.type_name, chosen.origin) == (
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "[1]",
        "t",
        "o",
    )


def test_make_store_must_be_overridden(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError, match="StoreContract must override make_store"):
        StoreContract().make_store(tmp_path)


def test_the_kit_modules_import_one_another_without_a_cycle() -> None:
    # Every import counts: module level, inside functions and under TYPE_CHECKING.
    package = Path(testing.__file__).parent
    edges: dict[str, set[str]] = {}
    for source in package.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level == 1:
                    target = f"eventbus.core.testing.{target}".rstrip(".")
                imported.add(target)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        edges[source.stem] = {
            name.removeprefix("eventbus.core.testing.")
            for name in imported
            if name.startswith("eventbus.core.testing.")
        }
        assert "eventbus.core.testing" not in imported, f"{source.name} imports its package"
    assert len(edges) > 5
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for target in edges[module]:
                visit(target, (*path, module))
            done.add(module)

    for module in edges:
        visit(module, ())


def test_bus_kit_lease_tests_skip_on_a_store_without_leases() -> None:
    # The core's own BusContract runs on MemoryStore, which has leases: this is the
    # skip a plug-in without leases meets.
    from eventbus.core.testing._bus import _needs_leases

    from ._support import PlainStore

    with pytest.raises(pytest.skip.Exception, match="does not implement LeaseStore"):
        _needs_leases(PlainStore())
