"""DurableStreamStore: the eventbus log kept in a Durable Streams server.

* One JSON message per event (see :mod:`._envelope_codec`).
* Exact per-event offsets (see :mod:`._offsets`): every POST carries ``Stream-Seq`` set to
  the tail it is appended at, so each event names its own resume point.
* Exactly-once appends: every POST carries idempotent-producer headers, so a retry after a
  lost response is deduplicated by the server; concurrent appends share one POST (group
  commit) and each caller gets its own event's offset.
* Checkpoints on the server (see :mod:`._checkpoints`), live tail by long-poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from eventbus.core import (
    NEWEST,
    OLDEST,
    Checkpoint,
    EventRecord,
    Offset,
    OffsetError,
    Position,
    ReadResult,
    StoreClosedError,
    StoreCorruptError,
    StoredEvent,
    StoreUnavailableError,
)

from ._checkpoints import CheckpointSlots
from ._client import DurableStreamClient
from ._envelope_codec import DecodedChunk, UndecodableHandler, decode_chunk, encode_batch
from ._errors import BadRequestError, ProducerSequenceGapError, SequenceConflictError
from ._offsets import anchored_tokens, compare_tokens, parse_token
from ._results import ReadChunk
from ._retry import RetryPolicy

__all__ = ["DurableStreamStore"]

_LOG = logging.getLogger("eventbus.durablestream")
_JSON: Final = "application/json"
_TRIM_AT: Final = 10_000


def on_loopback(base_url: str) -> bool:
    """Whether ``base_url`` names this machine (``localhost`` or a loopback address)."""
    host = httpx.URL(base_url).host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def _log_undecodable(item: Any, error: Exception) -> None:
    _LOG.error("Skipped a stream message that is not an eventbus event (%s): %.200r", error, item)


class _Pending:
    """Records waiting for the group commit, what became of them, and who waits.

    ``waiter`` is a ``threading.Event`` for a thread, or ``(loop, futures)`` for the
    coroutines of one event loop: one future each, all settled together.
    """

    __slots__ = ("error", "offsets", "records", "size", "waiter")

    def __init__(
        self,
        records: list[EventRecord],
        size: int,
        waiter: threading.Event | tuple[asyncio.AbstractEventLoop, list[asyncio.Future[None]]],
    ) -> None:
        self.records = records
        self.size = size
        self.waiter = waiter
        self.offsets: list[Offset] = []
        self.error: BaseException | None = None


def _wake(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.cancelled():  # a caller that gave up no longer waits
            future.set_result(None)


def _settle(group: list[_Pending]) -> None:
    """Wake the callers of a group: threads directly, each event loop with one call."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for pending in group:
        if isinstance(pending.waiter, threading.Event):
            pending.waiter.set()
        else:
            loops.setdefault(pending.waiter[0], []).extend(pending.waiter[1])
    for loop, futures in loops.items():
        loop.call_soon_threadsafe(_wake, futures)


@dataclass(slots=True)
class _Window:
    """The last events read: ``events`` are exactly the events after ``base``.

    A reader paging through the window continues where the last page ended
    (``resume``), so the offset index is only built when some other position is asked
    for: a catch-up read of a long log never builds it.
    """

    base: Position
    events: list[StoredEvent]
    next_offset: str
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

    def page(self, start: int, limit: int) -> list[StoredEvent]:
        events = self.events[start : start + limit]
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
        return start


class DurableStreamStore:
    """An event store on a Durable Streams server: many processes, one ordered log.

    Implements ``EventStore``, ``CheckpointStore``, ``StreamingReader``, ``TailingStore``,
    ``OffsetOrdering`` and ``ClosableStore``. Thread-safe. The stream is created (as an
    ``application/json`` stream) unless it exists. The server must enforce ``Stream-Seq``
    per stream, as the reference server does.

    Args:
        base_url: The server's base URL, e.g. ``"http://127.0.0.1:4437"``.
        stream: The stream's path on that server, e.g. ``"/v1/stream/orders"``.
        timeout: Seconds any one request may take before it fails with
            ``StoreTimeoutError`` (long-polls are cut to the ``tail`` timeout instead).
        retry: How transient failures (network errors, 5xx, 429) are retried.
        max_batch_bytes: A group commit stops adding appends to one POST at this size.
        on_undecodable: Called with each stream message that is not an event (written by
            something else) and the reason; by default it is logged as an error. The
            message is skipped either way.
        compression: Whether the server may compress what it sends (gzip). By default
            it may, unless ``base_url`` is on this machine: over loopback compressing
            saves nothing and costs the server and the reader CPU (a third of the
            server's time for a large catch-up read).
        transport: An httpx transport, for tests.

    Raises:
        ValueError: ``stream`` is not a path starting with ``/``, or a bad limit.
        StoreError: The stream could not be created or checked (e.g. it exists with
            another content type, or the server is unreachable).
    """

    def __init__(
        self,
        base_url: str,
        stream: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        max_batch_bytes: int = 1024 * 1024,
        on_undecodable: UndecodableHandler | None = None,
        compression: bool | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(stream, str) or not stream.startswith("/") or stream == "/":
            raise ValueError(f"stream must be a path such as '/v1/stream/orders', got {stream!r}.")
        if max_batch_bytes < 1:
            raise ValueError(f"max_batch_bytes must be 1 or more, got {max_batch_bytes!r}.")
        self._url = base_url.rstrip("/") + stream
        self._stream = stream
        self._timeout = timeout
        self._retry = retry if retry is not None else RetryPolicy()
        self._max_batch_bytes = max_batch_bytes
        self._on_undecodable = on_undecodable or _log_undecodable
        if compression is None:
            compression = not on_loopback(base_url)
        self._client = DurableStreamClient(
            base_url,
            headers=None if compression else {"Accept-Encoding": "identity"},
            timeout=httpx.Timeout(timeout),
            retry=self._retry,
            transport=transport,
        )
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._closed = False
        self._waiters: set[threading.Event] = set()
        self._queue: list[_Pending] = []
        self._committing = False
        # Drains started by append_async, kept so they are not garbage-collected early.
        self._drainers: set[asyncio.Future[None]] = set()
        # The batch the appends of each loop's current iteration join (used on that loop).
        self._loop_batches: dict[
            asyncio.AbstractEventLoop, tuple[_Pending, list[asyncio.Future[None]]]
        ] = {}
        self._producer_id = f"eventbus-{uuid.uuid4().hex}"
        self._epoch = 0
        self._producer_seq = 0
        self._window: _Window | None = None
        self._nonempty = False
        self._checkpoints = CheckpointSlots(self._client, stream)
        try:
            created = self._client.create(stream, content_type=_JSON)
        except BaseException:
            self._client.close()
            raise
        self._tail: str | None = created.next_offset
        self._start: str | None = created.next_offset if created.created else None

    def __repr__(self) -> str:
        return f"DurableStreamStore({self._url!r})"

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections and wake waiting ``tail`` calls; idempotent.

        Later calls raise ``StoreClosedError``. A long-poll in flight ends by itself
        within its ``tail`` timeout.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.set()
        self._client.close()

    def __enter__(self) -> DurableStreamStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _closed_error(self) -> StoreClosedError:
        return StoreClosedError(f"{self!r} was closed; open a new store to use the stream.")

    @contextlib.contextmanager
    def _open(self) -> Iterator[None]:
        if self._closed:
            raise self._closed_error()
        try:
            yield
        except RuntimeError as exc:  # httpx: "the client has been closed"
            raise self._closed_error() from exc

    # -- appends ------------------------------------------------------------------------

    def append(self, record: EventRecord) -> Offset:
        """Store one event exactly once and return its offset.

        Args:
            record: The event.

        Returns:
            The event's offset, identical to the one readers see.

        Raises:
            StoreClosedError: The store was closed.
            StoreUnavailableError: The server could not be reached; the event may or may
                not be stored, but never twice.
            StoreError: The server refused the append.
        """
        return self._commit([record])[0]

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        """Store events atomically (one POST), in order, exactly once.

        Args:
            records: The events.

        Returns:
            Their offsets, in order.

        Raises:
            StoreClosedError: The store was closed.
            StoreUnavailableError: As for :meth:`append`.
            StoreError: The server refused the append.
        """
        if not records:
            with self._open():
                return []
        return self._commit(list(records))

    async def append_async(self, record: EventRecord) -> Offset:
        """Store one event exactly once without blocking the event loop.

        Concurrent callers share POSTs (group commit) without holding a thread each:
        the appends of one loop iteration join one batch, and the requests run on one
        worker thread at a time.

        Args:
            record: The event.

        Returns:
            The event's offset.

        Raises:
            StoreClosedError: The store was closed.
            StoreUnavailableError: As for :meth:`append`.
            StoreError: The server refused the append.
        """
        loop = asyncio.get_running_loop()
        size = len(record.data)
        current = self._loop_batches.get(loop)
        if current is None or current[0].size + size > self._max_batch_bytes:
            if self._closed:
                raise self._closed_error()
            futures: list[asyncio.Future[None]] = []
            current = (_Pending([], 0, (loop, futures)), futures)
            self._loop_batches[loop] = current
            # Queued once this iteration's other appends have joined it.
            loop.call_soon(self._submit_batch, loop, current)
        batch, futures = current
        index = len(batch.records)
        batch.records.append(record)
        batch.size += size
        settled: asyncio.Future[None] = loop.create_future()
        futures.append(settled)
        await settled
        return self._outcome(batch)[index]

    def _submit_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        current: tuple[_Pending, list[asyncio.Future[None]]],
    ) -> None:
        if self._loop_batches.get(loop) is current:
            del self._loop_batches[loop]
        batch, futures = current
        try:
            lead = self._enqueue(batch)
        except StoreClosedError as exc:  # closed since the batch began: nothing was sent
            batch.error = exc
            _wake(futures)
            return
        if lead:
            drain = loop.run_in_executor(None, self._drain)
            self._drainers.add(drain)
            drain.add_done_callback(self._drainers.discard)

    def _enqueue(self, pending: _Pending) -> bool:
        """Queue ``pending``; True when the caller must drain the queue."""
        with self._lock:
            if self._closed:
                raise self._closed_error()
            self._queue.append(pending)
            lead = not self._committing
            self._committing = True
        return lead

    @staticmethod
    def _outcome(pending: _Pending) -> list[Offset]:
        if pending.error is not None:
            raise pending.error
        return pending.offsets

    def _commit(self, records: list[EventRecord]) -> list[Offset]:
        done = threading.Event()
        pending = _Pending(records, sum(len(r.data) for r in records), done)
        if self._enqueue(pending):
            self._drain()
        done.wait()
        return self._outcome(pending)

    def _drain(self) -> None:
        """Post everything queued, one group of appends per POST, until the queue is empty."""
        while True:
            with self._lock:
                if not self._queue:
                    self._committing = False
                    return
                group, size = [self._queue.pop(0)], 0
                size = group[0].size
                while self._queue and size + self._queue[0].size <= self._max_batch_bytes:
                    size += self._queue[0].size
                    group.append(self._queue.pop(0))
            records = [record for pending in group for record in pending.records]
            try:
                with self._open():
                    offsets = self._post(records)
            except BaseException as exc:  # handed to every waiting caller
                for pending in group:
                    pending.error = exc
                _settle(group)
                continue
            for pending in group:
                pending.offsets = offsets[: len(pending.records)]
                offsets = offsets[len(pending.records) :]
            _settle(group)

    def _head_tail(self) -> str:
        return self._require(self._client.head(self._stream).next_offset, "HEAD")

    def _require(self, offset: str | None, what: str) -> str:
        if offset is None:
            raise StoreUnavailableError(
                f"The server answered a {what} of {self._url!r} without Stream-Next-Offset."
            )
        return offset

    def _post(self, records: list[EventRecord]) -> list[Offset]:
        """Append ``records`` as one POST exactly once; return their offsets."""
        anchor = self._tail if self._tail is not None else self._head_tail()
        attempt = 0
        ambiguous = False
        try:
            while True:
                headers = {
                    "Producer-Id": self._producer_id,
                    "Producer-Epoch": str(self._epoch),
                    "Producer-Seq": str(self._producer_seq),
                }
                try:
                    # After a failure the POST may have landed, and a server that crashed
                    # may have lost its producer state with it: look before resending.
                    landed = self._landed(anchor, records) if ambiguous else None
                    if landed is not None:
                        self._tail = None
                        break
                    result = self._client.append(
                        self._stream,
                        encode_batch(records, anchor),
                        content_type=_JSON,
                        seq=anchor,
                        headers=headers,
                    )
                except ProducerSequenceGapError:
                    # The server lost track of this producer (e.g. its state expired):
                    # nothing was stored; start a new session and send the batch again.
                    self._epoch += 1
                    self._producer_seq = 0
                    continue
                except SequenceConflictError:
                    # Another writer appended first; this batch was not stored. Same
                    # producer sequence, new anchor.
                    anchor = self._head_tail()
                    continue
                except StoreUnavailableError:
                    delay = self._retry.delay(attempt)
                    if delay is None or self._closed:
                        raise
                    attempt += 1
                    ambiguous = True
                    time.sleep(delay)
                    continue
                if result.next_offset is None:  # a deduplicated retry: the first one landed
                    landed = self._landed(anchor, records)
                    if landed is None:
                        raise StoreCorruptError(
                            f"The server deduplicated a POST at {anchor!r} on {self._url!r}, "
                            f"but its {len(records)} events are not there."
                        )
                    self._tail = None
                    break
                landed = anchored_tokens(anchor, len(records) - 1)
                landed.append(result.next_offset)
                self._tail = result.next_offset
                break
        except BaseException:
            # Whatever became of the batch, a later one must not be taken for its retry:
            # start a new producer epoch (it also fences any late copy of this POST).
            self._epoch += 1
            self._producer_seq = 0
            self._tail = None
            raise
        self._producer_seq += 1
        self._nonempty = True
        return landed

    def _landed(self, anchor: str, records: list[EventRecord]) -> list[Offset] | None:
        """The offsets of ``records`` if they are stored at ``anchor``, else None."""
        chunk = self._fetch(anchor)
        mine = [e for e, a in zip(chunk.events, chunk.anchors, strict=True) if a == anchor]
        if [e.event_id for e in mine] != [r.event_id for r in records]:
            return None
        return [e.offset for e in mine]

    # -- reads --------------------------------------------------------------------------

    def _fetch(self, server_offset: str) -> DecodedChunk:
        try:
            chunk = self._client.read(self._stream, offset=server_offset)
        except BadRequestError as exc:
            raise OffsetError(
                f"The server rejected the offset {server_offset!r} of {self._url!r}: "
                f"{exc.server_message!r}."
            ) from exc
        return self._decode(chunk)

    def _decode(self, chunk: ReadChunk) -> DecodedChunk:
        decoded = decode_chunk(chunk.data, chunk.next_offset, self._on_undecodable)
        if decoded.events:
            self._nonempty = True
        return decoded

    @staticmethod
    def _check_limit(limit: int, name: str = "limit") -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{name} must be an integer of 1 or more, got {limit!r}.")

    def _newest(self) -> Checkpoint:
        """Resolve NEWEST: the current tail's token, or OLDEST when there are no events."""
        tail = self._head_tail()
        if not self._nonempty and self._start is None:
            # Nothing tells yet whether the stream holds events: look once.
            with self._read_lock:
                chunk = self._fetch("-1")
                self._window = _Window(OLDEST, chunk.events, chunk.next_offset)
            if not chunk.events:
                self._start = chunk.next_offset
        if self._nonempty or tail != self._start:
            return tail
        return OLDEST

    def _window_for(self, after: Checkpoint) -> tuple[_Window, int]:
        """Return a window holding the events after ``after``, and where they start."""
        window = self._window
        start = None if window is None else window.start_after(after)
        if window is not None and start is not None:
            return window, start
        if after is OLDEST:
            chunk = self._fetch("-1")
            start = 0
        else:
            offset, index = parse_token(after)
            chunk = self._fetch(offset)
            start = 0
            if index >= 0:
                positions = [i for i, a in enumerate(chunk.anchors) if a == offset]
                if index >= len(positions):
                    raise OffsetError(
                        f"{after!r} is not an offset of {self._url!r}: no such event follows "
                        f"{offset!r}."
                    )
                start = positions[index] + 1
        window = self._window = _Window(after, chunk.events[start:], chunk.next_offset)
        return window, 0

    def _read_after(self, after: Checkpoint, limit: int) -> tuple[list[StoredEvent], str]:
        with self._read_lock:
            window, start = self._window_for(after)
            if len(window.events) - start < limit:
                start = window.extend(start, self._fetch(window.next_offset))
            return window.page(start, limit), window.next_offset

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        """Return up to ``limit`` events strictly after ``after``.

        Args:
            after: OLDEST, NEWEST (no events; the concrete tail) or an event's offset.
            limit: The most events to return, 1 or more.

        Returns:
            The events and the position to read from next.

        Raises:
            OffsetError: ``after`` is malformed or not an offset of this stream.
            ValueError: ``limit`` is below 1.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._check_limit(limit)
        with self._open():
            if after is NEWEST:
                return ReadResult([], self._newest())
            if after is not OLDEST:
                parse_token(after)
            events, _ = self._read_after(after, limit)
        return ReadResult(events, events[-1].offset if events else after)

    def iter_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[StoredEvent]:
        """Yield every event after ``after``, including those appended meanwhile.

        Args:
            after: OLDEST, NEWEST or an event's offset.
            batch_size: Events fetched per step, 1 or more.

        Yields:
            The events, in log order.

        Raises:
            OffsetError: ``after`` is malformed.
            ValueError: ``batch_size`` is below 1.
            StoreClosedError: The store was closed, also while iterating.
        """
        self._check_limit(batch_size, "batch_size")
        position: Position = after
        while True:
            page = self.read(position, batch_size)
            if not page.events:
                return
            for event in page.events:
                if self._closed:
                    raise self._closed_error()
                yield event
            position = page.next

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        """Wait up to ``timeout`` seconds for events after ``after`` (long-poll).

        Events appended by any process are seen. The waiting is done by a helper thread,
        so :meth:`close` wakes the caller at once.

        Args:
            after: OLDEST, NEWEST or an event's offset.
            timeout: Seconds to wait, 0 or more.
            limit: The most events to return, 1 or more.

        Returns:
            The new events (none on timeout) and the position to continue from.

        Raises:
            OffsetError: ``after`` is malformed.
            ValueError: a negative ``timeout`` or a ``limit`` below 1.
            StoreClosedError: The store was closed, also while waiting.
            StoreError: The server failed or the stream was deleted.
        """
        self._check_limit(limit)
        if not timeout >= 0:
            raise ValueError(f"timeout must be 0 seconds or more, got {timeout!r}.")
        deadline = time.monotonic() + timeout
        position = self.read(NEWEST).next if after is NEWEST else after
        with self._open():
            if position is not OLDEST:
                parse_token(position)
            events, server = self._read_after(position, limit)
        while not events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ReadResult([], position)
            chunk = self._long_poll(server, remaining)
            if chunk is None:
                continue
            decoded = self._decode(chunk)
            server = decoded.next_offset
            # Never deliver what precedes the position (see _fetch on lagging servers).
            fresh = [e for e in decoded.events if self._after(e.offset, position)]
            with self._read_lock:
                self._window = _Window(position, fresh, server)
            events = fresh[:limit]
        return ReadResult(events, events[-1].offset)

    @staticmethod
    def _after(offset: str, position: Checkpoint) -> bool:
        return position is OLDEST or compare_tokens(offset, position) > 0

    def _long_poll(self, server_offset: str, remaining: float) -> ReadChunk | None:
        """Long-poll from ``server_offset`` on a helper thread; None when time ran out."""
        done = threading.Event()
        outcome: list[Any] = []

        def poll() -> None:
            try:
                for chunk in self._client.iter_chunks(
                    self._stream,
                    offset=server_offset,
                    live="long-poll",
                    stop_after=min(remaining, self._timeout),
                ):
                    if chunk.data or chunk.stream_closed:
                        outcome.append(chunk)
                        break
            except BaseException as exc:  # handed to the waiting caller
                outcome.append(exc)
            done.set()

        with self._lock:
            if self._closed:
                raise self._closed_error()
            self._waiters.add(done)
        try:
            threading.Thread(target=poll, name="eventbus-ds-long-poll", daemon=True).start()
            done.wait()
        finally:
            with self._lock:
                self._waiters.discard(done)
        with self._open():
            result = outcome[0] if outcome else None
            if isinstance(result, BaseException):
                raise result
        if result is not None and result.stream_closed and not result.data:
            # Closed by someone else: nothing will ever come; wait out the timeout.
            time.sleep(remaining)
            return None
        return result

    # -- offsets ------------------------------------------------------------------------

    def compare_offsets(self, a: Offset, b: Offset) -> int:
        """Compare two offsets of this store by log position.

        Args:
            a: An offset.
            b: Another offset.

        Returns:
            Negative, zero or positive as ``a`` is before, at or after ``b``.

        Raises:
            OffsetError: Either offset is malformed.
            StoreClosedError: The store was closed.
        """
        with self._open():
            return compare_tokens(a, b)

    # -- checkpoints --------------------------------------------------------------------

    @staticmethod
    def _check_subscription(subscription_id: str) -> None:
        if not isinstance(subscription_id, str) or not subscription_id:
            raise ValueError(
                f"subscription_id must be a non-empty string, got {subscription_id!r}."
            )

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        """Durably record that ``subscription_id`` has processed up to ``offset``.

        Args:
            subscription_id: The subscription, a non-empty string.
            offset: An event's offset, or OLDEST. NEWEST is refused.

        Raises:
            ValueError: An empty id, or NEWEST.
            OffsetError: A malformed offset.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._check_subscription(subscription_id)
        if offset is NEWEST:  # type: ignore[comparison-overlap]  # callers ignore types
            raise ValueError(
                "Cannot save NEWEST as a checkpoint: it is not a position; resolve it with "
                "read(NEWEST).next first."
            )
        if offset is not OLDEST:
            parse_token(offset)
        with self._open(), self._checkpoint_lock:
            self._checkpoints.save(subscription_id, offset)

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        """Return the saved checkpoint, or ``None`` when none was ever saved.

        Args:
            subscription_id: The subscription, a non-empty string.

        Returns:
            The offset, OLDEST, or ``None``.

        Raises:
            ValueError: An empty id.
            StoreClosedError: The store was closed.
            StoreCorruptError: A checkpoint slot holds something else.
            StoreError: The server failed.
        """
        self._check_subscription(subscription_id)
        with self._open(), self._checkpoint_lock:
            return self._checkpoints.load(subscription_id)
