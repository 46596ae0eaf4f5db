"""The async face's network I/O, on asyncio itself rather than through AnyIO.

httpcore drives its connections through a *network backend*. Its default one goes through
AnyIO, whose cancel scopes around every read and write are a measurable share of a local
request (the figure is in docs/decisions.md). The async client only runs on asyncio,
so :func:`asyncio_transport` gives httpx's own transport (pooling, HTTP/1.1, TLS settings
unchanged) a backend that speaks to asyncio's transports directly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Final, cast

import httpcore
import httpx

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["AsyncioBackend", "AsyncioStream", "asyncio_transport"]

# Stop reading from the socket while this much is buffered and unread (back-pressure on
# a server streaming faster than the caller consumes).
_READ_HIGH_WATER: Final = 256 * 1024


def asyncio_transport() -> httpx.AsyncHTTPTransport:
    """An ``httpx.AsyncHTTPTransport`` whose connections run on :class:`AsyncioBackend`.

    Returns:
        The transport, with httpx's default settings.
    """
    transport = httpx.AsyncHTTPTransport()
    # httpx has no parameter for the backend; its pool keeps it in this attribute (a test
    # checks it is still there, so an httpcore that renames it fails loudly, not slowly).
    pool: Any = transport._pool
    pool._network_backend = AsyncioBackend()
    return transport


class _Connection(asyncio.Protocol):
    """Buffers what arrives and wakes the one reader or writer waiting on it."""

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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
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

    async def wait(self, timeout: float | None) -> None:
        """Wait until ``_wake``; raise ``TimeoutError`` after ``timeout`` seconds."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.waiter
        finally:
            self.waiter = None


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS, or Unix socket) connection, as httpcore reads and writes it."""

    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport = transport
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the server closed the connection."""
        connection = self._connection
        if not connection.chunks and not connection.eof:
            try:
                await connection.wait(timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(f"No data within {timeout} s.") from exc
        if connection.chunks:
            data = connection.chunks.popleft()
            if len(data) > max_bytes:
                connection.chunks.appendleft(data[max_bytes:])
                data = data[:max_bytes]
            connection.buffered -= len(data)
            if connection.paused_reading and connection.buffered <= _READ_HIGH_WATER // 4:
                connection.paused_reading = False
                self._transport.resume_reading()
            return data
        if connection.error is not None:
            raise httpcore.ReadError(str(connection.error)) from connection.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send ``buffer``, waiting (up to ``timeout``) while the socket's buffer is full."""
        if not buffer:
            return
        connection = self._connection
        if connection.eof or self._transport.is_closing():
            raise httpcore.WriteError("The connection is closed.") from connection.error
        self._transport.write(buffer)
        while connection.paused_writing and not connection.eof:
            try:
                await connection.wait(timeout)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(f"Could not send within {timeout} s.") from exc
        if connection.error is not None:
            raise httpcore.WriteError(str(connection.error)) from connection.error

    async def aclose(self) -> None:
        """Close the connection (asyncio finishes closing it in the background)."""
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade the connection to TLS (for ``https://`` URLs) and return it."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                upgraded = await loop.start_tls(
                    self._transport, self._connection, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"No TLS handshake within {timeout} s.") from exc
        except OSError as exc:  # ssl.SSLError included
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        # start_tls gives None only for a server-side upgrade.
        upgraded_transport = cast("asyncio.Transport", upgraded)
        self._connection.transport = upgraded_transport
        return AsyncioStream(upgraded_transport, self._connection)

    def get_extra_info(self, info: str) -> Any:
        """``is_readable`` (data or a close pending: not reusable), else asyncio's extras."""
        if info == "is_readable":
            return bool(self._connection.chunks) or self._connection.eof
        names = {"client_addr": "sockname", "server_addr": "peername"}
        return self._transport.get_extra_info(names.get(info, info))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens connections with the running asyncio loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to ``host:port`` (asyncio turns on TCP_NODELAY)."""
        local = None if local_address is None else (local_address, 0)
        loop = asyncio.get_running_loop()
        return await self._connect(
            lambda: loop.create_connection(_Connection, host, port, local_addr=local),
            timeout,
            socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the Unix socket at ``path``."""
        loop = asyncio.get_running_loop()
        return await self._connect(
            lambda: loop.create_unix_connection(_Connection, path), timeout, socket_options
        )

    @staticmethod
    async def _connect(
        open_connection: Callable[[], Awaitable[tuple[asyncio.BaseTransport, _Connection]]],
        timeout: float | None,
        socket_options: Iterable[Any] | None,
    ) -> AsyncioStream:
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await open_connection()
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"Could not connect within {timeout} s.") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(cast("asyncio.Transport", transport), connection)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the loop (httpcore uses it between connection retries)."""
        await asyncio.sleep(seconds)
