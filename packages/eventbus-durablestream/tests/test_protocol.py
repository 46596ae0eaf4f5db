"""The I/O-free core: retry policy, request building, response interpretation, SSE parsing.

Operations that talk to a server are tested against the real one in test_client.py and
test_async_client.py; here the core's pure functions are checked on their own.
"""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest

from eventbus.durablestream import (
    BadRequestError,
    ContentTypeMismatchError,
    MalformedResponseError,
    ProducerSequenceGapError,
    ReadChunk,
    RetryPolicy,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
    StreamGoneError,
    StreamNotFoundError,
    UnexpectedStatusError,
)
from eventbus.durablestream._actions import Send, Sleep
from eventbus.durablestream._operations import append_request, create_request, json_batch
from eventbus.durablestream._requests import (
    RequestFactory,
    RequestSpec,
    is_json_content_type,
    resolve_values,
)
from eventbus.durablestream._retry import send_with_retry
from eventbus.durablestream._sse import SSEEvent, SSEParser
from eventbus.durablestream._status import error_for_response

URL = "http://127.0.0.1:1/v1/stream/s"


def _response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    return httpx.Response(status, headers=headers, content=body, request=httpx.Request("POST", URL))


# --------------------------------------------------------------------------- retry policy


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"initial_delay": 0}, "initial_delay"),
        ({"initial_delay": -0.1}, "initial_delay"),
        ({"initial_delay": 1.0, "max_delay": 0.5}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**kwargs)


def test_retry_policy_backoff_grows_and_caps() -> None:
    policy = RetryPolicy(max_retries=5, initial_delay=0.1, max_delay=0.3, jitter=False)
    assert [policy.delay(n) for n in range(6)] == [0.1, 0.2, 0.3, 0.3, 0.3, None]


def test_retry_policy_jitter_stays_in_the_upper_half() -> None:
    policy = RetryPolicy(initial_delay=0.2, max_delay=0.2)
    for _ in range(50):
        delay = policy.delay(0)
        assert delay is not None
        assert 0.1 <= delay <= 0.2


def test_retry_policy_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, initial_delay=0.1, max_delay=2.0, jitter=False)
    assert policy.delay(0, "1") == 1.0
    assert policy.delay(0, "60") == 2.0
    assert policy.delay(0, "-5") == 0.0
    assert policy.delay(0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.1
    assert policy.delay(2, "1") is None


def test_send_with_retry_retries_statuses_then_gives_up() -> None:
    policy = RetryPolicy(max_retries=1, initial_delay=0.01, jitter=False)
    spec = RequestSpec("read", "GET", URL)
    operation = send_with_retry(policy, spec)
    assert operation.send(None) == Send(spec, False)
    assert operation.send(_response(503)) == Sleep(0.01)
    assert operation.send(None) == Send(spec, False)
    with pytest.raises(StopIteration) as stop:
        operation.send(_response(503))
    assert stop.value.value.status_code == 503


def test_send_with_retry_does_not_replay_unsafe_requests() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay=0.01, jitter=False)
    spec = append_request(URL, b"x", content_type="text/plain")
    operation = send_with_retry(policy, spec)
    operation.send(None)
    # A connect failure never reached the server: safe to resend.
    assert operation.send(httpx.ConnectError("refused")) == Sleep(0.01)
    operation.send(None)
    with pytest.raises(httpx.ReadError):
        operation.send(httpx.ReadError("reset mid-request"))


# --------------------------------------------------------------------------- requests


def test_resolve_values_calls_dynamic_values_and_layers() -> None:
    counter = iter(range(10))
    merged = resolve_values({"A": "1", "B": lambda: str(next(counter))}, None, {"A": "2"})
    assert merged == {"A": "2", "B": "0"}
    assert resolve_values({"B": lambda: str(next(counter))}) == {"B": "1"}


def test_request_factory_puts_protocol_values_last() -> None:
    spec = RequestSpec(
        "read",
        "GET",
        URL,
        headers={"Content-Type": "a/b"},
        params={"offset": "-1"},
        user_headers={"Content-Type": "x/y", "X-Id": lambda: "7"},
        user_params={"offset": "5", "tenant": "t"},
        timeout=httpx.Timeout(2.0),
    )
    factory = RequestFactory("", {"Auth": "z"}, {"v": "1"}, httpx.Timeout(5.0))
    request = factory.build(spec, None)
    assert (request.headers["Auth"], request.headers["X-Id"]) == ("z", "7")
    assert request.headers.get_list("Content-Type") == ["a/b"]
    assert dict(request.url.params) == {"v": "1", "offset": "-1", "tenant": "t"}
    assert request.extensions["timeout"] == httpx.Timeout(2.0).as_dict()


def test_request_factory_sends_what_httpx_client_would() -> None:
    factory = RequestFactory("", {}, {}, 5.0)
    request = factory.build(RequestSpec("append", "POST", URL, content=b"abc"), None)
    assert request.url == httpx.URL(URL)  # no parameters: nothing appended
    assert request.headers["User-Agent"] == f"python-httpx/{httpx.__version__}"
    assert request.headers["Content-Length"] == "3"
    assert request.read() == b"abc"
    assert request.extensions["timeout"] == httpx.Timeout(5.0).as_dict()


def test_request_factory_caps_every_timeout_at_a_deadline() -> None:
    import time

    spec = RequestSpec("read", "GET", URL)
    factory = RequestFactory("", {}, {}, httpx.Timeout(5.0))
    timeout = factory.build(spec, time.monotonic() + 1.0).extensions["timeout"]
    for phase in ("connect", "read", "write", "pool"):  # a request never outlives its call
        assert 0 < timeout[phase] <= 1.0
    unlimited = RequestFactory("", {}, {}, httpx.Timeout(None))
    assert unlimited.build(spec, time.monotonic() - 1).extensions["timeout"]["read"] == 0.001
    # The client's own timeout is left as it was.
    assert factory.build(spec, None).extensions["timeout"]["read"] == 5.0


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ("http://h:1/v1/stream", "/s", "http://h:1/v1/stream/s"),
        ("http://h:1/v1/stream/", "s", "http://h:1/v1/stream/s"),
        ("http://h:1/v1/stream", "http://other:2/x", "http://other:2/x"),
        ("", "http://other:2/x", "http://other:2/x"),
    ],
)
def test_request_factory_resolves_urls_like_httpx_client(
    base: str, url: str, expected: str
) -> None:
    factory = RequestFactory(base, {}, {}, 5.0)
    assert factory.url(url) == httpx.URL(expected)
    with httpx.Client(base_url=base) as client:  # the behaviour users knew
        assert client.build_request("GET", url).url == httpx.URL(expected)


def test_request_factory_forgets_urls_beyond_its_cache() -> None:
    factory = RequestFactory("http://h:1/", {}, {}, 5.0)
    first = factory.url("/s0")
    assert factory.url("/s0") is first  # remembered
    for i in range(1, 1025):
        factory.url(f"/s{i}")
    assert factory.url("/s0") is not first  # the cache was cleared, not grown without end
    assert factory.url("/s0") == first


def test_create_request_headers() -> None:
    expiry = datetime.datetime(2030, 1, 2, tzinfo=datetime.UTC)
    spec = create_request(
        URL,
        content_type="text/plain",
        ttl_seconds=None,
        expires_at=expiry,
        closed=True,
        data="hi",
        headers=None,
    )
    assert spec.headers == {
        "Content-Type": "text/plain",
        "Stream-Expires-At": "2030-01-02T00:00:00+00:00",
        "Stream-Closed": "true",
    }
    assert spec.content == b"hi"


@pytest.mark.parametrize(
    ("ttl", "expires", "match"),
    [
        (5, "2030-01-01T00:00:00Z", "not both"),
        (-1, None, "ttl_seconds"),
        (None, datetime.datetime(2030, 1, 1), "timezone-aware"),
    ],
)
def test_create_request_rejects_bad_expiry(ttl: Any, expires: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_request(
            URL,
            content_type="a/b",
            ttl_seconds=ttl,
            expires_at=expires,
            closed=False,
            data=None,
            headers=None,
        )


def test_json_batch() -> None:
    assert json_batch([{"a": 1}, "é"]) == '[{"a":1},"é"]'.encode()
    with pytest.raises(ValueError, match="at least one value"):
        json_batch([])


def test_is_json_content_type() -> None:
    assert is_json_content_type("Application/JSON; charset=utf-8")
    assert not is_json_content_type("application/ndjson")
    assert not is_json_content_type(None)


# --------------------------------------------------------------------------- errors


def _error(
    status: int,
    headers: dict[str, str] | None = None,
    *,
    op: str = "append",
    method: str = "POST",
    sent: dict[str, str] | None = None,
    body: bytes = b"server text",
) -> Any:
    spec = RequestSpec(op, method, URL, headers=sent or {})
    return error_for_response(spec, _response(status, headers, body))


def test_error_for_response_statuses() -> None:
    assert isinstance(_error(404), StreamNotFoundError)
    assert isinstance(_error(410), StreamGoneError)
    assert isinstance(_error(400), BadRequestError)
    assert isinstance(_error(403), UnexpectedStatusError)
    assert isinstance(_error(500), UnexpectedStatusError)
    stale = _error(403, {"Producer-Epoch": "4"})
    assert isinstance(stale, StaleEpochError)
    assert stale.current_epoch == 4
    closed = _error(409, {"Stream-Closed": "TRUE", "Stream-Next-Offset": "0_5"})
    assert isinstance(closed, StreamClosedError)
    assert closed.final_offset == "0_5"
    gap = _error(409, {"Producer-Expected-Seq": "1", "Producer-Received-Seq": "3"})
    assert isinstance(gap, ProducerSequenceGapError)
    assert (gap.expected, gap.received) == (1, 3)
    odd_gap = _error(409, {"Producer-Expected-Seq": "1", "Producer-Received-Seq": "x"})
    assert isinstance(odd_gap, ProducerSequenceGapError)
    assert odd_gap.received == -1
    assert isinstance(_error(409, method="PUT", op="create"), StreamExistsError)
    seq = _error(409, sent={"Stream-Seq": "2"})
    assert type(seq) is SequenceConflictError
    both = _error(409, sent={"Stream-Seq": "2"}, body=b"Content-type mismatch")
    assert isinstance(both, ContentTypeMismatchError)
    assert isinstance(_error(409), ContentTypeMismatchError)
    assert "server said" not in str(_error(500, body=b""))


def test_error_messages_name_the_problem() -> None:
    error = _error(404, op="head", method="HEAD")
    assert str(error) == f"No stream exists at {URL!r} (head). The server said 'server text'."
    assert (error.status, error.url, error.server_message) == (404, URL, "server text")


# --------------------------------------------------------------------------- chunks


def test_read_chunk_json_and_text() -> None:
    chunk = ReadChunk(b'[1,{"a":"\xc3\xa9"}]', "0_1", up_to_date=True, stream_closed=False)
    assert chunk.json() == [1, {"a": "é"}]
    assert chunk.text() == '[1,{"a":"é"}]'
    assert ReadChunk(b"", "0_1", True, False).json() == []
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        ReadChunk(b"[1,", "0_1", True, False).json()
    with pytest.raises(MalformedResponseError, match="not a JSON array"):
        ReadChunk(b'{"a":1}', "0_1", True, False).json()


# --------------------------------------------------------------------------- SSE


def test_sse_parser_handles_line_endings_and_splits() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: data\r") == []
    assert parser.feed(b"\ndata: a\r\ndata:b\r\n\r\n") == [SSEEvent("data", "a\nb")]
    assert parser.feed(b": comment\n") == []
    assert parser.feed(b"id: 7\nretry: 10\nevent: control\ndata: {}") == []
    assert parser.feed(b"\n\n") == [SSEEvent("control", "{}")]
    assert parser.feed(b"data: plain\r\rdata: x\n") == [SSEEvent("message", "plain")]
    assert parser.feed(b"\n\n") == [SSEEvent("message", "x")]
    assert parser.feed(b"field-without-colon\n\n") == []
