"""MemoryStore: the in-process store that implements every capability.

Offsets are the 1-based position of an event written as 20 zero-padded decimal
digits (``"00000000000000000001"`` is the first event), so comparing offsets as
strings compares their log positions, and an offset turns into a list index in O(1).
"""

from __future__ import annotations

import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from ._exceptions import LeaseLostError, OffsetError, StoreClosedError
from ._store import NEWEST, OLDEST, Boundary, EventRecord, Lease, ReadResult, StoredEvent
from ._validate import check_limit

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import TracebackType

    from ._store import Checkpoint, Offset, Owner, Position

__all__ = ["MemoryStore", "open_memory_store"]

_WIDTH: Final = 20


def _format(position: int) -> Offset:
    return "%020d" % position  # noqa: UP031 - the fastest spelling; _WIDTH digits


def _check_subscription_id(subscription_id: object) -> None:
    if not isinstance(subscription_id, str) or not subscription_id:
        raise ValueError(f"A subscription id must be a non-empty string, got {subscription_id!r}.")


def _check_checkpoint(subscription_id: object, offset: object) -> None:
    _check_subscription_id(subscription_id)
    if _is_newest(offset):
        raise ValueError(
            "NEWEST is a query position, not a checkpoint: save the concrete "
            "offset from store.read(NEWEST).next instead."
        )


def _is_newest(value: object) -> bool:
    # Typed ``object``: callers pass NEWEST where the types forbid it.
    return value is NEWEST


def _check_record(record: object) -> None:
    if not isinstance(record, EventRecord):
        raise TypeError(f"A store appends EventRecord instances, got {record!r}.")


class MemoryStore:
    """An event store that keeps everything in this process's memory.

    It implements :class:`~eventbus.core.EventStore` and every optional capability:
    checkpoints (and listing them), streaming reads, live tailing, offset ordering and
    ``close``. It is
    thread-safe; :meth:`tail` waits on a condition that every append notifies, so a
    waiting reader wakes as soon as an event is stored. History is immutable: records
    are copied on append (metadata becomes a read-only mapping) and reads return new
    lists.

    Two instances never share events. Everything is lost when the process exits; use
    a persistent backend (``eventbus-sqlite``) to keep events across restarts.

    An offset is valid only if this store issued it: a malformed string, ``"0"``
    padded or not, or an offset past the current tail (for example one saved from a
    previous process's MemoryStore) raises :class:`~eventbus.core.OffsetError`.
    """

    __slots__ = (
        "__weakref__",
        "_checkpoints",
        "_closed",
        "_condition",
        "_events",
        "_leases",
        "_waiting",
    )

    def __init__(self) -> None:
        """Create an empty store."""
        self._events: list[StoredEvent] = []
        self._checkpoints: dict[str, Checkpoint] = {}
        self._leases: dict[str, Lease] = {}
        self._condition = threading.Condition(threading.Lock())
        self._closed = False
        self._waiting = 0  # tail() callers in wait_for: appends skip notify_all without them

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._events)} events"
        return f"<MemoryStore {state}>"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers; the caller holds the lock -------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("The MemoryStore was closed; it cannot be used again.")

    def _position(self, offset: object) -> int:
        """Return the number of events up to and including ``offset``."""
        if not (
            isinstance(offset, str)
            and len(offset) == _WIDTH
            and offset.isascii()
            and offset.isdigit()
        ):
            raise OffsetError(
                f"{offset!r} is not a MemoryStore offset: expected {_WIDTH} decimal "
                "digits as returned by append or read, or OLDEST / NEWEST."
            )
        position = int(offset)
        if position == 0:
            raise OffsetError(
                f"{offset!r} is not a MemoryStore offset: offsets start at 1; "
                "use OLDEST to read from the beginning."
            )
        if position > len(self._events):
            raise OffsetError(
                f"Offset {offset!r} is past the tail of this MemoryStore, which holds "
                f"{len(self._events)} events: it was issued by another store (perhaps "
                "an earlier process's); a MemoryStore keeps nothing across restarts."
            )
        return position

    def _start(self, after: Position) -> int:
        if after is OLDEST:
            return 0
        if after is NEWEST:
            return len(self._events)
        return self._position(after)

    def _page(self, start: int, limit: int) -> ReadResult:
        events = self._events[start : start + limit]
        if events:
            return ReadResult(events, events[-1].offset)
        return ReadResult(events, _format(start) if start else OLDEST)

    def _store(self, record: EventRecord) -> Offset:
        position = len(self._events) + 1
        offset = _format(position)
        self._events.append(
            StoredEvent(
                offset=offset,
                event_id=record.event_id,
                type_name=record.type_name,
                data=record.data,
                timestamp=record.timestamp,
                metadata=MappingProxyType(dict(record.metadata)),
                origin=record.origin,
            )
        )
        return offset

    # -- EventStore -------------------------------------------------------------------

    def append(self, record: EventRecord) -> Offset:
        """Store one record and return its offset.

        Args:
            record: The event to store. Its metadata is copied.

        Returns:
            The new event's offset.

        Raises:
            TypeError: ``record`` is not an :class:`~eventbus.core.EventRecord`.
            StoreClosedError: The store was closed.
        """
        _check_record(record)
        with self._condition:
            self._check_open()
            offset = self._store(record)
            if self._waiting:
                self._condition.notify_all()
        return offset

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        """Store records atomically and contiguously, in order.

        No other append lands between two records of one batch, and a batch with an
        invalid record stores nothing.

        Args:
            records: The events to store; may be empty.

        Returns:
            Their offsets, in the order of ``records``.

        Raises:
            TypeError: An element is not an :class:`~eventbus.core.EventRecord`.
            StoreClosedError: The store was closed.
        """
        batch = list(records)
        for record in batch:
            _check_record(record)
        with self._condition:
            self._check_open()
            offsets = [self._store(record) for record in batch]
            if offsets and self._waiting:
                self._condition.notify_all()
        return offsets

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        """Return up to ``limit`` events strictly after ``after``.

        Args:
            after: OLDEST, NEWEST or an offset this store returned.
            limit: The most events to return, at least 1.

        Returns:
            The events and the position to read after next. ``read(NEWEST)``
            returns no events and the offset of the last event (OLDEST when empty).

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``limit`` is less than 1.
            TypeError: ``limit`` is not an int.
            StoreClosedError: The store was closed.
        """
        check_limit("limit", limit)
        with self._condition:
            self._check_open()
            start = self._start(after)
            return self._page(start, 0 if after is NEWEST else limit)

    # -- StreamingReader --------------------------------------------------------------

    def iter_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[StoredEvent]:
        """Iterate the events after ``after``, including those appended meanwhile.

        The lock is held only while each batch of ``batch_size`` events is copied.
        ``iter_events(NEWEST)`` starts at the tail at the time of the call.

        Args:
            after: OLDEST, NEWEST or an offset this store returned.
            batch_size: How many events to copy per lock acquisition, at least 1.

        Returns:
            An iterator of events in log order. It raises StoreClosedError if the
            store is closed before iteration ends, rather than stopping short.

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``batch_size`` is less than 1.
            TypeError: ``batch_size`` is not an int.
            StoreClosedError: The store was closed.
        """
        check_limit("batch_size", batch_size)
        with self._condition:
            self._check_open()
            start = self._start(after)
        return self._iterate(start, batch_size)

    def _iterate(self, start: int, batch_size: int) -> Iterator[StoredEvent]:
        while True:
            with self._condition:
                self._check_open()
                batch = self._events[start : start + batch_size]
            if not batch:
                return
            start += len(batch)
            yield from batch

    # -- TailingStore -----------------------------------------------------------------

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        """Wait until events exist after ``after``, then return them like :meth:`read`.

        An append from any thread wakes the waiter at once; :meth:`close` wakes it
        with StoreClosedError.

        Args:
            after: OLDEST, NEWEST (the tail at the time of the call) or an offset.
            timeout: The most seconds to wait; 0 polls.
            limit: The most events to return, at least 1.

        Returns:
            The new events, or none and ``next`` equal to the resolved ``after`` when
            ``timeout`` passed first.

        Raises:
            OffsetError: ``after`` is not an offset of this store.
            ValueError: ``limit`` is less than 1 or ``timeout`` is negative or NaN.
            TypeError: ``limit`` is not an int.
            StoreClosedError: The store was closed, before or during the wait.
        """
        check_limit("limit", limit)
        if not timeout >= 0:  # also rejects NaN
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}.")
        with self._condition:
            self._check_open()
            start = self._start(after)
            self._waiting += 1
            try:
                self._condition.wait_for(
                    lambda: self._closed or len(self._events) > start,
                    # Lock waits reject timeouts above TIMEOUT_MAX; those mean "forever".
                    None if timeout >= threading.TIMEOUT_MAX else timeout,
                )
            finally:
                self._waiting -= 1
            self._check_open()
            return self._page(start, limit)

    # -- OffsetOrdering ---------------------------------------------------------------

    def compare_offsets(self, a: Offset, b: Offset) -> int:
        """Compare two offsets of this store by log position.

        Args:
            a: An offset this store returned.
            b: Another one.

        Returns:
            -1, 0 or 1 as ``a`` is before, at or after ``b``.

        Raises:
            OffsetError: Either is not an offset of this store.
            StoreClosedError: The store was closed.
        """
        with self._condition:
            self._check_open()
            left, right = self._position(a), self._position(b)
        return (left > right) - (left < right)

    # -- CheckpointStore --------------------------------------------------------------

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        """Record that ``subscription_id`` has processed everything up to ``offset``.

        Args:
            subscription_id: A non-empty name for the durable subscription.
            offset: OLDEST or an offset this store returned.

        Raises:
            ValueError: ``subscription_id`` is empty, or ``offset`` is NEWEST (resolve
                it with ``read(NEWEST).next`` first).
            OffsetError: ``offset`` is not an offset of this store.
            StoreClosedError: The store was closed.
        """
        _check_checkpoint(subscription_id, offset)
        with self._condition:
            self._check_open()
            if not isinstance(offset, Boundary):
                self._position(offset)
            self._checkpoints[subscription_id] = offset

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        """Return the checkpoint saved for ``subscription_id``.

        Args:
            subscription_id: A non-empty name for the durable subscription.

        Returns:
            The saved offset or OLDEST, or ``None`` when nothing was ever saved.

        Raises:
            ValueError: ``subscription_id`` is empty.
            StoreClosedError: The store was closed.
        """
        _check_subscription_id(subscription_id)
        with self._condition:
            self._check_open()
            return self._checkpoints.get(subscription_id)

    # -- LeaseStore: one owner per subscription id among the buses sharing this store --

    def read_lease(self, subscription_id: str) -> Lease | None:
        """Return who holds ``subscription_id``, or None when nobody ever claimed it."""
        _check_subscription_id(subscription_id)
        with self._condition:
            self._check_open()
            return self._leases.get(subscription_id)

    def wait_lease(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        """Block until the lease record differs from ``seen`` or ``timeout`` seconds pass."""
        _check_subscription_id(subscription_id)
        with self._condition:
            self._check_open()
            self._waiting += 1
            try:
                self._condition.wait_for(
                    lambda: self._closed or self._leases.get(subscription_id) != seen, timeout
                )
            finally:
                self._waiting -= 1
            self._check_open()
            return self._leases.get(subscription_id)

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        """Take ``subscription_id`` for ``owner`` if its record still equals ``seen``."""
        _check_subscription_id(subscription_id)
        with self._condition:
            self._check_open()
            current = self._leases.get(subscription_id)
            if current != seen:
                return None
            lease = Lease(subscription_id, owner, 1 if current is None else current.token + 1)
            self._set_lease(lease)
            return lease

    def renew_lease(self, lease: Lease) -> Lease:
        """Extend ``lease``; LeaseLostError when another owner claimed the id since."""
        with self._condition:
            self._check_open()
            self._check_current(lease)
            renewed = Lease(lease.subscription_id, lease.owner, lease.token, lease.beat + 1)
            self._set_lease(renewed)
            return renewed

    def release_lease(self, lease: Lease) -> None:
        """Give ``lease`` up so a standby claims it at once; nothing if it was lost."""
        with self._condition:
            self._check_open()
            current = self._leases.get(lease.subscription_id)
            if current is not None and current.token == lease.token and not current.released:
                self._set_lease(
                    Lease(lease.subscription_id, lease.owner, lease.token, current.beat, True)
                )

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        """Save the checkpoint only while ``lease`` is current, in one locked step."""
        _check_checkpoint(lease.subscription_id, offset)
        with self._condition:
            self._check_open()
            self._check_current(lease)
            if not isinstance(offset, Boundary):
                self._position(offset)
            self._checkpoints[lease.subscription_id] = offset

    def _check_current(self, lease: Lease) -> None:
        current = self._leases.get(lease.subscription_id)
        if current is None or current.token != lease.token or current.released:
            raise LeaseLostError.superseded(lease, current)

    def _set_lease(self, lease: Lease) -> None:
        self._leases[lease.subscription_id] = lease
        if self._waiting:
            self._condition.notify_all()

    # -- CheckpointListing -----------------------------------------------------------

    def list_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every saved checkpoint by subscription id, sorted by id.

        Raises:
            StoreClosedError: The store was closed.
        """
        with self._condition:
            self._check_open()
            return dict(sorted(self._checkpoints.items()))

    def delete_checkpoint(self, subscription_id: str) -> bool:
        """Forget the checkpoint of ``subscription_id``: it then loads as ``None``.

        Args:
            subscription_id: A non-empty name for the durable subscription.

        Returns:
            True if a checkpoint was saved, False if there was none.

        Raises:
            ValueError: ``subscription_id`` is empty.
            StoreClosedError: The store was closed.
        """
        _check_subscription_id(subscription_id)
        with self._condition:
            self._check_open()
            return self._checkpoints.pop(subscription_id, None) is not None

    # -- ClosableStore ----------------------------------------------------------------

    def close(self) -> None:
        """Close the store: later calls raise StoreClosedError and waiters wake.

        Closing twice is allowed. The events are kept until the store is garbage.
        """
        with self._condition:
            self._closed = True
            self._condition.notify_all()


def open_memory_store(url: str) -> MemoryStore:
    """Open a new, empty MemoryStore for ``memory://`` (the ``eventbus.stores`` hook).

    Every call returns a fresh store: two ``open_store("memory://")`` calls never
    share events. ``memory:`` is accepted too.

    Args:
        url: ``"memory://"`` or ``"memory:"``, scheme in any case.

    Returns:
        A new MemoryStore.

    Raises:
        ValueError: The URL has another scheme, or a host, path, query or
            fragment, which would mean nothing to a MemoryStore.
    """
    parts = urlsplit(url)
    if parts.scheme != "memory" or parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(
            f"{url!r} is not a memory store URL: use 'memory://' with nothing after it; "
            "every memory store is new and empty, so names and options mean nothing."
        )
    return MemoryStore()
