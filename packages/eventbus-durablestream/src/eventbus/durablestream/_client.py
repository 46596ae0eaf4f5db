"""The synchronous face of the Durable Streams client, on ``httpx.Client``."""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any

import httpx

from ._actions import Emit, NextBytes, Send, Sleep
from ._errors import ClientClosedError, DurableStreamTimeoutError, _map_httpx_errors
from ._operations import (
    append_request,
    close_request,
    create_request,
    delete_request,
    head_request,
    json_batch,
    parse_append,
    parse_close,
    parse_create,
    parse_delete,
    parse_head,
)
from ._producer import IdempotentProducer
from ._producer_core import DEFAULT_MAX_BATCH_BYTES, AwaitPrevious, ProducerCore
from ._reads import read_operation
from ._requests import (
    DEFAULT_TIMEOUT,
    OCTET_STREAM,
    HeaderValue,
    LiveMode,
    RequestFactory,
    RequestSpec,
)
from ._results import AppendResult, CloseResult, CreateResult, ReadChunk, StreamInfo
from ._retry import RetryPolicy, send_with_retry
from ._socket_network import socket_transport

if TYPE_CHECKING:
    import datetime
    from collections.abc import Generator, Iterator, Mapping, Sequence

__all__ = ["CALL_DEADLINE", "DurableStreamClient"]

CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "eventbus_durablestream_call_deadline", default=None
)
"""The ``time.monotonic()`` instant the current store call must end by, or ``None``.

Set by :class:`DurableStreamStore` around each call: every request and retry of the
client's single-result operations in that context stop there (see ``_run``)."""


class _DeadlineReachedError(Exception):
    """Internal: a read's ``stop_after`` passed; the iteration ends quietly."""


def _transport_error(exc: httpx.TransportError, deadline: float | None) -> httpx.TransportError:
    """Hand a transport error to the core, unless it only means the read's time is up."""
    if deadline is not None and time.monotonic() >= deadline:
        raise _DeadlineReachedError from exc
    return exc


class DurableStreamClient:
    """A synchronous Durable Streams client: create, append, read, close, delete streams.

    Stream URLs given to the methods are absolute, or relative to ``base_url``. Use it as a
    context manager, or call :meth:`close`.

    Args:
        base_url: the server's base URL, e.g. ``"http://127.0.0.1:4437/v1/stream"``.
        headers: headers for every request; a callable value is called for each request.
        params: query parameters for every request; callables as for ``headers``.
        timeout: the httpx timeout; keep the read timeout above the server's long-poll timeout.
        retry: the retry policy for transient failures (network errors, 5xx, 429).
        transport: an httpx transport (tests use ``httpx.MockTransport``).

    Raises:
        ValueError: ``base_url`` is neither empty nor an http(s) URL with a host.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        headers: Mapping[str, HeaderValue] | None = None,
        params: Mapping[str, HeaderValue] | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._requests = RequestFactory(base_url, headers or {}, params or {}, timeout)
        self._transport = transport if transport is not None else socket_transport()
        self._closed = False
        self.retry = retry if retry is not None else RetryPolicy()
        self._content_types: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> httpx.URL:
        """The URL relative stream URLs are resolved against."""
        return self._requests.base_url

    def close(self) -> None:
        """Close the connection pool (and the transport given, if any); idempotent."""
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> DurableStreamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ I/O

    def _send(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise ClientClosedError(self)
        response = self._transport.handle_request(request)
        response.request = request
        return response

    def _perform(
        self,
        action: Send | Sleep | NextBytes | AwaitPrevious,
        pieces: dict[int, Iterator[bytes]],
        deadline: float | None,
    ) -> Any:
        if deadline is not None and time.monotonic() >= deadline:
            raise _DeadlineReachedError
        if isinstance(action, Send):
            request = self._requests.build(action.spec, deadline)
            try:
                response = self._send(request)
            except httpx.TransportError as exc:
                return _transport_error(exc, deadline)
            if action.stream and response.status_code == 200:
                pieces[id(response)] = response.iter_bytes()
                return response
            try:
                response.read()
            except httpx.TransportError as exc:
                response.close()
                return _transport_error(exc, deadline)
            return response
        if isinstance(action, Sleep):
            if deadline is not None and time.monotonic() + action.seconds >= deadline:
                raise _DeadlineReachedError
            time.sleep(action.seconds)
            return None
        if isinstance(action, NextBytes):
            try:
                return next(pieces[id(action.response)], b"")
            except httpx.TransportError as exc:
                return _transport_error(exc, deadline)
        return True  # AwaitPrevious: batches go one at a time, so the previous one succeeded

    def _run(self, operation: Generator[Any, Any, Any], url: str) -> Any:
        value: Any = None
        deadline = CALL_DEADLINE.get()
        shown = self._requests.shown(url)
        with _map_httpx_errors(shown):
            try:
                while True:
                    try:
                        action = operation.send(value)
                    except StopIteration as stop:
                        return stop.value
                    value = self._perform(action, {}, deadline)
            except _DeadlineReachedError as exc:
                raise DurableStreamTimeoutError(
                    f"The request to {shown!r} did not finish before the call's deadline.",
                    url=shown,
                ) from exc
            finally:
                operation.close()

    def _iterate(
        self, operation: Generator[Any, Any, None], url: str, stop_after: float | None
    ) -> Iterator[ReadChunk]:
        deadline = None if stop_after is None else time.monotonic() + stop_after
        # A store call's deadline (CALL_DEADLINE) ends the read with an error; stop_after
        # ends it quietly. Whichever comes first counts.
        call_deadline = CALL_DEADLINE.get()
        quiet = deadline is not None and (call_deadline is None or deadline <= call_deadline)
        if not quiet:
            deadline = call_deadline
        shown = self._requests.shown(url)
        pieces: dict[int, Iterator[bytes]] = {}
        opened: list[httpx.Response] = []
        value: Any = None
        try:
            with _map_httpx_errors(shown):
                while True:
                    try:
                        action = operation.send(value)
                    except StopIteration:
                        return
                    if isinstance(action, Emit):
                        yield action.chunk
                        value = None
                        continue
                    value = self._perform(action, pieces, deadline)
                    if isinstance(action, Send) and id(value) in pieces:
                        opened.append(value)
        except _DeadlineReachedError as exc:
            if quiet:
                return
            raise DurableStreamTimeoutError(
                f"The read of {shown!r} did not finish before the call's deadline.", url=shown
            ) from exc
        finally:
            operation.close()
            for response in opened:
                response.close()

    def _content_type(self, url: str) -> str:
        known = self._content_types.get(url)
        if known is None:
            known = self.head(url).content_type or OCTET_STREAM
        return known

    # ------------------------------------------------------------------ operations

    def create(
        self,
        url: str,
        *,
        content_type: str = OCTET_STREAM,
        ttl_seconds: int | None = None,
        expires_at: datetime.datetime | str | None = None,
        closed: bool = False,
        data: bytes | str | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> CreateResult:
        """Create a stream, or confirm that an identical one exists.

        Args:
            url: the stream URL.
            content_type: the stream's content type (``application/json`` for JSON mode).
            ttl_seconds: a sliding time-to-live in seconds (not with ``expires_at``).
            expires_at: an absolute expiry, aware datetime or RFC 3339 text.
            closed: create the stream already closed.
            data: initial data (for JSON streams, JSON text; an array is a batch).
            headers: extra headers for this request.

        Returns:
            Whether the stream was created, and its tail offset.

        Raises:
            StreamExistsError: it exists with another configuration.
            BadRequestError: the server rejected the parameters.
            ValueError: both ``ttl_seconds`` and ``expires_at`` were given.
            DurableStreamError: any other failure.
        """
        spec = create_request(
            url,
            content_type=content_type,
            ttl_seconds=ttl_seconds,
            expires_at=expires_at,
            closed=closed,
            data=data,
            headers=headers,
        )
        result: CreateResult = self._run(self._simple(spec, parse_create), url)
        self._content_types[url] = content_type
        return result

    def _simple(self, spec: RequestSpec, parse: Any) -> Generator[Any, Any, Any]:
        response = yield from send_with_retry(self.retry, spec)
        return parse(spec, response)

    def head(self, url: str, *, headers: Mapping[str, HeaderValue] | None = None) -> StreamInfo:
        """Read a stream's metadata.

        Args:
            url: the stream URL.
            headers: extra headers for this request.

        Returns:
            Content type, tail offset, closure, TTL or expiry.

        Raises:
            StreamNotFoundError: there is no stream at ``url``.
            DurableStreamError: any other failure.
        """
        info: StreamInfo = self._run(self._simple(head_request(url, headers), parse_head), url)
        if info.content_type is not None:
            self._content_types[url] = info.content_type
        return info

    def delete(self, url: str, *, headers: Mapping[str, HeaderValue] | None = None) -> None:
        """Delete a stream.

        Args:
            url: the stream URL.
            headers: extra headers for this request.

        Raises:
            StreamNotFoundError: there is no stream at ``url``.
            DurableStreamError: any other failure.
        """
        spec = delete_request(url, headers)
        self._run(self._simple(spec, parse_delete), url)
        self._content_types.pop(url, None)

    def append(
        self,
        url: str,
        data: bytes | str,
        *,
        content_type: str | None = None,
        seq: str | None = None,
        close: bool = False,
        headers: Mapping[str, HeaderValue] | None = None,
        params: Mapping[str, HeaderValue] | None = None,
    ) -> AppendResult:
        """Append raw data (for a JSON stream: JSON text; an array appends each element).

        Args:
            url: the stream URL.
            data: the body; text is sent as UTF-8.
            content_type: the stream's content type; by default the one this client saw at
                create or head, else learned with one HEAD.
            seq: a ``Stream-Seq`` value that must sort after the previous one.
            close: close the stream atomically with this append.
            headers: extra headers for this request.
            params: extra query parameters for this request.

        Returns:
            The new tail offset.

        Raises:
            StreamClosedError: the stream is closed.
            SequenceConflictError: ``seq`` does not sort after the previous one.
            ContentTypeMismatchError: the content type is not the stream's.
            StreamNotFoundError: there is no stream at ``url``.
            BadRequestError: for instance an empty body or invalid JSON.
            DurableStreamError: any other failure.
        """
        spec = append_request(
            url,
            data,
            content_type=content_type or self._content_type(url),
            seq=seq,
            close=close,
            headers=headers,
            params=params,
        )
        result: AppendResult = self._run(self._simple(spec, parse_append), url)
        return result

    def append_json(
        self,
        url: str,
        value: Any,
        *,
        seq: str | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> AppendResult:
        """Append one JSON value as one message of a JSON stream.

        Args:
            url: the stream URL.
            value: any JSON-serializable value (a list is stored as one message).
            seq: a ``Stream-Seq`` value.
            headers: extra headers for this request.

        Returns:
            The new tail offset.

        Raises:
            TypeError: ``value`` is not JSON-serializable.
            DurableStreamError: as for :meth:`append`.
        """
        return self.append_json_batch(url, [value], seq=seq, headers=headers)

    def append_json_batch(
        self,
        url: str,
        values: Sequence[Any],
        *,
        seq: str | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> AppendResult:
        """Append several JSON values in one request; each becomes one message.

        Args:
            url: the stream URL.
            values: a non-empty sequence of JSON-serializable values.
            seq: a ``Stream-Seq`` value.
            headers: extra headers for this request.

        Returns:
            The new tail offset (one offset for the whole batch).

        Raises:
            ValueError: ``values`` is empty.
            TypeError: a value is not JSON-serializable.
            DurableStreamError: as for :meth:`append`.
        """
        body = json_batch(values)
        return self.append(url, body, content_type="application/json", seq=seq, headers=headers)

    def close_stream(
        self,
        url: str,
        *,
        data: bytes | str | None = None,
        content_type: str | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> CloseResult:
        """Close a stream, optionally appending a final message atomically; idempotent.

        Args:
            url: the stream URL.
            data: a final message, or ``None``.
            content_type: the final message's content type (default: the stream's).
            headers: extra headers for this request.

        Returns:
            The final offset.

        Raises:
            StreamClosedError: ``data`` was given but the stream was already closed.
            StreamNotFoundError: there is no stream at ``url``.
            DurableStreamError: any other failure.
        """
        if data is not None and content_type is None:
            content_type = self._content_type(url)
        spec = close_request(url, data=data, content_type=content_type, headers=headers)
        result: CloseResult = self._run(self._simple(spec, parse_close), url)
        return result

    def read(
        self,
        url: str,
        *,
        offset: str = "-1",
        headers: Mapping[str, HeaderValue] | None = None,
        params: Mapping[str, HeaderValue] | None = None,
    ) -> ReadChunk:
        """Read once from ``offset`` (catch-up): one response, up to the server's chunk limit.

        Args:
            url: the stream URL.
            offset: ``"-1"`` (start), ``"now"`` (tail) or an offset the server returned.
            headers: extra headers for this request.
            params: extra query parameters for this request.

        Returns:
            The data and the offset to continue from; ``up_to_date`` tells whether it ended
            at the tail.

        Raises:
            StreamNotFoundError: there is no stream at ``url``.
            BadRequestError: the offset is malformed.
            DurableStreamError: any other failure.
        """
        for chunk in self.iter_chunks(url, offset=offset, headers=headers, params=params):
            return chunk
        # A catch-up read always yields one chunk (an empty one at the tail), so the loop
        # above returns; this line only guards that protocol invariant.
        raise AssertionError("unreachable")  # pragma: no cover - see the comment above

    def iter_chunks(
        self,
        url: str,
        *,
        offset: str = "-1",
        live: LiveMode = None,
        stop_after: float | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
        params: Mapping[str, HeaderValue] | None = None,
    ) -> Iterator[ReadChunk]:
        """Iterate over a stream's data from ``offset``.

        Without ``live`` the iteration ends once up to date. With ``"long-poll"`` or
        ``"auto"`` it catches up, then long-polls (echoing the server's cursor); with ``"sse"``
        it follows server-sent events, reconnecting from the last offset. A closed stream ends
        every mode once fully read. Chunks may be empty; they still carry the offset.

        Args:
            url: the stream URL.
            offset: where to start.
            live: ``None``, ``"long-poll"``, ``"auto"`` or ``"sse"``.
            stop_after: end the iteration quietly after this many seconds.
            headers: extra headers for every request of the read (callables per request).
            params: extra query parameters, as for ``headers``.

        Yields:
            The chunks, in stream order.

        Raises:
            StreamNotFoundError: there is no stream at ``url``.
            MalformedResponseError: the server sent something unparseable.
            DurableStreamError: any other failure.
        """
        operation = read_operation(
            self.retry,
            url,
            offset=offset,
            live=live,
            headers=headers,
            params=params,
            timeout=None,
            content_type=self._content_types.get(url),
        )
        return self._iterate(operation, url, stop_after)

    def producer(
        self,
        url: str,
        producer_id: str,
        *,
        epoch: int = 0,
        auto_claim: bool = False,
        content_type: str | None = None,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_items: int | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> IdempotentProducer:
        """Make an idempotent producer writing to ``url``.

        Args:
            url: the stream URL.
            producer_id: a stable id for this writer.
            epoch: the starting epoch; a restarted writer uses a higher one to fence the old.
            auto_claim: on a 403 (fenced), claim the server's epoch + 1 and retry.
            content_type: the stream's content type (default: learned as for :meth:`append`).
            max_batch_bytes: the size at which a batch is sent.
            max_batch_items: the message count at which a batch is sent, or ``None``.
            headers: extra headers for every request.

        Returns:
            The producer.

        Raises:
            ValueError: an empty producer id, a negative epoch or a limit below 1.
        """
        core = ProducerCore(
            url,
            producer_id,
            epoch=epoch,
            auto_claim=auto_claim,
            content_type=content_type or OCTET_STREAM,
            max_batch_bytes=max_batch_bytes,
            max_batch_items=max_batch_items,
            max_in_flight=1,
            headers=headers,
            retry=self.retry,
        )
        if content_type is None:
            core.set_content_type(self._content_type(url))
        return IdempotentProducer(self._run, core)
