"""SQLiteStore against the core conformance kit, on real files and in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from eventbus.core.testing import StoreContract
from eventbus.sqlite import MEMORY, SQLiteStore

if TYPE_CHECKING:
    from pathlib import Path

    from eventbus.core import EventStore


class TestSQLiteStore(StoreContract):
    offsets_sort_as_strings: ClassVar[bool] = True
    malformed_offsets: ClassVar[tuple[str, ...]] = (
        *StoreContract.malformed_offsets,
        "1",
        "0" * 20,
        "1" * 21,
        "+" + "0" * 19,
        "\N{FULLWIDTH DIGIT ONE}" * 20,
    )

    def make_store(self, directory: Path) -> SQLiteStore:
        return SQLiteStore(directory / "events.db")

    def reopen_store(self, store: EventStore, directory: Path) -> SQLiteStore:
        return SQLiteStore(directory / "events.db")


class TestSQLiteStoreFull(TestSQLiteStore):
    """The same contract with synchronous=FULL."""

    def make_store(self, directory: Path) -> SQLiteStore:
        return SQLiteStore(directory / "events.db", durability="full")


class TestSQLiteMemoryStore(StoreContract):
    """``:memory:`` keeps the contract too (but not across reopen)."""

    offsets_sort_as_strings: ClassVar[bool] = True

    def make_store(self, directory: Path) -> SQLiteStore:
        return SQLiteStore(MEMORY)
