"""The read side of :class:`DurableStreamStore`: fetching, naming and paging the events.

Each instance keeps the last events it read (a *window*), so paging through a long stream
costs one server read, not one per page. A page stops before a corrupt event (an envelope
with a field another tool wrote that this version cannot read): the page that starts at it
raises ``StoreCorruptError`` naming its exact offset, so a reader resumes right after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from eventbus.core import (
    OLDEST,
    Checkpoint,
    OffsetError,
    Position,
    StoreCorruptError,
    StoredEvent,
    StoreUnavailableError,
)

from ._client import DurableStreamClient
from ._envelope_codec import DecodedChunk, UndecodableHandler, decode_chunk
from ._errors import BadRequestError
from ._offsets import BEGINNING, compare_tokens, parse_token
from ._results import ReadChunk

__all__ = ["EventReader"]

_TRIM_AT: Final = 10_000
_ANCHORED: Final = 2  # the form of "<a>,<i>" in a parsed token
_CorruptErrorFactory = Callable[[StoredEvent, Mapping[str, str]], StoreCorruptError]


@dataclass(slots=True)
class _Window:
    """The last events read: ``events`` are exactly the events after ``base``.

    A reader paging through the window continues where the last page ended
    (``resume``), so the offset index is only built when some other position is asked
    for: a catch-up read of a long log never builds it. ``corrupt`` lists the corrupt
    events among ``events`` by offset (see :class:`DecodedChunk`).
    """

    base: Position
    events: list[StoredEvent]
    next_offset: str
    corrupt: dict[str, Mapping[str, str]] = field(default_factory=dict)
    resume: tuple[str, int] | None = None  # the last page's last offset, and what follows
    index: dict[str, int] | None = None

    def start_after(self, position: Position) -> int | None:
        if position is self.base or position == self.base:
            return 0
        resume = self.resume
        if resume is not None and position == resume[0]:
            return resume[1]
        if not isinstance(position, str):
            return None
        if self.index is None:
            self.index = {e.offset: i for i, e in enumerate(self.events)}
        found = self.index.get(position)
        return None if found is None else found + 1

    def page(
        self, start: int, limit: int, corrupt_error: _CorruptErrorFactory
    ) -> list[StoredEvent]:
        events = self.events[start : start + limit]
        if self.corrupt:
            for at, event in enumerate(events):
                unreadable = self.corrupt.get(event.offset)
                if unreadable is not None:
                    if not at:
                        raise corrupt_error(event, unreadable)
                    events = events[:at]  # a short page: the corrupt event starts the next
                    break
        if events:
            self.resume = (events[-1].offset, start + len(events))
        return events

    def extend(self, start: int, chunk: DecodedChunk) -> int:
        if start and len(self.events) > _TRIM_AT:
            # Forget what the reader has passed, so a long follow keeps memory bounded.
            self.base = self.events[start - 1].offset
            self.events = self.events[start:]
            self.resume = self.index = None
            start = 0
        if self.index is not None:
            first = len(self.events)
            self.index.update((e.offset, first + i) for i, e in enumerate(chunk.events))
        self.events.extend(chunk.events)
        self.next_offset = chunk.next_offset
        if chunk.corrupt:
            self.corrupt.update(chunk.corrupt)
        return start


class EventReader:
    """Reads the events of one stream for a store, keeping the last ones it read.

    Thread-safe. Errors are the client's, except that an offset the server rejects is an
    ``OffsetError`` and a corrupt event a ``StoreCorruptError``.

    Args:
        client: The store's client.
        stream: The stream's path.
        url: The stream's URL, for messages.
        on_undecodable: Told about each message that is not an event.
        start: The stream's tail when this store created it (so it is known to begin
            there), else ``None``.
    """

    def __init__(
        self,
        client: DurableStreamClient,
        stream: str,
        url: str,
        on_undecodable: UndecodableHandler,
        start: str | None,
    ) -> None:
        self._client = client
        self._stream = stream
        self._url = url
        self._on_undecodable = on_undecodable
        self._start = start
        self._lock = threading.Lock()
        self._window: _Window | None = None
        self.nonempty = False
        """Whether the stream is known to hold an event (set by reads and appends)."""

    def head_tail(self) -> str:
        """Ask the server for the stream's tail offset (one HEAD)."""
        offset = self._client.head(self._stream).next_offset
        if offset is None:
            raise StoreUnavailableError(
                f"The server answered a HEAD of {self._url!r} without Stream-Next-Offset."
            )
        return offset

    def fetch(self, server_offset: str) -> DecodedChunk:
        """Read and name everything after ``server_offset`` (one catch-up GET)."""
        try:
            chunk = self._client.read(self._stream, offset=server_offset)
        except BadRequestError as exc:
            raise OffsetError(
                f"The server rejected the offset {server_offset!r} of {self._url!r}: "
                f"{exc.server_message!r}."
            ) from exc
        return self.decode(chunk, server_offset)

    def decode(self, chunk: ReadChunk, start: str) -> DecodedChunk:
        """Name the events of a chunk read from the stream at server offset ``start``."""
        decoded = decode_chunk(chunk.data, start, chunk.next_offset, self._on_undecodable)
        if decoded.events:
            self.nonempty = True
        return decoded

    def newest(self) -> Checkpoint:
        """Resolve NEWEST: the current tail's token, or OLDEST when there are no events."""
        tail = self.head_tail()
        if not self.nonempty and self._start is None:
            # Nothing tells yet whether the stream holds events: look once.
            with self._lock:
                chunk = self.fetch(BEGINNING)
                self._window = _Window(OLDEST, chunk.events, chunk.next_offset, dict(chunk.corrupt))
            if not chunk.events:
                self._start = chunk.next_offset
        if self.nonempty or tail != self._start:
            return tail
        return OLDEST

    def _window_for(self, after: Checkpoint) -> tuple[_Window, int]:
        """Return a window holding the events after ``after``, and where they start."""
        window = self._window
        start = None if window is None else window.start_after(after)
        if window is not None and start is not None:
            return window, start
        if after is OLDEST:
            chunk = self.fetch(BEGINNING)
            start = 0
        else:
            offset, form, index = parse_token(after)
            chunk = self.fetch(offset)
            # "<o>&<i>" counts from the read's start, "<a>,<i>" from the first event of
            # the POST anchored at a (see _offsets).
            first = chunk.anchors.get(offset) if form == _ANCHORED else 0
            start = 0 if first is None else first + index + 1
            if first is None or start > len(chunk.events):
                raise OffsetError(
                    f"{after!r} is not an offset of {self._url!r}: no such event follows "
                    f"{offset!r}."
                )
        window = _Window(after, chunk.events[start:], chunk.next_offset, dict(chunk.corrupt))
        self._window = window
        return window, 0

    def read_after(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        """Return up to ``limit`` events after ``after``, reading on from the server if needed.

        Raises:
            StoreCorruptError: The first event after ``after`` is corrupt.
        """
        with self._lock:
            window, start = self._window_for(after)
            if len(window.events) - start < limit:
                start = window.extend(start, self.fetch(window.next_offset))
            return window.page(start, limit, self._corrupt_error)

    def cached_after(self, after: Checkpoint, limit: int) -> tuple[list[StoredEvent], str]:
        """Return the events after ``after`` this reader already holds, and the server offset
        to wait at for more; a miss reads from the server once, as :meth:`read_after`.

        Raises:
            StoreCorruptError: The first event after ``after`` is corrupt.
        """
        with self._lock:
            window, start = self._window_for(after)
            return window.page(start, limit, self._corrupt_error), window.next_offset

    def follow(
        self, position: Checkpoint, chunk: ReadChunk, start: str, limit: int
    ) -> list[StoredEvent]:
        """Take a chunk a long-poll from server offset ``start`` brought: the first ``limit``
        events of it after ``position``.

        Raises:
            StoreCorruptError: The first of them is corrupt.
        """
        decoded = self.decode(chunk, start)
        # Never deliver what precedes the position (see _reads.forward on lagging servers).
        fresh = [e for e in decoded.events if _after(e.offset, position)]
        with self._lock:
            window = _Window(position, fresh, decoded.next_offset, dict(decoded.corrupt))
            self._window = window
            return window.page(0, limit, self._corrupt_error)

    def _corrupt_error(
        self, event: StoredEvent, unreadable: Mapping[str, str]
    ) -> StoreCorruptError:
        name = next(iter(unreadable))
        reasons = "; ".join(unreadable.values())
        return StoreCorruptError(
            f"The event at offset {event.offset!r} of {self._url!r} cannot be read: its "
            f"{name} is unreadable ({reasons}). Read on with read(after=error.offset) to skip "
            "just this event; error.record holds what could be read.",
            store=self._url,
            offset=event.offset,
            field=name,
            record=event,
        )


def _after(offset: str, position: Checkpoint) -> bool:
    return position is OLDEST or compare_tokens(offset, position) > 0
