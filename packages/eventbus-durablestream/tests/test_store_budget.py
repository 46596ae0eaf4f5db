"""``timeout`` bounds a whole store call, retries included, against a server that never answers.

The silent server accepts connections and reads requests but never replies. Each call must
fail with one ``StoreTimeoutError`` naming the stream URL and the budget, well within
``timeout`` plus a margin (a deadline, not a speed).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from eventbus.core import NEWEST, StoreTimeoutError
from eventbus.core.testing import make_record
from eventbus.durablestream import (
    AppendOutcomeUnknownError,
    AppendTimeoutError,
    DurableStreamClient,
    DurableStreamStore,
    DurableStreamTimeoutError,
)
from eventbus.durablestream._client import CALL_DEADLINE

BUDGET = 0.5
MARGIN = 2.0


class SilentServer:
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._listener.settimeout(0.05)
        self._closed = threading.Event()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._accepted.append(connection)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._listener.close()
        for connection in self._accepted:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


class Silencing(httpx.BaseTransport):
    """Talks to the real server until silenced, then sends every request to the silent one."""

    def __init__(self, port: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.port = port
        self.silenced = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.silenced:
            request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def assert_budget_error(error: StoreTimeoutError, url: str, elapsed: float) -> None:
    assert elapsed < BUDGET + MARGIN, elapsed
    assert url in str(error)
    assert f"{BUDGET} s" in str(error)


def test_opening_a_store_fails_within_its_budget(silent: SilentServer) -> None:
    base = f"http://127.0.0.1:{silent.port}"
    started = time.monotonic()
    with pytest.raises(StoreTimeoutError) as caught:
        DurableStreamStore(base, "/v1/stream/never", timeout=BUDGET)
    assert_budget_error(caught.value, f"{base}/v1/stream/never", time.monotonic() - started)


CALLS: dict[str, Callable[[DurableStreamStore], Any]] = {
    "append": lambda store: store.append(make_record()),
    "append_batch": lambda store: store.append_batch([make_record(), make_record()]),
    "append_async": lambda store: asyncio.run(store.append_async(make_record())),
    "read": lambda store: store.read(NEWEST),
    "save_checkpoint": lambda store: store.save_checkpoint("sub", store.read(NEWEST).next),
    "load_checkpoint": lambda store: store.load_checkpoint("sub"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_each_call_fails_within_its_budget(ds_url: str, silent: SilentServer, call: str) -> None:
    transport = Silencing(silent.port)
    path = f"/v1/stream/eventbus-budget-{uuid.uuid4().hex}"
    with DurableStreamStore(ds_url, path, timeout=BUDGET, transport=transport) as store:
        if call == "save_checkpoint":
            offset = store.append(make_record())
            transport.silenced = True
            started = time.monotonic()
            with pytest.raises(StoreTimeoutError) as caught:
                store.save_checkpoint("sub", offset)
        else:
            transport.silenced = True
            started = time.monotonic()
            with pytest.raises(StoreTimeoutError) as caught:
                CALLS[call](store)
        assert_budget_error(caught.value, ds_url + path, time.monotonic() - started)


def test_an_append_out_of_time_says_whether_its_post_went_out(
    ds_url: str, silent: SilentServer
) -> None:
    transport = Silencing(silent.port)
    path = f"/v1/stream/eventbus-budget-{uuid.uuid4().hex}"
    with DurableStreamStore(ds_url, path, timeout=BUDGET, transport=transport) as store:
        transport.silenced = True
        with pytest.raises(AppendTimeoutError) as sent:  # the POST went out: it may be stored
            store.append(make_record())
        assert_budget_error(sent.value, ds_url + path, 0)
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError) as unsent:  # the tail is asked for first now
            asyncio.run(store.append_async(make_record()))
        assert not isinstance(unsent.value, AppendOutcomeUnknownError)
        assert_budget_error(unsent.value, ds_url + path, time.monotonic() - started)


def test_a_client_read_inside_a_store_call_ends_with_an_error_at_its_deadline(
    silent: SilentServer,
) -> None:
    base = f"http://127.0.0.1:{silent.port}"
    token = CALL_DEADLINE.set(time.monotonic() + BUDGET)
    started = time.monotonic()
    try:
        with (
            DurableStreamClient(base) as client,
            pytest.raises(DurableStreamTimeoutError, match="before the call's deadline"),
        ):
            list(client.iter_chunks("/v1/stream/never", stop_after=BUDGET + MARGIN))
    finally:
        CALL_DEADLINE.reset(token)
    assert time.monotonic() - started < BUDGET + MARGIN
