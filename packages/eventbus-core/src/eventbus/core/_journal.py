"""The journal: publish → append (strict or best effort), conditional appends, batches, replay.

It turns an event into an :class:`EventRecord` through the mapper's codec, appends it
to the store (natively async when the store can), and reads the log back, raw or
decoded. On a bus without a store it only builds the envelopes handlers ask for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TypeVar

from ._envelope import Envelope, current_metadata
from ._exceptions import (
    BusUsageError,
    PublishError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from ._failures import HandlerFailure, Reporter
from ._ids import new_event_id
from ._mapper import EventMapper
from ._names import event_name
from ._store import (
    NEWEST,
    OLDEST,
    AsyncAppendingStore,
    Checkpoint,
    ConditionalAppendStore,
    EventRecord,
    EventStore,
    Offset,
    Position,
    StoredEvent,
    StreamingReader,
)
from ._validate import check_batch_size

__all__ = ["ENVELOPE_FIELDS", "RECORD_FIELDS", "Journal", "over"]

_T = TypeVar("_T")

# EventRecord is a frozen slotted dataclass: its __init__ pays an object.__setattr__
# per field. Every stored publish builds one, so _record_for fills the slots directly
# through their descriptors (test_persistence checks these are exactly its fields).
RECORD_FIELDS: Final = ("event_id", "type_name", "data", "timestamp", "metadata", "origin")
_new_record = object.__new__
(_set_event_id, _set_type_name, _set_data, _set_timestamp, _set_metadata, _set_origin) = (
    getattr(EventRecord, name).__set__ for name in RECORD_FIELDS
)
_now = datetime.now
# Envelope likewise: built on every stored publish a handler or a middleware sees.
ENVELOPE_FIELDS: Final = ("event_id", "offset", "type_name", "timestamp", "metadata", "origin")
(_set_id, _set_offset, _set_name, _set_time, _set_pairs, _set_from) = (
    getattr(Envelope, name).__set__ for name in ENVELOPE_FIELDS
)


class Journal:
    """Appends a bus's events to its store and reads them back.

    Args:
        store: The store, or None for a bus that keeps nothing.
        mapper: Encodes events and decodes records.
        strict: Raise a failed append (True) or report it and go on (False).
        append_timeout: Seconds to wait for an append, or None.
        report: Receives the failures of best-effort appends.
        origin: The publishing bus's id, stamped on every record.
        on_append: Called after every successful append (durable subscriptions wake).
    """

    def __init__(
        self,
        store: EventStore | None,
        mapper: EventMapper,
        *,
        strict: bool,
        append_timeout: float | None,
        report: Reporter,
        origin: str,
        on_append: Callable[[], None],
    ) -> None:
        self.store = store
        self._mapper = mapper
        self._strict = strict
        self._append_timeout = append_timeout
        self._report = report
        self._origin = origin
        self._on_append = on_append
        # A store's own coroutine append, preferred by publish_async (DESIGN §4).
        self.native_append = store.append_async if isinstance(store, AsyncAppendingStore) else None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop the append-timeout threads (an append still running finishes alone)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def require_store(self, action: str) -> EventStore:
        """The store, or a BusUsageError naming ``action`` on a bus without one."""
        if self.store is None:
            raise BusUsageError(
                f"Cannot {action}: this bus has no store; create it as EventBus(store=...)."
            )
        return self.store

    # -- envelopes -----------------------------------------------------------------------

    def envelope_for(
        self, needs_envelope: bool, event: object, metadata: Mapping[str, str] | None
    ) -> Envelope | None:
        """The envelope of an event on a bus without a store, if a handler wants one."""
        if not needs_envelope:
            if metadata:
                merge_metadata(metadata)  # validate: bad metadata fails on every bus
            return None
        pairs = merge_metadata(metadata)
        type_name = event_name(event.__class__)
        return Envelope(new_event_id(), None, type_name, datetime.now(UTC), pairs, self._origin)

    def wire_name(self, event: object) -> str:
        """The wire name ``event`` is (or, without a store, would be) stored under."""
        if self.store is None:
            return event_name(event.__class__)
        return self._mapper.codec_for_event(event.__class__).name

    def _stored_envelope(
        self, needs_envelope: bool, record: EventRecord, offset: Offset | None
    ) -> Envelope | None:
        if not needs_envelope:
            return None
        envelope = _new_record(Envelope)
        _set_id(envelope, record.event_id)
        _set_offset(envelope, offset)
        _set_name(envelope, record.type_name)
        _set_time(envelope, record.timestamp)
        _set_pairs(envelope, record.metadata)
        _set_from(envelope, self._origin)
        return envelope

    # -- appending -----------------------------------------------------------------------

    def persist(
        self,
        needs_envelope: bool,
        event: object,
        metadata: Mapping[str, str] | None,
        expected: Checkpoint | None = None,
    ) -> tuple[Offset | None, Envelope | None]:
        """Append the event; return its offset and, if a handler wants it, its envelope.

        With ``expected``, the append is conditional (see :meth:`append_expecting`).
        """
        record = self.record_for(
            event, current_metadata() if metadata is None else merge_metadata(metadata)
        )
        if expected is not None:
            stored = self.append_expecting([record], expected)[0]
            return stored, self._stored_envelope(needs_envelope, record, stored)
        store = self.store
        assert store is not None
        offset: Offset | None
        try:
            if self._append_timeout is None:
                offset = store.append(record)
            else:
                offset = self._call_with_timeout(store.append, record, about=record)
        except Exception as exc:
            self._append_failed(exc, record)
            offset = None
        if offset is not None:
            self._on_append()
        if not needs_envelope:
            return offset, None
        return offset, self._stored_envelope(needs_envelope, record, offset)

    async def persist_natively(
        self, needs_envelope: bool, event: object, metadata: Mapping[str, str] | None
    ) -> tuple[Offset | None, Envelope | None]:
        """Append through the store's own coroutine: no worker thread, no thread hop."""
        assert self.native_append is not None
        record = self.record_for(
            event, current_metadata() if metadata is None else merge_metadata(metadata)
        )
        offset: Offset | None
        try:
            if self._append_timeout is None:
                offset = await self.native_append(record)
            else:
                try:
                    offset = await asyncio.wait_for(
                        self.native_append(record), self._append_timeout
                    )
                except TimeoutError:
                    raise _timeout_error(record, self._append_timeout) from None
        except Exception as exc:
            self._append_failed(exc, record)
            offset = None
        if offset is not None:
            self._on_append()
        if not needs_envelope:
            return offset, None
        return offset, self._stored_envelope(needs_envelope, record, offset)

    def append_expecting(self, records: list[EventRecord], expected: Checkpoint) -> list[Offset]:
        """Append ``records`` only if the log still ends at ``expected``.

        Every failure raises, on a best-effort bus too: a conditional publish asks the
        store for a decision, and reporting it instead would leave the caller guessing.

        Raises:
            AppendConflictError: The log ends elsewhere; nothing was stored.
            BusUsageError: No store, or one without conditional appends.
            PublishError: ``expected`` is NEWEST, which names no end.
            StoreError: The append failed.
        """
        store = self.require_store("publish with expected_offset")
        if not isinstance(store, ConditionalAppendStore):
            raise BusUsageError(
                f"Cannot publish with expected_offset: {type(store).__name__} does not "
                "implement ConditionalAppendStore; use a store that does (MemoryStore, "
                "SQLiteStore, DurableStreamStore) or publish without expected_offset."
            )
        if _is_newest(expected):
            raise PublishError(
                "expected_offset=NEWEST names no position: pass the offset of the last "
                "event you read (bus.replay or store.read(NEWEST).next), or OLDEST for an "
                "empty log."
            )
        try:
            if self._append_timeout is None:
                offsets = store.append_expecting(records, expected)
            else:
                offsets = self._call_with_timeout(
                    store.append_expecting,
                    records,
                    expected,
                    about=records[0] if len(records) == 1 else None,
                )
        except StoreError:
            raise
        except Exception as exc:
            raise as_store_error(
                exc, f"The store failed a conditional append of {len(records)} events"
            ) from exc
        if offsets:
            self._on_append()
        return offsets

    def check_encodes(self, event: object) -> None:
        """Encode ``event`` and drop the bytes: EncodeError where a store would raise it."""
        self._mapper.codec_for_event(event.__class__).encode(event)

    def record_for(self, event: object, pairs: Mapping[str, str]) -> EventRecord:
        """The record of ``event``: encoded (EncodeError: nothing is stored), stamped."""
        codec = self._mapper.codec_for_event(event.__class__)
        data = codec.encode(event)
        record = _new_record(EventRecord)
        _set_event_id(record, new_event_id())
        _set_type_name(record, codec.name)
        _set_data(record, data)
        _set_timestamp(record, _now(UTC))
        _set_metadata(record, pairs)
        _set_origin(record, self._origin)
        return record

    def _append_failed(self, exc: Exception, record: EventRecord) -> None:
        """Strict: raise the failure as a StoreError. Best effort: report it."""
        error = as_store_error(
            exc, f"The store failed to append event {record.event_id} ({record.type_name})"
        )
        if self._strict:
            raise error from exc
        self._report(HandlerFailure(error, "persistence", record))

    def _call_with_timeout(
        self, call: Callable[..., _T], *args: object, about: EventRecord | None
    ) -> _T:
        """``call(*args)`` in a worker thread, given up on after the append timeout."""
        timeout = self._append_timeout
        assert timeout is not None
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="eventbus-append"
                )
        future = self._executor.submit(call, *args)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise _timeout_error(about, timeout) from None

    def envelopes_for(
        self,
        needs_envelope: Sequence[bool],
        events: Sequence[object],
        metadata: Mapping[str, str] | None,
        extras: Sequence[Mapping[str, str]] | None = None,
        expected: Checkpoint | None = None,
    ) -> list[Envelope | None]:
        """Append ``events`` in one batch (or, without a store, build their envelopes).

        Args:
            needs_envelope: Per event, whether its handlers want the envelope.
            events: The events.
            metadata: The publish's pairs.
            extras: Per event, pairs over ``metadata`` (what middleware added).
            expected: Append only if the log still ends here (see :meth:`append_expecting`).
        """
        each = [metadata] * len(events) if extras is None else [over(metadata, x) for x in extras]
        if expected is not None:
            records = [
                self.record_for(event, merge_metadata(m))
                for event, m in zip(events, each, strict=True)
            ]
            stored = self.append_expecting(records, expected)
            return [
                Envelope(r.event_id, o, r.type_name, r.timestamp, r.metadata, self._origin)
                for r, o in zip(records, stored, strict=True)
            ]
        if self.store is None:
            return [
                self.envelope_for(n, e, m)
                for n, e, m in zip(needs_envelope, events, each, strict=True)
            ]
        pairs = merge_metadata(metadata)
        records = [
            self.record_for(event, merge_metadata(m) if m is not metadata else pairs)
            for event, m in zip(events, each, strict=True)
        ]
        if not records:
            return []
        try:
            offsets: Sequence[Offset | None] = self.store.append_batch(records)
        except Exception as exc:
            error = as_store_error(
                exc, f"The store failed to append a batch of {len(records)} events"
            )
            if self._strict:
                raise error from exc
            self._report(HandlerFailure(error, "persistence", records))
            offsets = [None] * len(records)
        else:
            self._on_append()
        return [
            Envelope(r.event_id, o, r.type_name, r.timestamp, r.metadata, self._origin)
            for r, o in zip(records, offsets, strict=True)
        ]

    # -- reading -------------------------------------------------------------------------

    def replay(self, after: Position = OLDEST, *, batch_size: int = 500) -> Iterator[StoredEvent]:
        """The stored records after ``after``, in log order; see :meth:`EventBus.replay`."""
        store = self.require_store("replay")
        check_batch_size(batch_size)
        if isinstance(store, StreamingReader):
            yield from store.iter_events(after, batch_size=batch_size)
            return
        cursor: Position = after
        while True:
            result = store.read(cursor, limit=batch_size)
            yield from result.events
            if not result.events and result.next == cursor:
                return
            cursor = result.next

    def replay_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[tuple[Any, StoredEvent]]:
        """Decoded records after ``after``; see :meth:`EventBus.replay_events`."""
        store = self.require_store("replay")
        check_batch_size(batch_size)
        stored_events = (
            store.iter_events(after, batch_size=batch_size)
            if isinstance(store, StreamingReader)
            else self.replay(after, batch_size=batch_size)
        )
        return self._mapper.decode_all(stored_events)


def _is_newest(value: object) -> bool:
    # Typed ``object``: callers pass NEWEST where the types forbid it.
    return value is NEWEST


def _timeout_error(record: EventRecord | None, timeout: float) -> StoreTimeoutError:
    what = "the append" if record is None else f"event {record.event_id} ({record.type_name})"
    return StoreTimeoutError(
        f"The store did not confirm {what} within {timeout} s; it may still be stored."
    )


def as_store_error(exc: Exception, what: str) -> StoreError:
    """``exc`` as a StoreError: itself, or a StoreUnavailableError saying ``what`` failed."""
    if isinstance(exc, StoreError):
        return exc
    error = StoreUnavailableError(f"{what}: {exc!r}")
    error.__cause__ = exc
    return error


def over(metadata: Mapping[str, str] | None, extra: Mapping[str, str]) -> Mapping[str, str] | None:
    """``extra`` over ``metadata`` (either may be empty), unchecked: merge_metadata checks."""
    if not extra:
        return metadata
    return {**metadata, **extra} if metadata else extra


def merge_metadata(metadata: Mapping[str, str] | None) -> Mapping[str, str]:
    """The context's metadata with ``metadata`` over it, checked to be string pairs."""
    context = current_metadata()
    if not metadata:
        return context
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PublishError(f"Metadata keys and values must be strings; got {key!r}: {value!r}.")
    return MappingProxyType({**context, **metadata})
