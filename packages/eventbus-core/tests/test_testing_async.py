"""AsyncStoreContract: run on in-core async stores, and shown to fail on broken ones.

``AsyncMemoryStore`` is the kit's reference: a MemoryStore whose ``append_async`` runs
the append in a worker thread. It runs both contracts from one class. The kit's tests
are then called directly on stores with the bugs they exist to catch, and the kit is
run in a fresh pytest under each ``asyncio_mode`` a user's project may set.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from eventbus.core import (
    OLDEST,
    EventRecord,
    EventStore,
    MemoryStore,
    ReadResult,
    StoreUnavailableError,
)
from eventbus.core.testing import AsyncStoreContract, StoreContract
from eventbus.core.testing._async import require_async

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from eventbus.core import Offset, Position


class AsyncMemoryStore(MemoryStore):
    """A MemoryStore with a native ``append_async`` that appends in a worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def append(self, record: EventRecord) -> Offset:
        if self.broken:
            raise StoreUnavailableError("The test broke this store's backend.")
        return super().append(record)

    async def append_async(self, record: EventRecord) -> Offset:
        return await asyncio.to_thread(self.append, record)


class AsyncBasicStore:
    """The required methods and ``append_async``, and nothing else (no ``close``)."""

    def __init__(self) -> None:
        self.backend = MemoryStore()

    def append(self, record: EventRecord) -> Offset:
        return self.backend.append(record)

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        return self.backend.append_batch(records)

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        return self.backend.read(after, limit)

    async def append_async(self, record: EventRecord) -> Offset:
        return await asyncio.to_thread(self.append, record)


class TestAsyncMemoryStore(StoreContract, AsyncStoreContract):
    offsets_sort_as_strings = True

    def make_store(self, directory: Path) -> AsyncMemoryStore:
        return AsyncMemoryStore()

    def break_store(self, store: EventStore, directory: Path) -> None:
        assert isinstance(store, AsyncMemoryStore)
        store.broken = True


class TestAsyncBasicStore(AsyncStoreContract):
    """No close and no break_store: those two tests skip."""

    async_concurrency = (4, 5)

    def make_store(self, directory: Path) -> AsyncBasicStore:
        return AsyncBasicStore()


# -- the kit's tests fail on broken stores ---------------------------------------------


class BlockingAppend(MemoryStore):
    """append_async that does the whole append on the loop's thread, never yielding."""

    async def append_async(self, record: EventRecord) -> Offset:
        return self.append(record)


class UnpaddedOffset(AsyncBasicStore):
    """append_async returns the offset spelled otherwise than reads spell it."""

    async def append_async(self, record: EventRecord) -> Offset:
        offset = await super().append_async(record)
        return str(int(offset))


class LeaksForeignErrors(AsyncMemoryStore):
    """A backend failure escapes as the backend's own exception, not a StoreError."""

    def append(self, record: EventRecord) -> Offset:
        if self.broken:
            raise OSError("disk on fire")
        return super().append(record)


def _kit_with(store: EventStore, directory: Path) -> AsyncStoreContract:
    """A kit that knows ``store``'s directory, as its ``new_store`` fixture would."""

    class Breaks(AsyncStoreContract):
        def break_store(self, store: EventStore, directory: Path) -> None:
            assert isinstance(store, AsyncMemoryStore)
            store.broken = True

    kit = Breaks()
    kit._instances_made = {id(store): (store, directory)}
    return kit


def test_kit_catches_an_append_async_that_blocks_the_loop() -> None:
    test = AsyncStoreContract().test_append_async_does_not_block_the_event_loop
    with pytest.raises(AssertionError, match="blocks the loop"):
        asyncio.run(test(BlockingAppend()))


def test_kit_catches_offsets_that_are_not_the_events_own() -> None:
    test = AsyncStoreContract().test_append_async_offsets_are_exact_resume_points
    with pytest.raises(AssertionError, match="!= appended '1'"):
        asyncio.run(test(UnpaddedOffset()))


def test_kit_catches_a_failure_that_is_not_a_store_error(tmp_path: Path) -> None:
    store = LeaksForeignErrors()
    kit = _kit_with(store, tmp_path)
    with pytest.raises(OSError, match="disk on fire"):
        asyncio.run(kit.test_append_async_failure_raises_a_store_error(store))


def test_kit_passes_a_failure_that_is_a_store_error(tmp_path: Path) -> None:
    store = AsyncMemoryStore()
    asyncio.run(_kit_with(store, tmp_path).test_append_async_failure_raises_a_store_error(store))


def test_a_store_without_append_async_is_refused_with_the_protocol_named() -> None:
    with pytest.raises(AssertionError, match=r"has no append_async.*AsyncAppendingStore"):
        require_async(MemoryStore())
    store = AsyncMemoryStore()
    assert require_async(store) is store


# -- the kit runs whatever asyncio_mode the user's project sets ------------------------

_USER_TESTS = """
from __future__ import annotations

import asyncio

from eventbus.core import MemoryStore
from eventbus.core.testing import AsyncStoreContract


class AsyncMemoryStore(MemoryStore):
    async def append_async(self, record):
        return await asyncio.to_thread(self.append, record)


class TestUserStore(AsyncStoreContract):
    def make_store(self, directory):
        return AsyncMemoryStore()
"""


@pytest.mark.parametrize("mode", ["strict", "auto", None])
def test_the_kit_runs_under_every_asyncio_mode(tmp_path: Path, mode: str | None) -> None:
    (tmp_path / "test_user_store.py").write_text(_USER_TESTS)
    settings = ["[pytest]", "asyncio_default_fixture_loop_scope = function"]
    settings += ["filterwarnings = error", *([] if mode is None else [f"asyncio_mode = {mode}"])]
    (tmp_path / "pytest.ini").write_text("\n".join(settings) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary, summary
    assert "error" not in summary, summary
    assert "8 passed, 1 skipped" in summary, result.stdout[-3000:]
