"""The one-request operations: the request each builds, and how its answer is read.

Create, append, close, HEAD and delete are each one request (retried by
:func:`._retry.send_with_retry`); these pure functions build the :class:`RequestSpec` and
interpret the response.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ._requests import (
    H_CLOSED,
    H_EXPIRES_AT,
    H_NEXT_OFFSET,
    H_PRODUCER_EPOCH,
    H_PRODUCER_ID,
    H_PRODUCER_SEQ,
    H_SEQ,
    H_TTL,
    HeaderValue,
    RequestSpec,
    header_is_true,
    int_header,
    producer_headers,
)
from ._results import AppendResult, CloseResult, CreateResult, StreamInfo
from ._status import check_status

__all__ = [
    "append_request",
    "close_request",
    "create_request",
    "delete_request",
    "head_request",
    "json_batch",
    "parse_append",
    "parse_close",
    "parse_create",
    "parse_delete",
    "parse_head",
]


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
    check_status(spec, response, 200, 201)
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
        h.update(producer_headers(*producer))
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
    check_status(spec, response, 200, 204)
    headers = response.headers
    return AppendResult(
        next_offset=headers.get(H_NEXT_OFFSET),
        duplicate=response.status_code == 204 and H_PRODUCER_ID in spec.headers,
        stream_closed=header_is_true(headers.get(H_CLOSED)),
        producer_epoch=int_header(headers, H_PRODUCER_EPOCH),
        producer_seq=int_header(headers, H_PRODUCER_SEQ),
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
    check_status(spec, response, 200, 204)


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
    check_status(spec, response, 200, 204)
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
    check_status(spec, response, 200)
    h = response.headers
    return StreamInfo(
        content_type=h.get("Content-Type"),
        next_offset=h.get(H_NEXT_OFFSET),
        closed=header_is_true(h.get(H_CLOSED)),
        ttl_seconds=int_header(h, H_TTL),
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
