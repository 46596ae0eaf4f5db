"""The asyncio client against the real reference server (and MockTransport for faults)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from eventbus.core import StoreClosedError
from eventbus.durablestream import (
    AsyncDurableStreamClient,
    BadRequestError,
    ClientClosedError,
    DurableStreamConnectionError,
    DurableStreamError,
    RetryPolicy,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
    UnexpectedStatusError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05)


class Recorder(httpx.AsyncBaseTransport):
    """A real transport that remembers every request it sent."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        self.closed += 1
        await self.inner.aclose()


async def inject(base: str, path: str, **fault: Any) -> None:
    async with httpx.AsyncClient() as raw:
        body = {"path": path, "count": 1, **fault}
        (await raw.post(f"{base}/_test/inject-error", json=body)).raise_for_status()


@pytest.mark.asyncio
async def test_core_operations(any_url: str, path: str) -> None:
    async with AsyncDurableStreamClient(any_url, retry=FAST) as c:
        assert (await c.create(path, content_type="application/json", ttl_seconds=30)).created
        assert not (await c.create(path, content_type="application/json", ttl_seconds=30)).created
        with pytest.raises(StreamExistsError):
            await c.create(path, content_type="text/plain")
        info = await c.head(path)
        assert (info.content_type, info.ttl_seconds, info.closed) == ("application/json", 30, False)
        await c.append_json(path, {"a": 1})
        await c.append_json_batch(path, [2, 3])
        await c.append(path, "[4]", seq="01")
        chunk = await c.read(path)
        assert chunk.json() == [{"a": 1}, 2, 3, 4]
        closed = await c.close_stream(path, data="5")
        assert closed.final_offset == (await c.head(path)).next_offset
        with pytest.raises(StreamClosedError):
            await c.append_json(path, 6)
        chunks = [ch async for ch in c.iter_chunks(path, live="long-poll")]
        assert chunks[-1].stream_closed
        assert [item for ch in chunks for item in ch.json()] == [{"a": 1}, 2, 3, 4, 5]
        await c.delete(path)
        with pytest.raises(StreamNotFoundError):
            await c.head(path)
        await c.create(path, content_type="text/plain")
        with pytest.raises(BadRequestError):
            await c.read(path, offset="bogus")


@pytest.mark.asyncio
async def test_learned_content_types(ds_url: str, path: str) -> None:
    async with AsyncDurableStreamClient(ds_url) as c:
        await c.create(path, content_type="application/json")
        await c.create(path + "-t", content_type="text/plain")
    async with AsyncDurableStreamClient(ds_url) as c:
        await c.append(path, '{"x":1}')
        await c.close_stream(path, data="2")
        chunks = [ch async for ch in c.iter_chunks(path, live="sse")]
        assert [item for ch in chunks for item in ch.json()] == [{"x": 1}, 2]
        producer = await c.producer(path + "-t", "p")
        producer.append("hello")
        await producer.flush()
        assert (await c.read(path + "-t")).data == b"hello"


@pytest.mark.asyncio
async def test_live_reads_see_new_data(ds_url: str, path: str) -> None:
    async with AsyncDurableStreamClient(ds_url, retry=FAST) as c:
        await c.create(path, content_type="text/plain")

        async def first(live: Any) -> bytes:
            async for chunk in c.iter_chunks(path, offset="now", live=live, stop_after=5):
                if chunk.data:
                    return chunk.data
            return b""

        for live in ("long-poll", "sse"):
            reader = asyncio.create_task(first(live))
            await asyncio.sleep(0.2)
            await c.append(path, live)
            assert await reader == live.encode()


@pytest.mark.asyncio
async def test_stop_after_and_retries(ds_url: str, path: str) -> None:
    async with AsyncDurableStreamClient(ds_url, retry=FAST) as c:
        await c.create(path, content_type="text/plain")
        chunks = [ch async for ch in c.iter_chunks(path, live="sse", stop_after=0.5)]
        assert [(ch.data, ch.up_to_date) for ch in chunks] == [(b"", True)]
        await inject(ds_url, path, status=503, count=2, method="POST")
        await c.append(path, "a")
        await inject(ds_url, path, dropConnection=True, method="GET")
        assert (await c.read(path)).data == b"a"
    async with AsyncDurableStreamClient(ds_url, retry=RetryPolicy(max_retries=0)) as c:
        await inject(ds_url, path, status=500, method="GET")
        with pytest.raises(UnexpectedStatusError):
            await c.read(path)


def _mock(handler: Any, **kw: Any) -> AsyncDurableStreamClient:
    def with_head(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Type": "text/plain"})
        response: httpx.Response = handler(request)
        return response

    return AsyncDurableStreamClient(
        "http://ds.test", transport=httpx.MockTransport(with_head), retry=FAST, **kw
    )


@pytest.mark.asyncio
async def test_faults_from_a_mock_transport() -> None:
    calls = 0

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'event: control\ndata: {"streamNextOffset":"0_1"}\n\n'
            raise httpx.ReadError("reset")

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        headers = {"Content-Type": "text/event-stream"}
        if request.url.params.get("live") != "sse":
            if calls == 1:
                return httpx.Response(200, stream=Broken())
            raise httpx.ReadError("reset", request=request)
        if calls == 3:
            return httpx.Response(200, headers=headers, stream=Broken())
        body = b'event: control\ndata: {"streamNextOffset":"0_1","streamClosed":true}\n\n'
        return httpx.Response(200, headers=headers, content=body)

    policy = RetryPolicy(max_retries=0)
    async with _mock(handler, headers={"X": lambda: "y"}) as c:
        c.retry = policy
        with pytest.raises(DurableStreamConnectionError):
            await c.read("/s")  # the body breaks: a GET would be retried, but no retries
        with pytest.raises(DurableStreamConnectionError):
            await c.read("/s")
        chunks = [ch async for ch in c.iter_chunks("/s", live="sse", offset="-1")]
        assert [ch.stream_closed for ch in chunks] == [False, True]

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with _mock(slow) as c:
        c.retry = RetryPolicy(max_retries=1000, initial_delay=0.001, max_delay=0.001)
        assert [ch async for ch in c.iter_chunks("/s", live="long-poll", stop_after=0.0)] == []
        assert [ch async for ch in c.iter_chunks("/s", live="long-poll", stop_after=0.05)] == []

    sleepy = RetryPolicy(max_retries=5, initial_delay=5.0, max_delay=5.0)
    async with _mock(lambda request: httpx.Response(503)) as c:
        c.retry = sleepy
        assert [ch async for ch in c.iter_chunks("/s", live="auto", stop_after=0.1)] == []


# --------------------------------------------------------------------------- producer


@pytest.mark.asyncio
async def test_pipelined_producer_lands_in_order(any_url: str, path: str) -> None:
    recorder = Recorder()
    async with AsyncDurableStreamClient(any_url, transport=recorder, retry=FAST) as c:
        await c.create(path, content_type="application/json")
        producer = await c.producer(path, "pipe", max_batch_items=1, max_in_flight=8)
        for i in range(40):
            producer.append_json(i)
        last = await producer.flush()
        assert last is not None
        assert last.producer_seq == 39
        assert (await c.read(path)).json() == list(range(40))
        final = await producer.close_stream()
        assert await producer.close_stream() is final
        assert (await c.head(path)).closed
    statuses = [r.headers.get("producer-seq") for r in recorder.requests if r.method == "POST"]
    assert len(statuses) >= 41  # pipelined gaps were retried


@pytest.mark.asyncio
async def test_linger_batches_small_appends(ds_url: str, path: str) -> None:
    recorder = Recorder()
    async with AsyncDurableStreamClient(ds_url, transport=recorder) as c:
        await c.create(path, content_type="text/plain")
        producer = await c.producer(path, "p", linger=0.05)
        for part in ("a", "b", "c"):
            producer.append(part)
        await asyncio.sleep(0.3)  # the linger timer sends without a flush
        assert (await c.read(path)).data == b"abc"
        producer.append("d")
        await producer.detach()
        await producer.detach()
        with pytest.raises(DurableStreamError, match="detached or closed"):
            producer.append("e")
        with pytest.raises(DurableStreamError, match="detached or closed"):
            await producer.close_stream()
        with pytest.raises(ValueError, match="linger"):
            await c.producer(path, "p", linger=-1)
    posts = [r for r in recorder.requests if r.method == "POST"]
    assert [r.content for r in posts] == [b"abc", b"d"]


@pytest.mark.asyncio
async def test_auto_claim_with_pipelining(ds_url: str, path: str) -> None:
    async with AsyncDurableStreamClient(ds_url, retry=FAST) as c:
        await c.create(path, content_type="text/plain")
        fencer = await c.producer(path, "p", epoch=5)
        fencer.append("fence,")
        await fencer.flush()
        stale = await c.producer(path, "p", epoch=0, max_batch_items=1)
        stale.append("x")
        with pytest.raises(StaleEpochError):
            await stale.flush()
        assert await stale.flush() is None  # the error was reported once
        claimer = await c.producer(
            path, "p", epoch=0, auto_claim=True, max_batch_items=1, max_in_flight=4
        )
        for i in range(10):
            claimer.append(f"{i},")
        await claimer.flush()
        assert claimer.epoch == 6
        assert (await c.read(path)).data == b"fence," + b"".join(
            f"{i},".encode() for i in range(10)
        )
        # A second fencing mid-pipeline: every in-flight batch is renumbered in order.
        newer = await c.producer(path, "p", epoch=9)
        newer.append("nine,")
        await newer.flush()
        for i in range(10, 16):
            claimer.append(f"{i},")
        await claimer.flush()
        assert claimer.epoch == 10
        tail = (await c.read(path)).data
        assert tail.endswith(b"nine," + b"".join(f"{i},".encode() for i in range(10, 16)))


@pytest.mark.asyncio
async def test_a_failed_batch_fails_the_ones_behind_it() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seq = request.headers["Producer-Seq"]
        seen.append(seq)
        if seq == "0":
            return httpx.Response(400, text="bad batch")
        return httpx.Response(
            409,
            headers={"Producer-Expected-Seq": "0", "Producer-Received-Seq": seq},
            text="Producer sequence gap",
        )

    async with _mock(handler) as c:
        producer = await c.producer(
            "/s", "p", content_type="text/plain", max_batch_items=1, max_in_flight=3
        )
        for part in "abc":
            producer.append(part)
        with pytest.raises(BadRequestError):
            await producer.flush()
    assert sorted(seen) == ["0", "1", "2"]


@pytest.mark.asyncio
async def test_head_without_content_type_is_not_cached() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Stream-Next-Offset": "0_0"})

    async with AsyncDurableStreamClient(
        "http://ds.test", transport=httpx.MockTransport(handler)
    ) as c:
        info = await c.head("/s")
        assert (info.content_type, info.next_offset) == (None, "0_0")
        assert "/s" not in c._content_types


@pytest.mark.asyncio
async def test_a_closed_client_refuses_to_send_and_closes_its_transport_once(
    ds_url: str, path: str
) -> None:
    recorder = Recorder()
    client = AsyncDurableStreamClient(ds_url, retry=FAST, transport=recorder)
    assert str(client.base_url).rstrip("/") == ds_url.rstrip("/")
    assert (await client.create(path, content_type="application/json")).created
    await client.close()
    await client.close()  # idempotent
    assert recorder.closed == 1
    with pytest.raises(ClientClosedError, match="AsyncDurableStreamClient was closed") as info:
        await client.head(path)
    assert isinstance(info.value, StoreClosedError)
    assert len(recorder.requests) == 1


def test_a_base_url_without_scheme_or_host_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match=r"'127\.0\.0\.1:4437/v1/stream'"):
        AsyncDurableStreamClient("127.0.0.1:4437/v1/stream")
