"""The I/O-free core of the Durable Streams client.

Everything protocol-shaped lives here: request building, response interpretation, the retry
policy, the SSE parser and the multi-step operations. A multi-step operation is a generator that
yields *actions* (:class:`Send`, :class:`Sleep`, :class:`NextBytes`, :class:`Emit`) and receives
their outcome; the synchronous and the asyncio face each drive the same generators and differ
only in how they perform an action.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import httpx

from ._errors import (
    BadRequestError,
    ContentTypeMismatchError,
    DurableStreamError,
    MalformedResponseError,
    ProducerSequenceGapError,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
    StreamGoneError,
    StreamNotFoundError,
    UnexpectedStatusError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AppendResult",
    "CloseResult",
    "CreateResult",
    "Emit",
    "HeaderValue",
    "LiveMode",
    "NextBytes",
    "Operation",
    "ReadChunk",
    "RequestFactory",
    "RequestSpec",
    "RetryPolicy",
    "SSEEvent",
    "SSEParser",
    "Send",
    "Sleep",
    "StreamInfo",
    "append_request",
    "close_request",
    "create_request",
    "delete_request",
    "error_for_response",
    "head_request",
    "is_json_content_type",
    "json_batch",
    "parse_append",
    "parse_close",
    "parse_create",
    "parse_delete",
    "parse_head",
    "read_operation",
    "resolve_values",
    "send_with_retry",
]

HeaderValue: TypeAlias = str | Callable[[], str]
"""A header or query-parameter value: fixed, or a callable evaluated for every request."""

LiveMode: TypeAlias = Literal["long-poll", "sse", "auto"] | None
"""How a read follows the stream: ``None`` for catch-up only, else the live transport."""

DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, read=45.0)
"""Connect/write/pool 10 s; read 45 s, above the reference server's 30 s long-poll."""

# What httpx.Client would send, so servers and proxies see the same requests.
_DEFAULT_HEADERS: Final = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}

OCTET_STREAM: Final = "application/octet-stream"
H_NEXT_OFFSET: Final = "Stream-Next-Offset"
H_UP_TO_DATE: Final = "Stream-Up-To-Date"
H_CURSOR: Final = "Stream-Cursor"
H_CLOSED: Final = "Stream-Closed"
H_SEQ: Final = "Stream-Seq"
H_TTL: Final = "Stream-TTL"
H_EXPIRES_AT: Final = "Stream-Expires-At"
H_SSE_ENCODING: Final = "Stream-SSE-Data-Encoding"
H_PRODUCER_ID: Final = "Producer-Id"
H_PRODUCER_EPOCH: Final = "Producer-Epoch"
H_PRODUCER_SEQ: Final = "Producer-Seq"
H_EXPECTED_SEQ: Final = "Producer-Expected-Seq"
H_RECEIVED_SEQ: Final = "Producer-Received-Seq"
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_MAX_SAFE_INTEGER: Final = 2**53 - 1


def is_json_content_type(content_type: str | None) -> bool:
    """Tell whether a content type puts a stream in JSON mode (``application/json``).

    Args:
        content_type: a Content-Type header value, parameters allowed, or ``None``.

    Returns:
        ``True`` for ``application/json`` in any letter case, whatever its parameters.
    """
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def resolve_values(*layers: Mapping[str, HeaderValue] | None) -> dict[str, str]:
    """Merge header or parameter layers, later layers winning, calling dynamic values.

    Args:
        *layers: mappings of name to a string or a zero-argument callable; ``None`` is skipped.

    Returns:
        The merged mapping with every callable replaced by the string it returned now.
    """
    merged: dict[str, str] = {}
    for layer in layers:
        if layer:
            for name, value in layer.items():
                merged[name] = value() if callable(value) else value
    return merged


_URL_CACHE_SIZE: Final = 1024


class RequestFactory:
    """Builds the ``httpx.Request`` of each attempt, for a face to send through its transport.

    The faces skip ``httpx.Client``: its ``build_request`` and ``send`` re-parse every URL
    two or three times and run cookie, auth, redirect and hook machinery this protocol
    never uses, which cost over a tenth of a millisecond a request here (about a third of
    an append to a local server). Stream URLs are resolved once and remembered.

    Args:
        base_url: the URL relative stream URLs are joined to (``""`` for none).
        headers: the client's headers; protocol and per-call headers win.
        params: the client's query parameters; protocol and per-call parameters win.
        timeout: the client's timeout.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, HeaderValue],
        params: Mapping[str, HeaderValue],
        timeout: float | httpx.Timeout,
    ) -> None:
        base = httpx.URL(base_url)
        if base_url and not base.raw_path.endswith(b"/"):
            base = base.copy_with(raw_path=base.raw_path + b"/")
        self.base_url = base
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._timeout_extension = self.timeout.as_dict()
        self._headers = {**_DEFAULT_HEADERS, **headers}
        self._params = dict(params)
        self._urls: dict[str, httpx.URL] = {}

    def url(self, url: str) -> httpx.URL:
        """Resolve a stream URL against the base URL, as ``httpx.Client`` does.

        A relative URL's path is appended to the base URL's path (``/s`` under
        ``http://h/v1/stream`` is ``http://h/v1/stream/s``).

        Args:
            url: an absolute URL, or one relative to the base URL.

        Returns:
            The absolute URL.
        """
        known = self._urls.get(url)
        if known is None:
            known = httpx.URL(url)
            if known.is_relative_url:
                known = self.base_url.copy_with(
                    raw_path=self.base_url.raw_path + known.raw_path.lstrip(b"/")
                )
            if len(self._urls) >= _URL_CACHE_SIZE:  # a client may touch streams without end
                self._urls.clear()
            self._urls[url] = known
        return known

    def build(self, spec: RequestSpec, deadline: float | None) -> httpx.Request:
        """Build one attempt of ``spec``; dynamic values are called now, for every attempt.

        Args:
            spec: the request.
            deadline: a ``time.monotonic()`` instant the read timeout must not pass, or ``None``.

        Returns:
            The request, its timeout in the ``timeout`` extension as httpx transports expect.
        """
        headers = resolve_values(self._headers, spec.user_headers)
        headers.update(spec.headers)
        url = self.url(spec.url)
        if self._params or spec.params or spec.user_params:
            params = resolve_values(self._params, spec.user_params)
            params.update(spec.params)
            url = url.copy_merge_params(params)
        timeout = self._timeout_extension
        if spec.timeout is not None or deadline is not None:
            timeout = (spec.timeout or self.timeout).as_dict()
            if deadline is not None:
                remaining = max(deadline - time.monotonic(), 0.001)
                timeout["read"] = min(timeout["read"] or remaining, remaining)
        return httpx.Request(
            spec.method, url, headers=headers, content=spec.content, extensions={"timeout": timeout}
        )


# --------------------------------------------------------------------------- retry policy


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How transient failures (network errors, 5xx, 429) are retried with capped backoff.

    Permanent failures (other 4xx) are never retried. Delays grow from ``initial_delay`` by
    ``multiplier`` up to ``max_delay``; with ``jitter`` each delay is drawn from its upper half.
    A ``Retry-After`` header in seconds takes precedence, still capped by ``max_delay``.

    Args:
        max_retries: retries after the first attempt; ``0`` disables retrying.
        initial_delay: the first delay in seconds, above zero.
        max_delay: the cap on any delay in seconds, at least ``initial_delay``.
        multiplier: the growth factor between delays, at least ``1.0``.
        jitter: whether to randomize each delay within its upper half.

    Raises:
        ValueError: for a negative ``max_retries``, a non-positive ``initial_delay``, a
            ``max_delay`` below ``initial_delay`` or a ``multiplier`` below one.
    """

    max_retries: int = 6
    initial_delay: float = 0.05
    max_delay: float = 3.0
    multiplier: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(
                f"RetryPolicy max_retries must be 0 or more, got {self.max_retries!r}."
            )
        if not self.initial_delay > 0:
            raise ValueError(
                f"RetryPolicy initial_delay must be above 0 seconds, got {self.initial_delay!r}."
            )
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"RetryPolicy max_delay must be at least initial_delay "
                f"({self.initial_delay!r}), got {self.max_delay!r}."
            )
        if self.multiplier < 1.0:
            raise ValueError(
                f"RetryPolicy multiplier must be 1.0 or more, got {self.multiplier!r}."
            )

    def delay(self, attempt: int, retry_after: str | None = None) -> float | None:
        """Return how long to wait before retry number ``attempt + 1``, or ``None`` to stop.

        Args:
            attempt: how many retries were already made (0 before the first retry).
            retry_after: the response's ``Retry-After`` header, if any.

        Returns:
            The delay in seconds, or ``None`` when the retries are used up.
        """
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay)
            except ValueError:
                pass  # an HTTP date or garbage: fall back to the backoff
        base = min(self.initial_delay * self.multiplier**attempt, self.max_delay)
        return base * random.uniform(0.5, 1.0) if self.jitter else base


# --------------------------------------------------------------------------- actions


@dataclasses.dataclass(frozen=True, slots=True)
class RequestSpec:
    """One HTTP request before dynamic values are resolved.

    Attributes:
        op: the operation name used in error messages (``"create"``, ``"append"``, ...).
        method: the HTTP method.
        url: the stream URL, absolute or relative to the client's base URL.
        headers: protocol headers, which win over user headers.
        params: protocol query parameters.
        content: the request body, if any.
        user_headers: per-call headers, fixed or dynamic.
        user_params: per-call query parameters, fixed or dynamic.
        replay_safe: whether a request that may have reached the server can be resent.
        timeout: a per-request httpx timeout, or ``None`` for the client's.
    """

    op: str
    method: str
    url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    content: bytes | None = None
    user_headers: Mapping[str, HeaderValue] | None = None
    user_params: Mapping[str, HeaderValue] | None = None
    replay_safe: bool = True
    timeout: httpx.Timeout | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Action: send ``spec``; the face answers with the response or the transport error.

    With ``stream`` the body of a 200 response is left unread (for SSE); any other body is read.
    """

    spec: RequestSpec
    stream: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Action: wait ``seconds``; the face answers ``None``."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class NextBytes:
    """Action: read the next piece of a streamed body.

    The face answers the bytes, ``b""`` once the body ended, or the transport error.
    """

    response: httpx.Response


@dataclasses.dataclass(frozen=True, slots=True)
class Emit:
    """Action of a read: hand ``chunk`` to the caller; the face answers ``None``."""

    chunk: ReadChunk


Action: TypeAlias = Send | Sleep | NextBytes | Emit
Operation: TypeAlias = Generator[Action, Any, Any]


def send_with_retry(
    policy: RetryPolicy, spec: RequestSpec, *, stream: bool = False
) -> Generator[Action, Any, httpx.Response]:
    """Send one request, retrying transient failures according to ``policy``.

    A transport error is retried when the request is replay-safe or never reached the server
    (connect failures). A retried 5xx or 429 response is closed before the wait.

    Args:
        policy: the retry policy.
        spec: the request.
        stream: whether to leave the body of the final response unread.

    Returns:
        The first response that is not retried (any status).

    Raises:
        httpx.TransportError: the last transport error once retries are used up.
    """
    attempt = 0
    while True:
        outcome = yield Send(spec, stream)
        if isinstance(outcome, httpx.TransportError):
            unsent = isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout)
            delay = policy.delay(attempt) if spec.replay_safe or unsent else None
            if delay is None:
                raise outcome
        else:
            response: httpx.Response = outcome
            if response.status_code not in _RETRY_STATUSES:
                return response
            delay = policy.delay(attempt, response.headers.get("Retry-After"))
            if delay is None:
                return response
        attempt += 1
        yield Sleep(delay)


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True, slots=True)
class CreateResult:
    """The outcome of a create.

    Attributes:
        created: ``True`` when the stream is new (201), ``False`` when an identical one existed.
        next_offset: the stream's tail offset.
        status: the HTTP status.
    """

    created: bool
    next_offset: str | None
    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of an append.

    Attributes:
        next_offset: the tail after this append; ``None`` for a deduplicated producer retry.
        duplicate: whether the server recognised an already-stored producer batch (204).
        stream_closed: whether the stream is now closed.
        producer_epoch: the producer epoch the server echoed, if any.
        producer_seq: the highest producer sequence the server accepted, if any.
        status: the HTTP status.
    """

    next_offset: str | None
    duplicate: bool = False
    stream_closed: bool = False
    producer_epoch: int | None = None
    producer_seq: int | None = None
    status: int = 204


@dataclasses.dataclass(frozen=True, slots=True)
class CloseResult:
    """The outcome of closing a stream.

    Attributes:
        final_offset: the stream's final offset (``None`` for a deduplicated producer close).
        status: the HTTP status.
    """

    final_offset: str | None
    status: int = 204


@dataclasses.dataclass(frozen=True, slots=True)
class StreamInfo:
    """Stream metadata from a HEAD request.

    Attributes:
        content_type: the stream's content type.
        next_offset: the current tail offset.
        closed: whether the stream is closed.
        ttl_seconds: the sliding TTL, if the stream has one.
        expires_at: the absolute expiry (RFC 3339 text), if the stream has one.
        etag: the entity tag, if sent.
    """

    content_type: str | None
    next_offset: str | None
    closed: bool
    ttl_seconds: int | None
    expires_at: str | None
    etag: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ReadChunk:
    """Data read from a stream, with the stream position after it.

    A chunk can be empty (a long-poll timeout, or an SSE control event without data): it still
    moves ``next_offset``, ``up_to_date`` and ``stream_closed`` forward.

    Attributes:
        data: the bytes read; for JSON streams, the text of one JSON array of messages.
        next_offset: the offset to resume from after this chunk.
        up_to_date: whether the chunk reached the tail of the stream.
        stream_closed: whether the stream is closed and fully read: nothing more will come.
        cursor: the server's cursor, echoed on the next live request.
        content_type: the stream's content type, when known.
        status: the HTTP status of the response the chunk came from.
    """

    data: bytes
    next_offset: str
    up_to_date: bool
    stream_closed: bool
    cursor: str | None = None
    content_type: str | None = None
    status: int = 200

    def text(self) -> str:
        """Return the data decoded as UTF-8 (invalid bytes replaced).

        Returns:
            The decoded text.
        """
        return self.data.decode("utf-8", errors="replace")

    def json(self) -> list[Any]:
        """Parse the data of a JSON-stream chunk into its list of messages.

        Returns:
            The messages, in order; an empty list for an empty chunk.

        Raises:
            MalformedResponseError: the data is not a JSON array.
        """
        if not self.data:
            return []
        try:
            items = json.loads(self.data)
        except ValueError as exc:
            raise MalformedResponseError(
                f"The stream data is not valid JSON: {self.data[:80]!r}."
            ) from exc
        if not isinstance(items, list):
            raise MalformedResponseError(
                f"A JSON stream read returned {type(items).__name__}, not a JSON array: "
                f"{self.data[:80]!r}."
            )
        return items


# --------------------------------------------------------------------------- errors


def error_for_response(spec: RequestSpec, response: httpx.Response) -> DurableStreamError:
    """Build the precise exception for an unsuccessful response.

    The response body must have been read.

    Args:
        spec: the request that got the response.
        response: the response.

    Returns:
        The exception to raise.
    """
    status = response.status_code
    url = str(response.request.url.copy_with(query=None))
    server_message = response.text.strip()[:500]
    said = f" The server said {server_message!r}." if server_message else ""
    headers = response.headers
    kw: dict[str, Any] = {"status": status, "url": url, "server_message": server_message}
    if status == 404:
        return StreamNotFoundError(f"No stream exists at {url!r} ({spec.op}).{said}", **kw)
    if status == 410:
        return StreamGoneError(f"The stream at {url!r} is gone ({spec.op}).{said}", **kw)
    if status == 400:
        return BadRequestError(f"The server rejected the {spec.op} of {url!r}.{said}", **kw)
    if status == 403 and H_PRODUCER_EPOCH in headers:
        current = _int_header(headers, H_PRODUCER_EPOCH)
        return StaleEpochError(
            f"Producer epoch {spec.headers.get(H_PRODUCER_EPOCH)!r} on {url!r} is stale: "
            f"the server holds epoch {current!r}.{said}",
            current_epoch=current,
            **kw,
        )
    if status == 409:
        if _is_true(headers.get(H_CLOSED)):
            return StreamClosedError(
                f"The stream at {url!r} is closed; the {spec.op} was refused.{said}",
                final_offset=headers.get(H_NEXT_OFFSET),
                **kw,
            )
        expected = _int_header(headers, H_EXPECTED_SEQ)
        if expected is not None:
            received = _int_header(headers, H_RECEIVED_SEQ)
            received = received if received is not None else -1
            return ProducerSequenceGapError(
                f"Producer sequence gap on {url!r}: the server expected {expected!r}, "
                f"received {received!r}.{said}",
                expected=expected,
                received=received,
                **kw,
            )
        if spec.method == "PUT":
            return StreamExistsError(
                f"A stream already exists at {url!r} with another configuration.{said}", **kw
            )
        if H_SEQ in spec.headers and "content-type" not in server_message.lower():
            return SequenceConflictError(
                f"Stream-Seq {spec.headers[H_SEQ]!r} does not follow the last one on {url!r}."
                f"{said}",
                **kw,
            )
        return ContentTypeMismatchError(
            f"The {spec.op} to {url!r} was refused as a conflict, as for a content type "
            f"{spec.headers.get('Content-Type')!r} other than the stream's.{said}",
            **kw,
        )
    return UnexpectedStatusError(
        f"The server answered {status} to the {spec.op} of {url!r}.{said}", **kw
    )


def _check(spec: RequestSpec, response: httpx.Response, *ok: int) -> None:
    if response.status_code not in ok:
        raise error_for_response(spec, response)


# --------------------------------------------------------------------------- simple requests


def _encode(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def _expiry_text(expires_at: datetime.datetime | str) -> str:
    if isinstance(expires_at, datetime.datetime):
        if expires_at.tzinfo is None:
            raise ValueError(
                f"expires_at must be timezone-aware, got the naive datetime {expires_at!r}."
            )
        return expires_at.isoformat()
    return expires_at


def create_request(
    url: str,
    *,
    content_type: str,
    ttl_seconds: int | None,
    expires_at: datetime.datetime | str | None,
    closed: bool,
    data: bytes | str | None,
    headers: Mapping[str, HeaderValue] | None,
) -> RequestSpec:
    """Build the PUT that creates a stream.

    Args:
        url: the stream URL.
        content_type: the stream's content type.
        ttl_seconds: a sliding time-to-live in seconds, or ``None``.
        expires_at: an absolute expiry (aware datetime or RFC 3339 text), or ``None``.
        closed: create the stream already closed.
        data: initial data, or ``None``.
        headers: per-call headers.

    Returns:
        The request.

    Raises:
        ValueError: both ``ttl_seconds`` and ``expires_at``, a negative TTL, or a naive
            ``expires_at``.
    """
    if ttl_seconds is not None and expires_at is not None:
        raise ValueError(
            f"Give ttl_seconds or expires_at, not both: got {ttl_seconds!r} and {expires_at!r}."
        )
    if ttl_seconds is not None and ttl_seconds < 0:
        raise ValueError(f"ttl_seconds must be 0 or more, got {ttl_seconds!r}.")
    h = {"Content-Type": content_type}
    if ttl_seconds is not None:
        h[H_TTL] = str(ttl_seconds)
    if expires_at is not None:
        h[H_EXPIRES_AT] = _expiry_text(expires_at)
    if closed:
        h[H_CLOSED] = "true"
    content = None if data is None else _encode(data)
    return RequestSpec("create", "PUT", url, h, content=content, user_headers=headers)


def parse_create(spec: RequestSpec, response: httpx.Response) -> CreateResult:
    """Interpret the answer to a create.

    Args:
        spec: the request.
        response: the response, body read.

    Returns:
        The result.

    Raises:
        DurableStreamError: a subclass for any status but 200 and 201.
    """
    _check(spec, response, 200, 201)
    return CreateResult(
        created=response.status_code == 201,
        next_offset=response.headers.get(H_NEXT_OFFSET),
        status=response.status_code,
    )


def append_request(
    url: str,
    data: bytes | str,
    *,
    content_type: str,
    seq: str | None = None,
    close: bool = False,
    producer: tuple[str, int, int] | None = None,
    headers: Mapping[str, HeaderValue] | None = None,
    params: Mapping[str, HeaderValue] | None = None,
    op: str = "append",
) -> RequestSpec:
    """Build the POST that appends data.

    Args:
        url: the stream URL.
        data: the body; text is encoded as UTF-8.
        content_type: the stream's content type.
        seq: a ``Stream-Seq`` writer sequence, or ``None``.
        close: close the stream atomically with this append.
        producer: ``(producer id, epoch, seq)`` of an idempotent producer, or ``None``.
        headers: per-call headers.
        params: per-call query parameters.
        op: the operation name for error messages.

    Returns:
        The request. It is replay-safe only for producer requests (the server deduplicates).
    """
    body = _encode(data)
    h = {"Content-Type": content_type}
    if seq is not None:
        h[H_SEQ] = seq
    if close:
        h[H_CLOSED] = "true"
    if producer is not None:
        h[H_PRODUCER_ID] = producer[0]
        h[H_PRODUCER_EPOCH] = str(producer[1])
        h[H_PRODUCER_SEQ] = str(producer[2])
    return RequestSpec(
        op,
        "POST",
        url,
        h,
        content=body,
        user_headers=headers,
        user_params=params,
        replay_safe=producer is not None,
    )


def parse_append(spec: RequestSpec, response: httpx.Response) -> AppendResult:
    """Interpret the answer to an append (plain or idempotent producer).

    Args:
        spec: the request.
        response: the response, body read.

    Returns:
        The result; a 204 to a producer request is a successful duplicate.

    Raises:
        DurableStreamError: a subclass for any status but 200 and 204.
    """
    _check(spec, response, 200, 204)
    headers = response.headers
    return AppendResult(
        next_offset=headers.get(H_NEXT_OFFSET),
        duplicate=response.status_code == 204 and H_PRODUCER_ID in spec.headers,
        stream_closed=_is_true(headers.get(H_CLOSED)),
        producer_epoch=_int_header(headers, H_PRODUCER_EPOCH),
        producer_seq=_int_header(headers, H_PRODUCER_SEQ),
        status=response.status_code,
    )


def parse_delete(spec: RequestSpec, response: httpx.Response) -> None:
    """Interpret the answer to a delete.

    Args:
        spec: the request.
        response: the response, body read.

    Raises:
        DurableStreamError: a subclass for any status but 200 and 204.
    """
    _check(spec, response, 200, 204)


def json_batch(values: Sequence[Any]) -> bytes:
    """Encode JSON values as one array body: a batch of messages for a JSON stream.

    Args:
        values: a non-empty sequence of JSON-serializable values.

    Returns:
        The compact UTF-8 JSON array.

    Raises:
        ValueError: ``values`` is empty (the server refuses empty arrays).
        TypeError: a value is not JSON-serializable.
    """
    if not values:
        raise ValueError("A JSON batch needs at least one value, got an empty sequence.")
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False).encode()


def close_request(
    url: str,
    *,
    data: bytes | str | None,
    content_type: str | None,
    headers: Mapping[str, HeaderValue] | None,
) -> RequestSpec:
    """Build the POST that closes a stream, with an optional final message.

    Args:
        url: the stream URL.
        data: a final message, or ``None``.
        content_type: the content type of the final message.
        headers: per-call headers.

    Returns:
        The request; closing is idempotent, so it is replay-safe without data.
    """
    h = {H_CLOSED: "true"}
    if content_type is not None:
        h["Content-Type"] = content_type
    content = None if data is None else _encode(data)
    return RequestSpec(
        "close", "POST", url, h, content=content, user_headers=headers, replay_safe=data is None
    )


def parse_close(spec: RequestSpec, response: httpx.Response) -> CloseResult:
    """Interpret the answer to a close.

    Args:
        spec: the request.
        response: the response, body read.

    Returns:
        The result with the final offset.

    Raises:
        DurableStreamError: a subclass for any status but 200 and 204.
    """
    _check(spec, response, 200, 204)
    return CloseResult(
        final_offset=response.headers.get(H_NEXT_OFFSET), status=response.status_code
    )


def head_request(url: str, headers: Mapping[str, HeaderValue] | None) -> RequestSpec:
    """Build the HEAD that reads stream metadata.

    Args:
        url: the stream URL.
        headers: per-call headers.

    Returns:
        The request.
    """
    return RequestSpec("head", "HEAD", url, user_headers=headers)


def parse_head(spec: RequestSpec, response: httpx.Response) -> StreamInfo:
    """Interpret the answer to a HEAD.

    Args:
        spec: the request.
        response: the response.

    Returns:
        The stream metadata.

    Raises:
        DurableStreamError: a subclass for any status but 200.
    """
    _check(spec, response, 200)
    h = response.headers
    return StreamInfo(
        content_type=h.get("Content-Type"),
        next_offset=h.get(H_NEXT_OFFSET),
        closed=_is_true(h.get(H_CLOSED)),
        ttl_seconds=_int_header(h, H_TTL),
        expires_at=h.get(H_EXPIRES_AT),
        etag=h.get("ETag"),
    )


def delete_request(url: str, headers: Mapping[str, HeaderValue] | None) -> RequestSpec:
    """Build the DELETE that removes a stream.

    Args:
        url: the stream URL.
        headers: per-call headers.

    Returns:
        The request.
    """
    return RequestSpec("delete", "DELETE", url, user_headers=headers)


# --------------------------------------------------------------------------- SSE


@dataclasses.dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event: its type (``"message"`` by default) and its data lines joined."""

    event: str
    data: str


class SSEParser:
    """An incremental ``text/event-stream`` parser: feed bytes, get complete events.

    Handles LF, CRLF and CR line endings, comments, multi-line data and events split across
    pieces. ``id`` and ``retry`` fields are ignored (the protocol resumes by offset).
    """

    __slots__ = ("_buffer", "_data", "_event", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._pending_cr = False

    def feed(self, piece: bytes) -> list[SSEEvent]:
        """Consume a piece of the body.

        Args:
            piece: the next bytes of the body.

        Returns:
            The events completed by this piece, in order.
        """
        if self._pending_cr and piece.startswith(b"\n"):
            piece = piece[1:]  # the LF of a CRLF split across pieces
        self._pending_cr = False
        buffer = self._buffer + piece
        lines = buffer.splitlines(keepends=True)
        events: list[SSEEvent] = []
        self._buffer = b""
        for raw in lines:
            if not raw.endswith((b"\n", b"\r")):
                self._buffer = raw  # an incomplete last line
                break
            if raw.endswith(b"\r"):
                self._pending_cr = raw is lines[-1]
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event = ""
            self._data = []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


# --------------------------------------------------------------------------- reads


_SENTINEL_OFFSETS: Final = frozenset({"-1", "now"})


def _forward(asked: str, answered: str, with_data: bool) -> str:
    """The offset to read on from: ``answered``, unless it would move backwards.

    The file-backed reference server can answer a read at an offset it just returned with
    an older tail (its file lags its long-poll wake-up); reading on from there would
    deliver data twice. Offsets sort as strings (§8), so an answer without data that sorts
    before the offset asked for keeps that offset.
    """
    if not with_data and asked not in _SENTINEL_OFFSETS and answered < asked:
        return asked
    return answered


@dataclasses.dataclass(slots=True)
class _ReadState:
    offset: str
    cursor: str | None = None
    up_to_date: bool = False
    closed: bool = False
    content_type: str | None = None


def _read_spec(
    url: str,
    state: _ReadState,
    live: str | None,
    headers: Mapping[str, HeaderValue] | None,
    params: Mapping[str, HeaderValue] | None,
    timeout: httpx.Timeout | None,
) -> RequestSpec:
    query = {"offset": state.offset}
    if live is not None:
        query["live"] = live
        if state.cursor is not None:
            query["cursor"] = state.cursor
    return RequestSpec(
        "read", "GET", url, params=query, user_headers=headers, user_params=params, timeout=timeout
    )


def _chunk_from_response(
    spec: RequestSpec, response: httpx.Response, state: _ReadState
) -> ReadChunk:
    _check(spec, response, 200, 204)
    h = response.headers
    next_offset = h.get(H_NEXT_OFFSET)
    if next_offset is None:
        raise MalformedResponseError(
            f"The read of {spec.url!r} got a {response.status_code} response without "
            f"{H_NEXT_OFFSET}.",
            status=response.status_code,
            url=spec.url,
        )
    if response.status_code == 200:
        state.content_type = h.get("Content-Type", state.content_type)
    data = response.content if response.status_code == 200 else b""
    if is_json_content_type(state.content_type) and data.strip() == b"[]":
        data = b""
    next_offset = _forward(state.offset, next_offset, bool(data))
    state.offset = next_offset
    state.cursor = h.get(H_CURSOR, state.cursor)
    state.up_to_date = _is_true(h.get(H_UP_TO_DATE)) or response.status_code == 204
    state.closed = _is_true(h.get(H_CLOSED))
    return ReadChunk(
        data=data,
        next_offset=next_offset,
        up_to_date=state.up_to_date,
        stream_closed=state.closed,
        cursor=state.cursor,
        content_type=state.content_type,
        status=response.status_code,
    )


def read_operation(
    policy: RetryPolicy,
    url: str,
    *,
    offset: str,
    live: LiveMode,
    headers: Mapping[str, HeaderValue] | None,
    params: Mapping[str, HeaderValue] | None,
    timeout: httpx.Timeout | None,
    content_type: str | None = None,
) -> Generator[Action, Any, None]:
    """Read a stream from ``offset``, emitting chunks, until the mode says to stop.

    Catch-up (``live=None``) stops once up to date. Live modes continue until the stream is
    closed and fully read; the caller stops earlier by no longer driving the generator. A closed
    stream ends the read at once: no request follows a closed, up-to-date response.

    Args:
        policy: the retry policy for each request.
        url: the stream URL.
        offset: the start offset (``"-1"`` for the beginning, ``"now"`` for the tail).
        live: ``None``, ``"long-poll"``, ``"sse"`` or ``"auto"`` (catch-up, then long-poll).
        headers: per-call headers.
        params: per-call query parameters.
        timeout: a per-request timeout, or ``None`` for the client's.
        content_type: the stream's content type if known; SSE needs it to tell JSON streams
            apart and sends a HEAD first without it.

    Raises:
        DurableStreamError: a subclass for unsuccessful responses and malformed data.
    """
    state = _ReadState(offset=offset, content_type=content_type)
    if live == "sse":
        if content_type is None:
            spec = head_request(url, headers)
            response = yield from send_with_retry(policy, spec)
            content_type = parse_head(spec, response).content_type
        json_mode = is_json_content_type(content_type)
        yield from _sse_operation(policy, url, state, headers, params, timeout, json_mode)
        return
    # At "now" there is nothing to catch up on: a live read starts waiting at once.
    state.up_to_date = offset == "now" and live is not None
    last: ReadChunk | None = None
    while True:
        mode = None if live is None or not state.up_to_date else "long-poll"
        spec = _read_spec(url, state, mode, headers, params, timeout)
        response = yield from send_with_retry(policy, spec)
        chunk = _chunk_from_response(spec, response, state)
        if _news(chunk, last):
            yield Emit(chunk)
            last = chunk
        if state.closed or (live is None and state.up_to_date):
            return


def _news(chunk: ReadChunk, last: ReadChunk | None) -> bool:
    """Whether a chunk tells the reader anything: data, or a changed position or state."""
    return (
        bool(chunk.data)
        or last is None
        or (chunk.next_offset, chunk.up_to_date, chunk.stream_closed)
        != (last.next_offset, last.up_to_date, last.stream_closed)
    )


def _decode_sse_data(
    spec: RequestSpec, data: str, base64_encoded: bool, json_mode: bool, items: list[Any]
) -> bytes:
    if base64_encoded:
        try:
            return base64.b64decode("".join(data.split()), validate=True)
        except binascii.Error as exc:
            raise MalformedResponseError(
                f"An SSE data event from {spec.url!r} is not valid base64: {data[:80]!r}.",
                url=spec.url,
            ) from exc
    if json_mode:
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise MalformedResponseError(
                f"An SSE data event from {spec.url!r} is not valid JSON: {data[:80]!r}.",
                url=spec.url,
            ) from exc
        items.extend(value if isinstance(value, list) else [value])
        return b""
    return data.encode("utf-8")


def _sse_control(spec: RequestSpec, data: str) -> dict[str, Any]:
    try:
        control = json.loads(data)
    except ValueError as exc:
        raise MalformedResponseError(
            f"An SSE control event from {spec.url!r} is not valid JSON: {data[:80]!r}.",
            url=spec.url,
        ) from exc
    if not isinstance(control, dict) or not isinstance(control.get("streamNextOffset"), str):
        raise MalformedResponseError(
            f"An SSE control event from {spec.url!r} has no streamNextOffset: {data[:80]!r}.",
            url=spec.url,
        )
    return control


def _sse_operation(
    policy: RetryPolicy,
    url: str,
    state: _ReadState,
    headers: Mapping[str, HeaderValue] | None,
    params: Mapping[str, HeaderValue] | None,
    timeout: httpx.Timeout | None,
    json_mode: bool,
) -> Generator[Action, Any, None]:
    idle_reconnects = 0
    while True:
        spec = _read_spec(url, state, "sse", headers, params, timeout)
        response: httpx.Response = yield from send_with_retry(policy, spec, stream=True)
        if response.status_code != 200:
            raise error_for_response(spec, response)  # the face read this body
        encoded = response.headers.get(H_SSE_ENCODING, "").lower() == "base64"
        stream_type = response.headers.get("Content-Type", "")
        if not stream_type.startswith("text/event-stream"):
            raise MalformedResponseError(
                f"An SSE read of {url!r} got content type {stream_type!r}, not "
                f"'text/event-stream'.",
                status=200,
                url=url,
            )
        progressed = yield from _sse_events(spec, response, state, encoded, json_mode)
        if state.closed:
            return
        # The server ended the connection: resume from the last offset, backing off when a
        # connection brought nothing, so a misbehaving server cannot cause a busy loop.
        idle_reconnects = 0 if progressed else idle_reconnects + 1
        delay = policy.delay(max(idle_reconnects - 1, 0)) if idle_reconnects else 0.0
        if delay is None:
            raise MalformedResponseError(
                f"The SSE connection to {url!r} kept ending without progress.", url=url
            )
        if delay:
            yield Sleep(delay)


def _sse_events(
    spec: RequestSpec,
    response: httpx.Response,
    state: _ReadState,
    encoded: bool,
    json_mode: bool,
) -> Generator[Action, Any, bool]:
    parser = SSEParser()
    pending: list[bytes] = []
    items: list[Any] = []
    progressed = False
    last: ReadChunk | None = None
    while True:
        piece: bytes | httpx.TransportError = yield NextBytes(response)
        if not isinstance(piece, bytes) or not piece:
            return progressed  # the connection ended or broke: the caller reconnects
        for event in parser.feed(piece):
            if event.event == "data":
                decoded = _decode_sse_data(spec, event.data, encoded, json_mode, items)
                if decoded:
                    pending.append(decoded)
            elif event.event == "control":
                control = _sse_control(spec, event.data)
                progressed = True
                state.offset = _forward(
                    state.offset, control["streamNextOffset"], bool(items or pending)
                )
                cursor = control.get("streamCursor")
                state.cursor = cursor if isinstance(cursor, str) else state.cursor
                state.closed = control.get("streamClosed") is True
                state.up_to_date = control.get("upToDate") is True or state.closed
                if json_mode:
                    data = (
                        json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()
                        if items
                        else b""
                    )
                    items = []
                else:
                    data = b"".join(pending)
                pending = []
                chunk = ReadChunk(
                    data=data,
                    next_offset=state.offset,
                    up_to_date=state.up_to_date,
                    stream_closed=state.closed,
                    cursor=state.cursor,
                    content_type=state.content_type,
                    status=200,
                )
                if _news(chunk, last):
                    yield Emit(chunk)
                    last = chunk
                if state.closed:
                    return progressed
            # Other event types are ignored: the protocol may add new ones.
