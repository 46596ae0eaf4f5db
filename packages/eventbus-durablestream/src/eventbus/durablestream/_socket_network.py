"""The blocking face's HTTP/1.1 transport, on plain sockets.

httpx's own transport goes through httpcore and h11, several times the Python work of the
request itself (figures in docs/benchmarks.md). :class:`SocketTransport` writes the request
in one ``sendall``, reads the answer with ``recv`` and frames it with :mod:`._http1`, the
same rules the asyncio face's transport uses. Kept-alive connections are pooled per origin;
the pool is shared by threads.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import TYPE_CHECKING, Final, cast

import httpx

from ._http1 import (
    KEEPALIVE_EXPIRY,
    MAX_ACTIVE,
    MAX_HEAD,
    BodyReader,
    IdleConnections,
    Origin,
    RequestWrites,
    ResponseHead,
    UntilMarker,
    final_head,
    origin_of,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

__all__ = ["SocketTransport", "socket_transport"]

_READ_SIZE: Final = 256 * 1024


def socket_transport() -> SocketTransport:
    """The blocking client's default transport.

    Returns:
        A :class:`SocketTransport` verifying TLS certificates as httpx does by default.
    """
    return SocketTransport()


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has data or a close waiting, without waiting."""
    if not hasattr(select, "poll"):  # pragma: no cover - Windows has no poll
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()  # select() would refuse descriptors past FD_SETSIZE
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Connection:
    """One connection and the bytes received past what was read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""
        self.idle_since = 0.0

    def read(self, timeout: float | None) -> bytes:
        """The next bytes received; ``b""`` once the server closed the connection."""
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(_READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"No data within {timeout} s.") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc

    def unread(self, data: bytes) -> None:
        """Put back bytes read past what the caller needed."""
        self.pending = data + self.pending

    def read_until(
        self, marker: bytes, limit: int, timeout: float | None, *, first: bool = False
    ) -> bytes:
        """The bytes before ``marker`` (which is consumed); at most ``limit`` bytes.

        ``first`` tells that nothing of the response arrived yet (for the error message).
        """
        until = UntilMarker(marker, limit, first=first)
        while (found := until.feed(self.read(timeout))) is None:
            pass
        self.unread(found[1])
        return found[0]

    def write(self, data: bytes, timeout: float | None) -> None:
        """Send all of ``data`` within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(f"Could not send within {timeout} s.") from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc)) from exc

    def reusable(self, now: float) -> bool:
        """Whether an idle connection can carry another request.

        Data or a close from the server while idle means the server dropped it.
        """
        return (
            not self.pending
            and now - self.idle_since < KEEPALIVE_EXPIRY
            and not _readable(self.sock)
        )

    def close(self) -> None:
        self.sock.close()


class _Body(httpx.SyncByteStream):
    """A response body, read from its connection as the caller iterates."""

    def __init__(
        self,
        transport: SocketTransport,
        origin: Origin,
        connection: _Connection,
        head: ResponseHead,
        timeout: float | None,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: _Connection | None = connection
        self._reader = BodyReader(head)
        self._timeout = timeout

    def __iter__(self) -> Iterator[bytes]:
        connection = self._connection
        assert connection is not None  # httpx iterates a body at most once
        reader = self._reader
        try:
            while not reader.done:
                yield from reader.feed(connection.read(self._timeout))
        finally:
            self.close()

    def close(self) -> None:
        """Give the connection back once the body was read, else close it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            # The reader took every byte read so far: what it left is its surplus.
            if self._reader.reusable:
                self._transport._keep(self._origin, connection)
            else:
                connection.close()
            self._transport._slots.release()


class SocketTransport(httpx.BaseTransport):
    """An HTTP/1.1 ``httpx`` transport on blocking sockets, keeping connections per origin.

    Args:
        ssl_context: the TLS settings for ``https`` URLs; by default httpx's (certificates
            verified against certifi's bundle), made on the first ``https`` connection.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._idle: IdleConnections[_Connection] = IdleConnections()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_ACTIVE)  # held from request to body released

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response once its head arrived.

        Raises:
            httpx.UnsupportedProtocol: the URL's scheme is neither http nor https.
            httpx.TransportError: a subclass naming what failed (connect, write, read,
                timeout, or a response that breaks HTTP/1.1).
        """
        origin = origin_of(request)
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        pool_timeout = timeouts.get("pool")
        if not self._slots.acquire(timeout=pool_timeout):
            raise httpx.PoolTimeout(
                f"{MAX_ACTIVE} requests were in flight for {pool_timeout} s; none finished."
            )
        try:
            with self._lock:
                connection = self._idle.take(origin)
            if connection is None:
                connection = self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._slots.release()
            raise
        try:
            self._send(connection, request, timeouts.get("write"))
            raw = connection.read_until(b"\r\n\r\n", MAX_HEAD, read_timeout, first=True)
            while (head := final_head(raw, request.method)) is None:  # an interim 1xx
                raw = connection.read_until(b"\r\n\r\n", MAX_HEAD, read_timeout)
        except BaseException:
            connection.close()  # half a request or response on it: never reuse it
            self._slots.release()
            raise
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=_Body(self, origin, connection, head, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    @staticmethod
    def _send(connection: _Connection, request: httpx.Request, timeout: float | None) -> None:
        writes = RequestWrites(request)
        connection.write(writes.first, timeout)
        if writes.then:
            connection.write(writes.then, timeout)
        if writes.streamed:
            for data in cast("httpx.SyncByteStream", request.stream):
                if piece := writes.piece(data):
                    connection.write(piece, timeout)
            if writes.end:
                connection.write(writes.end, timeout)

    def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"Could not connect to {host}:{port} within {timeout} s."
            ) from exc
        except OSError as exc:
            raise httpx.ConnectError(f"Could not connect to {host}:{port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            try:  # the handshake runs within the connect timeout set above
                sock = self._ssl_context.wrap_socket(sock, server_hostname=host)
            except TimeoutError as exc:
                sock.close()
                raise httpx.ConnectTimeout(f"No TLS handshake within {timeout} s.") from exc
            except OSError as exc:  # ssl.SSLError included
                sock.close()
                raise httpx.ConnectError(f"Could not connect to {host}:{port}: {exc}") from exc
        return _Connection(sock)

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        """Keep a connection whose response was fully read, for the next request."""
        with self._lock:
            kept = self._idle.keep(origin, connection)
        if not kept:
            connection.close()

    def close(self) -> None:
        """Close the idle connections; those in use close once their response is done."""
        with self._lock:
            self._idle.close()
