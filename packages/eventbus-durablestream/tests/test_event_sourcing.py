"""DurableStreamStore and the event-sourcing capabilities, against the real reference server.

Snapshots work (an append-only companion stream per id); conditional appends and
compaction are refused with errors that name what is missing. The first test is a
canary: it proves that the pinned server ignores ``Stream-Expected-Offset``, which is why
``append_expecting`` refuses instead of sending it. When the server learns the header,
that test fails, and the store can start using it.
"""

from __future__ import annotations

import base64
import dataclasses
import json

import httpx
import pytest

from eventbus.core import (
    OLDEST,
    EventBus,
    Snapshot,
    StoreClosedError,
    StoreCorruptError,
    StoreReadOnlyError,
    UnsupportedStoreFeatureError,
)
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore


@dataclasses.dataclass(frozen=True)
class Deposited:
    amount: int


def test_the_pinned_server_ignores_stream_expected_offset(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as client:
        created = client.create(path, content_type="application/json")
        first = client.append_json(path, {"n": 1})
        assert created.next_offset != first.next_offset
    # A stale expectation (the tail before the first append) must be refused by a
    # server that supports the header; this one stores the message anyway.
    response = httpx.post(
        ds_url + path,
        content=json.dumps([{"n": 2}]),
        headers={
            "Content-Type": "application/json",
            "Stream-Expected-Offset": str(created.next_offset),
        },
    )
    assert response.status_code in (200, 204), response.text
    with DurableStreamClient(ds_url) as client:
        assert client.read(path).json() == [{"n": 1}, {"n": 2}]


def test_append_expecting_names_the_missing_server_feature(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as store:
        end = store.append(make_record())
        with pytest.raises(UnsupportedStoreFeatureError, match="Stream-Expected-Offset"):
            store.append_expecting([make_record()], end)
        assert len(store.read().events) == 1, "nothing stored"
        with pytest.raises(NotImplementedError):
            store.append_expecting([], OLDEST)


def test_a_conditional_publish_on_the_store_raises_the_same_error(ds_url: str, path: str) -> None:
    with EventBus(store=DurableStreamStore(ds_url, path)) as bus:
        with pytest.raises(UnsupportedStoreFeatureError, match="Stream-Expected-Offset"):
            bus.publish(Deposited(1), expected_offset=OLDEST)
        assert list(bus.replay()) == []


def test_compact_says_the_stream_is_append_only(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as store:
        end = store.append(make_record())
        with pytest.raises(UnsupportedStoreFeatureError, match="append-only"):
            store.compact(end)
        assert len(store.read().events) == 1


def test_closed_store_refuses_the_event_sourcing_calls(ds_url: str, path: str) -> None:
    store = DurableStreamStore(ds_url, path)
    store.close()
    with pytest.raises(StoreClosedError):
        store.append_expecting([], OLDEST)
    with pytest.raises(StoreClosedError):
        store.compact("0000000000000000_0000000000000000")
    with pytest.raises(StoreClosedError):
        store.save_snapshot("s", OLDEST, "{}")
    with pytest.raises(StoreClosedError):
        store.load_snapshot("s")


def test_snapshots_live_in_an_append_only_companion_stream(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as store:
        end = store.append(make_record())
        store.save_snapshot("account/42", OLDEST, "zero")
        store.save_snapshot("account/42", end, "one")
    name = base64.urlsafe_b64encode(b"account/42").decode().rstrip("=")
    with DurableStreamClient(ds_url) as client:
        saved = client.read(f"{path}.eventbus-snapshots/{name}").json()
    assert saved == [{"offset": "oldest", "data": "zero"}, {"offset": end, "data": "one"}]


def test_an_instance_catches_up_with_saves_since_its_last_load(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as mine, DurableStreamStore(ds_url, path) as theirs:
        assert theirs.load_snapshot("s") is None
        mine.save_snapshot("s", OLDEST, "a")
        assert theirs.load_snapshot("s") == Snapshot("s", OLDEST, "a")
        assert theirs.load_snapshot("s") == Snapshot("s", OLDEST, "a"), "nothing new: the same"
        for text in "bcd":
            mine.save_snapshot("s", OLDEST, text)
        assert theirs.load_snapshot("s") == Snapshot("s", OLDEST, "d")


@pytest.mark.parametrize(
    "message",
    [
        {"offset": "oldest"},
        {"offset": "oldest", "data": 1},
        {"offset": 5, "data": "x"},
        {"offset": "not an offset", "data": "x"},
        ["oldest", "x"],
    ],
)
def test_a_foreign_message_in_a_snapshot_stream_is_corrupt(
    ds_url: str, path: str, message: object
) -> None:
    name = base64.urlsafe_b64encode(b"s").decode().rstrip("=")
    with DurableStreamClient(ds_url) as client:
        url = f"{path}.eventbus-snapshots/{name}"
        client.create(url, content_type="application/json")
        client.append_json(url, message)
    with (
        DurableStreamStore(ds_url, path) as store,
        pytest.raises(StoreCorruptError, match="not a snapshot record"),
    ):
        store.load_snapshot("s")


class _PartialReads(httpx.BaseTransport):
    """Forwards to the server, but marks snapshot reads as not yet up to date, as a
    server that splits a long stream into several chunks would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.snapshot_reads = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "GET" and ".eventbus-snapshots/" in request.url.path:
            self.snapshot_reads += 1
            response.headers.pop("Stream-Up-To-Date", None)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_load_reads_on_until_the_stream_is_exhausted(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as store:
        store.save_snapshot("s", OLDEST, "a")
        store.save_snapshot("s", OLDEST, "b")
    transport = _PartialReads()
    with DurableStreamStore(ds_url, path, transport=transport) as store:
        assert store.load_snapshot("s") == Snapshot("s", OLDEST, "b")
    assert transport.snapshot_reads == 2, "the first chunk did not end at the tail"


def test_a_read_only_store_refuses_to_save_a_snapshot(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as store:
        store.save_snapshot("s", OLDEST, "kept")
    with DurableStreamStore(ds_url, path, read_only=True) as reader:
        with pytest.raises(StoreReadOnlyError, match="cannot save snapshots"):
            reader.save_snapshot("s", OLDEST, "new")
        assert reader.load_snapshot("s") == Snapshot("s", OLDEST, "kept")
