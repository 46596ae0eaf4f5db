"""The synchronous client against the real reference server (and MockTransport for faults)."""

from __future__ import annotations

import datetime
import re
import threading
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from eventbus.core import StoreClosedError
from eventbus.durablestream import (
    BadRequestError,
    ClientClosedError,
    ContentTypeMismatchError,
    DurableStreamClient,
    DurableStreamConnectionError,
    DurableStreamError,
    DurableStreamTimeoutError,
    MalformedResponseError,
    ProducerSequenceGapError,
    RetryPolicy,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
    StreamGoneError,
    StreamNotFoundError,
    UnexpectedStatusError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05)


class Recorder(httpx.BaseTransport):
    """A real transport that remembers every request it sent."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.closed = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.closed += 1
        self.inner.close()


@pytest.fixture
def client(ds_url: str) -> Iterator[DurableStreamClient]:
    with DurableStreamClient(ds_url, retry=FAST) as c:
        yield c


def inject(base: str, path: str, **fault: Any) -> None:
    """Make the server misbehave on ``path`` (the reference server's test endpoint)."""
    body = {"path": path, "count": 1, **fault}
    httpx.post(f"{base}/_test/inject-error", json=body).raise_for_status()


def test_create_append_read_bytes_in_both_modes(any_url: str, path: str) -> None:
    with DurableStreamClient(any_url, retry=FAST) as c:
        created = c.create(path)
        assert created.created
        assert created.status == 201
        assert not c.create(path).created  # identical config: 200
        first = c.append(path, b"ab")
        second = c.append(path, "cé")
        assert first.next_offset is not None
        assert second.next_offset is not None
        assert first.next_offset < second.next_offset
        chunk = c.read(path)
        assert chunk.data == "abcé".encode()
        assert chunk.up_to_date
        assert not chunk.stream_closed
        assert chunk.next_offset == second.next_offset
        assert c.read(path, offset=first.next_offset).data == "cé".encode()
        assert c.read(path, offset="now").data == b""


def test_create_options_show_in_head(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain", ttl_seconds=60)
    info = client.head(path)
    assert info.content_type == "text/plain"
    assert info.ttl_seconds == 60
    assert info.expires_at is None
    assert not info.closed
    assert info.etag is None or isinstance(info.etag, str)
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    client.create(path + "-x", expires_at=expiry)
    assert client.head(path + "-x").expires_at is not None
    client.create(path + "-c", content_type="text/plain", closed=True, data="only")
    closed = client.head(path + "-c")
    assert closed.closed
    assert client.read(path + "-c").data == b"only"


def test_create_with_other_config_conflicts(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    with pytest.raises(StreamExistsError) as info:
        client.create(path, content_type="application/json")
    assert info.value.status == 409
    assert info.value.url is not None
    assert info.value.url.endswith(path)


def test_json_appends_and_batches(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="application/json")
    assert client.read(path).data == b""  # "[]" is no data
    client.append_json(path, {"a": 1})
    client.append_json(path, [1, 2])  # one message that is a list
    client.append_json_batch(path, ["x", None])
    client.append(path, b'[{"raw":true}]')
    assert client.read(path).json() == [{"a": 1}, [1, 2], "x", None, {"raw": True}]
    with pytest.raises(ValueError, match="at least one value"):
        client.append_json_batch(path, [])
    with pytest.raises(BadRequestError) as info:
        client.append(path, b"{not json")
    assert info.value.server_message


def test_append_learns_the_content_type_once(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as writer:
        writer.create(path, content_type="text/plain")
    recorder = Recorder()
    with DurableStreamClient(ds_url, transport=recorder) as c:
        c.append(path, "a")
        c.append(path, "b")
        c.append(path, b"c", content_type="text/plain")
    methods = [r.method for r in recorder.requests]
    assert methods == ["HEAD", "POST", "POST", "POST"]
    assert {r.headers["content-type"] for r in recorder.requests[1:]} == {"text/plain"}


def test_append_conflicts(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    client.append(path, "1", seq="0002")
    with pytest.raises(SequenceConflictError):
        client.append(path, "2", seq="0001")
    with pytest.raises(ContentTypeMismatchError):
        client.append(path, b"x", content_type="application/octet-stream")
    closing = client.append(path, "last", close=True)
    assert closing.stream_closed
    with pytest.raises(StreamClosedError) as info:
        client.append(path, "late")
    assert info.value.final_offset == closing.next_offset


def test_missing_stream(client: DurableStreamClient, path: str) -> None:
    with pytest.raises(StreamNotFoundError) as info:
        client.head(path)
    assert info.value.status == 404
    with pytest.raises(StreamNotFoundError):
        client.read(path)
    with pytest.raises(StreamNotFoundError):
        client.append(path, b"x", content_type="application/octet-stream")
    with pytest.raises(StreamNotFoundError):
        client.delete(path)


def test_delete(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    client.delete(path)
    with pytest.raises(StreamNotFoundError):
        client.head(path)


def test_close_stream(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    client.append(path, "a")
    result = client.close_stream(path, data="z")
    assert result.final_offset == client.head(path).next_offset
    assert client.close_stream(path).final_offset == result.final_offset  # idempotent
    with pytest.raises(StreamClosedError):
        client.close_stream(path, data="again")
    chunk = client.read(path)
    assert chunk.data == b"az"
    assert chunk.stream_closed


def test_close_stream_learns_the_content_type(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as c:
        c.create(path, content_type="application/json")
    with DurableStreamClient(ds_url) as c:
        c.close_stream(path, data='{"bye":1}')
        assert c.read(path).json() == [{"bye": 1}]


def test_bad_offset(client: DurableStreamClient, path: str) -> None:
    client.create(path)
    with pytest.raises(BadRequestError):
        client.read(path, offset="not-an-offset")


def test_catch_up_iteration_ends_up_to_date(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    client.append(path, "a")
    chunks = list(client.iter_chunks(path))
    assert [c.data for c in chunks] == [b"a"]
    assert chunks[-1].up_to_date


def test_long_poll_waits_for_new_data(client: DurableStreamClient, ds_url: str, path: str) -> None:
    client.create(path, content_type="text/plain")
    tail = client.append(path, "old").next_offset
    assert tail is not None
    timer = threading.Timer(
        0.1,
        lambda: httpx.post(
            f"{ds_url}{path}",
            content=b"new",
            headers={"Content-Type": "text/plain"},
        ),
    )
    timer.start()
    try:
        got = []
        for chunk in client.iter_chunks(path, offset=tail, live="long-poll", stop_after=5):
            if chunk.data:
                got.append(chunk.data)
                break
    finally:
        timer.join()
    assert got == [b"new"]


def test_long_poll_timeouts_then_stop_after(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    recorder = Recorder()
    with DurableStreamClient(str(client.base_url), transport=recorder) as c:
        chunks = list(c.iter_chunks(path, offset="now", live="long-poll", stop_after=1.0))
    # Only news is emitted: the first 204 (up to date), not the repeats.
    assert [(c.status, c.data, c.up_to_date) for c in chunks] == [(204, b"", True)]
    polls = [r for r in recorder.requests if r.url.params.get("live") == "long-poll"]
    assert len(polls) >= 2
    assert "cursor" in polls[-1].url.params  # the server's cursor is echoed


@pytest.mark.parametrize("live", ["long-poll", "auto", "sse"])
def test_closed_stream_ends_live_reads(client: DurableStreamClient, path: str, live: Any) -> None:
    client.create(path, content_type="text/plain")
    client.append(path, "a")
    client.close_stream(path)
    recorder = Recorder()
    with DurableStreamClient(str(client.base_url), transport=recorder) as c:
        chunks = list(c.iter_chunks(path, live=live))
    assert b"".join(c.data for c in chunks) == b"a"
    assert chunks[-1].stream_closed
    assert len(recorder.requests) <= 3  # no busy loop


def test_sse_text_json_and_binary(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    client.append(path, "line1\nline2")
    client.close_stream(path)
    assert b"".join(c.data for c in client.iter_chunks(path, live="sse")) == b"line1\nline2"

    client.create(path + "j", content_type="application/json")
    client.append_json_batch(path + "j", [{"a": 1}, {"b": 2}])
    client.append_json(path + "j", "é")
    client.close_stream(path + "j")
    chunks = list(client.iter_chunks(path + "j", live="sse"))
    assert [item for c in chunks for item in c.json()] == [{"a": 1}, {"b": 2}, "é"]

    client.create(path + "b")
    client.append(path + "b", bytes(range(256)))
    chunks = list(client.iter_chunks(path + "b", live="sse", stop_after=1.0))
    assert b"".join(c.data for c in chunks) == bytes(range(256))
    assert chunks[-1].up_to_date


def test_sse_learns_the_content_type(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as c:
        c.create(path, content_type="application/json")
        c.append_json(path, 1)
        c.close_stream(path)
    with DurableStreamClient(ds_url) as c:
        chunks = list(c.iter_chunks(path, live="sse"))
    assert [c.json() for c in chunks if c.data] == [[1]]


def test_sse_follows_new_data(client: DurableStreamClient, ds_url: str, path: str) -> None:
    client.create(path, content_type="text/plain")
    timer = threading.Timer(
        0.2,
        lambda: httpx.post(
            f"{ds_url}{path}",
            content=b"live",
            headers={"Content-Type": "text/plain"},
        ),
    )
    timer.start()
    try:
        got = b""
        for chunk in client.iter_chunks(path, live="sse", stop_after=5):
            got += chunk.data
            if got:
                break
    finally:
        timer.join()
    assert got == b"live"


def test_dynamic_headers_and_params_per_request(ds_url: str, path: str) -> None:
    counter = iter(range(100))
    recorder = Recorder()
    with DurableStreamClient(
        ds_url,
        headers={"X-Token": lambda: f"t{next(counter)}", "X-Static": "s"},
        params={"tenant": "acme"},
        transport=recorder,
    ) as c:
        c.create(path, content_type="text/plain", headers={"X-Call": "c"})
        c.append(path, "a", headers={"X-Call": lambda: "d"}, params={"trace": "1"})
        c.read(path, headers={"X-Call": "r"}, params={"page": lambda: "2"})
    tokens = [r.headers["x-token"] for r in recorder.requests]
    assert tokens == ["t0", "t1", "t2"]
    assert [r.headers["x-call"] for r in recorder.requests] == ["c", "d", "r"]
    assert all(r.headers["x-static"] == "s" for r in recorder.requests)
    assert all(r.url.params["tenant"] == "acme" for r in recorder.requests)
    assert recorder.requests[1].url.params["trace"] == "1"
    assert recorder.requests[2].url.params["page"] == "2"


# --------------------------------------------------------------------------- faults


def test_transient_statuses_are_retried(client: DurableStreamClient, path: str) -> None:
    base = str(client.base_url).rstrip("/")
    client.create(path, content_type="text/plain")
    inject(base, path, status=503, count=2, method="POST")
    assert client.append(path, "a").next_offset is not None
    inject(base, path, status=429, retryAfter=0, method="GET")
    assert client.read(path).data == b"a"


def test_retries_give_up(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url, retry=RetryPolicy(max_retries=0)) as c:
        c.create(path, content_type="text/plain")
        inject(ds_url, path, status=503, method="GET")
        with pytest.raises(UnexpectedStatusError) as info:
            c.read(path)
    assert info.value.status == 503


def test_permanent_errors_are_not_retried(ds_url: str, path: str) -> None:
    recorder = Recorder()
    with DurableStreamClient(ds_url, transport=recorder, retry=FAST) as c:
        c.create(path, content_type="text/plain")
        inject(ds_url, path, status=410, method="GET")
        with pytest.raises(StreamGoneError):
            c.read(path)
    assert [r.method for r in recorder.requests] == ["PUT", "GET"]


def test_dropped_connections_are_retried(client: DurableStreamClient, path: str) -> None:
    base = str(client.base_url).rstrip("/")
    client.create(path, content_type="text/plain")
    client.append(path, "kept")
    inject(base, path, dropConnection=True, count=2, method="GET")
    assert client.read(path).data == b"kept"


def test_timeouts(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url, timeout=0.2, retry=RetryPolicy(max_retries=0)) as c:
        c.create(path, content_type="text/plain")
        inject(ds_url, path, delayMs=600, method="GET")
        with pytest.raises(DurableStreamTimeoutError):
            c.read(path)


def test_corrupt_json_is_a_parse_error(client: DurableStreamClient, path: str) -> None:
    base = str(client.base_url).rstrip("/")
    client.create(path, content_type="application/json")
    client.append_json(path, {"key": "some value"})
    inject(base, path, corruptBody=True, method="GET")
    with pytest.raises(MalformedResponseError):
        client.read(path).json()


def test_sse_control_garbage_is_a_parse_error(client: DurableStreamClient, path: str) -> None:
    base = str(client.base_url).rstrip("/")
    client.create(path, content_type="text/plain")
    client.append(path, "a")
    inject(base, path, injectSseEvent={"eventType": "control", "data": "{bad"})
    with pytest.raises(MalformedResponseError, match="control event"):
        list(client.iter_chunks(path, live="sse", stop_after=2))


def _mock(handler: Any, **kw: Any) -> DurableStreamClient:
    def with_head(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":  # SSE reads learn the stream's content type first
            return httpx.Response(200, headers={"Content-Type": "text/plain"})
        response: httpx.Response = handler(request)
        return response

    return DurableStreamClient(
        "http://ds.test", transport=httpx.MockTransport(with_head), retry=FAST, **kw
    )


def test_unsent_post_is_retried_but_a_broken_one_is_not() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(204, headers={"Stream-Next-Offset": "0_1"})
        raise httpx.ReadError("reset", request=request)

    with _mock(handler) as c:
        assert c.append("/s", b"x", content_type="text/plain").next_offset == "0_1"
        with pytest.raises(DurableStreamConnectionError):
            c.append("/s", b"y", content_type="text/plain")
    assert calls == ["POST", "POST", "POST"]


def test_broken_body_read_is_retried() -> None:
    calls = 0

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            raise httpx.ReadError("reset while reading")

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, stream=Broken())
        return httpx.Response(
            200, content=b"ok", headers={"Stream-Next-Offset": "0_2", "Stream-Up-To-Date": "true"}
        )

    with _mock(handler) as c:
        assert c.read("/s").data == b"ok"
    assert calls == 2


def test_a_live_read_never_moves_back_to_an_older_tail() -> None:
    # The file-backed reference server can answer a long-poll at an offset it just
    # returned with an older tail; reading on from there would deliver "b" twice.
    offsets: list[str] = []
    answers = [
        httpx.Response(200, content=b"a", headers={"Stream-Next-Offset": "0_2"}),
        httpx.Response(
            200, content=b"b", headers={"Stream-Next-Offset": "0_5", "Stream-Up-To-Date": "true"}
        ),
        httpx.Response(204, headers={"Stream-Next-Offset": "0_3", "Stream-Up-To-Date": "true"}),
        httpx.Response(
            200,
            content=b"c",
            headers={"Stream-Next-Offset": "0_6", "Stream-Closed": "true"},
        ),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        offsets.append(request.url.params["offset"])
        return answers.pop(0)

    with _mock(handler) as c:
        chunks = list(c.iter_chunks("/s", offset="now", live="auto"))
    assert offsets == ["now", "0_2", "0_5", "0_5"]
    assert [(ch.data, ch.next_offset) for ch in chunks] == [
        (b"a", "0_2"),
        (b"b", "0_5"),
        (b"c", "0_6"),
    ]


def test_a_read_beyond_the_tail_stays_where_it_asked(
    client: DurableStreamClient, path: str
) -> None:
    client.create(path, content_type="text/plain")
    client.append(path, b"x")
    beyond = "9999999999999999_9999999999999999"
    chunk = client.read(path, offset=beyond)
    assert (chunk.data, chunk.next_offset) == (b"", beyond)


def test_read_without_next_offset_is_malformed() -> None:
    with (
        _mock(lambda request: httpx.Response(200, content=b"x")) as c,
        pytest.raises(MalformedResponseError, match="Stream-Next-Offset"),
    ):
        c.read("/s")


def _sse_server(bodies: list[bytes], offsets: list[str]) -> DurableStreamClient:
    """A client whose server answers successive SSE reads with ``bodies`` (the last one
    again when they run out), noting each read's offset."""

    def handler(request: httpx.Request) -> httpx.Response:
        offsets.append(request.url.params["offset"])
        body = bodies[min(len(offsets), len(bodies)) - 1]
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)

    return _mock(handler)


def test_sse_reconnects_from_the_last_offset() -> None:
    offsets: list[str] = []
    bodies = [
        b"event: data\ndata: one\n\n"
        b'event: control\ndata: {"streamNextOffset":"0_1","streamCursor":"c1"}\n\n'
        b"event: future\ndata: ignored\n\n",
        b": only a comment, no progress\n\n",
        b"event: data\ndata: two\n\n"
        b'event: control\ndata: {"streamNextOffset":"0_2","streamClosed":true}\n\n',
    ]
    with _sse_server(bodies, offsets) as c:
        chunks = list(c.iter_chunks("/s", live="sse", offset="-1"))
    assert [(c.data, c.next_offset, c.stream_closed) for c in chunks] == [
        (b"one", "0_1", False),
        (b"two", "0_2", True),
    ]
    assert offsets == ["-1", "0_1", "0_1"]


def test_sse_never_moves_back_to_an_older_tail() -> None:
    offsets: list[str] = []
    bodies = [
        b"event: data\ndata: one\n\n"
        b'event: control\ndata: {"streamNextOffset":"0_5"}\n\n'
        b'event: control\ndata: {"streamNextOffset":"0_3","upToDate":true}\n\n',
        b'event: control\ndata: {"streamNextOffset":"0_5","streamClosed":true}\n\n',
    ]
    with _sse_server(bodies, offsets) as c:
        chunks = list(c.iter_chunks("/s", live="sse", offset="0_1"))
    assert [(c.data, c.next_offset, c.up_to_date, c.stream_closed) for c in chunks] == [
        (b"one", "0_5", False, False),
        (b"", "0_5", True, False),  # up to date at 0_5, not back at 0_3
        (b"", "0_5", True, True),
    ]
    assert offsets == ["0_1", "0_5"]


def test_sse_that_never_progresses_gives_up() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=b"")

    policy = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.001)
    with (
        DurableStreamClient(
            "http://ds.test", transport=httpx.MockTransport(handler), retry=policy
        ) as c,
        pytest.raises(MalformedResponseError, match="without progress"),
    ):
        list(c.iter_chunks("/s", live="sse", offset="-1"))


def test_sse_broken_mid_stream_reconnects() -> None:
    calls = 0

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'event: control\ndata: {"streamNextOffset":"0_1"}\n\n'
            raise httpx.ReadError("reset")

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        headers = {"Content-Type": "text/event-stream"}
        if calls == 1:
            return httpx.Response(200, headers=headers, stream=Broken())
        body = b'event: control\ndata: {"streamNextOffset":"0_1","streamClosed":true}\n\n'
        return httpx.Response(200, headers=headers, content=body)

    with _mock(handler) as c:
        chunks = list(c.iter_chunks("/s", live="sse", offset="-1"))
    assert [c.stream_closed for c in chunks] == [False, True]


@pytest.mark.parametrize(
    ("headers", "body", "match"),
    [
        ({"Content-Type": "text/plain"}, b"", "not 'text/event-stream'"),
        ({"Content-Type": "text/event-stream"}, b"event: control\ndata: [1]\n\n", "no stream"),
        (
            {"Content-Type": "text/event-stream", "Stream-SSE-Data-Encoding": "base64"},
            b"event: data\ndata: !!!\n\n",
            "not valid base64",
        ),
    ],
)
def test_sse_protocol_violations(headers: dict[str, str], body: bytes, match: str) -> None:
    with (
        _mock(lambda request: httpx.Response(200, headers=headers, content=body)) as c,
        pytest.raises(MalformedResponseError, match=match),
    ):
        list(c.iter_chunks("/s", live="sse", offset="-1"))


def test_sse_json_garbage_and_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Type": "application/json"})
        return httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, content=b"event: data\ndata: {\n\n"
        )

    with (
        DurableStreamClient("http://ds.test", transport=httpx.MockTransport(handler)) as c,
        pytest.raises(MalformedResponseError, match="not valid JSON"),
    ):
        list(c.iter_chunks("/s", live="sse"))
    with (
        _mock(lambda request: httpx.Response(404, text="Stream not found")) as c,
        pytest.raises(StreamNotFoundError),
    ):
        list(c.iter_chunks("/s", live="sse", offset="-1"))


def test_sse_json_scalar_event_is_one_message() -> None:
    body = (
        b"event: data\ndata: 5\n\n"
        b'event: control\ndata: {"streamNextOffset":"0_1","streamClosed":true}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Type": "application/json"})
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)

    with DurableStreamClient("http://ds.test", transport=httpx.MockTransport(handler)) as c:
        assert [c.json() for c in c.iter_chunks("/s", live="sse")] == [[5]]


def test_stop_after_ends_a_sleeping_or_failing_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    slow = RetryPolicy(max_retries=5, initial_delay=5.0, max_delay=5.0)
    with DurableStreamClient(
        "http://ds.test", transport=httpx.MockTransport(handler), retry=slow
    ) as c:
        assert list(c.iter_chunks("/s", live="long-poll", stop_after=0.2)) == []

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with _mock(timeout) as c:
        c.retry = RetryPolicy(max_retries=1000, initial_delay=0.001, max_delay=0.001)
        assert list(c.iter_chunks("/s", live="long-poll", stop_after=0.0)) == []
        assert list(c.iter_chunks("/s", live="long-poll", stop_after=0.05)) == []


def test_stop_after_during_a_broken_stream() -> None:
    import time

    class Slow(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'event: control\ndata: {"streamNextOffset":"0_1"}\n\n'
            time.sleep(0.15)
            raise httpx.ReadTimeout("idle")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=Slow())

    with _mock(handler) as c:
        chunks = list(c.iter_chunks("/s", live="sse", offset="-1", stop_after=0.1))
    assert [c.next_offset for c in chunks] == ["0_1"]


def test_unexpected_http_error_is_wrapped() -> None:
    with (
        DurableStreamClient("") as c,
        pytest.raises(DurableStreamError, match="failed"),
    ):
        c.head("ftp://ds.test/s")


# --------------------------------------------------------------------------- producer


def test_producer_batches_and_deduplicates(any_url: str, path: str) -> None:
    recorder = Recorder()
    with DurableStreamClient(any_url, transport=recorder, retry=FAST) as c:
        c.create(path, content_type="application/json")
        producer = c.producer(path, "writer", max_batch_items=2)
        for i in range(5):
            producer.append_json({"i": i})
        assert producer.last_result is not None  # two full batches went already
        last = producer.flush()
        assert last is not None
        assert last.producer_seq == 2
        assert not last.duplicate
        # A restarted writer with the same id and epoch resends: stored once.
        again = c.producer(path, "writer", content_type="application/json", max_batch_items=2)
        for i in range(2):
            again.append(f'{{"i":{i}}}')
        dup = again.flush()
        assert dup is not None
        assert dup.duplicate
        assert c.read(path).json() == [{"i": i} for i in range(5)]
        final = producer.close_stream()
        assert final.final_offset == c.head(path).next_offset
        assert producer.close_stream() is final  # idempotent
        assert c.head(path).closed
    posts = [r for r in recorder.requests if r.method == "POST"]
    assert [r.headers["producer-seq"] for r in posts] == ["0", "1", "2", "0", "3"]


def test_producer_fencing_and_auto_claim(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    newer = client.producer(path, "p", epoch=3)
    newer.append("from-3")
    newer.flush()
    old = client.producer(path, "p", epoch=1)
    old.append("zombie")
    with pytest.raises(StaleEpochError) as info:
        old.flush()
    assert info.value.current_epoch == 3
    claimer = client.producer(path, "p", epoch=0, auto_claim=True)
    assert claimer.flush() is None  # nothing buffered, nothing sent
    claimer.append("claimed")
    claimer.append("more")
    result = claimer.flush()
    assert result is not None
    assert claimer.epoch == 4
    assert client.read(path).data == b"from-3claimedmore"


def test_producer_close_with_data_and_detach(client: DurableStreamClient, path: str) -> None:
    client.create(path, content_type="text/plain")
    producer = client.producer(path, "p")
    producer.append("a")
    result = producer.close_stream("z")
    assert result.final_offset is not None
    with pytest.raises(DurableStreamError, match="detached or closed"):
        producer.append("late")
    assert client.read(path).data == b"az"
    other = client.producer(path + "-2", "p", content_type="text/plain")
    other.detach()
    other.detach()
    with pytest.raises(DurableStreamError, match="detached or closed"):
        other.close_stream()


def test_producer_learns_the_content_type(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as c:
        c.create(path, content_type="application/json")
    with DurableStreamClient(ds_url) as c:
        producer = c.producer(path, "p")
        producer.append_json([1])
        producer.flush()
        assert c.read(path).json() == [[1]]
        with pytest.raises(ValueError, match="application/json"):
            c.producer(path + "-b", "p", content_type="text/plain").append_json(1)
        with pytest.raises(ValueError, match="producer_id"):
            c.producer(path, "")


def test_producer_gap_is_retried_once_then_raised() -> None:
    seqs: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seqs.append(request.headers["Producer-Seq"])
        return httpx.Response(
            409,
            headers={"Producer-Expected-Seq": "0", "Producer-Received-Seq": "1"},
            text="Producer sequence gap",
        )

    with _mock(handler) as c:
        producer = c.producer("/s", "p", content_type="text/plain", max_batch_items=1)
        with pytest.raises(ProducerSequenceGapError):
            producer.append("a")  # seq 0 makes no gap in the core's eyes: raised at once
        with pytest.raises(ProducerSequenceGapError) as info:
            producer.append("b")
    assert (info.value.expected, info.value.received) == (0, 1)
    assert seqs == ["0", "1", "1"]


def test_head_without_content_type_is_not_cached() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Stream-Next-Offset": "0_0"})

    with DurableStreamClient("http://ds.test", transport=httpx.MockTransport(handler)) as c:
        info = c.head("/s")
        assert (info.content_type, info.next_offset) == (None, "0_0")
        assert "/s" not in c._content_types


def test_a_closed_client_refuses_to_send_and_closes_its_transport_once(
    ds_url: str, path: str
) -> None:
    recorder = Recorder()
    client = DurableStreamClient(ds_url, retry=FAST, transport=recorder)
    assert str(client.base_url).rstrip("/") == ds_url.rstrip("/")
    assert client.create(path, content_type="application/json").created
    client.close()
    client.close()  # idempotent
    assert recorder.closed == 1
    with pytest.raises(ClientClosedError, match="DurableStreamClient was closed") as info:
        client.head(path)
    assert isinstance(info.value, StoreClosedError)
    assert isinstance(info.value, DurableStreamError)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "base_url",
    ["127.0.0.1:4437/v1/stream", "localhost:4437", "/v1/stream", "http:///v1/stream", "ftp://h/x"],
)
def test_a_base_url_without_scheme_or_host_is_refused_at_once(base_url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(base_url))) as info:
        DurableStreamClient(base_url, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    assert "http://127.0.0.1:4437/v1/stream" in str(info.value)


def test_an_empty_base_url_is_allowed_for_absolute_stream_urls() -> None:
    with DurableStreamClient("") as client:
        assert str(client.base_url) == ""
