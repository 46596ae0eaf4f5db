"""The async face's HTTP/1.1 transport, written on asyncio itself.

httpx's own async transport goes through httpcore, h11 and AnyIO: per request on a
kept-alive connection, five event-loop iterations (three of them AnyIO lock checkpoints) and
several times the Python work of the request itself (figures in docs/benchmarks.md). The
protocol needs plain HTTP/1.1 only (no HTTP/2, upgrades, proxies), so
:class:`AsyncioTransport` speaks it directly: one write of the request, one wait for the
answer, and the head and body read by the rules of :mod:`._http1`. Kept-alive connections
are pooled per origin. httpx still builds the requests and decodes the responses (content
encodings included).
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    from collections.abc import AsyncIterator

__all__ = ["AsyncioTransport", "asyncio_transport"]

# Stop reading from the socket while this much is buffered and unread (back-pressure on
# a server streaming faster than the caller consumes).
_READ_HIGH_WATER: Final = 256 * 1024


def asyncio_transport() -> AsyncioTransport:
    """The async client's default transport.

    Returns:
        An :class:`AsyncioTransport` verifying TLS certificates as httpx does by default.
    """
    return AsyncioTransport()


class _Connection(asyncio.Protocol):
    """One connection: buffers what arrives and wakes the one reader or writer waiting on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # What arrived and is unread, as received: a read hands a chunk over uncopied.
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.paused_reading = False
        self.paused_writing = False
        self.waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH_WATER:
            cast("asyncio.Transport", self.transport).pause_reading()
            self.paused_reading = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # ------------------------------------------------------------ what the transport uses

    async def _wait(self, timeout: float | None) -> None:
        """Wait until ``_wake``; raise ``TimeoutError`` after ``timeout`` seconds."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.waiter
        finally:
            self.waiter = None

    async def read(self, timeout: float | None) -> bytes:
        """The next bytes received; ``b""`` once the server closed the connection."""
        if not self.chunks and not self.eof:
            try:
                await self._wait(timeout)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"No data within {timeout} s.") from exc
        if self.chunks:
            data = self.chunks.popleft()
            self.buffered -= len(data)
            if self.paused_reading and self.buffered <= _READ_HIGH_WATER // 4:
                self.paused_reading = False
                cast("asyncio.Transport", self.transport).resume_reading()
            return data
        if self.error is not None:
            raise httpx.ReadError(str(self.error)) from self.error
        return b""

    def unread(self, data: bytes) -> None:
        """Put back bytes read past what the caller needed."""
        if data:
            self.chunks.appendleft(data)
            self.buffered += len(data)

    async def read_until(
        self, marker: bytes, limit: int, timeout: float | None, *, first: bool = False
    ) -> bytes:
        """The bytes before ``marker`` (which is consumed); at most ``limit`` bytes.

        ``first`` tells that nothing of the response arrived yet (for the error message).
        """
        until = UntilMarker(marker, limit, first=first)
        while (found := until.feed(await self.read(timeout))) is None:
            pass
        self.unread(found[1])
        return found[0]

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send ``data``, waiting (up to ``timeout``) while the socket's buffer is full."""
        transport = cast("asyncio.Transport", self.transport)
        if self.eof or transport.is_closing():
            raise httpx.WriteError("The connection is closed.") from self.error
        transport.write(data)
        while self.paused_writing and not self.eof:
            try:
                await self._wait(timeout)
            except TimeoutError as exc:
                raise httpx.WriteTimeout(f"Could not send within {timeout} s.") from exc
        if self.error is not None:
            raise httpx.WriteError(str(self.error)) from self.error

    def reusable(self, now: float) -> bool:
        """Whether an idle connection can carry another request.

        Data or a close from the server while idle means the server dropped it.
        """
        transport = cast("asyncio.Transport", self.transport)
        return (
            not self.eof
            and not self.chunks
            and not transport.is_closing()
            and now - self.idle_since < KEEPALIVE_EXPIRY
        )

    def close(self) -> None:
        """Close the connection (asyncio finishes closing it in the background)."""
        cast("asyncio.Transport", self.transport).close()


class _Body(httpx.AsyncByteStream):
    """A response body, read from its connection as the caller iterates."""

    def __init__(
        self,
        transport: AsyncioTransport,
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

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None  # httpx iterates a body at most once
        reader = self._reader
        try:
            while not reader.done:
                for piece in reader.feed(await connection.read(self._timeout)):
                    yield piece
        finally:
            self._release()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Bytes that arrived after the body: the server broke the framing; never reuse.
            if self._reader.reusable and not connection.chunks:
                self._transport._keep(self._origin, connection)
            else:
                connection.close()
            self._transport._slots.release()

    async def aclose(self) -> None:
        """Give the connection back once the body was read, else close it."""
        self._release()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """An HTTP/1.1 ``httpx`` transport on asyncio, keeping connections alive per origin.

    Args:
        ssl_context: the TLS settings for ``https`` URLs; by default httpx's (certificates
            verified against certifi's bundle), made on the first ``https`` connection.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._idle: IdleConnections[_Connection] = IdleConnections()
        self._slots = asyncio.Semaphore(MAX_ACTIVE)  # held from request to body released

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response once its head arrived.

        Raises:
            httpx.UnsupportedProtocol: the URL's scheme is neither http nor https.
            httpx.TransportError: a subclass naming what failed (connect, write, read,
                timeout, or a response that breaks HTTP/1.1).
        """
        origin = origin_of(request)
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        await self._acquire(timeouts.get("pool"))
        try:
            connection = self._idle.take(origin)
            if connection is None:
                connection = await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._slots.release()
            raise
        try:
            await self._send(connection, request, timeouts.get("write"))
            raw = await connection.read_until(b"\r\n\r\n", MAX_HEAD, read_timeout, first=True)
            while (head := final_head(raw, request.method)) is None:  # an interim 1xx
                raw = await connection.read_until(b"\r\n\r\n", MAX_HEAD, read_timeout)
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

    async def _acquire(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout(
                f"{MAX_ACTIVE} requests were in flight for {timeout} s; none finished."
            ) from exc

    async def _send(
        self, connection: _Connection, request: httpx.Request, timeout: float | None
    ) -> None:
        writes = RequestWrites(request)
        await connection.write(writes.first, timeout)
        if writes.then:
            await connection.write(writes.then, timeout)
        if writes.streamed:
            async for data in cast("httpx.AsyncByteStream", request.stream):
                if piece := writes.piece(data):
                    await connection.write(piece, timeout)
            if writes.end:
                await connection.write(writes.end, timeout)

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            context = self._ssl_context
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                # asyncio turns TCP_NODELAY on for TCP connections.
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"Could not connect to {host}:{port} within {timeout} s."
            ) from exc
        except OSError as exc:  # ssl.SSLError included
            raise httpx.ConnectError(f"Could not connect to {host}:{port}: {exc}") from exc
        return connection

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        """Keep a connection whose response was fully read, for the next request."""
        if not self._idle.keep(origin, connection):
            connection.close()

    async def aclose(self) -> None:
        """Close the idle connections; those in use close once their response is done."""
        self._idle.close()
