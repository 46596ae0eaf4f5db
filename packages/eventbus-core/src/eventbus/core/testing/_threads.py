"""Threads for the concurrency tests: run several at once, or one in the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Background", "run_threads"]


def run_threads(targets: list[Callable[[], None]], timeout: float) -> None:
    """Run each target in its own thread; re-raise the first failure here."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def run(target: Callable[[], None]) -> None:
        try:
            start.wait(timeout)
            target()
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"
    if errors:
        raise errors[0]


class Background:
    """Call a function in a thread and collect its result or exception."""

    def __init__(self, function: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self._function = function
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.started.set()
        try:
            self.result = self._function()
        except BaseException as exc:  # inspected by the test's thread
            self.error = exc

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the call has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
