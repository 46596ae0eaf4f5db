"""SQLiteStore against the core conformance kits, on real files and in memory.

Both kits: the store contract and, for the native ``append_async``, the async one.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, ClassVar

from eventbus.core.testing import AsyncStoreContract, StoreContract
from eventbus.sqlite import MEMORY, SQLiteStore

if TYPE_CHECKING:
    from pathlib import Path

    from eventbus.core import EventStore


def _drop_events_table(store: EventStore, directory: Path) -> None:
    """What an outage looks like to every later append: the table is gone."""
    assert isinstance(store, SQLiteStore)
    if store.path == MEMORY:
        with store._db.write_lock:
            store._db.writer.execute("DROP TABLE events")
        return
    conn = sqlite3.connect(directory / "events.db", isolation_level=None)
    try:
        conn.execute("DROP TABLE events")
    finally:
        conn.close()


class TestSQLiteStore(StoreContract, AsyncStoreContract):
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

    def break_store(self, store: EventStore, directory: Path) -> None:
        _drop_events_table(store, directory)


class TestSQLiteStoreFull(TestSQLiteStore):
    """The same contract with synchronous=FULL."""

    def make_store(self, directory: Path) -> SQLiteStore:
        return SQLiteStore(directory / "events.db", durability="full")


class TestSQLiteMemoryStore(StoreContract, AsyncStoreContract):
    """``:memory:`` keeps the contract too (but not across reopen)."""

    offsets_sort_as_strings: ClassVar[bool] = True

    def make_store(self, directory: Path) -> SQLiteStore:
        return SQLiteStore(MEMORY)

    def break_store(self, store: EventStore, directory: Path) -> None:
        _drop_events_table(store, directory)
