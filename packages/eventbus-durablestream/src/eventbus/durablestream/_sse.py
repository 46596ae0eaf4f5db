"""Server-sent events: the ``text/event-stream`` parser and the SSE read operation.

The operation follows a stream over SSE, turning each ``control`` event (with the data events
before it) into one :class:`ReadChunk`, and reconnects from the last offset when the server
ends the connection.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Generator, Mapping
from typing import Any

import httpx

from ._actions import Action, Emit, NextBytes, Sleep
from ._errors import MalformedResponseError
from ._read_state import ReadState, forward, is_news, read_spec
from ._requests import H_SSE_ENCODING, HeaderValue, RequestSpec
from ._results import ReadChunk
from ._retry import RetryPolicy, send_with_retry
from ._status import error_for_response

__all__ = ["SSEEvent", "SSEParser", "sse_operation"]


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


def sse_operation(
    policy: RetryPolicy,
    url: str,
    state: ReadState,
    headers: Mapping[str, HeaderValue] | None,
    params: Mapping[str, HeaderValue] | None,
    timeout: httpx.Timeout | None,
    json_mode: bool,
) -> Generator[Action, Any, None]:
    idle_reconnects = 0
    while True:
        spec = read_spec(url, state, "sse", headers, params, timeout)
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
    state: ReadState,
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
                state.offset = forward(
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
                if is_news(chunk, last):
                    yield Emit(chunk)
                    last = chunk
                if state.closed:
                    return progressed
            # Other event types are ignored: the protocol may add new ones.
