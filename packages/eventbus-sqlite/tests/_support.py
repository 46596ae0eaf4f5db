"""Helpers shared by the eventbus-sqlite tests: raw connections, waiting, calls in threads."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to ``path``, as another tool or process would open it."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


class Call:
    """Run a function in a thread; keep its result or exception."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[[], Any]) -> None:
        try:
            self.result = function()
        except BaseException as exc:  # inspected by the test
            self.error = exc

    def join(self) -> Any:
        self._thread.join(10)
        assert not self._thread.is_alive(), "the call did not finish"
        return self.result


class Sql(str):
    """A value for :func:`write_row` given as an SQL expression, not a parameter."""


_GOOD_ROW: dict[str, object] = {
    "type_name": "shop.OrderPlaced",
    "data": '{"order_id": "o-1"}',
    "timestamp": "2026-01-02T03:04:05.678901+00:00",
    "metadata": None,
    "origin": "another-tool",
}


def write_row(path: Path, **columns: object) -> str:
    """Insert one row into the events table with raw sqlite3, as another tool would.

    Columns not given get good values (a new ``event_id``); an :class:`Sql` value is
    inserted as written.

    Returns:
        The row's offset.
    """
    values = {"event_id": uuid.uuid4().hex, **_GOOD_ROW, **columns}
    names = ", ".join(values)
    marks = ", ".join(v if isinstance(v, Sql) else "?" for v in values.values())
    params = [v for v in values.values() if not isinstance(v, Sql)]
    conn = raw(path)
    try:
        cursor = conn.execute(f"INSERT INTO events ({names}) VALUES ({marks})", params)
        return f"{cursor.lastrowid:020d}"
    finally:
        conn.close()
