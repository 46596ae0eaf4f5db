"""The exception tree and the translation of every httpx exception class."""

from __future__ import annotations

import socket
import traceback
from typing import Any

import httpx
import pytest

from eventbus.core import StoreError, StoreTimeoutError, StoreUnavailableError, open_store
from eventbus.durablestream import (
    BadRequestError,
    DurableStreamClient,
    DurableStreamConnectionError,
    DurableStreamError,
    DurableStreamStore,
    DurableStreamTimeoutError,
    MalformedResponseError,
    ProducerSequenceGapError,
    RetryPolicy,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamNotFoundError,
    UnexpectedStatusError,
)
from eventbus.durablestream._discovery import open_durablestream_store
from eventbus.durablestream._errors import _map_httpx_errors, redact

URL = "http://127.0.0.1:1/s"
REQUEST = httpx.Request("GET", URL)


def _all_httpx_exceptions() -> list[type[Exception]]:
    found: list[type[Exception]] = []
    for name in httpx.__all__:
        value = getattr(httpx, name)
        if isinstance(value, type) and issubclass(value, Exception):
            found.append(value)
    return found


def _instance(cls: type[Exception]) -> Exception:
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=REQUEST, response=httpx.Response(418, request=REQUEST))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=REQUEST)
    if issubclass(cls, httpx.StreamError):
        maker: Any = cls
        made: Exception = maker() if cls is not httpx.StreamError else maker("boom")
        return made
    return cls("boom")


EXPECTED: dict[type[Exception], type[DurableStreamError]] = {
    httpx.TimeoutException: DurableStreamTimeoutError,
    httpx.NetworkError: DurableStreamConnectionError,
    httpx.ProtocolError: DurableStreamConnectionError,
    httpx.ProxyError: DurableStreamConnectionError,
    httpx.DecodingError: MalformedResponseError,
    httpx.TooManyRedirects: UnexpectedStatusError,
    httpx.HTTPStatusError: UnexpectedStatusError,
}


@pytest.mark.parametrize("cls", _all_httpx_exceptions(), ids=lambda c: c.__name__)
def test_every_httpx_exception_is_translated(cls: type[Exception]) -> None:
    original = _instance(cls)
    expected = next(
        (target for source, target in EXPECTED.items() if isinstance(original, source)),
        DurableStreamError,
    )
    with pytest.raises(DurableStreamError) as info, _map_httpx_errors(URL):
        raise original
    assert type(info.value) is expected
    assert info.value.__cause__ is original
    assert info.value.url == URL
    assert URL in str(info.value)


def test_status_error_keeps_the_status() -> None:
    error = httpx.HTTPStatusError(
        "x", request=REQUEST, response=httpx.Response(418, request=REQUEST)
    )
    with pytest.raises(UnexpectedStatusError) as info, _map_httpx_errors(URL):
        raise error
    assert info.value.status == 418


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), _map_httpx_errors(URL):
        raise KeyError("not httpx")


def test_no_exception_no_translation() -> None:
    with _map_httpx_errors(URL):
        value = 1
    assert value == 1


def test_tree_roots_in_store_error() -> None:
    assert issubclass(DurableStreamError, StoreError)
    assert issubclass(DurableStreamTimeoutError, StoreTimeoutError)
    assert issubclass(DurableStreamConnectionError, StoreUnavailableError)
    assert issubclass(BadRequestError, ValueError)
    assert issubclass(ProducerSequenceGapError, SequenceConflictError)


def test_errors_carry_their_details() -> None:
    gap = ProducerSequenceGapError("gap", expected=2, received=5, status=409, url=URL)
    assert (gap.expected, gap.received, gap.status, gap.url) == (2, 5, 409, URL)
    stale = StaleEpochError("stale", current_epoch=3, server_message="Stale producer epoch")
    assert (stale.current_epoch, stale.server_message) == (3, "Stale producer epoch")
    closed = StreamClosedError("closed", final_offset="0_9")
    assert closed.final_offset == "0_9"
    assert closed.status is None


# -- errors name the server, and never a password -----------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _everything_said(error: BaseException | None) -> str:
    """What the error and its causes say (as a traceback prints them), and their attributes."""
    said = []
    while error is not None:
        said += [*traceback.format_exception_only(error), repr(error), repr(vars(error))]
        error = error.__cause__ or error.__context__
    return "".join(said)


def test_a_connection_error_names_the_server_and_the_stream() -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DurableStreamConnectionError) as caught:
        DurableStreamStore(base, "/v1/stream/orders", retry=RetryPolicy(max_retries=0))
    assert f"'{base}/v1/stream/orders'" in str(caught.value)
    assert caught.value.url == f"{base}/v1/stream/orders"
    with DurableStreamClient(base) as client, pytest.raises(DurableStreamConnectionError) as again:
        client.head("/v1/stream/orders")
    assert f"'{base}/v1/stream/orders'" in str(again.value)


def test_urls_in_errors_hide_their_password(ds_url: str) -> None:
    port = _closed_port()
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(f"durablestream+http://user:s3cret@127.0.0.1:{port}/v1/stream/orders")
    said = _everything_said(caught.value)
    assert "s3cret" not in said
    assert f"http://user:***@127.0.0.1:{port}/v1/stream/orders" in said
    for bad in (
        "durablestream+ftp://user:s3cret@host/v1/stream/orders",
        "durablestream+http://user:s3cret@host/v1/stream/orders?x=1",
    ):
        with pytest.raises(ValueError, match=r"user:\*\*\*@host") as refused:
            open_durablestream_store(bad)  # (core's open_store names an unknown scheme's URL)
        assert "s3cret" not in _everything_said(refused.value)
    secret_url = ds_url.replace("http://", "http://user:s3cret@")
    with DurableStreamClient(secret_url) as client, pytest.raises(StreamNotFoundError) as missing:
        client.head("/v1/stream/none-here")
    assert "s3cret" not in _everything_said(missing.value)
    assert "user:***@" in str(missing.value)
    with DurableStreamStore(secret_url, "/v1/stream/secret-test") as store:
        assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h/s", "http://h/s"),
        ("http://u@h/s", "http://u@h/s"),
        ("http://u:p@h:1/s", "http://u:***@h:1/s"),
        ("http://:p@h/s", "http://:***@h/s"),
        ("/relative", "/relative"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
