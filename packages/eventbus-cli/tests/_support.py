"""Helpers shared by the eventbus-cli tests: filling stores, reading them back, waiting."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from eventbus.core import OLDEST, EventRecord, StoredEvent, open_store
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def records(count: int, type_name: str = "orders.placed", start: int = 0) -> list[EventRecord]:
    """``count`` records with distinct data, metadata, origins and timestamps."""
    return [
        make_record(
            {"n": n},
            type_name=type_name,
            metadata={"n": str(n)},
            origin=f"bus-{n % 3}",
            timestamp=datetime(2026, 1, 1, 0, n // 60 % 60, n % 60, tzinfo=UTC),
        )
        for n in range(start, start + count)
    ]


def fill(path: Path, *batches: list[EventRecord]) -> list[str]:
    """Append each batch to the SQLite file at ``path``; the offsets."""
    with SQLiteStore(path) as store:
        return [offset for batch in batches for offset in store.append_batch(batch)]


def everything(url: str) -> list[StoredEvent]:
    """Every event of the store ``url`` names."""
    store = open_store(url)
    try:
        out: list[StoredEvent] = []
        page = store.read(OLDEST, 1000)
        while page.events:
            out.extend(page.events)
            page = store.read(page.next, 1000)
        return out
    finally:
        store.close()  # type: ignore[attr-defined]


def fields(events: list[StoredEvent]) -> list[tuple[Any, ...]]:
    """What a copy must keep of each event: all but the offset."""
    return [
        (e.event_id, e.type_name, e.data, e.timestamp, dict(e.metadata), e.origin) for e in events
    ]


def corrupt(path: Path, *edits: tuple[int, str, str]) -> None:
    """Overwrite columns of event rows with raw sqlite3, as another tool might.

    Each edit is (position, column, the text to store).
    """
    conn = sqlite3.connect(path)
    try:
        for position, column, value in edits:
            assert column in ("data", "timestamp", "metadata")
            conn.execute(f"UPDATE events SET {column} = ? WHERE position = ?", (value, position))
        conn.commit()
    finally:
        conn.close()


def fingerprint(path: Path) -> tuple[str, int]:
    """The file's content hash and modification time."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Lines:
    """Collects a pipe's lines in a thread, so a test can wait for one with a deadline."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Wait until a line containing ``text`` was read."""
        wait_until(lambda: any(text in line for line in self.lines), repr(text), timeout)

    def close(self) -> list[str]:
        """Every line, once the pipe is at its end."""
        self._thread.join(30)
        assert not self._thread.is_alive(), "the pipe was never closed"
        return self.lines
