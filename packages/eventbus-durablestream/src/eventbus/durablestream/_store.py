"""DurableStreamStore: the eventbus log kept in a Durable Streams server.

* One JSON message per event (see :mod:`._envelope_codec`).
* Exact per-event offsets (see :mod:`._offsets`), made of server offsets and message
  counts only: every POST carries ``Stream-Seq`` set to the tail the store last saw.
* Exactly-once appends with group commit (see :mod:`._group_commit`).
* Reads through a window of the last events read (see :mod:`._store_reads`), a live tail by
  shared long-polls (see :mod:`._long_poll`), and leases and checkpoints in append-only
  streams on the server (see :mod:`._lease_log`), snapshots too (see :mod:`._snapshot_log`).
* Snapshots, and the refused conditional appends and compaction (see :mod:`._store_es`).

This module is the façade: construction, lifecycle, argument checks and the public methods.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import httpx

from eventbus.core import (
    NEWEST,
    OLDEST,
    Checkpoint,
    EventRecord,
    Lease,
    Offset,
    Owner,
    Position,
    ReadResult,
    StoredEvent,
    StoreReadOnlyError,
    StoreTimeoutError,
    check_limit,
)

from ._client import CALL_DEADLINE, DurableStreamClient
from ._envelope_codec import UndecodableHandler
from ._errors import (
    AppendOutcomeUnknownError,
    DurableStreamTimeoutError,
    StreamExistsError,
    redact,
)
from ._group_commit import GroupCommit
from ._lease_log import LeaseLog
from ._lifecycle import Lifecycle
from ._long_poll import LongPoller
from ._offsets import compare_tokens, parse_token
from ._requests import HeaderValue
from ._results import CreateResult
from ._retry import RetryPolicy
from ._snapshot_log import SnapshotLog
from ._socket_network import SocketTransport
from ._store_es import EventSourcingMethods, check_saved_offset
from ._store_reads import EventReader

__all__ = ["DurableStreamStore", "on_loopback"]

_LOG = logging.getLogger("eventbus.durablestream")
_JSON: Final = "application/json"


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
    _LOG.error("A stream message is not an eventbus event (%s): %.200r", error, item)


class DurableStreamStore(EventSourcingMethods):
    """An event store on a Durable Streams server: many processes, one ordered log.

    Implements ``EventStore``, ``CheckpointStore``, ``LeaseStore``, ``SnapshotStore``,
    ``StreamingReader``, ``TailingStore``, ``OffsetOrdering`` and ``ClosableStore``;
    ``append_expecting`` and ``compact`` raise ``UnsupportedStoreFeatureError``.
    Thread-safe. The stream is created (as an ``application/json`` stream) unless it
    exists (or the store is ``read_only``). The server must enforce ``Stream-Seq`` per
    stream and idempotent-producer epochs, as the reference server does.

    Args:
        base_url: The server's base URL, e.g. ``"http://127.0.0.1:4437"``.
        stream: The stream's path on that server, e.g. ``"/v1/stream/orders"``.
        timeout: Seconds each call (opening included) may take, retries included, before
            it fails with one ``StoreTimeoutError`` naming the URL and the budget; ``tail``
            gets its own wait on top. A long-poll that long ends quietly and is renewed.
        retry: How transient failures (network errors, 5xx, 429) are retried.
        max_batch_bytes: A group commit stops adding appends to one POST at this size.
        on_undecodable: Called with each stream message that is not an event (written by
            something else) and the reason; by default it is logged as an error. Either
            way the message keeps its place: the read that reaches it raises
            ``StoreCorruptError`` at its exact offset (field ``"envelope"``), as for an
            event envelope with an unreadable field, so a durable subscription's poison
            policy decides, and reading on after that offset yields exactly the rest.
        compression: Whether the server may compress what it sends (gzip). By default
            it may, unless ``base_url`` is on this machine: over loopback compressing
            saves nothing and costs the server and the reader CPU (a third of the
            server's time for a large catch-up read).
        headers: Headers for every request (e.g. ``Authorization``); a callable value is
            called for each request, so a rotating token stays fresh. Never put a token in
            the URL: headers are neither logged nor shown in messages.
        verify: TLS verification of an ``https`` server: ``True`` (the system's CAs), the
            path of a CA bundle (PEM) to trust instead, or ``False`` (no verification).
        transport: An httpx transport, for tests (``verify`` then does not apply).
        read_only: Open an existing stream without ever writing: the stream is looked
            up (a HEAD), not created, and appends and checkpoint saves raise
            ``StoreReadOnlyError``. Reads, ``tail`` and loading checkpoints work.

    Raises:
        ValueError: ``base_url`` is not an http(s) URL with a host, ``stream`` is not a
            path starting with ``/``, or a bad limit.
        StreamNotFoundError: With ``read_only``, there is no stream at the URL.
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
        headers: Mapping[str, HeaderValue] | None = None,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        read_only: bool = False,
    ) -> None:
        if not isinstance(stream, str) or not stream.startswith("/") or stream == "/":
            raise ValueError(f"stream must be a path such as '/v1/stream/orders', got {stream!r}.")
        if max_batch_bytes < 1:
            raise ValueError(f"max_batch_bytes must be 1 or more, got {max_batch_bytes!r}.")
        self._url = redact(base_url.rstrip("/") + stream)  # for messages: no password
        self._timeout = timeout
        self._stream = stream
        self.read_only: Final = read_only
        self._retry = retry if retry is not None else RetryPolicy()
        if compression is None:
            compression = not on_loopback(base_url)
        if transport is None and verify is not True:
            transport = SocketTransport(
                ssl_context=ssl.create_default_context(cafile=verify)
                if isinstance(verify, str)
                else httpx.create_ssl_context(verify=False)
            )
        self._client = DurableStreamClient(
            base_url,
            headers={**(headers or {}), **({} if compression else {"Accept-Encoding": "identity"})},
            timeout=httpx.Timeout(timeout),
            retry=self._retry,
            transport=transport,
        )
        self._lifecycle = Lifecycle(repr(self))
        self._leases = LeaseLog(
            self._client,
            stream,
            lifecycle=self._lifecycle,
            request_timeout=timeout,
            retry=self._retry,
        )
        self._snapshots = SnapshotLog(self._client, stream)
        try:
            with self._budget():
                if read_only:  # look, never create: a HEAD, 404 if the stream is missing
                    tail, new = self._client.head(stream).next_offset, False
                else:
                    created = self._create()
                    tail, new = created.next_offset, created.created
        except BaseException:
            self._client.close()
            raise
        self._reader = EventReader(
            self._client,
            stream,
            self._url,
            on_undecodable or _log_undecodable,
            tail if new else None,
        )
        self._appends = GroupCommit(
            self._client,
            stream,
            self._url,
            retry=self._retry,
            max_batch_bytes=max_batch_bytes,
            lifecycle=self._lifecycle,
            reader=self._reader,
            tail=tail,
            timeout=timeout,
        )
        self._poller = LongPoller(
            self._client, stream, request_timeout=timeout, lifecycle=self._lifecycle
        )

    def _create(self) -> CreateResult:
        """Create the stream unless it exists; one of another content type is named."""
        try:
            return self._client.create(self._stream, content_type=_JSON)
        except StreamExistsError as exc:
            found = self._client.head(self._stream).content_type
            if found is not None and found.partition(";")[0].strip().lower() != _JSON:
                why = f"its content type is {found!r}, and a DurableStreamStore needs {_JSON!r}"
            else:  # the same type: closed, or with a TTL or an expiry (the server said 409)
                why = f"it is an {_JSON!r} stream of another configuration (closed, or expiring)"
            raise StreamExistsError(
                f"The stream {self._url!r} exists, but {why}. Use another stream path, or "
                "delete that stream first if nothing else needs it.",
                status=exc.status,
                url=self._url,
                server_message=exc.server_message,
            ) from exc

    def __repr__(self) -> str:
        return f"DurableStreamStore({self._url!r})"

    def _refuse_write(self, what: str) -> None:
        if self.read_only:
            with self._lifecycle.open():  # a closed store says so first
                raise StoreReadOnlyError(
                    f"The DurableStreamStore {self._url!r} was opened read-only; it cannot "
                    f"{what}. Open it without read_only (or mode=ro) to write."
                )

    @contextlib.contextmanager
    def _budget(self, extra: float = 0.0) -> Iterator[None]:
        """Bound the I/O of one call by ``timeout`` (plus ``extra``), retries included."""
        token = CALL_DEADLINE.set(time.monotonic() + self._timeout + extra)
        try:
            yield
        except AppendOutcomeUnknownError:
            raise  # it says what became of the append, and how to retry it
        except StoreTimeoutError as exc:
            raise self._timed_out(extra) from exc
        finally:
            CALL_DEADLINE.reset(token)

    def _timed_out(self, extra: float = 0.0) -> DurableStreamTimeoutError:
        budget = f"{self._timeout + extra:g} s"
        return DurableStreamTimeoutError(
            f"The call to {self!r} did not finish within its budget of {budget} "
            f"(timeout={self._timeout:g}{f' plus the wait of {extra:g} s' if extra else ''}, "
            "retries included): the server did not answer in time.",
            url=self._url,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections and wake waiting ``tail`` calls at once; idempotent.

        Later calls raise ``StoreClosedError``. A long-poll in flight ends by itself
        within the store's ``timeout``.
        """
        if self._lifecycle.close():
            self._poller.wake()
            self._leases.wake()
            self._client.close()

    def __enter__(self) -> DurableStreamStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- appends ------------------------------------------------------------------------

    def append(self, record: EventRecord) -> Offset:
        """Store one event exactly once and return its offset.

        Args:
            record: The event.

        Returns:
            The event's offset, identical to the one readers see.

        Raises:
            StoreClosedError: The store was closed.
            AppendOutcomeUnknownError: The append gave up after its POST may have reached
                the server (``AppendTimeoutError`` when its time budget ran out): the event
                may or may not be stored. Appending the same record again
                (``error.records``) stores it at most once.
            StoreUnavailableError: The server could not be reached; nothing was stored.
            ValueError: Records of such a failed append are retried mixed with others.
            StoreError: The server refused the append.
        """
        self._refuse_write("append events")
        with self._budget():
            return self._appends.commit([record])[0]

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
            StoreReadOnlyError: The store was opened read-only.
        """
        self._refuse_write("append events")
        if not records:
            with self._lifecycle.open():
                return []
        with self._budget():
            return self._appends.commit(list(records))

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
        self._refuse_write("append events")
        try:
            return await self._appends.commit_async(record)
        except AppendOutcomeUnknownError:
            raise
        except StoreTimeoutError as exc:  # the POST ran under its own budget (see GroupCommit)
            raise self._timed_out() from exc

    # -- reads --------------------------------------------------------------------------

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        """Return up to ``limit`` events strictly after ``after``.

        Args:
            after: OLDEST, NEWEST (no events; the concrete tail) or an event's offset.
            limit: The most events to return, 1 or more.

        Returns:
            The events and the position to read from next. A page ends early before an
            unreadable event.

        Raises:
            OffsetError: ``after`` is malformed or not an offset of this stream.
            ValueError: ``limit`` is below 1.
            TypeError: ``limit`` is not an int (a bool is not).
            StoreClosedError: The store was closed.
            StoreCorruptError: The first event after ``after`` is unreadable (an event
                with a field another tool wrote that this version cannot parse).
                ``error.offset`` is its offset, so ``read(error.offset)`` reads on after
                it; ``error.field`` names the field and ``error.record`` holds what could
                be read.
            StoreError: The server failed.
        """
        check_limit("limit", limit)
        with self._lifecycle.open():
            if after is NEWEST:
                with self._budget():
                    return ReadResult([], self._reader.newest())
            if after is not OLDEST:
                parse_token(after)
            with self._budget():
                events = self._reader.read_after(after, limit)
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
            TypeError: ``batch_size`` is not an int (a bool is not).
            StoreClosedError: The store was closed, also while iterating.
            StoreCorruptError: The next event is unreadable (see :meth:`read`), raised
                once the events before it were yielded.
        """
        check_limit("batch_size", batch_size)
        position: Position = after
        while True:
            page = self.read(position, batch_size)
            if not page.events:
                return
            for event in page.events:
                if self._lifecycle.closed:
                    raise self._lifecycle.error()
                yield event
            position = page.next

    def tail(self, after: Position, *, timeout: float, limit: int = 100) -> ReadResult:
        """Wait up to ``timeout`` seconds for events after ``after`` (long-poll).

        Events appended by any process are seen. Callers waiting at the same server offset
        share one long-poll, and a long-poll still pending when a call times out is kept for
        the next call: an idle subscriber calling ``tail`` in a loop holds at most one
        request open. The request runs on a helper thread, so :meth:`close` wakes the
        caller at once.

        Args:
            after: OLDEST, NEWEST or an event's offset.
            timeout: Seconds to wait, 0 or more.
            limit: The most events to return, 1 or more.

        Returns:
            The new events (none on timeout) and the position to continue from.

        Raises:
            OffsetError: ``after`` is malformed.
            ValueError: a negative ``timeout`` or a ``limit`` below 1.
            TypeError: ``limit`` is not an int (a bool is not).
            StoreClosedError: The store was closed, also while waiting.
            StoreCorruptError: The first new event is unreadable (see :meth:`read`).
            StoreError: The server failed or the stream was deleted.
        """
        check_limit("limit", limit)
        if not timeout >= 0:
            raise ValueError(f"timeout must be 0 seconds or more, got {timeout!r}.")
        deadline = time.monotonic() + timeout
        position = self.read(NEWEST).next if after is NEWEST else after
        with self._lifecycle.open(), self._budget(timeout):
            if position is not OLDEST:
                parse_token(position)
            events, server = self._reader.cached_after(position, limit)
            if not events and not timeout:  # nothing to wait for: one catch-up read
                events = self._reader.read_after(position, limit)
            while not events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ReadResult([], position)
                chunk = self._poller.wait(server, remaining)
                if chunk is None:
                    continue
                if not chunk.data:
                    # Closed by someone else: nothing will ever come; wait out the timeout.
                    if self._lifecycle.closing.wait(remaining):
                        raise self._lifecycle.error()
                    return ReadResult([], position)
                events = self._reader.follow(position, chunk, server, limit)
                server = chunk.next_offset
        return ReadResult(events, events[-1].offset)

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
        with self._lifecycle.open():
            return compare_tokens(a, b)

    # -- checkpoints --------------------------------------------------------------------

    @staticmethod
    def _check_subscription(subscription_id: str) -> None:
        if not isinstance(subscription_id, str) or not subscription_id:
            raise ValueError(
                f"subscription_id must be a non-empty string, got {subscription_id!r}."
            )

    def _check_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        self._check_subscription(subscription_id)
        check_saved_offset(offset, "checkpoint")

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        """Durably record that ``subscription_id`` has processed up to ``offset``.

        Unfenced: use :meth:`save_checkpoint_fenced` while holding a lease.

        Args:
            subscription_id: The subscription, a non-empty string.
            offset: An event's offset, or OLDEST. NEWEST is refused.

        Raises:
            ValueError: An empty id, or NEWEST.
            OffsetError: A malformed offset.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._check_checkpoint(subscription_id, offset)
        self._refuse_write("save checkpoints")
        with self._lifecycle.open(), self._budget():
            self._leases.save_checkpoint(subscription_id, offset)

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        """Return the saved checkpoint, or ``None`` when none was ever saved.

        The last checkpoint in the subscription's lease log, fenced or not. While the log
        holds none, a checkpoint saved by an earlier version of this store is returned.

        Args:
            subscription_id: The subscription, a non-empty string.

        Returns:
            The offset, OLDEST, or ``None``.

        Raises:
            ValueError: An empty id.
            StoreClosedError: The store was closed.
            StoreCorruptError: The lease log (or an old checkpoint slot) holds something else.
            StoreError: The server failed.
        """
        self._check_subscription(subscription_id)
        with self._lifecycle.open(), self._budget():
            return self._leases.load_checkpoint(subscription_id)

    # -- leases -------------------------------------------------------------------------

    def read_lease(self, subscription_id: str) -> Lease | None:
        """Return the current lease record of ``subscription_id``, or None if never claimed.

        Args:
            subscription_id: The subscription, a non-empty string.

        Raises:
            ValueError: An empty id.
            StoreClosedError: The store was closed.
            StoreCorruptError: The lease log holds something that is not a lease record.
            StoreError: The server failed.
        """
        self._check_subscription(subscription_id)
        with self._lifecycle.open():
            return self._leases.read_lease(subscription_id)

    def wait_lease(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        """Wait (long-poll) until the lease record differs from ``seen``, up to ``timeout`` s.

        Args:
            subscription_id: The subscription, a non-empty string.
            seen: The record the caller last saw.
            timeout: Seconds to wait, 0 or more.

        Returns:
            The current record (equal to ``seen`` on timeout).

        Raises:
            ValueError: An empty id or a negative timeout.
            StoreClosedError: The store was closed, also while waiting.
            StoreError: The server failed.
        """
        self._check_subscription(subscription_id)
        if not timeout >= 0:
            raise ValueError(f"timeout must be 0 seconds or more, got {timeout!r}.")
        with self._lifecycle.open():
            return self._leases.wait_lease(subscription_id, seen, timeout)

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        """Take ``subscription_id`` for ``owner`` if its record still equals ``seen``.

        The claim is sequence 0 of a new producer epoch (the new token): of claimers
        racing with one token, the server stores exactly one.

        Args:
            subscription_id: The subscription, a non-empty string.
            owner: Who claims it.
            seen: The record the claim is based on.

        Returns:
            The new lease, or None when the record changed or another claim won.

        Raises:
            ValueError: An empty id.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._refuse_write("claim leases")
        self._check_subscription(subscription_id)
        with self._lifecycle.open():
            return self._leases.claim_lease(subscription_id, owner, seen)

    def renew_lease(self, lease: Lease) -> Lease:
        """Renew ``lease`` (the same token, the next beat).

        Raises:
            LeaseLostError: The server refused the lease's producer epoch: another owner
                claimed the id, or the lease was released.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._refuse_write("renew leases")
        with self._lifecycle.open():
            return self._leases.renew_lease(lease)

    def release_lease(self, lease: Lease) -> None:
        """Release ``lease`` if it is still current (the record's token becomes token + 1).

        Raises:
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._refuse_write("release leases")
        with self._lifecycle.open():
            self._leases.release_lease(lease)

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        """Save the checkpoint of ``lease.subscription_id`` only while ``lease`` is current.

        The server checks the lease's token (its producer epoch) atomically with the append.

        Raises:
            LeaseLostError: ``lease`` is no longer current; nothing was stored.
            ValueError: NEWEST.
            OffsetError: A malformed offset.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._refuse_write("save checkpoints")
        self._check_checkpoint(lease.subscription_id, offset)
        with self._lifecycle.open():
            self._leases.save_checkpoint_fenced(lease, offset)
