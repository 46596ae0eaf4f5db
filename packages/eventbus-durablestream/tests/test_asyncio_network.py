"""The asyncio network backend of the async face: real sockets, real TLS, real faults."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpcore
import httpx
import pytest
import trustme

from eventbus.durablestream import AsyncDurableStreamClient
from eventbus.durablestream._asyncio_network import (
    _READ_HIGH_WATER,
    AsyncioBackend,
    AsyncioStream,
    asyncio_transport,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def tcp_server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None, unix_path: str | None = None
) -> AsyncIterator[int]:
    """A local server running ``handler`` for each connection; yields its port.

    With ``unix_path``, it listens on that Unix socket instead (and yields 0).
    """
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        await handler(reader, writer)

    if unix_path is not None:
        server = await asyncio.start_unix_server(serve, unix_path)
    else:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield 0 if unix_path is not None else server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:  # no connection outlives its test
            writer.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0), as a crashed server or a middlebox does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(OK)
    await writer.drain()
    await reader.read()  # until the client closes
    writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


async def connect(port: int, **kwargs: object) -> httpcore.AsyncNetworkStream:
    return await AsyncioBackend().connect_tcp("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_the_async_client_uses_the_asyncio_backend_by_default() -> None:
    client = AsyncDurableStreamClient("http://127.0.0.1:1")
    # The attribute asyncio_transport sets: if httpcore renames it, this fails.
    assert isinstance(client._transport._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]
    await client.close()


@pytest.mark.asyncio
async def test_a_request_goes_through_httpx_on_the_backend() -> None:
    async with tcp_server(answer_ok) as port, asyncio_transport() as transport:
        response = await transport.handle_async_request(
            httpx.Request("GET", f"http://127.0.0.1:{port}/")
        )
        assert (response.status_code, await response.aread()) == (200, b"ok")


@pytest.mark.asyncio
async def test_a_silent_server_gives_a_read_timeout() -> None:
    async with tcp_server(never_answer) as port, asyncio_transport() as transport:
        request = httpx.Request(
            "GET",
            f"http://127.0.0.1:{port}/",
            extensions={"timeout": httpx.Timeout(0.05).as_dict()},
        )
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)


@pytest.mark.asyncio
async def test_a_closed_port_gives_a_connect_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(httpcore.ConnectError):
        await connect(port, timeout=5)


@pytest.mark.asyncio
async def test_a_connect_that_cannot_finish_in_time_gives_a_connect_timeout() -> None:
    # A bare listening socket: the attempt is cut off before any loop iteration could
    # finish it, and nothing on the server side needs cleaning up.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(httpcore.ConnectTimeout):
            await connect(listener.getsockname()[1], timeout=0)


@pytest.mark.asyncio
async def test_socket_options_extras_and_partial_reads() -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        await reader.read()
        writer.close()

    async with tcp_server(greet) as port:
        stream = await connect(
            port, socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)], timeout=5
        )
        sock = stream.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
        assert stream.get_extra_info("ssl_object") is None
        assert await stream.read(2, timeout=5) == b"he"
        assert stream.get_extra_info("is_readable")  # unread bytes: not reusable
        assert await stream.read(100, timeout=5) == b"llo"
        assert not stream.get_extra_info("is_readable")
        await stream.write(b"", timeout=5)  # nothing to send: nothing happens
        await stream.aclose()
    await AsyncioBackend().sleep(0)


@pytest.mark.asyncio
async def test_a_server_close_reads_as_end_and_then_refuses_writes() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with tcp_server(hang_up) as port:
        stream = await connect(port, timeout=5)
        assert await stream.read(10, timeout=5) == b""
        assert stream.get_extra_info("is_readable")  # closed by the server: not reusable
        with pytest.raises(httpcore.WriteError, match="closed"):
            await stream.write(b"x", timeout=5)
        await stream.aclose()


async def _reset_by_server(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, started: asyncio.Event
) -> None:
    await reader.readexactly(1)  # the client has started; leave the rest unread
    started.set()
    await asyncio.sleep(0.05)
    reset(writer)


@pytest.mark.asyncio
async def test_a_reset_connection_gives_a_read_error() -> None:
    started = asyncio.Event()
    async with tcp_server(lambda r, w: _reset_by_server(r, w, started)) as port:
        stream = await connect(port, timeout=5)
        await stream.write(b"x" * 100, timeout=5)
        with pytest.raises(httpcore.ReadError):
            await stream.read(10, timeout=5)
        await stream.aclose()


@pytest.mark.asyncio
async def test_a_full_socket_waits_then_times_out_or_fails_on_reset() -> None:
    started = asyncio.Event()
    stop = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)
        started.set()
        await stop.wait()
        reset(writer)

    big = b"x" * (32 * 1024 * 1024)  # more than every socket buffer between the two ends
    async with tcp_server(stall) as port:
        stream = await connect(port, timeout=5)
        with pytest.raises(httpcore.WriteTimeout):
            await stream.write(big, timeout=0.1)
        stop.set()  # now the server resets the connection while the client waits to send
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more", timeout=5)
        await stream.aclose()


@pytest.mark.asyncio
async def test_a_write_waits_for_a_busy_server_and_then_completes() -> None:
    size = 32 * 1024 * 1024
    received = asyncio.get_running_loop().create_future()

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)  # busy: the client's socket buffers fill meanwhile
        total = 0
        while total < size:
            total += len(await reader.read(1024 * 1024))
        received.set_result(total)

    async with tcp_server(late_reader) as port:
        stream = await connect(port, timeout=5)
        assert isinstance(stream, AsyncioStream)
        await stream.write(b"z" * size, timeout=10)
        assert await received == size
        assert not stream._connection.paused_writing
        await stream.aclose()


@pytest.mark.asyncio
async def test_a_slow_reader_pauses_the_socket_and_resumes_it() -> None:
    total = 4 * _READ_HIGH_WATER

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"y" * total)
        await writer.drain()
        writer.close()

    async with tcp_server(flood) as port:
        stream = await connect(port, timeout=5)
        assert isinstance(stream, AsyncioStream)
        connection = stream._connection
        for _ in range(500):  # let the data arrive, unread
            if connection.paused_reading:
                break
            await asyncio.sleep(0.01)
        assert connection.paused_reading
        received = 0
        while chunk := await stream.read(64 * 1024, timeout=5):
            received += len(chunk)
        assert received == total
        assert not connection.paused_reading
        await stream.aclose()


@pytest.mark.asyncio
async def test_a_unix_socket_connection() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "s.sock")
        async with tcp_server(answer_ok, unix_path=path):
            stream = await AsyncioBackend().connect_unix_socket(path, timeout=5)
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            assert await stream.read(100, timeout=5) == OK
            await stream.aclose()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.asyncio
async def test_https_through_start_tls(authority: trustme.CA) -> None:
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with tcp_server(answer_ok, _server_context(authority)) as port:
        stream = await connect(port, timeout=5)
        secure = await stream.start_tls(client_context, server_hostname="127.0.0.1", timeout=5)
        assert secure.get_extra_info("ssl_object") is not None
        await secure.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert await secure.read(100, timeout=5) == OK
        await secure.aclose()


@pytest.mark.asyncio
async def test_an_untrusted_certificate_is_a_connect_error(authority: trustme.CA) -> None:
    async with tcp_server(answer_ok, _server_context(authority)) as port:
        stream = await connect(port, timeout=5)
        with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await stream.start_tls(ssl.create_default_context(), "127.0.0.1", timeout=5)


@pytest.mark.asyncio
async def test_a_server_that_never_handshakes_is_a_connect_timeout() -> None:
    async with tcp_server(never_answer) as port:
        stream = await connect(port, timeout=5)
        with pytest.raises(httpcore.ConnectTimeout, match="TLS"):
            await stream.start_tls(ssl.create_default_context(), "127.0.0.1", timeout=0.05)
