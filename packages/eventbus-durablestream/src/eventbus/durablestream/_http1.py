"""HTTP/1.1 without I/O: the request head to write, the response head read, the body framing.

Both faces' transports (:mod:`._asyncio_network`, :mod:`._socket_network`) send and receive
through their own sockets and share this: what goes on the wire, what an answer means, how
far to read for a head, and which kept-alive connections may carry the next request.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "BODY_IN_HEAD_WRITE",
    "KEEPALIVE_EXPIRY",
    "MAX_ACTIVE",
    "MAX_HEAD",
    "MAX_IDLE",
    "MAX_LINE",
    "BodyReader",
    "IdleConnections",
    "Origin",
    "RequestWrites",
    "ResponseHead",
    "UntilMarker",
    "chunk_size",
    "final_head",
    "origin_of",
    "request_head",
]

MAX_HEAD: Final = 64 * 1024  # a response head (status line and headers) larger is refused
MAX_LINE: Final = 4 * 1024  # a chunk-size or trailer line larger is refused
# Requests in flight at once per transport, as httpx limits its connections; more wait.
MAX_ACTIVE: Final = 100
MAX_IDLE: Final = 20  # kept-alive connections per origin, as httpx keeps by default
KEEPALIVE_EXPIRY: Final = 5.0  # seconds an idle connection is kept, as httpx does
BODY_IN_HEAD_WRITE: Final = 64 * 1024  # smaller bodies go out in the same write as the head
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Origin = tuple[str, str, int]
"""Scheme, host and port: what a kept-alive connection can serve."""


def origin_of(request: httpx.Request) -> Origin:
    """The origin ``request`` goes to.

    Raises:
        httpx.UnsupportedProtocol: the URL's scheme is neither http nor https.
    """
    url = request.url
    scheme = url.scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(
            f"The URL {str(url)!r} has the scheme {scheme!r}; only http and https work here."
        )
    return (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])


def request_head(request: httpx.Request) -> bytes:
    """The request line and headers of ``request``, as sent.

    Raises:
        httpx.LocalProtocolError: a header contains a line break.
    """
    raw = request.headers.raw
    head = b"".join(
        [
            request.method.encode("ascii"),
            b" ",
            request.url.raw_path,
            b" HTTP/1.1\r\n",
            *[b"%s: %s\r\n" % pair for pair in raw],
            b"\r\n",
        ]
    )
    # A line break inside a header would start a header (or a request) of its own.
    if head.count(b"\n") != len(raw) + 2 or head.count(b"\r") != len(raw) + 2:
        raise httpx.LocalProtocolError(
            "A header name or value contains a line break; refusing to send it."
        )
    return head


def chunk_size(line: bytes) -> int:
    """The size of a chunk from its chunk-size line (extensions ignored).

    Raises:
        httpx.RemoteProtocolError: the line is not a hexadecimal size.
    """
    size_text = line.split(b";", 1)[0].strip(b" \t")
    if not _CHUNK_SIZE.fullmatch(size_text):
        raise httpx.RemoteProtocolError(
            f"The server sent an invalid chunk size line: {line[:100]!r}."
        )
    return int(size_text, 16)


class ResponseHead:
    """A parsed response head and the framing of the body that follows it.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: the header fields, as received.
        length: the body's length; ``None`` for chunked, ``-1`` until the server closes.
        keep_alive: whether the connection can carry another request after this body.

    Raises:
        httpx.RemoteProtocolError: a malformed status line, header line or Content-Length.
    """

    __slots__ = ("headers", "keep_alive", "length", "reason", "status")

    def __init__(self, head: bytes, method: str) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        version = parts[0]
        if (
            version not in (b"HTTP/1.1", b"HTTP/1.0")
            or len(parts) < 2
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise httpx.RemoteProtocolError(
                f"The server sent an invalid status line: {lines[0][:100]!r}."
            )
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) == 3 else b""
        self.headers: list[tuple[bytes, bytes]] = []
        lengths: set[bytes] = set()
        codings = b""
        connection = b""
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            # No colon, an empty name, space before the colon or a folded line: malformed.
            if not colon or not name or name[-1:].isspace() or name[:1].isspace():
                raise httpx.RemoteProtocolError(
                    f"The server sent an invalid header line: {line[:100]!r}."
                )
            value = value.strip(b" \t")
            self.headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                lengths.update(part.strip() for part in value.split(b","))
            elif lower == b"transfer-encoding":
                codings += b"," + value.lower()
            elif lower == b"connection":
                connection += b"," + value.lower()
        tokens = {token.strip() for token in connection.split(b",")}
        self.keep_alive = (
            b"close" not in tokens if version == b"HTTP/1.1" else b"keep-alive" in tokens
        )
        # Body framing, in the order RFC 9112 section 6.3 gives.
        self.length: int | None
        if method == "HEAD" or self.status in (204, 304) or self.status < 200:
            self.length = 0
        elif codings:
            self.length = None if codings.rsplit(b",", 1)[-1].strip() == b"chunked" else -1
        elif lengths:
            length = lengths.pop()
            if lengths or not length.isdigit():
                raise httpx.RemoteProtocolError(
                    f"The server sent an invalid Content-Length: {length!r}."
                )
            self.length = int(length)
        else:
            self.length = -1
        if self.length == -1:
            self.keep_alive = False


def final_head(raw: bytes, method: str) -> ResponseHead | None:
    """The response head in ``raw``; ``None`` for an interim 1xx answer (100 Continue,
    103 Early Hints), which the caller skips to read the next head.

    Raises:
        httpx.RemoteProtocolError: a malformed head, or a switch of protocols (101).
    """
    head = ResponseHead(raw, method)
    if head.status == 101:
        raise httpx.RemoteProtocolError("The server switched protocols (101).")
    return head if head.status >= 200 else None


class UntilMarker:
    """What a transport reads until a marker (a head's blank line, a chunk's line end).

    The transport feeds it each read; it answers the bytes before the marker and those
    after it (to put back), or ``None`` for more.

    Args:
        marker: the bytes that end what is wanted (consumed, not returned).
        limit: the most bytes allowed before the marker.
        first: nothing of the response has arrived yet (for the error message).
    """

    __slots__ = ("_buffer", "_first", "_limit", "_marker")

    def __init__(self, marker: bytes, limit: int, *, first: bool) -> None:
        self._marker, self._limit, self._first = marker, limit, first
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Add one read: ``(before, after)`` the marker once it arrived, else ``None``.

        Raises:
            httpx.RemoteProtocolError: ``data`` is empty (the server closed the
                connection), or ``limit`` bytes passed without the marker.
        """
        buffer = self._buffer
        if not data:
            raise httpx.RemoteProtocolError(
                "The server closed the connection without sending a response."
                if self._first and not buffer
                else "The server closed the connection in the middle of a response."
            )
        # Look again only where the marker can end: a head seldom spans reads.
        start = max(len(buffer) - len(self._marker) + 1, 0)
        buffer += data
        end = buffer.find(self._marker, start)
        if end >= 0:
            return buffer[:end], buffer[end + len(self._marker) :]
        if len(buffer) > self._limit:
            raise httpx.RemoteProtocolError(
                f"The server sent a line or a response head over {self._limit} bytes."
            )
        self._buffer = buffer
        return None


class RequestWrites:
    """What a transport writes for a request: the head, then the body as its framing says.

    Attributes:
        first: the head, with the body when it is at most ``BODY_IN_HEAD_WRITE`` bytes
            (one write instead of two).
        then: the body when it did not go with the head; ``b""`` else.
        streamed: the body is a stream, not read yet: the transport writes each piece
            through :meth:`piece`, then :attr:`end`.
        end: what ends a streamed body: the last chunk when chunked; ``b""`` else.

    Raises:
        httpx.LocalProtocolError: a header contains a line break.
    """

    __slots__ = ("_chunked", "end", "first", "streamed", "then")

    def __init__(self, request: httpx.Request) -> None:
        head = request_head(request)
        try:
            body = request.content
        except httpx.RequestNotRead:  # a stream: written piece by piece after the head
            self.first, self.then, self.streamed = head, b"", True
            self._chunked = b"chunked" in request.headers.get("Transfer-Encoding", "").encode()
            self.end = b"0\r\n\r\n" if self._chunked else b""
            return
        self.streamed, self._chunked, self.end = False, False, b""
        if len(body) <= BODY_IN_HEAD_WRITE:
            self.first, self.then = head + body, b""
        else:
            self.first, self.then = head, body

    def piece(self, data: bytes) -> bytes:
        """One piece of a streamed body as written: a chunk when chunked; ``b""`` for an
        empty piece (nothing to write, and an empty chunk would end the body)."""
        if not data:
            return b""
        return b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data


# The states of a BodyReader: what the next bytes received are.
_DATA: Final = 0  # body bytes, ``_size`` more of them (all of a Content-Length body)
_UNTIL_CLOSE: Final = 1  # body bytes until the server closes the connection
_SIZE: Final = 2  # a chunk-size line
_CHUNK_END: Final = 3  # the empty line after a chunk's data
_TRAILER: Final = 4  # a trailer field line, or the empty line ending the body
_DONE: Final = 5  # past the body: bytes here are surplus


class BodyReader:
    """The framing of one response body, without I/O.

    The transport hands it each read through :meth:`feed`, passes on the body pieces it
    answers, and reads again until :attr:`done`; then :attr:`reusable` tells whether the
    connection can be kept.

    Args:
        head: the response head, which gives the framing (Content-Length, chunked, or
            until the server closes) and whether the server keeps the connection.
    """

    __slots__ = ("_chunked", "_data", "_eof", "_keep_alive", "_line", "_pos", "_size", "_state")

    def __init__(self, head: ResponseHead) -> None:
        self._keep_alive = head.keep_alive
        self._data = b""  # the last read fed; ``_pos`` is how far the framing took it
        self._pos = 0
        self._eof = False
        self._line: UntilMarker | None = None  # the line being read, in the line states
        length = head.length
        self._chunked = length is None
        self._size = 0
        if length is None:
            self._state = _SIZE
        elif length >= 0:
            self._state, self._size = (_DATA, length) if length else (_DONE, 0)
        else:
            self._state = _UNTIL_CLOSE

    @property
    def done(self) -> bool:
        """Whether the whole body was read (for a chunked one, its trailer too)."""
        return self._state == _DONE

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry another request: the body was read, the
        server keeps the connection, and it sent nothing past the body."""
        return self._state == _DONE and self._keep_alive and self._pos == len(self._data)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The body's pieces (never empty) in ``data``, the next read; ``b""``: the server
        closed the connection. Take them all before the next read.

        Raises:
            httpx.RemoteProtocolError: the server closed the connection before the end of
                the body, or sent an invalid chunk size, a chunk longer than its size, or
                a line over ``MAX_LINE`` bytes (after the pieces before the fault).
        """
        self._data, self._pos, self._eof = data, 0, not data
        while (piece := self._next()) is not None:
            yield piece

    def _next(self) -> bytes | None:
        """The next piece of what was fed; ``None``: done, or all of it was taken."""
        while True:
            state = self._state
            data, pos = self._data, self._pos
            if state == _DONE:
                return None
            if pos == len(data):
                if not self._eof:
                    return None
                if state == _DATA:
                    raise httpx.RemoteProtocolError(
                        f"The server closed the connection {self._size} bytes before the"
                        " end of the body."
                    )
                if state == _UNTIL_CLOSE:
                    self._state = _DONE
                    return None
                # A line cut short: UntilMarker raises the message for it.
                self._line_state().feed(b"")
            if state == _DATA:
                size = self._size
                end = pos + size
                # Hand the read over uncopied when it is all body (the common case).
                piece = data if pos == 0 and end >= len(data) else data[pos:end]
                self._pos = pos + len(piece)
                self._size = size - len(piece)
                if not self._size:
                    self._state = _CHUNK_END if self._chunked else _DONE
                return piece
            if state == _UNTIL_CLOSE:
                self._pos = len(data)
                return data[pos:] if pos else data
            found = self._line_state().feed(data[pos:] if pos else data)
            if found is None:
                self._pos = len(data)
                return None
            line, self._data, self._pos = found[0], found[1], 0
            self._line = None
            if state == _SIZE:
                size = chunk_size(line)
                self._state, self._size = (_DATA, size) if size else (_TRAILER, 0)
            elif state == _CHUNK_END:
                if line:
                    raise httpx.RemoteProtocolError("The server sent a chunk longer than its size.")
                self._state = _SIZE
            elif not line:  # the empty line after the trailer fields (none matter here)
                self._state = _DONE

    def _line_state(self) -> UntilMarker:
        line = self._line
        if line is None:
            line = self._line = UntilMarker(b"\r\n", MAX_LINE, first=False)
        return line


class _Kept(Protocol):
    """What :class:`IdleConnections` needs of a connection."""

    idle_since: float

    def reusable(self, now: float) -> bool:
        """Whether it can carry another request at ``now`` (monotonic seconds)."""
        ...

    def close(self) -> None:
        """Close it."""
        ...


_C = TypeVar("_C", bound=_Kept)


class IdleConnections(Generic[_C]):
    """The kept-alive connections of one transport, per origin, newest used first.

    Not locked: the blocking transport, whose threads share it, holds its lock around
    each call; the asyncio one calls it from its loop only.
    """

    __slots__ = ("_idle", "closed")

    def __init__(self) -> None:
        self._idle: dict[Origin, list[_C]] = {}
        self.closed = False

    def take(self, origin: Origin) -> _C | None:
        """A connection to ``origin`` that can carry a request; stale ones are closed."""
        idle = self._idle.get(origin)
        if idle:
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                if connection.reusable(now):
                    return connection
                connection.close()
        return None

    def keep(self, origin: Origin, connection: _C) -> bool:
        """Keep a connection whose response was fully read; ``False``: the caller closes
        it (the transport is closed, or ``MAX_IDLE`` are kept already)."""
        idle = None if self.closed else self._idle.setdefault(origin, [])
        if idle is None or len(idle) >= MAX_IDLE:
            return False
        connection.idle_since = time.monotonic()
        idle.append(connection)
        return True

    def kept(self, origin: Origin) -> list[_C]:
        """The connections kept for ``origin`` now, oldest first (a copy)."""
        return list(self._idle.get(origin, ()))

    def __len__(self) -> int:
        """How many connections are kept, for every origin together."""
        return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close every idle connection; connections handed back later are not kept."""
        self.closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
