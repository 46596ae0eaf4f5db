"""The read operations: catch-up and live reads, and the one long-poll a store's tail waits on.

A live read catches up, then long-polls; SSE is dispatched to :mod:`._sse`.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import httpx

from ._actions import Action, Emit
from ._errors import MalformedResponseError
from ._operations import head_request, parse_head
from ._read_state import ReadState, forward, is_news, read_spec
from ._requests import (
    H_CLOSED,
    H_CURSOR,
    H_NEXT_OFFSET,
    H_UP_TO_DATE,
    HeaderValue,
    LiveMode,
    RequestSpec,
    header_is_true,
    is_json_content_type,
)
from ._results import ReadChunk
from ._retry import RetryPolicy, send_with_retry
from ._sse import sse_operation
from ._status import check_status

__all__ = ["chunk_from_response", "long_poll_operation", "read_operation"]


def chunk_from_response(spec: RequestSpec, response: httpx.Response, state: ReadState) -> ReadChunk:
    check_status(spec, response, 200, 204)
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
    next_offset = forward(state.offset, next_offset, bool(data))
    state.offset = next_offset
    state.cursor = h.get(H_CURSOR, state.cursor)
    state.up_to_date = header_is_true(h.get(H_UP_TO_DATE)) or response.status_code == 204
    state.closed = header_is_true(h.get(H_CLOSED))
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
    state = ReadState(offset=offset, content_type=content_type)
    if live == "sse":
        if content_type is None:
            spec = head_request(url, headers)
            response = yield from send_with_retry(policy, spec)
            content_type = parse_head(spec, response).content_type
        json_mode = is_json_content_type(content_type)
        yield from sse_operation(policy, url, state, headers, params, timeout, json_mode)
        return
    # At "now" there is nothing to catch up on: a live read starts waiting at once.
    state.up_to_date = offset == "now" and live is not None
    last: ReadChunk | None = None
    while True:
        mode = None if live is None or not state.up_to_date else "long-poll"
        spec = read_spec(url, state, mode, headers, params, timeout)
        response = yield from send_with_retry(policy, spec)
        chunk = chunk_from_response(spec, response, state)
        if is_news(chunk, last):
            yield Emit(chunk)
            last = chunk
        if state.closed or (live is None and state.up_to_date):
            return


def long_poll_operation(
    policy: RetryPolicy,
    url: str,
    *,
    offset: str,
    cursor: str | None,
) -> Generator[Action, Any, None]:
    """Send one long-poll request from ``offset`` and emit the one chunk it brings.

    Unlike a live :func:`read_operation` it does not catch up first: the server answers a
    long-poll at once when there is data after ``offset``, else when data arrives or its
    long-poll period ends (an empty chunk).

    Args:
        policy: the retry policy for the request.
        url: the stream URL.
        offset: the server offset to wait at.
        cursor: the server's cursor from the previous long-poll, echoed, or ``None``.

    Raises:
        DurableStreamError: a subclass for unsuccessful responses.
    """
    state = ReadState(offset=offset, cursor=cursor)
    spec = read_spec(url, state, "long-poll", None, None, None)
    response = yield from send_with_retry(policy, spec)
    yield Emit(chunk_from_response(spec, response, state))
