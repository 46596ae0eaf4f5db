"""The two HTTP/1.1 transports (asyncio and blocking sockets): real sockets, real TLS.

The reference server exercises the ordinary paths through every client test; the servers
here answer with exactly the bytes each case needs (framings, malformed heads, hang-ups)
that a well-behaved server never sends. The blocking transport's tests run the same servers
on an event loop in a thread of their own (:func:`threaded`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import httpx
import pytest
import trustme

from eventbus.durablestream import AsyncDurableStreamClient, DurableStreamClient
from eventbus.durablestream import _asyncio_network as network
from eventbus.durablestream import _http1 as http1
from eventbus.durablestream import _socket_network as network_sync
from eventbus.durablestream._asyncio_network import (
    _READ_HIGH_WATER,
    AsyncioTransport,
    _Connection,
    asyncio_transport,
)
from eventbus.durablestream._http1 import BODY_IN_HEAD_WRITE
from eventbus.durablestream._socket_network import SocketTransport, socket_transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclasses.dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = dataclasses.field(default_factory=list)

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def tcp_server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """A local server running ``handler`` for each connection, counting connections."""
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []
    info = Server(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info.connections += 1
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        await handler(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    info.port = server.sockets[0].getsockname()[1]
    try:
        yield info
    finally:
        server.close()
        for writer in writers:  # no connection outlives its test
            writer.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request, head and Content-Length body; ``b""`` once the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def scripted(
    *responses: bytes, hang_up: bool = False, server_ssl: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """A server answering the requests on each connection with ``responses`` in turn.

    After the last one it waits for the client to close, or with ``hang_up`` closes itself.
    """
    holder: list[Server] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            request = await read_request(reader)
            if not request:
                break
            holder[0].requests.append(request)
            writer.write(response)
            await writer.drain()
        if not hang_up:
            await reader.read()
        writer.close()

    async with tcp_server(answer, server_ssl) as server:
        holder.append(server)
        yield server


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0), as a crashed server or a middlebox does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (at most 5 s)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


@contextmanager
def threaded(server: AbstractAsyncContextManager[Server]) -> Iterator[Server]:
    """Run an async server context on an event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(5)
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# ============================================================== the asyncio transport


async def get(
    transport: httpx.AsyncBaseTransport, url: str, method: str = "GET", **kwargs: object
) -> tuple[httpx.Response, bytes]:
    request = httpx.Request(method, url, **kwargs)  # type: ignore[arg-type]
    response = await transport.handle_async_request(request)
    return response, await response.aread()


async def connect(port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(_Connection, "127.0.0.1", port)
    return connection


# ---------------------------------------------------------------------------- requests


@pytest.mark.asyncio
async def test_the_async_client_uses_the_asyncio_transport_by_default() -> None:
    client = AsyncDurableStreamClient("http://127.0.0.1:1")
    assert isinstance(client._transport, AsyncioTransport)
    await client.close()


@pytest.mark.asyncio
async def test_a_kept_alive_connection_carries_the_next_requests() -> None:
    async with (
        scripted(OK, b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew") as server,
        asyncio_transport() as transport,
    ):
        first, body = await get(transport, server.url("/a?x=1"), headers={"X-Token": "t"})
        assert (first.status_code, first.reason_phrase, body) == (200, "OK", b"ok")
        assert first.extensions["http_version"] == b"HTTP/1.1"
        second, body = await get(transport, server.url("/b"), "PUT", content=b"data")
        assert (second.status_code, second.reason_phrase, body) == (201, "Created", b"new")
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Token: t\r\n" in server.requests[0]
    assert server.requests[1].startswith(b"PUT /b HTTP/1.1\r\n")
    assert server.requests[1].endswith(b"\r\nContent-Length: 4\r\n\r\ndata")


@pytest.mark.asyncio
async def test_a_large_body_follows_the_head_in_a_write_of_its_own() -> None:
    body = b"b" * (BODY_IN_HEAD_WRITE + 1)
    async with scripted(OK) as server, asyncio_transport() as transport:
        response, _ = await get(transport, server.url(), "POST", content=body)
        assert response.status_code == 200
    assert server.requests[0].endswith(b"\r\n\r\n" + body)


async def _stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


@pytest.mark.asyncio
async def test_a_streamed_body_is_sent_chunked_or_as_is_with_a_length() -> None:
    received: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(OK)
        received.append(await read_request(reader))
        writer.write(OK)
        await reader.read()
        writer.close()

    async with tcp_server(echo) as server, asyncio_transport() as transport:
        await get(transport, server.url(), "POST", content=_stream([b"ab", b"", b"cde"]))
        await get(
            transport,
            server.url(),
            "POST",
            content=_stream([b"xy", b"z"]),
            headers={"Content-Length": "3"},
        )
    assert received[0].endswith(
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    )
    assert received[1].endswith(b"Content-Length: 3\r\n\r\nxyz")


@pytest.mark.asyncio
async def test_a_header_with_a_line_break_is_never_sent() -> None:
    async with scripted(OK) as server, asyncio_transport() as transport:
        for value in ("a\r\nInjected: yes", "a\rb", "a\nb"):
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await get(transport, server.url(), headers={"X": value})
    assert server.requests == []


@pytest.mark.asyncio
async def test_only_http_and_https_urls() -> None:
    async with asyncio_transport() as transport:
        with pytest.raises(httpx.UnsupportedProtocol, match="'ftp'"):
            await get(transport, "ftp://127.0.0.1/x")


# ---------------------------------------------------------------------------- framing


@pytest.mark.asyncio
async def test_a_chunked_body_with_extensions_and_trailers_and_the_connection_is_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1 \r\n!\r\n0\r\nTrailer: x\r\n\r\n"
    )
    async with scripted(chunked, OK) as server, asyncio_transport() as transport:
        response, body = await get(transport, server.url())
        assert body == b"hello!"
        assert response.headers["transfer-encoding"] == "gzip, Chunked"
        assert (await get(transport, server.url()))[1] == b"ok"
    assert server.connections == 1


@pytest.mark.asyncio
async def test_without_length_or_chunks_the_body_runs_to_the_close() -> None:
    until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    other_coding = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nrest"
    async with scripted(until_close, hang_up=True) as server, asyncio_transport() as transport:
        assert (await get(transport, server.url()))[1] == b"all of it"
        assert (await get(transport, server.url()))[1] == b"all of it"
    assert server.connections == 2  # such a connection ends with its response
    async with scripted(other_coding, hang_up=True) as server, asyncio_transport() as transport:
        assert (await get(transport, server.url()))[1] == b"rest"


@pytest.mark.asyncio
async def test_responses_without_a_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
    not_modified = b"HTTP/1.1 304 Not Modified\r\n\r\n"
    async with (
        scripted(head, no_content, not_modified, OK) as server,
        asyncio_transport() as transport,
    ):
        response, body = await get(transport, server.url(), "HEAD")
        assert (response.status_code, body) == (200, b"")
        assert (await get(transport, server.url()))[1] == b""
        assert (await get(transport, server.url()))[1] == b""
        assert (await get(transport, server.url()))[1] == b"ok"
    assert server.connections == 1


@pytest.mark.asyncio
async def test_interim_answers_are_skipped_but_a_protocol_switch_is_refused() -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + OK
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"
    async with scripted(hints) as server, asyncio_transport() as transport:
        response, body = await get(transport, server.url())
        assert (response.status_code, body) == (200, b"ok")
    async with scripted(switch) as server, asyncio_transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError, match="101"):
            await get(transport, server.url())


@pytest.mark.parametrize(
    ("response", "connections"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 2),
        (b"HTTP/1.0 200\r\nContent-Length: 2\r\n\r\nok", 2),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", 1),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nokGARBAGE", 2),
    ],
)
@pytest.mark.asyncio
async def test_when_a_connection_is_kept(response: bytes, connections: int) -> None:
    async with (
        scripted(response, response, hang_up=connections == 2) as server,
        asyncio_transport() as transport,
    ):
        for _ in range(2):
            assert (await get(transport, server.url()))[1] == b"ok"
    assert server.connections == connections


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1\r\n\r\n", "status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "4 bytes before"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "bytes before"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab", "in the middle"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, "over 4096"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"x" * 70000, "over 65536"),
        (b"HTTP/1.1 200 OK\r\nX: y\r\n", "in the middle"),
        (b"HTTP/1.1 103 Early Hints\r\n\r\n", "in the middle"),
        (b"", "without sending a response"),
    ],
)
@pytest.mark.asyncio
async def test_a_response_that_breaks_http_is_a_remote_protocol_error(
    response: bytes, match: str
) -> None:
    async with scripted(response, hang_up=True) as server, asyncio_transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError, match=match):
            await get(transport, server.url())
        assert not transport._idle.kept(("http", "127.0.0.1", server.port))  # never reused


# ---------------------------------------------------------------------------- the pool


@pytest.mark.asyncio
async def test_an_idle_connection_the_server_closed_or_that_expired_is_not_reused() -> None:
    async with scripted(OK, hang_up=True) as server, asyncio_transport() as transport:
        await get(transport, server.url())
        idle = transport._idle.kept(("http", "127.0.0.1", server.port))
        await until(lambda: idle[0].eof)
        assert (await get(transport, server.url()))[1] == b"ok"
        assert server.connections == 2
    async with scripted(OK, OK) as server, asyncio_transport() as transport:
        await get(transport, server.url())
        transport._idle.kept(("http", "127.0.0.1", server.port))[0].idle_since -= 60
        assert (await get(transport, server.url()))[1] == b"ok"
        assert server.connections == 2


@pytest.mark.asyncio
async def test_a_body_left_unread_closes_its_connection() -> None:
    async with scripted(OK, OK) as server, asyncio_transport() as transport:
        response = await transport.handle_async_request(httpx.Request("GET", server.url()))
        await response.aclose()
        await get(transport, server.url())
    assert server.connections == 2


@pytest.mark.asyncio
async def test_at_most_max_idle_connections_are_kept_and_none_after_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http1, "MAX_IDLE", 1)
    async with scripted(OK) as server:
        transport = asyncio_transport()
        first = await transport.handle_async_request(httpx.Request("GET", server.url()))
        second = await transport.handle_async_request(httpx.Request("GET", server.url()))
        third = await transport.handle_async_request(httpx.Request("GET", server.url()))
        await first.aread()
        await second.aread()
        origin = ("http", "127.0.0.1", server.port)
        kept = transport._idle.kept(origin)[0]
        assert len(transport._idle.kept(origin)) == 1
        await transport.aclose()
        await third.aread()  # finished after the close: not kept either
        assert len(transport._idle) == 0
        await until(lambda: kept.eof)


# ---------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_a_silent_server_gives_a_read_timeout() -> None:
    async with tcp_server(never_answer) as server, asyncio_transport() as transport:
        request = httpx.Request(
            "GET", server.url(), extensions={"timeout": httpx.Timeout(0.05).as_dict()}
        )
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)


@pytest.mark.asyncio
async def test_a_closed_port_gives_a_connect_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with asyncio_transport() as transport:
        with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{port}"):
            await get(transport, f"http://127.0.0.1:{port}/")


@pytest.mark.asyncio
async def test_a_connect_that_cannot_finish_in_time_gives_a_connect_timeout() -> None:
    # A bare listening socket: the attempt is cut off before any loop iteration could
    # finish it, and nothing on the server side needs cleaning up.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        timeout = {"timeout": httpx.Timeout(5, connect=0).as_dict()}
        async with asyncio_transport() as transport:
            with pytest.raises(httpx.ConnectTimeout):
                await get(transport, url, extensions=timeout)


async def _reset_by_server(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, started: asyncio.Event
) -> None:
    await reader.readexactly(1)  # the client has started; leave the rest unread
    started.set()
    reset(writer)


@pytest.mark.asyncio
async def test_a_reset_connection_gives_a_read_error() -> None:
    started = asyncio.Event()
    async with (
        tcp_server(lambda r, w: _reset_by_server(r, w, started)) as server,
        asyncio_transport() as transport,
    ):
        with pytest.raises(httpx.ReadError):
            await get(transport, server.url())


@pytest.mark.asyncio
async def test_a_closed_connection_refuses_writes() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with tcp_server(hang_up) as server:
        connection = await connect(server.port)
        await until(lambda: connection.eof)
        assert await connection.read(5) == b""
        with pytest.raises(httpx.WriteError, match="closed"):
            await connection.write(b"x", timeout=5)
        connection.close()


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
    async with tcp_server(stall) as server:
        connection = await connect(server.port)
        with pytest.raises(httpx.WriteTimeout):
            await connection.write(big, timeout=0.1)
        stop.set()  # now the server resets the connection while the client waits to send
        with pytest.raises(httpx.WriteError):
            await connection.write(b"more", timeout=5)
        connection.close()


@pytest.mark.asyncio
async def test_a_write_waits_for_a_busy_server_and_then_completes() -> None:
    size = 32 * 1024 * 1024
    received = asyncio.get_running_loop().create_future()
    go = asyncio.Event()

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()  # busy: the client's socket buffers fill meanwhile
        total = 0
        while total < size:
            total += len(await reader.read(1024 * 1024))
        received.set_result(total)

    async with tcp_server(late_reader) as server:
        connection = await connect(server.port)
        writing = asyncio.create_task(connection.write(b"z" * size, timeout=10))
        await until(lambda: connection.paused_writing)
        go.set()
        await writing
        assert await received == size
        assert not connection.paused_writing
        connection.close()


@pytest.mark.asyncio
async def test_a_slow_reader_pauses_the_socket_and_resumes_it() -> None:
    total = 4 * _READ_HIGH_WATER

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"y" * total)
        await writer.drain()
        writer.close()

    async with tcp_server(flood) as server:
        connection = await connect(server.port)
        await until(lambda: connection.paused_reading)
        received = 0
        while chunk := await connection.read(timeout=5):
            received += len(chunk)
        assert received == total
        assert not connection.paused_reading
        connection.close()


@pytest.mark.asyncio
async def test_a_head_split_across_reads_is_found_where_the_parts_meet() -> None:
    connection = _Connection()
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r")
    loop = asyncio.get_running_loop()
    loop.call_soon(connection.data_received, b"\nbody")
    assert await connection.read_until(b"\r\n\r\n", 100, timeout=5) == b"HTTP/1.1 200 OK"
    assert await connection.read(timeout=5) == b"body"


# ---------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.asyncio
async def test_https_with_a_trusted_authority(authority: trustme.CA) -> None:
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await reader.read()

    async with (
        tcp_server(answer, _server_context(authority)) as server,
        AsyncioTransport(ssl_context=client_context) as transport,
    ):
        response, body = await get(transport, server.url(scheme="https"))
        assert (response.status_code, body) == (200, b"ok")


@pytest.mark.asyncio
async def test_an_untrusted_certificate_is_a_connect_error(authority: trustme.CA) -> None:
    async with (
        tcp_server(never_answer, _server_context(authority)) as server,
        asyncio_transport() as transport,
    ):  # httpx's default trust: certifi
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await get(transport, server.url(scheme="https"))


@pytest.mark.asyncio
async def test_a_server_that_never_handshakes_is_a_connect_timeout() -> None:
    async with tcp_server(never_answer) as server, asyncio_transport() as transport:
        timeout = {"timeout": httpx.Timeout(5, connect=0.05).as_dict()}
        with pytest.raises(httpx.ConnectTimeout):
            await get(transport, server.url(scheme="https"), extensions=timeout)


@pytest.mark.asyncio
async def test_requests_past_max_active_wait_for_a_slot_or_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network, "MAX_ACTIVE", 1)
    broken = b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"
    async with (
        scripted(OK, OK) as server,
        scripted(broken, hang_up=True) as bad,
        asyncio_transport() as transport,
    ):
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
        with pytest.raises(httpx.ConnectError):  # a failed request gives its slot back ...
            await get(transport, closed)
        with pytest.raises(httpx.RemoteProtocolError):
            await get(transport, bad.url())
        first = await transport.handle_async_request(httpx.Request("GET", server.url()))
        quick = {"timeout": httpx.Timeout(5, pool=0.05).as_dict()}
        with pytest.raises(httpx.PoolTimeout, match="1 requests"):  # ... a body being read not
            await get(transport, server.url(), extensions=quick)
        waiting = asyncio.create_task(get(transport, server.url()))
        await asyncio.sleep(0)
        assert not waiting.done()
        assert await first.aread() == b"ok"
        assert (await waiting)[1] == b"ok"


# ============================================================== the blocking transport


def sget(
    transport: httpx.BaseTransport, url: str, method: str = "GET", **kwargs: object
) -> tuple[httpx.Response, bytes]:
    request = httpx.Request(method, url, **kwargs)  # type: ignore[arg-type]
    response = transport.handle_request(request)
    return response, response.read()


def test_the_blocking_client_uses_the_socket_transport_by_default() -> None:
    with DurableStreamClient("http://127.0.0.1:1") as client:
        assert isinstance(client._transport, SocketTransport)


def test_blocking_a_kept_alive_connection_carries_the_next_requests() -> None:
    created = b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew"
    with threaded(scripted(OK, created)) as server, socket_transport() as transport:
        first, body = sget(transport, server.url("/a?x=1"), headers={"X-Token": "t"})
        assert (first.status_code, first.reason_phrase, body) == (200, "OK", b"ok")
        second, body = sget(transport, server.url("/b"), "PUT", content=b"data")
        assert (second.status_code, second.reason_phrase, body) == (201, "Created", b"new")
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Token: t\r\n" in server.requests[0]
    assert server.requests[1].endswith(b"\r\nContent-Length: 4\r\n\r\ndata")


def test_blocking_large_and_streamed_bodies() -> None:
    big = b"b" * (BODY_IN_HEAD_WRITE + 1)
    received: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(OK)
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(OK)
        received.append(await read_request(reader))
        writer.write(OK)
        await reader.read()
        writer.close()

    with threaded(tcp_server(echo)) as server, socket_transport() as transport:
        sget(transport, server.url(), "POST", content=big)
        sget(transport, server.url(), "POST", content=iter([b"ab", b"", b"cde"]))
        sget(
            transport,
            server.url(),
            "POST",
            content=iter([b"xy", b"z"]),
            headers={"Content-Length": "3"},
        )
    assert received[0].endswith(b"\r\n\r\n" + big)
    assert received[1].endswith(b"chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")
    assert received[2].endswith(b"Content-Length: 3\r\n\r\nxyz")
    assert server.connections == 1


def test_blocking_framings_and_interim_answers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: x\r\n\r\n"
    )
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    hints = b"HTTP/1.1 103 Early Hints\r\n\r\n" + OK
    with threaded(scripted(chunked, head, hints)) as server, socket_transport() as transport:
        assert sget(transport, server.url())[1] == b"hello!"
        assert sget(transport, server.url(), "HEAD")[1] == b""
        assert sget(transport, server.url())[1] == b"ok"
    assert server.connections == 1
    until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    with threaded(scripted(until_close, hang_up=True)) as server, socket_transport() as t:
        assert sget(t, server.url())[1] == b"all of it"
        assert sget(t, server.url())[1] == b"all of it"
    assert server.connections == 2
    switch = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    with (
        threaded(scripted(switch)) as server,
        socket_transport() as transport,
        pytest.raises(httpx.RemoteProtocolError, match="101"),
    ):
        sget(transport, server.url())


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "4 bytes before"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab", "in the middle"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, "over 4096"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"x" * 70000, "over 65536"),
        (b"HTTP/1.1 103 Early Hints\r\n\r\n", "in the middle"),
        (b"", "without sending a response"),
    ],
)
def test_blocking_a_response_that_breaks_http_is_a_remote_protocol_error(
    response: bytes, match: str
) -> None:
    with threaded(scripted(response, hang_up=True)) as server, socket_transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError, match=match):
            sget(transport, server.url())
        assert not transport._idle.kept(("http", "127.0.0.1", server.port))


def test_blocking_pool_reuse_expiry_and_dropped_connections() -> None:
    with threaded(scripted(OK, hang_up=True)) as server, socket_transport() as transport:
        sget(transport, server.url())
        idle = transport._idle.kept(("http", "127.0.0.1", server.port))[0]
        assert wait_until(lambda: network_sync._readable(idle.sock))  # the server hung up
        assert sget(transport, server.url())[1] == b"ok"
        assert server.connections == 2
    with threaded(scripted(OK, OK)) as server, socket_transport() as transport:
        sget(transport, server.url())
        transport._idle.kept(("http", "127.0.0.1", server.port))[0].idle_since -= 60
        assert sget(transport, server.url())[1] == b"ok"
        assert server.connections == 2
    with threaded(scripted(OK, OK)) as server, socket_transport() as transport:
        transport.handle_request(httpx.Request("GET", server.url())).close()  # body unread
        sget(transport, server.url())
        assert server.connections == 2


def test_blocking_at_most_max_idle_connections_and_none_after_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http1, "MAX_IDLE", 1)
    with threaded(scripted(OK)) as server:
        transport = socket_transport()
        responses = [transport.handle_request(httpx.Request("GET", server.url())) for _ in "abc"]
        responses[0].read()
        responses[1].read()
        assert len(transport._idle.kept(("http", "127.0.0.1", server.port))) == 1
        transport.close()
        responses[2].read()  # finished after the close: not kept either
        assert len(transport._idle) == 0


def test_blocking_a_head_split_across_reads_is_found_where_the_parts_meet() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection = network_sync._Connection(ours)
        connection.unread(b"HTTP/1.1 200 OK\r\n\r")  # the first read returns this
        theirs.sendall(b"\nbody")
        assert connection.read_until(b"\r\n\r\n", 100, timeout=5) == b"HTTP/1.1 200 OK"
        assert connection.read(timeout=5) == b"body"


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` for up to 5 s; whether it came true."""
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_blocking_timeouts_and_connection_failures() -> None:
    with threaded(tcp_server(never_answer)) as server, socket_transport() as transport:
        quick = {"timeout": httpx.Timeout(0.05).as_dict()}
        with pytest.raises(httpx.ReadTimeout):
            sget(transport, server.url(), extensions=quick)
        with pytest.raises(httpx.ConnectTimeout, match="TLS"):
            sget(transport, server.url(scheme="https"), extensions=quick)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket_transport() as transport, pytest.raises(httpx.ConnectError, match=str(port)):
        sget(transport, f"http://127.0.0.1:{port}/")


def test_blocking_a_connect_to_a_full_accept_queue_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        held: list[socket.socket] = []
        try:
            while len(held) < 16:  # fill the queue nobody accepts from
                try:
                    held.append(socket.create_connection(address, timeout=0.2))
                except TimeoutError:
                    break
            timeout = {"timeout": httpx.Timeout(5, connect=0.2).as_dict()}
            with socket_transport() as transport, pytest.raises(httpx.ConnectTimeout):
                sget(transport, f"http://127.0.0.1:{address[1]}/", extensions=timeout)
        finally:
            for sock in held:
                sock.close()


def test_blocking_a_reset_is_a_read_or_write_error_and_a_full_socket_a_write_timeout() -> None:
    started = asyncio.Event()
    with threaded(tcp_server(lambda r, w: _reset_by_server(r, w, started))) as server:
        with socket_transport() as transport, pytest.raises(httpx.ReadError):
            sget(transport, server.url())
        big = b"x" * (32 * 1024 * 1024)  # more than every socket buffer between the two ends
        with socket_transport() as transport, pytest.raises(httpx.WriteError):
            sget(transport, server.url(), "POST", content=big)

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()  # until the test ends

    with threaded(tcp_server(never_read)) as server, socket_transport() as transport:
        timeout = {"timeout": httpx.Timeout(5, write=0.1).as_dict()}
        with pytest.raises(httpx.WriteTimeout):
            sget(transport, server.url(), "POST", content=big, extensions=timeout)


def test_blocking_https(authority: trustme.CA) -> None:
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    with threaded(scripted(OK, server_ssl=_server_context(authority))) as server:
        with SocketTransport(ssl_context=client_context) as transport:
            response, body = sget(transport, server.url(scheme="https"))
            assert (response.status_code, body) == (200, b"ok")
        untrusted = pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED")
        with socket_transport() as transport, untrusted:  # httpx's default trust: certifi
            sget(transport, server.url(scheme="https"))


def test_blocking_requests_past_max_active_wait_for_a_slot_or_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network_sync, "MAX_ACTIVE", 1)
    broken = b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"
    with (
        threaded(scripted(OK, OK)) as server,
        threaded(scripted(broken, hang_up=True)) as bad,
        socket_transport() as transport,
    ):
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
        with pytest.raises(httpx.ConnectError):  # a failed request gives its slot back ...
            sget(transport, closed)
        with pytest.raises(httpx.RemoteProtocolError):
            sget(transport, bad.url())
        first = transport.handle_request(httpx.Request("GET", server.url()))
        quick = {"timeout": httpx.Timeout(5, pool=0.05).as_dict()}
        with pytest.raises(httpx.PoolTimeout, match="1 requests"):  # ... a body being read not
            sget(transport, server.url(), extensions=quick)
        results: list[bytes] = []
        waiting = threading.Thread(target=lambda: results.append(sget(transport, server.url())[1]))
        waiting.start()
        assert first.read() == b"ok"
        waiting.join(5)
        assert results == [b"ok"]


# ============================================================== both, on the reference server


def test_both_transports_hand_compressed_bodies_to_httpx_to_decode(ds_url: str, path: str) -> None:
    items = [{"n": n, "padding": "x" * 40} for n in range(100)]  # the server gzips from 1 KiB
    with DurableStreamClient(ds_url) as client:
        client.create(path, content_type="application/json")
        client.append_json_batch(path, items)
    request = httpx.Request("GET", f"{ds_url}{path}?offset=-1", headers={"Accept-Encoding": "gzip"})
    with socket_transport() as transport:
        response = transport.handle_request(request)
        assert response.headers["content-encoding"] == "gzip"
        assert json.loads(response.read()) == items

    async def fetch() -> tuple[str, bytes]:
        async with asyncio_transport() as transport:
            response = await transport.handle_async_request(request)
            return response.headers["content-encoding"], await response.aread()

    encoding, body = asyncio.run(fetch())
    assert (encoding, json.loads(body)) == ("gzip", items)


def test_threads_share_the_blocking_pool_without_crossing_answers(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as client:
        client.create(path, content_type="application/json")
        offsets: list[str | None] = []

        def publish(thread: int) -> None:
            offsets.extend(
                client.append_json(path, {"thread": thread, "n": n}).next_offset for n in range(25)
            )

        threads = [threading.Thread(target=publish, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stored = client.read(path).json()
        idle = client._transport._idle  # type: ignore[attr-defined]
        assert 1 <= len(idle) <= 8
    assert len(set(offsets)) == 200  # each append got its own answer
    assert sorted((item["thread"], item["n"]) for item in stored) == [
        (t, n) for t in range(8) for n in range(25)
    ]
