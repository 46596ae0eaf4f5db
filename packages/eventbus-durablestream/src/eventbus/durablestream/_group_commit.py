"""The append side of :class:`DurableStreamStore`: group commit and exactly-once POSTs.

Concurrent appends are batched: while one POST is in flight, the appends that arrive wait
and go together in the next POST (up to ``max_batch_bytes``), and each caller gets its own
event's offset. Every POST carries ``Stream-Seq`` set to the tail the store last saw (its
anchor, see :mod:`._offsets`) and idempotent-producer headers, so a retry after a lost
response is deduplicated by the server, and an ambiguous failure is resolved by reading
from the anchor before resending.

The producer protocol itself (numbering, epochs, the retry decision, gaps and conflicts) is
the client's :class:`._producer_core.ProducerCore`; this module answers its hooks (looking
for a first copy, taking a new anchor) with the store's reads, and turns what it could not
settle into :class:`AppendOutcomeUnknownError`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Generator
from typing import Any

import httpx

from eventbus.core import (
    EventRecord,
    Offset,
    StoreClosedError,
    StoreCorruptError,
    StoreTimeoutError,
    StoreUnavailableError,
)

from ._actions import Send, Sleep
from ._client import CALL_DEADLINE, DurableStreamClient
from ._envelope_codec import encode_batch
from ._errors import (
    AppendOutcomeUnknownError,
    AppendTimeoutError,
    ProducerSequenceGapError,
    StaleEpochError,
)
from ._lifecycle import Lifecycle
from ._offsets import anchored_tokens
from ._producer_core import Batch, LookForCopy, ProducerCore, Reanchor
from ._results import AppendResult
from ._retry import RetryPolicy
from ._store_reads import EventReader

__all__ = ["GroupCommit"]

_JSON = "application/json"


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


class _Uncertain:
    """A POST that may or may not have landed: what a retry sends again, and its outcome.

    ``batch`` keeps the producer numbers it was sent with (pinned by ``give_up``);
    ``anchors`` are where a copy may be: every anchor it was sent at, by the first POST and
    by the retries that failed too.
    """

    __slots__ = ("anchors", "batch", "offsets", "records")

    def __init__(self, records: list[EventRecord], batch: Batch, anchors: list[str]) -> None:
        self.records = records
        self.batch = batch
        self.anchors = anchors
        self.offsets: list[Offset] | None = None


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


class GroupCommit:
    """Appends the events of one store: batched into POSTs, each stored exactly once.

    Thread-safe; :meth:`commit_async` serves the coroutines of any event loop.

    Args:
        client: The store's client.
        stream: The stream's path.
        url: The stream's URL, for messages.
        retry: How failed POSTs are retried.
        max_batch_bytes: A group stops adding appends to one POST at this size.
        lifecycle: The store's open/closed state (its lock also guards the queue).
        reader: The store's reader: it tells the tail, and whether an ambiguous POST landed.
        tail: The stream's tail if known (the first POST's anchor), else ``None``.
    """

    def __init__(
        self,
        client: DurableStreamClient,
        stream: str,
        url: str,
        *,
        retry: RetryPolicy,
        max_batch_bytes: int,
        lifecycle: Lifecycle,
        reader: EventReader,
        tail: str | None,
        timeout: float,
    ) -> None:
        self._client = client
        self._stream = stream
        self._url = url
        self._retry = retry
        self._max_batch_bytes = max_batch_bytes
        self._lifecycle = lifecycle
        self._lock = lifecycle.lock
        self._reader = reader
        self._tail = tail
        self._timeout = timeout
        self._queue: list[_Pending] = []
        self._committing = False
        # Drains started by commit_async, kept so they are not garbage-collected early.
        self._drainers: set[asyncio.Future[None]] = set()
        # The batch the appends of each loop's current iteration join (used on that loop).
        self._loop_batches: dict[
            asyncio.AbstractEventLoop, tuple[_Pending, list[asyncio.Future[None]]]
        ] = {}
        # POSTs given up on that may have landed, by event id, until their events are retried.
        self._uncertain: dict[str, _Uncertain] = {}
        self._resending = threading.Lock()
        # One batch at a time (the drain is single): a gap means the server forgot us.
        self._producer = ProducerCore(
            stream,
            f"eventbus-{uuid.uuid4().hex}",
            epoch=0,
            auto_claim=False,
            content_type=_JSON,
            max_batch_bytes=max_batch_bytes,
            max_batch_items=None,
            max_in_flight=1,
            headers=None,
            retry=retry,
            restart_on_gap=True,
            look_before_resend=True,
        )

    def commit(self, records: list[EventRecord]) -> list[Offset]:
        """Store ``records`` as one POST (with whatever else is queued); return their offsets.

        Records of an append that failed with ``AppendOutcomeUnknownError`` are stored at
        most once (see :meth:`_retry_uncertain`).

        Raises:
            ValueError: Some records of such an append are retried with other records.
        """
        uncertain = self._uncertain_batch(records)
        if uncertain is not None:
            return self._retry_uncertain(uncertain, records)
        return self._commit_new(records)

    def _commit_new(self, records: list[EventRecord]) -> list[Offset]:
        done = threading.Event()
        pending = _Pending(records, sum(len(r.data) for r in records), done)
        if self._enqueue(pending):
            self._drain()
        done.wait()
        return self._outcome(pending)

    async def commit_async(self, record: EventRecord) -> Offset:
        """Store one record without blocking the event loop; return its offset.

        The appends of one loop iteration join one batch; the POSTs run on one worker
        thread at a time.
        """
        uncertain = self._uncertain_batch([record])
        if uncertain is not None:
            return (await asyncio.to_thread(self._retry_uncertain, uncertain, [record]))[0]
        loop = asyncio.get_running_loop()
        size = len(record.data)
        current = self._loop_batches.get(loop)
        if current is None or current[0].size + size > self._max_batch_bytes:
            if self._lifecycle.closed:
                raise self._lifecycle.error()
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
            if self._lifecycle.closed:
                raise self._lifecycle.error()
            self._queue.append(pending)
            lead = not self._committing
            self._committing = True
        return lead

    @staticmethod
    def _outcome(pending: _Pending) -> list[Offset]:
        if pending.error is not None:
            raise pending.error
        return pending.offsets

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
            # A POST for appends made elsewhere (append_async: on a worker thread) gets a
            # budget of its own; a caller's own call keeps the caller's.
            own = CALL_DEADLINE.get() is None
            token = CALL_DEADLINE.set(time.monotonic() + self._timeout) if own else None
            try:
                with self._lifecycle.open():
                    offsets = self._post(records)
            except BaseException as exc:  # handed to every waiting caller
                for pending in group:
                    pending.error = exc
                _settle(group)
                continue
            finally:
                if token is not None:
                    CALL_DEADLINE.reset(token)
            for pending in group:
                pending.offsets = offsets[: len(pending.records)]
                offsets = offsets[len(pending.records) :]
            _settle(group)

    def _post(self, records: list[EventRecord]) -> list[Offset]:
        """Append ``records`` as one POST exactly once; return their offsets."""
        anchor = self._tail if self._tail is not None else self._reader.head_tail()
        batch = self._producer.number(
            encode_batch(records, anchor), len(records), stream_seq=anchor
        )
        sent_at: list[str] = []
        try:
            outcome = self._deliver(batch, records, sent_at)
            if isinstance(outcome, AppendResult) and outcome.next_offset is not None:
                # Named from the anchor and the count sent, the last by the offset after
                # the POST: exact wherever it landed (see _offsets), with no request to
                # find out.
                landed = anchored_tokens(self._anchor(batch), len(records) - 1)
                landed.append(outcome.next_offset)
                self._tail = outcome.next_offset
            else:  # found by looking, or a deduplicated retry: the first copy landed
                self._tail = None
                landed = self._first_copy(outcome, sent_at, records)
        except BaseException as exc:
            # Whatever became of the batch, a later one must not be taken for its retry:
            # the core pins its numbers and starts a new epoch (which also fences any late
            # copy of this POST).
            self._producer.give_up(batch)
            self._tail = None
            if isinstance(exc, StoreUnavailableError):
                # It may have landed: a retry of these records resends this very sequence.
                uncertain = _Uncertain(records, batch, sent_at)
                with self._lock:
                    self._uncertain.update((r.event_id, uncertain) for r in records)
                raise self._outcome_unknown(records, exc) from exc
            raise
        self._reader.nonempty = True
        return landed

    @staticmethod
    def _anchor(batch: Batch) -> str:
        assert batch.stream_seq is not None  # every batch of the store is anchored
        return batch.stream_seq

    def _first_copy(
        self, outcome: AppendResult | list[Offset], sent_at: list[str], records: list[EventRecord]
    ) -> list[Offset]:
        """The offsets of a POST the server already holds (``outcome`` if looked up)."""
        landed = outcome if isinstance(outcome, list) else self._landed(sent_at, records)
        if landed is None:
            raise StoreCorruptError(
                f"The server deduplicated a POST sent at {', '.join(sent_at)} on {self._url!r}, "
                f"but its {len(records)} events are not there.",
                store=self._url,
            )
        return landed

    def _deliver(
        self, batch: Batch, records: list[EventRecord], sent_at: list[str]
    ) -> AppendResult | list[Offset]:
        """Send ``batch`` with the producer core on the store's client (one budget, the
        caller's), adding each anchor it is sent at to ``sent_at``; return the server's
        answer, or the offsets a look found it at."""
        # The store drives the core as the client's own producers do (its private runner).
        result: AppendResult | list[Offset] = self._client._run(
            self._hooks(batch, records, sent_at), self._stream
        )
        return result

    def _hooks(
        self, batch: Batch, records: list[EventRecord], sent_at: list[str]
    ) -> Generator[Any, Any, AppendResult | list[Offset]]:
        """The core's send of ``batch``, its store hooks answered here, the rest by the client."""
        operation = self._producer.send_operation(batch)
        value: Any = None
        found: list[Offset] | None = None
        last: Any = None
        try:
            while True:
                try:
                    action = operation.send(value)
                except StopIteration as stop:
                    result: AppendResult | None = stop.value
                    if result is None:
                        assert found is not None  # the core ends so only when a look found it
                        return found
                    return result
                if isinstance(action, LookForCopy):
                    value = found = None
                    try:
                        found = self._landed(sent_at, records)
                    except StoreUnavailableError as exc:
                        value = exc  # waited out by the core like a failed request
                    else:
                        value = found is not None
                elif isinstance(action, Reanchor):
                    value = self._reanchor(batch, records)
                else:
                    if (
                        isinstance(action, Sleep)
                        and self._lifecycle.closed
                        and isinstance(last, httpx.TransportError)
                    ):
                        raise last  # closing: no more retries (the client names the error)
                    if isinstance(action, Send) and self._anchor(batch) not in sent_at:
                        sent_at.append(self._anchor(batch))
                    value = last = yield action
        finally:
            operation.close()

    def _reanchor(self, batch: Batch, records: list[EventRecord]) -> StoreUnavailableError | None:
        """Anchor ``batch`` at the tail now (another writer appended first); the error that
        kept it from asking, if any."""
        try:
            self._place(batch, records, self._reader.head_tail())
        except StoreUnavailableError as exc:
            return exc
        return None

    @staticmethod
    def _place(batch: Batch, records: list[EventRecord], anchor: str) -> None:
        """Anchor ``batch`` at ``anchor``: its ``Stream-Seq``, and its envelope's ``s``."""
        batch.stream_seq = anchor
        batch.body = encode_batch(records, anchor)

    def _outcome_unknown(
        self, records: list[EventRecord], exc: StoreUnavailableError
    ) -> AppendOutcomeUnknownError:
        timed_out = isinstance(exc, StoreTimeoutError)
        within = f" within its budget of {self._timeout:g} s" if timed_out else ""
        kind = AppendTimeoutError if timed_out else AppendOutcomeUnknownError
        return kind(
            f"An append of {len(records)} event(s) to {self._url!r} did not finish{within}, "
            f"and its POST may have reached the server ({exc}): they may or may not be "
            "stored. store.append_batch(error.records) retries it and stores them at most "
            "once.",
            records=records,
            url=self._url,
        )

    def _uncertain_batch(self, records: list[EventRecord]) -> _Uncertain | None:
        """The uncertain POST ``records`` belong to, or None for new records."""
        if not self._uncertain:
            return None
        with self._lock:
            batches = {id(self._uncertain.get(r.event_id)): r for r in records}
            uncertain = self._uncertain.get(records[0].event_id)
        if len(batches) > 1:
            raise ValueError(
                f"Records of an append that may have landed on {self._url!r} are retried "
                "together with others; retry exactly those: store.append_batch(error.records)."
            )
        return uncertain

    def _retry_uncertain(self, uncertain: _Uncertain, records: list[EventRecord]) -> list[Offset]:
        """Store an uncertain POST at most once; return the offsets of ``records`` in it."""
        with self._lifecycle.open(), self._resending:
            if uncertain.offsets is None:
                uncertain.offsets = self._resend(uncertain)
        offsets = dict(zip((r.event_id for r in uncertain.records), uncertain.offsets, strict=True))
        with self._lock:
            for record in records:
                self._uncertain.pop(record.event_id, None)
        return [offsets[r.event_id] for r in records]

    def _resend(self, uncertain: _Uncertain) -> list[Offset]:
        """Send an uncertain POST again as the same producer sequence, which the server
        stores once (or answers as a duplicate); return the offsets of its events."""
        records, batch = uncertain.records, uncertain.batch
        self._place(batch, records, self._reader.head_tail())
        try:
            outcome = self._deliver(batch, records, uncertain.anchors)
        except (StaleEpochError, ProducerSequenceGapError):
            # This store moved on to a newer epoch, or the server forgot this one:
            # either way no copy can land any more. Stored if one is there.
            landed = self._landed(uncertain.anchors, records)
            return landed if landed is not None else self._commit_new(records)
        except StoreUnavailableError as exc:
            raise self._outcome_unknown(records, exc) from exc
        if isinstance(outcome, list) or outcome.next_offset is None:
            # A duplicate: an earlier copy is stored. (A pinned batch is never looked for.)
            landed = self._landed(uncertain.anchors, records)
            if landed is None:
                raise StoreCorruptError(
                    f"The server took a retried POST on {self._url!r} for a duplicate, "
                    f"but its {len(records)} events are not at any of "
                    f"{', '.join(uncertain.anchors)}.",
                    store=self._url,
                )
            return landed
        self._tail = None  # the store's own next POST asks for the tail
        self._reader.nonempty = True
        offsets = anchored_tokens(self._anchor(batch), len(records) - 1)
        offsets.append(outcome.next_offset)
        return offsets

    def _landed(self, anchors: list[str], records: list[EventRecord]) -> list[Offset] | None:
        """The offsets of ``records`` if they are stored at one of ``anchors``, else None."""
        ids = [r.event_id for r in records]
        for anchor in anchors:
            chunk = self._reader.fetch(anchor)
            first = chunk.anchors.get(anchor)
            mine = [] if first is None else chunk.events[first : first + len(records)]
            if [e.event_id for e in mine] == ids:
                return [e.offset for e in mine]
        return None
