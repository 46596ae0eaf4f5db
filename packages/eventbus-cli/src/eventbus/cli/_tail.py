"""``eventbus tail``: print a store's events, the last few or from an offset, and follow."""

from __future__ import annotations

import collections
import sys
from typing import TYPE_CHECKING, Final, TypeGuard

import click

from eventbus.core import NEWEST, OLDEST

from ._errors import CliError
from ._render import event_json, event_line
from ._scan import Unreadable, next_page, scan
from ._stores import opened

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from eventbus.core import Checkpoint, EventStore, StoredEvent

__all__ = ["tail"]

_WAIT: Final = 1.0  # seconds per wait for new events with -f; Ctrl-C ends a wait at once
_LAST: Final = 10  # events shown without --from or -n, like tail(1)


class _Printer:
    """Prints the wanted events of what it is fed and remembers the position reached."""

    def __init__(self, cursor: Checkpoint, types: Collection[str], as_json: bool) -> None:
        self.cursor: Checkpoint = cursor
        self.shown = 0
        self._types = frozenset(types)
        self._show: Callable[[StoredEvent], str] = event_json if as_json else event_line

    def wanted(self, item: StoredEvent | Unreadable) -> TypeGuard[StoredEvent]:
        """Whether ``item`` is an event to print; reports an unreadable record on stderr."""
        if item.offset is not None:
            self.cursor = item.offset
        if isinstance(item, Unreadable):
            click.echo(f"unreadable record at offset {item.offset}: {item.reason}", err=True)
            return False
        return not self._types or item.type_name in self._types

    def feed(self, items: Iterable[StoredEvent | Unreadable], limit: int | None = None) -> None:
        """Print the wanted events of ``items``, at most ``limit`` of them."""
        for item in items:
            if limit is not None and self.shown >= limit:
                return
            if self.wanted(item):
                self.print(item)

    def print(self, event: StoredEvent) -> None:
        click.echo(self._show(event))
        self.shown += 1


def _print_last(store: EventStore, count: int, printer: _Printer) -> None:
    """The last ``count`` wanted events (one pass over the log, keeping ``count``)."""
    kept: collections.deque[StoredEvent] = collections.deque(maxlen=count)
    for item in scan(store):
        if printer.wanted(item):
            kept.append(item)
    for event in kept:
        printer.print(event)


def _follow(store: EventStore, printer: _Printer) -> None:
    """Print every new wanted event until Ctrl-C."""
    while True:
        items, cursor = next_page(store, printer.cursor, wait=_WAIT)
        printer.feed(items)
        sys.stdout.flush()  # a pipe buffers: a reader of tail -f waits for each event
        if cursor is None:
            raise CliError("cannot read past an unreadable record whose offset is unknown.")


@click.command()
@click.argument("url")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option(
    "--from",
    "start",
    metavar="oldest|newest|OFFSET",
    help="Print the events after this position (default: the last -n events).",
)
@click.option(
    "--type", "types", multiple=True, metavar="NAME", help="Only events of this wire name."
)
@click.option(
    "-n", "count", type=click.IntRange(min=0), help=f"At most this many events (default {_LAST})."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def tail(
    url: str,
    follow: bool,
    start: str | None,
    types: tuple[str, ...],
    count: int | None,
    as_json: bool,
) -> None:
    """Print events: the last 10, or those after --from; -f follows until Ctrl-C."""
    with opened(url, "read") as store:
        if start is None:
            printer = _Printer(OLDEST, types, as_json)
            _print_last(store, _LAST if count is None else count, printer)
        elif start.lower() == "newest":
            printer = _Printer(store.read(NEWEST).next, types, as_json)
        else:
            after: Checkpoint = OLDEST if start.lower() == "oldest" else start
            printer = _Printer(after, types, as_json)
            printer.feed(scan(store, after), count)
        if follow:
            sys.stdout.flush()
            try:
                _follow(store, printer)
            except KeyboardInterrupt:
                return
