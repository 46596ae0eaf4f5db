"""The exception tree and the translation of every httpx exception class."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from eventbus.core import StoreError, StoreTimeoutError, StoreUnavailableError
from eventbus.durablestream import (
    BadRequestError,
    DurableStreamConnectionError,
    DurableStreamError,
    DurableStreamTimeoutError,
    MalformedResponseError,
    ProducerSequenceGapError,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    UnexpectedStatusError,
)
from eventbus.durablestream._errors import _map_httpx_errors

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
