"""The bus-level guarantees over SQLiteStore on a real file (eventbus.core's BusContract).

An unreadable record is written the way another tool could write one: a row inserted
with raw ``sqlite3`` whose metadata is not JSON.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from eventbus.core import EventStore, new_event_id
from eventbus.core.testing import BusContract
from eventbus.sqlite import SQLiteStore


class TestSQLiteBus(BusContract):
    def make_store(self, directory: Path) -> SQLiteStore:
        return SQLiteStore(directory / "events.db")

    def reopen_store(self, store: EventStore, directory: Path) -> SQLiteStore:
        return SQLiteStore(directory / "events.db")

    def write_corrupt_record(self, store: EventStore, directory: Path, type_name: str) -> None:
        with sqlite3.connect(directory / "events.db") as raw:
            raw.execute(
                "INSERT INTO events (event_id, type_name, data, timestamp, metadata, origin) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    new_event_id(),
                    type_name,
                    '{"account": "x", "amount": 0}',
                    datetime.now(UTC).isoformat(),
                    "{not json",
                    "another-tool",
                ),
            )
        raw.close()
