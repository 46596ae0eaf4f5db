"""The store contract: records, offsets and the capability protocols a backend opts into.

A store sees only records (JSON text plus envelope fields), never event classes.
Every method is synchronous and thread-safe; the bus never calls one on a running
event loop's thread. The pytest suite in :mod:`eventbus.core.testing` is the
executable definition of this contract.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "NEWEST",
    "OLDEST",
    "AsyncAppendingStore",
    "Boundary",
    "Checkpoint",
    "CheckpointListing",
    "CheckpointStore",
    "ClosableStore",
    "EventRecord",
    "EventStore",
    "Offset",
    "OffsetOrdering",
    "Position",
    "ReadResult",
    "StoredEvent",
    "StreamingReader",
    "TailingStore",
]


class Boundary(enum.Enum):
    """The two positions every store understands without an offset string."""

    OLDEST = "oldest"
    """Before the first event: reading after it yields the whole log."""

    NEWEST = "newest"
    """The current tail. A store resolves it to a concrete position; it is never stored."""

    def __repr__(self) -> str:
        return self.name


OLDEST: Final = Boundary.OLDEST
NEWEST: Final = Boundary.NEWEST

Offset: TypeAlias = str
"""An opaque, store-defined resume token. Resuming after an event's offset yields
exactly the events that follow it: none skipped, none repeated."""

Position: TypeAlias = "Offset | Boundary"
"""Where a read starts: after a concrete offset, or at a boundary."""

Checkpoint: TypeAlias = "Offset | Literal[Boundary.OLDEST]"
"""What a checkpoint can hold: a concrete offset, or OLDEST. Never NEWEST."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event on its way into a store: everything but the offset.

    Attributes:
        event_id: A ULID minted once per publish; stable across append retries.
        type_name: The event's wire name.
        data: The event as JSON text.
        timestamp: When it was published, timezone-aware UTC.
        metadata: Publisher-supplied string pairs.
        origin: The id of the bus that published it.
    """

    event_id: str
    type_name: str
    data: str
    timestamp: datetime
    metadata: Mapping[str, str]
    origin: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as a store holds it: the record plus its offset.

    Attributes:
        offset: The exact resume point after this event.
        event_id: A ULID minted once per publish.
        type_name: The event's wire name.
        data: The event as JSON text.
        timestamp: When it was published, timezone-aware UTC.
        metadata: Publisher-supplied string pairs.
        origin: The id of the bus that published it.
    """

    offset: Offset
    event_id: str
    type_name: str
    data: str
    timestamp: datetime
    metadata: Mapping[str, str]
    origin: str


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One page of a read.

    Attributes:
        events: The events after the requested position, in log order.
        next: Where the next read should start: the offset of the last event
            returned, or the (resolved) starting position when nothing was returned.
            Never ``NEWEST``.
    """

    events: Sequence[StoredEvent]
    next: Checkpoint


@runtime_checkable
class EventStore(Protocol):
    """The required part of every store."""

    def append(self, record: EventRecord) -> Offset:
        """Store one record durably and return its offset."""
        ...

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        """Store records atomically, in order, and return their offsets."""
        ...

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        """Return up to ``limit`` events strictly after ``after``.

        ``read(NEWEST)`` returns no events and the concrete current tail as ``next``.
        A malformed offset raises :class:`~eventbus.core.OffsetError`.
        """
        ...


@runtime_checkable
class CheckpointStore(Protocol):
    """A store that keeps durable-subscription checkpoints beside the events."""

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        """Durably record that ``subscription_id`` has processed up to ``offset``."""
        ...

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        """Return the saved checkpoint, or ``None`` when none was ever saved."""
        ...


@runtime_checkable
class CheckpointListing(Protocol):
    """A checkpoint store that can name and forget its checkpoints (for operators' tools).

    The bus never needs it; the ``eventbus`` command uses it to list subscriptions.
    """

    def list_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every saved checkpoint by subscription id, sorted by id."""
        ...

    def delete_checkpoint(self, subscription_id: str) -> bool:
        """Forget the checkpoint of ``subscription_id``; True if there was one."""
        ...


@runtime_checkable
class StreamingReader(Protocol):
    """A store that can iterate a long log without holding it all in memory."""

    def iter_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[StoredEvent]:
        """Yield every event after ``after`` that exists when iteration reaches it."""
        ...


@runtime_checkable
class TailingStore(Protocol):
    """A store that can wait for new events, including those of other processes."""

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        """Block until events exist after ``after`` or ``timeout`` seconds pass.

        Returns the new events (empty on timeout) like :meth:`EventStore.read`.
        """
        ...


@runtime_checkable
class OffsetOrdering(Protocol):
    """A store whose offsets can be compared."""

    def compare_offsets(self, a: Offset, b: Offset) -> int:
        """Return a negative number, zero or a positive number as ``a`` is before,
        at or after ``b`` in the log."""
        ...


@runtime_checkable
class ClosableStore(Protocol):
    """A store holding resources that ``close`` releases; idempotent."""

    def close(self) -> None:
        """Release the store's resources. Later calls raise StoreClosedError."""
        ...


@runtime_checkable
class AsyncAppendingStore(Protocol):
    """A store with a native coroutine append, which ``publish_async`` prefers.

    Without it, ``publish_async`` runs :meth:`EventStore.append` in a worker thread.
    """

    async def append_async(self, record: EventRecord) -> Offset:
        """Store one record durably and return its offset, without blocking the loop."""
        ...
