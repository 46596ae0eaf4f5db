"""DurableStreamStore: error paths, exactly-once retries, live tail, discovery.

Happy paths and protocol behaviour run against the real reference server (conftest).
Faults a server cannot be made to produce (a reset connection, a lost response, a
hang) are injected by a transport that wraps the real one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    EventRecord,
    Lease,
    OffsetError,
    Owner,
    StoreClosedError,
    StoreCorruptError,
    StoredEvent,
    StoreReadOnlyError,
    StoreTimeoutError,
    StoreUnavailableError,
    open_store,
)
from eventbus.core.testing import make_record
from eventbus.durablestream import (
    AppendOutcomeUnknownError,
    AppendTimeoutError,
    DurableStreamClient,
    DurableStreamStore,
    MalformedResponseError,
    RetryPolicy,
    StreamExistsError,
    StreamNotFoundError,
    open_durablestream_store,
)
from eventbus.durablestream._envelope_codec import (
    STORED_EVENT_FIELDS,
    decode_chunk,
    encode_batch,
)
from eventbus.durablestream._offsets import (
    COMMON_SUFFIXES,
    compare_tokens,
    parse_token,
)
from eventbus.durablestream._store import on_loopback

FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.02, jitter=False)

Forward = Callable[[httpx.Request], httpx.Response]
Fault = Callable[[httpx.Request, Forward], httpx.Response]


class FaultyTransport(httpx.BaseTransport):
    """Forwards to the real server, except for requests a planned fault matches."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.plan: list[tuple[Callable[[httpx.Request], bool], Fault]] = []
        self.seen: list[httpx.Request] = []

    def add(self, match: Callable[[httpx.Request], bool], fault: Fault, times: int = 1) -> None:
        self.plan += [(match, fault)] * times

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        for index, (match, fault) in enumerate(self.plan):
            if match(request):
                del self.plan[index]
                return fault(request, self._forward)
        return self._forward(request)

    def _forward(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        return response

    def close(self) -> None:
        self.inner.close()


def is_post(request: httpx.Request) -> bool:
    return request.method == "POST"


def is_head(request: httpx.Request) -> bool:
    return request.method == "HEAD"


def is_get(request: httpx.Request) -> bool:
    return request.method == "GET"


def reset(request: httpx.Request, forward: Callable[[httpx.Request], httpx.Response]) -> Any:
    raise httpx.ReadError("connection reset (injected)", request=request)


def lose_response(
    request: httpx.Request, forward: Callable[[httpx.Request], httpx.Response]
) -> Any:
    forward(request)
    raise httpx.ReadError("response lost (injected)", request=request)


def hang(request: httpx.Request, forward: Callable[[httpx.Request], httpx.Response]) -> Any:
    raise httpx.ReadTimeout("no answer (injected hang)", request=request)


def _client_call(url: str, call: Callable[[DurableStreamClient], object]) -> None:
    with DurableStreamClient(url) as client:
        call(client)


def stream_path() -> str:
    return f"/v1/stream/eventbus-faults-{uuid.uuid4().hex}"


@pytest.fixture
def url(ds_server: Any) -> str:
    return str(ds_server.url)


@pytest.fixture
def faulty() -> FaultyTransport:
    return FaultyTransport()


@pytest.fixture
def store(url: str, faulty: FaultyTransport) -> Iterator[DurableStreamStore]:
    with DurableStreamStore(url, stream_path(), retry=FAST, transport=faulty) as opened:
        yield opened


def ids(store: DurableStreamStore) -> list[str]:
    return [e.event_id for e in store.iter_events()]


# -- construction and discovery ------------------------------------------------------


@pytest.mark.parametrize("stream", ["", "/", "v1/stream/x"])
def test_stream_must_be_a_path(url: str, stream: str) -> None:
    with pytest.raises(ValueError, match=repr(stream)):
        DurableStreamStore(url, stream)


def test_max_batch_bytes_must_be_positive(url: str) -> None:
    with pytest.raises(ValueError, match="0"):
        DurableStreamStore(url, stream_path(), max_batch_bytes=0)


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailableError):
        DurableStreamStore(f"http://127.0.0.1:{port}", stream_path(), retry=FAST)


def test_a_hanging_server_hits_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StoreTimeoutError):
            DurableStreamStore(f"http://127.0.0.1:{port}", stream_path(), timeout=0.3, retry=FAST)


def test_open_store_urls(ds_server: Any) -> None:
    address = str(ds_server.url).removeprefix("http://")
    path = stream_path()
    store = open_store(f"durablestream+http://{address}{path}")
    assert isinstance(store, DurableStreamStore)
    offset = store.append(make_record())
    store.close()
    with open_durablestream_store(f"DurableStream+HTTP://{address}{path}") as again:
        assert again.read(NEWEST).next == offset
    assert repr(again) == f"DurableStreamStore('http://{address}{path}')"


@pytest.mark.parametrize(
    "bad",
    [
        "http://127.0.0.1:1/v1/stream/x",
        "durablestream+http:///v1/stream/x",
        "durablestream+http://127.0.0.1:1",
        "durablestream+http://127.0.0.1:1/",
        "durablestream+http://127.0.0.1:1/s?timeout=1",
        "durablestream+https://127.0.0.1:1/s#frag",
    ],
)
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="durablestream"):
        open_durablestream_store(bad)


@pytest.mark.parametrize(
    ("compression", "accepted", "encoding"),
    [(None, "identity", None), (False, "identity", None), (True, "gzip, deflate", "gzip")],
)
def test_reads_from_this_machine_are_not_compressed_unless_asked(
    url: str, faulty: FaultyTransport, compression: bool | None, accepted: str, encoding: str
) -> None:
    answers: list[httpx.Response] = []

    def keep(request: httpx.Request, forward: Forward) -> httpx.Response:
        answers.append(forward(request))
        return answers[-1]

    with DurableStreamStore(url, stream_path(), compression=compression, transport=faulty) as s:
        records = [make_record() for _ in range(20)]  # a response the server would gzip
        s.append_batch(records)
        faulty.add(lambda request: request.method == "GET", keep)
        events = s.read(OLDEST, 50).events
    assert [e.event_id for e in events] == [r.event_id for r in records]
    assert len(answers[0].content) > 1024  # the server compresses from 1 KiB
    assert answers[0].request.headers["accept-encoding"] == accepted
    assert answers[0].headers.get("content-encoding") == encoding


@pytest.mark.parametrize(
    ("base_url", "loopback"),
    [
        ("http://127.0.0.1:4437", True),
        ("http://127.8.9.1", True),
        ("http://[::1]:4437", True),
        ("http://localhost:4437", True),
        ("https://LOCALHOST", True),
        ("http://streams.localhost", True),
        ("http://10.0.0.1:4437", False),
        ("https://[2001:db8::1]", False),
        ("https://streams.example.com", False),
        ("http://localhost.example.com", False),
    ],
)
def test_loopback_hosts(base_url: str, loopback: bool) -> None:
    assert on_loopback(base_url) is loopback


def test_a_stream_of_another_content_type_is_refused(url: str) -> None:
    path = stream_path()
    with DurableStreamClient(url) as client:
        client.create(path, content_type="text/plain")
    with pytest.raises(StreamExistsError) as caught:
        DurableStreamStore(url, path)
    assert "its content type is 'text/plain'" in str(caught.value)
    assert "needs 'application/json'" in str(caught.value)
    assert caught.value.url == url + path


def test_a_json_stream_of_another_configuration_is_named_as_such(url: str) -> None:
    path = stream_path()
    with DurableStreamClient(url) as client:
        client.create(path, content_type="application/json", ttl_seconds=3600)
    with pytest.raises(StreamExistsError, match="'application/json' stream of another config"):
        DurableStreamStore(url, path)


# -- offsets and the envelope ---------------------------------------------------------


def test_offset_tokens_parse_and_compare() -> None:
    assert parse_token("0_1") == ("0_1", 0, -1)
    assert parse_token("0_1,00000002") == ("0_1", 2, 2)
    assert parse_token("0_1&00000002") == ("0_1", 1, 2)
    assert compare_tokens("0_1", "0_1,00000000") < 0
    assert compare_tokens("0_1", "0_1&00000000") < 0
    assert compare_tokens("0_1&00000009", "0_1,00000000") < 0
    assert compare_tokens("0_1,00000003", "0_2") < 0
    assert compare_tokens("0_2", "0_2") == 0
    assert parse_token("-1&00000000") == ("-1", 1, 0)  # the beginning: a read's start only
    for sentinel in ["-1", "now", "now,00000000", "-1,00000000", "now&00000000"]:
        with pytest.raises(OffsetError, match="expected a server offset"):
            parse_token(sentinel)
    for bad in [
        "0_1,2",
        "0_1&2",
        "0_1,0000000x",
        "0_1,\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661",
    ]:
        with pytest.raises(OffsetError, match="8 digits"):
            parse_token(bad)
    with pytest.raises(OffsetError, match="string"):
        parse_token(3)  # type: ignore[arg-type]


def test_data_round_trips_exactly_though_the_server_rewrites_json(url: str) -> None:
    tricky = '{"big": 12345678901234567890, "float": 1.0, "exp": 1e3, "dup": 1, "dup": 2}'
    record = dataclasses.replace(make_record(), data=tricky)
    with DurableStreamStore(url, stream_path()) as store:
        store.append(record)
        assert store.read().events[0].data == tricky


def test_lone_surrogates_round_trip_in_every_text_field(url: str) -> None:
    # Any str can be published; the envelope escapes a lone surrogate, which msgspec's
    # parser refuses, so such a response takes the slower path instead of failing.
    odd = dataclasses.replace(
        make_record(
            type_name="odd.\udc80",
            metadata={"path": "caf\udce9", "\ud800": "key"},
            origin="bus-\udfff",
        ),
        data='{"s": "\ud800 \U0001f600"}',
    )
    plain = make_record()
    with DurableStreamStore(url, stream_path()) as store:
        offsets = store.append_batch([plain, odd])
        events = store.read().events
    assert [e.offset for e in events] == offsets
    got = events[1]
    assert (got.type_name, got.data, got.origin) == (odd.type_name, odd.data, odd.origin)
    assert dict(got.metadata) == odd.metadata
    assert events[0].event_id == plain.event_id


def test_undecodable_messages_are_reported_and_raised_in_place(url: str) -> None:
    path = stream_path()
    skipped: list[tuple[Any, Exception]] = []
    with DurableStreamStore(url, path, on_undecodable=lambda i, e: skipped.append((i, e))) as store:
        first = store.append(make_record())
        with DurableStreamClient(url) as client:
            client.append(path, json.dumps([{"foreign": True}, 7]), content_type="application/json")
        last = make_record()
        offset = store.append(last)
        with pytest.raises(StoreCorruptError) as one:
            store.read(first)
        assert one.value.offset == f"{first}&00000000"  # counted from the read's start
        with pytest.raises(StoreCorruptError) as two:
            store.read(one.value.offset)
        assert two.value.offset is not None
        assert two.value.record is not None
        assert two.value.record.data == "7"
        assert [e.offset for e in store.read(two.value.offset).events] == [offset]
    assert [item for item, _ in skipped] == [{"foreign": True}, 7]


def test_undecodable_messages_are_logged_by_default(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = stream_path()
    with DurableStreamStore(url, path) as store:
        with DurableStreamClient(url) as client:
            client.append(path, json.dumps({"foreign": 1}), content_type="application/json")
        with (
            caplog.at_level(logging.ERROR, logger="eventbus.durablestream"),
            pytest.raises(StoreCorruptError, match="no event"),
        ):
            store.read()
    assert "not an eventbus event" in caplog.text


def test_timestamps_in_other_zones_are_read_as_utc() -> None:
    good = json.loads(encode_batch([make_record()], "0_0"))[0]
    good["ts"] = "2024-01-01T01:00:00.5+01:00"
    chunk = decode_chunk(body_of([good]), "0_1", "0_9", lambda _, e: None)
    assert chunk.events[0].timestamp == datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert chunk.events[0].timestamp.tzinfo is UTC


def test_timestamps_are_stored_in_utc(store: DurableStreamStore) -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 250, tzinfo=timezone(timedelta(hours=2)))
    store.append(make_record(timestamp=moment))
    stored = store.read().events[0].timestamp
    assert stored == moment
    assert stored.tzinfo is UTC


def test_closing_interrupts_an_iteration_within_a_page(store: DurableStreamStore) -> None:
    store.append_batch([make_record() for _ in range(3)])
    iterator = store.iter_events()
    next(iterator)
    store.close()
    with pytest.raises(StoreClosedError):
        next(iterator)


def body_of(items: list[Any]) -> bytes:
    """A response body holding ``items``."""
    return json.dumps(items).encode()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"v": 2}, "format version 2 is not 1"),
        ({"v": True}, "format version True is not 1"),
    ],
)
def test_envelopes_of_other_versions_keep_their_place(change: dict[str, Any], why: str) -> None:
    good = json.loads(encode_batch([make_record()], "0_0"))[0]
    errors: list[tuple[Any, Exception]] = []
    other = {**good, **change}
    chunk = decode_chunk(body_of([other, good]), "0_1", "0_9", lambda i, e: errors.append((i, e)))
    # counted from the read's start: the next envelope's anchor is before it
    assert [e.offset for e in chunk.events] == ["0_1&00000000", "0_9"]
    assert [item for item, _ in errors] == [other]
    assert re.search(why, str(errors[0][1])), errors[0][1]
    assert list(chunk.corrupt) == ["0_1&00000000"]
    assert json.loads(chunk.events[0].data) == other


def test_foreign_messages_are_named_as_such() -> None:
    errors: list[tuple[Any, Exception]] = []
    good = json.loads(encode_batch([make_record()], "0_0"))[0]
    no_s = {k: v for k, v in good.items() if k != "s"}
    chunk = decode_chunk(
        body_of(["text", {"x": 1}, no_s, {**good, "extra": [1]}]),
        "-1",
        "0_9",
        lambda i, e: errors.append((i, e)),
    )
    # unknown fields are ignored, and `s` is not needed
    assert [e.event_id for e in chunk.events] == ["", "", good["id"], good["id"]]
    assert [e.offset for e in chunk.events] == ["-1&00000000", "-1&00000001", "-1&00000002", "0_9"]
    assert [item for item, _ in errors] == ["text", {"x": 1}]
    assert [str(e).split(" (")[0] for _, e in errors] == [
        "it is not an eventbus envelope",
        "it is not an eventbus envelope",
    ]
    assert list(chunk.corrupt) == ["-1&00000000", "-1&00000001"]


@pytest.mark.parametrize("body", [b"[1,", b'{"a": 1}', b"nonsense"])
def test_a_body_that_is_not_a_json_array_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponseError, match="stream data is not"):
        decode_chunk(body, "0_1", "0_9", lambda _, e: None)


def test_stored_event_fields_match_the_fast_decoder() -> None:
    names = tuple(field.name for field in dataclasses.fields(StoredEvent))
    assert names == STORED_EVENT_FIELDS


def test_decoded_events_equal_the_events_built_by_hand() -> None:
    first = [make_record(), make_record(metadata={"k": "v", "z": "a"}), make_record()]
    second = [make_record(), make_record(metadata={"only": "one"})]
    items = json.loads(encode_batch(first, "0_1")) + json.loads(encode_batch(second, "0_5"))
    chunk = decode_chunk(body_of(items), "0_1", "0_9", lambda _, e: None)
    offsets = ["0_1,00000000", "0_1,00000001", "0_5", "0_5,00000000", "0_9"]
    assert chunk.events == [
        StoredEvent(
            offset, r.event_id, r.type_name, r.data, r.timestamp, dict(r.metadata), r.origin
        )
        for offset, r in zip(offsets, first + second, strict=True)
    ]
    assert list(chunk.events[1].metadata.items()) == [("k", "v"), ("z", "a")]
    with pytest.raises(TypeError):
        chunk.events[0].metadata["new"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.events[0].offset = "0_0"  # type: ignore[misc]


def test_decoded_events_are_frozen_stored_events_with_tokens_for_long_posts() -> None:
    records = [make_record() for _ in range(12)]
    items = json.loads(encode_batch(records[:2], "0_1")) + json.loads(
        encode_batch(records[2:], "0_5")
    )
    chunk = decode_chunk(body_of(items), "0_1", "0_9", lambda _, e: None)
    assert all(type(e) is StoredEvent for e in chunk.events)
    assert [e.offset for e in chunk.events] == [
        "0_1,00000000",
        "0_5",
        *(f"0_5,{i:08d}" for i in range(9)),
        "0_9",
    ]
    assert [e.event_id for e in chunk.events] == [r.event_id for r in records]
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.events[-1].data = "{}"  # type: ignore[misc]


def test_a_post_longer_than_the_preformatted_suffixes_names_every_event(url: str) -> None:
    records = [make_record() for _ in range(len(COMMON_SUFFIXES) + 3)]
    path = stream_path()
    with DurableStreamStore(url, path) as store:
        offsets = store.append_batch(records)
        anchor = parse_token(offsets[0])[0]
        assert offsets[:-1] == [f"{anchor},{i:08d}" for i in range(len(records) - 1)]
        assert [e.offset for e in store.iter_events()] == offsets
    with DurableStreamStore(url, path) as fresh:  # no cached window
        after = fresh.read(offsets[-3], 10).events
    assert [e.event_id for e in after] == [r.event_id for r in records[-2:]]


# -- reads ----------------------------------------------------------------------------


def test_offsets_the_server_refuses_are_offset_errors(store: DurableStreamStore) -> None:
    store.append(make_record())
    with pytest.raises(OffsetError, match="rejected"):
        store.read("abc")


def test_anchored_offsets_that_name_no_event_are_offset_errors(
    store: DurableStreamStore, url: str
) -> None:
    offsets = store.append_batch([make_record(), make_record(), make_record()])
    anchor, _, _ = parse_token(offsets[0])
    with pytest.raises(OffsetError, match="no such event"):
        store.read(f"{anchor},00000003")
    with (
        DurableStreamStore(url, stream_path()) as other,
        pytest.raises(OffsetError, match="no such event"),
    ):
        other.read(offsets[1])


def test_a_fresh_instance_resumes_from_every_offset(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path) as store:
        offsets = store.append_batch([make_record() for _ in range(4)])
    for index, offset in enumerate(offsets):
        with DurableStreamStore(url, path) as fresh:
            assert [e.offset for e in fresh.read(offset).events] == offsets[index + 1 :]


def test_an_offset_beyond_the_tail_reads_nothing(store: DurableStreamStore) -> None:
    store.append(make_record())
    beyond = "9999999999999999_9999999999999999"
    page = store.read(beyond)
    assert list(page.events) == []
    assert page.next == beyond


def test_newest_on_a_reopened_stream(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path), DurableStreamStore(url, path) as empty:
        assert empty.read(NEWEST).next is OLDEST
        assert empty.read(NEWEST).next is OLDEST
    with DurableStreamStore(url, path) as writer:
        offset = writer.append(make_record())
    with DurableStreamStore(url, path) as reader:
        assert reader.read(NEWEST).next == offset


def test_long_reads_page_through_a_trimmed_window(store: DurableStreamStore) -> None:
    records = [make_record({"i": i}) for i in range(10_060)]
    offsets = store.append_batch(records)
    first = store.read(OLDEST, 10_040)
    second = store.read(first.next, 10)
    third = store.read(second.next, 100)
    seen = [*first.events, *second.events, *third.events]
    assert [e.offset for e in seen] == offsets
    assert [e.event_id for e in store.read(offsets[10_049], 3).events] == [
        r.event_id for r in records[10_050:10_053]
    ]


def test_a_closed_client_means_a_closed_store(store: DurableStreamStore) -> None:
    store._client.close()  # as if close() raced with a call in flight
    with pytest.raises(StoreClosedError):
        store.read()


# -- exactly-once appends -------------------------------------------------------------


def test_a_lost_response_is_retried_without_duplicating(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    before = store.append(make_record())
    faulty.add(is_post, lose_response)
    batch = [make_record(), make_record()]
    offsets = store.append_batch(batch)
    after = store.append(make_record())
    events = list(store.iter_events())
    assert len(events) == 4
    assert [e.offset for e in events] == [before, *offsets, after]
    assert [e.event_id for e in events[1:3]] == [r.event_id for r in batch]


def test_a_reset_before_the_server_saw_it_is_retried(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    faulty.add(is_post, reset, times=2)
    record = make_record()
    offset = store.append(record)
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [(offset, record.event_id)]


def test_when_retries_run_out_the_append_fails_and_later_ones_work(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    faulty.add(is_post, reset, times=4)
    with pytest.raises(StoreUnavailableError):
        store.append(make_record())
    later = make_record()
    offset = store.append(later)
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [(offset, later.event_id)]


def test_a_post_landing_late_is_deduplicated_by_the_server(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    stash: list[httpx.Request] = []

    def hold(request: httpx.Request, forward: Any) -> httpx.Response:
        stash.append(request)  # still on its way: the store's look finds nothing
        raise httpx.ReadError("connection reset (injected)", request=request)

    def deliver_late(request: httpx.Request, forward: Forward) -> httpx.Response:
        forward(stash[0])  # the first copy lands now, just before the retry
        return forward(request)

    faulty.add(is_post, hold)
    faulty.add(is_post, deliver_late)
    record = make_record()
    offset = store.append(record)
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [(offset, record.event_id)]
    later = store.append(make_record())
    assert [e.offset for e in store.iter_events()] == [offset, later]


def test_a_duplicate_answer_without_the_events_is_corruption(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    def fake_duplicate(request: httpx.Request, forward: Any) -> httpx.Response:
        return httpx.Response(204, headers={"Producer-Epoch": "0", "Producer-Seq": "0"})

    faulty.add(is_post, fake_duplicate)
    with pytest.raises(StoreCorruptError, match="deduplicated"):
        store.append(make_record())


def test_a_producer_sequence_gap_starts_a_new_session(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    def skip_ahead(request: httpx.Request, forward: Forward) -> httpx.Response:
        request.headers["Producer-Seq"] = "5"
        return forward(request)

    store.append(make_record())
    faulty.add(is_post, skip_ahead)
    record = make_record()
    offset = store.append(record)
    assert [e.offset for e in store.iter_events()][-1] == offset


def test_a_head_without_the_tail_is_unavailable(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    def strip(request: httpx.Request, forward: Any) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "application/json"})

    faulty.add(is_head, strip)
    with pytest.raises(StoreUnavailableError, match="without Stream-Next-Offset"):
        store.read(NEWEST)


def test_appends_to_a_deleted_stream_fail_clearly(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path) as store:
        _client_call(url, lambda c: c.delete(path))
        with pytest.raises(StreamNotFoundError):
            store.append(make_record())


def test_group_commit_respects_max_batch_bytes(url: str) -> None:
    faulty = FaultyTransport()
    with DurableStreamStore(url, stream_path(), max_batch_bytes=1, transport=faulty) as store:
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(store.append(make_record())))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [e.offset for e in store.iter_events()]
    assert sum(is_post(r) for r in faulty.seen) == 6


def test_transient_5xx_from_the_server_are_retried(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path, retry=FAST) as store:
        httpx.post(
            f"{url}/_test/inject-error",
            json={"path": path, "status": 503, "count": 2, "method": "POST"},
        ).raise_for_status()
        record = make_record()
        offset = store.append(record)
        assert [(e.offset, e.event_id) for e in store.iter_events()] == [(offset, record.event_id)]


# -- tail -----------------------------------------------------------------------------


def test_tail_ends_with_an_error_when_the_stream_is_deleted(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path) as store:
        offset = store.append(make_record())
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                store.tail(offset, timeout=20)
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        _client_call(url, lambda c: c.delete(path))
        waiter.join(15)
        assert not waiter.is_alive()
        assert isinstance(outcome[0], StreamNotFoundError)


def test_tail_on_a_stream_closed_by_someone_else_waits_out_its_timeout(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path) as store:
        offset = store.append(make_record())
        _client_call(url, lambda c: c.close_stream(path))
        page = store.tail(offset, timeout=0.3)
        assert list(page.events) == []
        assert page.next == offset


def test_tail_from_newest_sees_only_new_events(url: str) -> None:
    with DurableStreamStore(url, stream_path()) as store:
        store.append(make_record())
        record = make_record()
        timer = threading.Timer(0.2, lambda: store.append(record))
        timer.start()
        page = store.tail(NEWEST, timeout=10)
        assert [e.event_id for e in page.events] == [record.event_id]
        timer.join(5)  # the append may still be reading its response: not closed under it


def test_waiting_for_a_long_poll_after_close_raises(url: str) -> None:
    store = DurableStreamStore(url, stream_path())
    offset = store.append(make_record())
    store.close()
    with pytest.raises(StoreClosedError):
        store._poller.wait(offset, 0.1)


# -- asyncio publishers -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_async_appends_share_posts(url: str) -> None:
    faulty = FaultyTransport()
    with DurableStreamStore(url, stream_path(), transport=faulty) as store:
        records = [make_record({"i": i}) for i in range(64)]
        offsets = await asyncio.gather(*(store.append_async(r) for r in records))
        stored = {e.event_id: e.offset for e in store.iter_events()}
        assert stored == {r.event_id: o for r, o in zip(records, offsets, strict=True)}
    assert sum(is_post(r) for r in faulty.seen) < 64


@pytest.mark.asyncio
async def test_one_loop_iteration_of_appends_is_one_post_within_the_size_limit(url: str) -> None:
    faulty = FaultyTransport()
    records = [make_record({"i": f"{i:02d}", "pad": "x" * 200}) for i in range(12)]
    limit = 4 * len(records[0].data)  # four events a POST at most
    with DurableStreamStore(url, stream_path(), transport=faulty, max_batch_bytes=limit) as store:
        before = sum(is_post(r) for r in faulty.seen)
        offsets = await asyncio.gather(*(store.append_async(r) for r in records))
        posts = sum(is_post(r) for r in faulty.seen) - before
        assert [e.event_id for e in store.iter_events()] == [r.event_id for r in records]
        assert [e.offset for e in store.iter_events()] == offsets
    assert posts == 3


@pytest.mark.asyncio
async def test_closing_before_a_batch_is_queued_fails_its_appends_and_sends_nothing(
    url: str,
) -> None:
    faulty = FaultyTransport()
    store = DurableStreamStore(url, stream_path(), transport=faulty)
    sent = len(faulty.seen)
    appending = asyncio.ensure_future(store.append_async(make_record()))
    await asyncio.sleep(0)  # the append has begun a batch, to be queued next iteration
    store.close()
    with pytest.raises(StoreClosedError):
        await appending
    assert len(faulty.seen) == sent


@pytest.mark.asyncio
async def test_async_append_failures_reach_the_caller(url: str) -> None:
    path = stream_path()
    store = DurableStreamStore(url, path)
    _client_call(url, lambda c: c.delete(path))
    with pytest.raises(StreamNotFoundError):
        await store.append_async(make_record())
    store.close()
    with pytest.raises(StoreClosedError):
        await store.append_async(make_record())


@pytest.mark.asyncio
async def test_a_cancelled_async_append_does_not_disturb_the_others(url: str) -> None:
    with DurableStreamStore(url, stream_path()) as store:
        given_up = asyncio.ensure_future(store.append_async(make_record()))
        await asyncio.sleep(0)  # it is queued and waiting now
        given_up.cancel()
        record = make_record()
        offset = await store.append_async(record)
        assert [e.offset for e in store.iter_events()][-1] == offset
        assert given_up.cancelled()


# -- several writers on one stream ------------------------------------------------------------


@pytest.mark.parametrize("server", ["ds_server", "ds_file_server"])
def test_writers_in_several_instances_get_the_offsets_readers_see(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(server).url)
    path = stream_path()
    stores = [DurableStreamStore(url, path) for _ in range(4)]
    returned: dict[str, str] = {}

    def write(store: DurableStreamStore, w: int) -> None:
        for i in range(25):
            if i % 5 == 4:
                batch = [make_record({"w": w, "i": i, "k": k}) for k in range(3)]
                offsets = store.append_batch(batch)
                returned.update(zip([r.event_id for r in batch], offsets, strict=True))
            else:
                record = make_record({"w": w, "i": i})
                returned[record.event_id] = store.append(record)

    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        events = list(stores[0].iter_events())
        assert len(events) == len(returned) == 4 * (20 + 5 * 3)
        assert {e.event_id: e.offset for e in events} == returned
        offsets = [e.offset for e in events]
        assert offsets == sorted(offsets, key=functools.cmp_to_key(compare_tokens))
    finally:
        for store in stores:
            store.close()


def test_a_hanging_server_fails_reads_and_appends_with_a_timeout(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    store.append(make_record())
    faulty.add(lambda r: r.method == "GET", hang, times=4)
    with pytest.raises(StoreTimeoutError):
        store.read("0000000000000000_0000000000000000")
    faulty.add(is_post, hang, times=4)
    with pytest.raises(StoreTimeoutError):
        store.append(make_record())
    assert len(list(store.iter_events())) == 1


def test_transient_5xx_on_reads_are_retried(url: str) -> None:
    path = stream_path()
    with DurableStreamStore(url, path, retry=FAST) as store:
        offset = store.append(make_record())
        httpx.post(
            f"{url}/_test/inject-error",
            json={"path": path, "status": 503, "count": 2, "method": "GET"},
        ).raise_for_status()
        with DurableStreamStore(url, path, retry=FAST) as fresh:
            assert [e.offset for e in fresh.read().events] == [offset]


def test_a_base_url_without_scheme_is_refused_before_any_request() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(503)

    started = time.monotonic()
    with pytest.raises(ValueError, match=r"'127\.0\.0\.1:4437/v1' is not an absolute http"):
        DurableStreamStore(
            "127.0.0.1:4437/v1", "/stream/orders", transport=httpx.MockTransport(handler)
        )
    assert time.monotonic() - started < 1.0
    assert requests == []


def test_a_read_only_store_reads_and_tails_but_never_writes(ds_server: Any) -> None:
    address = str(ds_server.url).removeprefix("http://")
    path = stream_path()
    with open_store(f"durablestream+http://{address}{path}") as writer:  # type: ignore[attr-defined]
        offsets = writer.append_batch([make_record(), make_record()])
        writer.save_checkpoint("mailer", offsets[0])
    with open_durablestream_store(f"durablestream+http://{address}{path}?mode=ro") as store:
        assert store.read_only
        assert [e.offset for e in store.read().events] == offsets
        assert store.tail(offsets[-1], timeout=0.05).events == []
        assert store.load_checkpoint("mailer") == offsets[0]
        owner = Owner("host", 1, "reader")
        for call, what in (
            (lambda: store.append(make_record()), "append events"),
            (lambda: store.append_batch([]), "append events"),
            (lambda: store.save_checkpoint("mailer", OLDEST), "save checkpoints"),
            (lambda: asyncio.run(store.append_async(make_record())), "append events"),
            (lambda: store.claim_lease("mailer", owner, None), "claim leases"),
            (lambda: store.renew_lease(Lease("mailer", owner, 1)), "renew leases"),
            (lambda: store.release_lease(Lease("mailer", owner, 1)), "release leases"),
            (
                lambda: store.save_checkpoint_fenced(Lease("mailer", owner, 1), OLDEST),
                "save checkpoints",
            ),
        ):
            with pytest.raises(StoreReadOnlyError, match=f"opened read-only; it cannot {what}"):
                call()
        assert store.load_checkpoint("mailer") == offsets[0]
        assert store.read(NEWEST).next == offsets[-1]
    with pytest.raises(StoreClosedError):
        store.append(make_record())
    with open_durablestream_store(f"durablestream+http://{address}{path}?mode=rw") as again:
        assert not again.read_only
        assert again.read(NEWEST).next == offsets[-1]


def test_a_read_only_store_does_not_create_a_missing_stream(ds_server: Any) -> None:
    path = stream_path()
    with pytest.raises(StreamNotFoundError):
        DurableStreamStore(ds_server.url, path, read_only=True)
    with DurableStreamClient(ds_server.url) as client, pytest.raises(StreamNotFoundError):
        client.head(path)


@pytest.mark.parametrize(
    ("query", "message"),
    [("mode=rwc", "use mode=ro"), ("mode=ro&mode=rw", "only that option"), ("x=1", "only")],
)
def test_bad_mode_options_are_refused(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_durablestream_store(f"durablestream+http://127.0.0.1:1/s?{query}")


def test_a_tail_after_an_offset_not_named_by_its_end_waits_for_what_follows(
    url: str,
) -> None:
    path = stream_path()
    with DurableStreamStore(url, path) as writer:
        first = writer.append_batch([make_record(), make_record()])
    last_of_batch = first[0].replace(",00000000", ",00000001")  # as first[1], differently
    with DurableStreamStore(url, path) as reader:
        later = make_record()
        timer = threading.Timer(0.3, lambda: writer_append(url, path, later))
        timer.start()
        try:
            page = reader.tail(last_of_batch, timeout=10)
        finally:
            timer.join()
    assert [e.event_id for e in page.events] == [later.event_id]


def writer_append(url: str, path: str, record: EventRecord) -> None:
    with DurableStreamStore(url, path) as writer:
        writer.append(record)


# -- an append that gives up when its POST may have landed ------------------------------


def fail_unsure(store: DurableStreamStore, faulty: FaultyTransport, record: EventRecord) -> None:
    """Append ``record`` while every POST is reset: it fails, unsure whether it landed."""
    faulty.add(is_post, reset, times=4)
    with pytest.raises(AppendOutcomeUnknownError):
        store.append(record)


def land_unseen(faulty: FaultyTransport) -> None:
    """The next POST lands but its answer is lost, and every look for it fails (until the
    caller clears the plan)."""
    faulty.add(is_post, lose_response)
    faulty.add(is_get, reset, times=100)


def test_an_append_that_gave_up_after_its_post_landed_is_retried_at_most_once(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    record = make_record()
    land_unseen(faulty)
    with pytest.raises(AppendOutcomeUnknownError) as caught:
        store.append(record)
    faulty.plan.clear()
    error = caught.value
    assert "may have reached the server" in str(error)
    assert "store.append_batch(error.records)" in str(error)
    assert error.records == (record,)
    assert error.url == store._url
    offset = store.append(record)  # the same event id: the server says duplicate
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [(offset, record.event_id)]
    again = store.append(record)  # retried and settled: now a new append of its own
    assert [e.event_id for e in store.iter_events()] == [record.event_id] * 2
    assert again != offset


def test_an_append_that_gave_up_before_its_post_landed_is_stored_once(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    faulty.add(is_post, reset, times=4)
    batch = [make_record(), make_record()]
    with pytest.raises(AppendOutcomeUnknownError) as caught:
        store.append_batch(batch)
    faulty.add(is_post, reset)  # the retry fails too: still unknown, still retryable
    with pytest.raises(AppendOutcomeUnknownError):
        store.append_batch(list(caught.value.records))
    offsets = store.append_batch(list(caught.value.records))
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [
        (o, r.event_id) for o, r in zip(offsets, batch, strict=True)
    ]


@pytest.mark.parametrize("landed", [True, False])
def test_a_retry_after_the_store_moved_on_looks_for_the_first_copy(
    store: DurableStreamStore, faulty: FaultyTransport, landed: bool
) -> None:
    record = make_record()
    if landed:
        land_unseen(faulty)
        with pytest.raises(AppendOutcomeUnknownError):
            store.append(record)
        faulty.plan.clear()
    else:
        fail_unsure(store, faulty, record)
    other = make_record()
    store.append(other)  # a new producer epoch: the first copy's is fenced
    offset = store.append(record)
    events = [(e.offset, e.event_id) for e in store.iter_events()]
    assert events.count((offset, record.event_id)) == 1
    assert [e for _, e in events] == (
        [record.event_id, other.event_id] if landed else [other.event_id, record.event_id]
    )


def test_a_retry_after_another_writer_appended_takes_a_new_anchor(
    store: DurableStreamStore, faulty: FaultyTransport, url: str
) -> None:
    record = make_record()
    fail_unsure(store, faulty, record)

    def meanwhile(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = forward(request)
        with DurableStreamStore(url, store._stream) as other:
            other.append(make_record())
        return response

    faulty.add(is_head, meanwhile)
    offset = store.append(record)
    with DurableStreamStore(url, store._stream) as fresh:
        events = list(fresh.iter_events())
    assert [e.offset for e in events][-1] == offset
    assert [e.event_id for e in events].count(record.event_id) == 1


def test_a_retry_the_server_calls_a_duplicate_of_nothing_there_is_corruption(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    record = make_record()
    fail_unsure(store, faulty, record)

    def duplicate(request: httpx.Request, forward: Forward) -> httpx.Response:
        return httpx.Response(204, request=request)

    faulty.add(is_post, duplicate)
    with pytest.raises(StoreCorruptError, match="took a retried POST"):
        store.append(record)


def test_each_caller_of_a_shared_post_retries_its_own_event(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    batch = [make_record(), make_record()]
    land_unseen(faulty)
    with pytest.raises(AppendOutcomeUnknownError) as caught:
        store.append_batch(batch)
    faulty.plan.clear()
    assert caught.value.records == tuple(batch)
    first = store.append(batch[0])  # settles the whole POST
    seen = len(faulty.seen)
    second = store.append(batch[1])  # known by now: no request
    assert len(faulty.seen) == seen
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [
        (first, batch[0].event_id),
        (second, batch[1].event_id),
    ]


def test_records_of_a_failed_append_are_retried_by_themselves(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    faulty.add(is_post, reset, times=4)
    with pytest.raises(AppendOutcomeUnknownError) as caught:
        store.append(make_record())
    with pytest.raises(ValueError, match="retried together with others"):
        store.append_batch([*caught.value.records, make_record()])
    store.append_batch(list(caught.value.records))


def test_an_async_append_that_gave_up_is_retried_at_most_once(
    store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    record = make_record()
    land_unseen(faulty)

    async def main() -> str:
        with pytest.raises(AppendOutcomeUnknownError):
            await store.append_async(record)
        faulty.plan.clear()
        return await store.append_async(record)

    offset = asyncio.run(main())
    assert [(e.offset, e.event_id) for e in store.iter_events()] == [(offset, record.event_id)]


def test_an_append_out_of_time_after_its_post_is_both_kinds_of_error(
    url: str, faulty: FaultyTransport
) -> None:
    def slow(request: httpx.Request, forward: Forward) -> httpx.Response:
        raise httpx.ReadTimeout("no answer (injected)", request=request)

    with DurableStreamStore(url, stream_path(), retry=FAST, transport=faulty) as store:
        faulty.add(is_post, slow, times=4)
        with pytest.raises(AppendTimeoutError) as caught:
            store.append(make_record())
        assert isinstance(caught.value, StoreTimeoutError)
        assert isinstance(caught.value, AppendOutcomeUnknownError)


# -- the producer core's hooks, answered by the store -----------------------------------


def test_a_new_anchor_the_store_cannot_ask_for_yet_is_waited_for(
    url: str, store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    store.append(make_record())  # the store now knows the tail: no HEAD before its POST
    writer_append(url, store._stream, make_record())  # another store's POST: that anchor is old
    faulty.add(is_head, reset, times=4)  # the first look at the new tail fails, retries too
    seen = len(faulty.seen)
    record = make_record()
    offset = store.append(record)
    asked = faulty.seen[seen:]
    assert [r.method for r in asked] == ["POST", *["HEAD"] * 5, "POST"]
    assert asked[0].headers["Producer-Seq"] == asked[-1].headers["Producer-Seq"]
    assert asked[0].headers["Stream-Seq"] != asked[-1].headers["Stream-Seq"]
    events = list(store.iter_events())
    assert [e.event_id for e in events].count(record.event_id) == 1
    assert events[-1].offset == offset


def test_closing_the_store_during_a_retry_ends_the_append_unsure(
    url: str, faulty: FaultyTransport
) -> None:
    path = stream_path()
    with DurableStreamStore(url, path, retry=FAST, transport=faulty) as store:

        def lose_and_close(request: httpx.Request, forward: Forward) -> httpx.Response:
            forward(request)
            store.close()
            raise httpx.ReadError("response lost (injected)", request=request)

        faulty.add(is_post, lose_and_close)
        record = make_record()
        with pytest.raises(AppendOutcomeUnknownError) as caught:
            store.append(record)
    assert caught.value.records == (record,)
    assert sum(is_post(r) for r in faulty.seen) == 1  # not resent once closed
    with DurableStreamStore(url, path) as fresh:
        assert [e.event_id for e in fresh.iter_events()] == [record.event_id]


def test_a_retry_that_landed_elsewhere_unseen_is_found_by_the_next_retry(
    url: str, store: DurableStreamStore, faulty: FaultyTransport
) -> None:
    record = make_record()
    fail_unsure(store, faulty, record)  # nothing landed at the first anchor
    writer_append(url, store._stream, make_record())  # the tail moves on
    faulty.add(is_post, lose_response)
    with pytest.raises(AppendOutcomeUnknownError):
        store.append(record)  # this retry lands at the new tail, its answer lost
    store.append(make_record())  # a new epoch: the retried sequence is fenced from now on
    offset = store.append(record)  # fenced: found where the last retry went
    events = [(e.offset, e.event_id) for e in store.iter_events()]
    assert [e for _, e in events].count(record.event_id) == 1
    assert (offset, record.event_id) in events
