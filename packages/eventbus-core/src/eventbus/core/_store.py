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
    "Lease",
    "LeaseStore",
    "Offset",
    "OffsetOrdering",
    "Owner",
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


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds (or wants) a durable subscription: a host, a process and an instance.

    Attributes:
        host: The host name, as ``socket.gethostname()`` gives it.
        pid: The process id on that host.
        instance: A random id, new for every durable subscription object, so two
            subscriptions in one process (on two buses) are two owners.
    """

    host: str
    pid: int
    instance: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.instance}"

    @classmethod
    def parse(cls, text: str) -> Owner:
        """Read back what ``str(owner)`` wrote; stores persist owners as that text.

        Raises:
            ValueError: ``text`` is not ``host:pid:instance``.
        """
        host, sep, rest = text.rpartition(":")
        host, sep2, pid = host.rpartition(":")
        if not (sep and sep2 and host and rest and pid.isdigit()):
            raise ValueError(f"{text!r} is not an owner: expected 'host:pid:instance'.")
        return cls(host, int(pid), rest)


@dataclass(frozen=True, slots=True)
class Lease:
    """A store's record of who owns a durable subscription id.

    Records are compared whole: a standby that sees the same record for a whole
    time-to-live concludes that its holder stopped renewing.

    Attributes:
        subscription_id: The durable subscription id the lease is for.
        owner: Who claimed it.
        token: The fencing token: every claim of this id gets a larger one, so a
            write carrying an older token is recognisably stale.
        beat: Counts the holder's renewals under this token; every renewal changes
            the record, which is how standbys see the holder alive.
        released: The holder gave the lease up; anyone may claim it at once.
    """

    subscription_id: str
    owner: Owner
    token: int
    beat: int = 0
    released: bool = False


@runtime_checkable
class LeaseStore(CheckpointStore, Protocol):
    """A checkpoint store that keeps one owner per subscription id across processes.

    Every method is atomic with respect to every other process using the same data.
    The store judges no time: expiry is decided by standbys, which watch the record
    with their own monotonic clocks (see ``docs/guarantees.md``), so hosts' wall
    clocks never need to agree.
    """

    def read_lease(self, subscription_id: str) -> Lease | None:
        """Return the current record, or None when the id was never claimed."""
        ...

    def wait_lease(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        """Block until the record differs from ``seen`` or ``timeout`` seconds pass.

        Returns:
            The current record (equal to ``seen`` on timeout).
        """
        ...

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        """Take the id for ``owner`` if its record still equals ``seen``.

        Returns:
            The new lease, whose token is larger than every earlier token of the id
            and whose beat is 0; None when the record changed since ``seen`` (someone
            else renewed or claimed first).
        """
        ...

    def renew_lease(self, lease: Lease) -> Lease:
        """Extend ``lease``: the same token, the next beat.

        Raises:
            LeaseLostError: ``lease`` is no longer the current record's token, or it
                was released.
        """
        ...

    def release_lease(self, lease: Lease) -> None:
        """Mark ``lease`` released if it is still current; otherwise do nothing.

        The released record keeps the owner; its token may be larger than the lease's
        (a store whose fence is a token may spend one on the release). Renewing or
        writing a checkpoint with a released lease raises LeaseLostError.
        """
        ...

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        """Save the checkpoint of ``lease.subscription_id`` only while ``lease`` is current.

        The check and the write are one atomic step.

        Raises:
            LeaseLostError: ``lease`` is no longer current; the checkpoint is unchanged.
        """
        ...
