"""HTTP/1.1 without I/O: the request head to write, the response head read, the body framing.

Both faces' transports (:mod:`._asyncio_network`, :mod:`._socket_network`) send and receive
through their own sockets and share this: what goes on the wire and what an answer means.
"""

from __future__ import annotations

import re
from typing import Final

import httpx

__all__ = [
    "BODY_IN_HEAD_WRITE",
    "KEEPALIVE_EXPIRY",
    "MAX_ACTIVE",
    "MAX_HEAD",
    "MAX_IDLE",
    "MAX_LINE",
    "Origin",
    "ResponseHead",
    "chunk_size",
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
