"""Helpers shared by the eventbus-sqlite tests: raw connections, waiting, calls in threads."""

from __future__ import annotations

import sqlite3
import threading
import time
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
