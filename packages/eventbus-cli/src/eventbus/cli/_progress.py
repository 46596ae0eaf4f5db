"""How a copy shows its progress on stderr: a Rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Final, Protocol

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from eventbus.core import CopyProgress

__all__ = ["Reporter", "reporter"]

_PLAIN_EVERY: Final = 1.0  # seconds between two plain progress lines


class Reporter(Protocol):
    """Receives each :class:`~eventbus.core.CopyProgress`; a context manager around the copy."""

    def __call__(self, progress: CopyProgress) -> None: ...

    def __enter__(self) -> Reporter: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _Quiet:
    """``--quiet``: nothing at all."""

    def __call__(self, progress: CopyProgress) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class _Lines:
    """Not a terminal: a line at most every second, and when the copy is caught up."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._printed = self._started

    def __call__(self, progress: CopyProgress) -> None:
        now = time.monotonic()
        if progress.caught_up or now - self._printed >= _PLAIN_EVERY:
            self._printed = now
            rate = progress.copied / max(now - self._started, 1e-9)
            state = "caught up" if progress.caught_up else "copying"
            click.echo(
                f"{state}: {progress.copied} copied, {progress.skipped} skipped, "
                f"{rate:.0f} events/s",
                err=True,
            )

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class _Bar:
    """A terminal: a Rich progress bar with count, rate and time left.

    Args:
        total: Events the source holds (read before the copy), for the time left.
    """

    def __init__(self, total: int | None) -> None:
        self._progress = Progress(
            TextColumn("copy"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("copy", total=total, rate="")
        self._started = time.monotonic()

    def __call__(self, progress: CopyProgress) -> None:
        done = progress.copied + progress.skipped
        rate = done / max(time.monotonic() - self._started, 1e-9)
        self._progress.update(self._task, completed=done, rate=f"{rate:,.0f} events/s")

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


def reporter(*, quiet: bool, total: Callable[[], int | None]) -> Reporter:
    """The reporter for this run: quiet, a bar when stderr is a terminal, else lines.

    ``total`` is called only for the bar (it may read the whole source).
    """
    if quiet:
        return _Quiet()
    if sys.stderr.isatty():
        return _Bar(total())
    return _Lines()
