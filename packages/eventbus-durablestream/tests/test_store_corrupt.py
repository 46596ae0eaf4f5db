"""An event envelope with an unreadable field raises StoreCorruptError at exactly that event.

The corrupt messages are appended as raw JSON with the package's client, as another tool
would write them, to the real reference server.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from eventbus.core import OLDEST, EventRecord, StoreCorruptError, StoredEvent
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore
from eventbus.durablestream._envelope_codec import decode_chunk, encode_batch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def path() -> str:
    return f"/v1/stream/eventbus-corrupt-{uuid.uuid4().hex}"


@pytest.fixture
def store(ds_url: str, path: str) -> Iterator[DurableStreamStore]:
    with DurableStreamStore(ds_url, path) as opened:
        yield opened


@pytest.fixture
def client(ds_url: str) -> Iterator[DurableStreamClient]:
    with DurableStreamClient(ds_url) as opened:
        yield opened


def envelopes(records: list[EventRecord], anchor: str) -> list[dict[str, Any]]:
    """The envelopes eventbus writes for ``records`` in one POST at ``anchor``."""
    items: list[dict[str, Any]] = json.loads(encode_batch(records, anchor))
    return items


def append_raw(
    client: DurableStreamClient, path: str, records: list[EventRecord], **changes: Any
) -> None:
    """Append ``records`` as one POST, as eventbus would, but with ``changes`` made to the
    envelope of the record whose event id is each change's key (value: field changes)."""
    anchor = client.head(path).next_offset
    assert anchor is not None
    items = envelopes(records, anchor)
    for item in items:
        for key, value in changes.get(item["id"], {}).items():
            if value is None:
                del item[key]
            else:
                item[key] = value
    client.append(path, json.dumps(items), content_type="application/json", seq=anchor)


def ids(events: Iterable[StoredEvent]) -> list[str]:
    return [e.event_id for e in events]


def test_a_read_stops_before_a_bad_envelope_and_the_next_read_names_it(
    store: DurableStreamStore, client: DurableStreamClient, path: str, ds_url: str
) -> None:
    first, second, bad, after = (make_record({"n": i}) for i in range(4))
    skipped: list[Any] = []
    batch = store.append_batch([first, second])
    append_raw(client, path, [bad], **{bad.event_id: {"meta": "oops"}})
    later = store.append(after)

    assert ids(store.read(OLDEST, 1).events) == [first.event_id]
    page = store.read(OLDEST, 10)
    assert ids(page.events) == [first.event_id, second.event_id]  # a short page
    with pytest.raises(StoreCorruptError) as caught:
        store.read(page.next, 10)
    error = caught.value
    assert error.store == ds_url + path
    assert error.field == "metadata"
    # Beside an unreadable message no content names a position: it is the third message
    # after the last POST start the server bore out.
    assert error.offset == batch[0].replace(",00000000", ",00000002")
    assert isinstance(error.offset, str)
    assert isinstance(page.next, str)
    assert store.compare_offsets(page.next, error.offset) < 0
    assert store.compare_offsets(error.offset, later) < 0
    for part in (repr(ds_url + path), repr(error.offset), "metadata", "'oops'"):
        assert part in str(error)
    record = error.record
    assert record is not None
    assert (record.offset, record.event_id, record.type_name) == (
        error.offset,
        bad.event_id,
        bad.type_name,
    )
    assert (record.data, record.origin, record.timestamp) == (bad.data, bad.origin, bad.timestamp)
    assert dict(record.metadata) == {}
    # Resuming after the bad event yields the next one, from this instance and a fresh one.
    assert ids(store.read(error.offset, 10).events) == [after.event_id]
    with DurableStreamStore(ds_url, path, on_undecodable=lambda i, e: skipped.append(i)) as fresh:
        assert ids(fresh.read(error.offset, 10).events) == [after.event_id]
        with pytest.raises(StoreCorruptError) as again:
            fresh.read(page.next, 10)
    assert again.value.offset == error.offset
    assert skipped == []  # a bad envelope is not a foreign message


def test_a_bad_timestamp_inside_a_post_is_named_by_its_anchored_offset(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    before, bad, after = (make_record({"n": i}, metadata={"k": str(i)}) for i in range(3))
    append_raw(client, path, [before, bad, after], **{bad.event_id: {"ts": "yesterday"}})
    page = store.read(OLDEST, 10)
    assert ids(page.events) == [before.event_id]
    with pytest.raises(StoreCorruptError) as caught:
        store.read(page.next, 10)
    error = caught.value
    assert isinstance(page.next, str)
    assert error.offset is not None
    anchor = page.next.split(",")[0]
    assert error.offset == f"{anchor},00000001"
    assert error.field == "timestamp"
    assert error.record is not None
    assert error.record.timestamp == EPOCH
    assert dict(error.record.metadata) == {"k": "1"}
    assert "'yesterday'" in str(error)
    assert ids(store.read(error.offset, 10).events) == [after.event_id]


def test_several_bad_fields_name_the_first_and_stand_in_for_each(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    bad = make_record()
    broken = {"ts": "2024-01-01T00:00:00", "meta": None, "origin": 7}
    append_raw(client, path, [bad], **{bad.event_id: broken})
    with pytest.raises(StoreCorruptError) as caught:
        store.read()
    error = caught.value
    assert error.field == "timestamp"
    assert error.record is not None
    assert (error.record.timestamp, dict(error.record.metadata), error.record.origin) == (
        EPOCH,
        {},
        "",
    )
    assert error.record.event_id == bad.event_id
    for reason in ("timezone", "`meta` is missing", "`origin` holds 7"):
        assert reason in str(error)


def test_iter_events_yields_the_events_before_a_bad_envelope_then_raises(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    first, bad, after = (make_record({"n": i}) for i in range(3))
    store.append(first)
    append_raw(client, path, [bad], **{bad.event_id: {"id": 5}})
    store.append(after)
    events = store.iter_events(batch_size=10)
    assert next(events).event_id == first.event_id
    with pytest.raises(StoreCorruptError) as caught:
        next(events)
    assert caught.value.field == "event_id"
    assert caught.value.record is not None
    assert caught.value.record.event_id == ""
    assert caught.value.offset is not None
    assert ids(list(store.iter_events(caught.value.offset))) == [after.event_id]


def test_a_bad_envelope_after_the_window_is_found_when_reading_on(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    first, bad, after = (make_record({"n": i}) for i in range(3))
    offset = store.append(first)
    assert ids(store.read(OLDEST, 10).events) == [first.event_id]  # the window ends here
    append_raw(client, path, [bad, after], **{bad.event_id: {"type": ["x"]}})
    with pytest.raises(StoreCorruptError) as caught:
        store.read(offset, 10)
    assert caught.value.field == "type_name"
    assert caught.value.offset is not None
    assert ids(store.read(caught.value.offset).events) == [after.event_id]


def test_tail_raises_at_a_bad_envelope_and_resumes_after_it(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    first, good, bad, after = (make_record({"n": i}) for i in range(4))
    offset = store.append(first)
    assert store.tail(offset, timeout=0.05).events == []  # idle: waiting at the tail
    # One POST arrives while the tail waits: a readable event, then a bad one.
    timer = threading.Timer(
        0.2, lambda: append_raw(client, path, [good, bad], **{bad.event_id: {"data": None}})
    )
    timer.start()
    page = store.tail(offset, timeout=10)
    timer.join()
    assert ids(page.events) == [good.event_id]  # a short page
    with pytest.raises(StoreCorruptError) as caught:
        store.tail(page.next, timeout=10)
    assert caught.value.field == "data"
    assert caught.value.offset is not None
    store.append(after)
    assert ids(store.tail(caught.value.offset, timeout=10).events) == [after.event_id]


def test_tail_raises_when_a_long_poll_brings_a_bad_envelope_first(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    offset = store.append(make_record())
    assert store.tail(offset, timeout=0.05).events == []
    bad = make_record()
    timer = threading.Timer(
        0.2, lambda: append_raw(client, path, [bad], **{bad.event_id: {"meta": [["k", 1]]}})
    )
    timer.start()
    with pytest.raises(StoreCorruptError) as caught:
        store.tail(offset, timeout=10)
    timer.join()
    assert caught.value.field == "metadata"
    assert caught.value.record is not None
    assert caught.value.record.event_id == bad.event_id


def test_a_fast_path_response_lists_no_corrupt_events() -> None:
    chunk = decode_chunk(encode_batch([make_record(), make_record()], "0_1"), "0_1", "0_9", print)
    assert len(chunk.events) == 2
    assert chunk.corrupt == {}


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"id": 5}, "event_id", r"`id` holds 5: Expected `str`, got `int`"),
        ({"meta": {"a": "b"}}, "metadata", r"Expected `array`, got `object`"),
        ({"meta": [["a", 1]]}, "metadata", r"at `\$\[0\]\[1\]`"),
        ({"meta": [["a", "b", "c"]]}, "metadata", r"at `\$\[0\]`"),
        ({"ts": "2024-01-01T00:00:00"}, "timestamp", r"timezone"),
        ({"ts": "yesterday"}, "timestamp", r"RFC3339"),
        ({"origin": None}, "origin", r"got `null`"),
    ],
)
def test_decoding_keeps_a_bad_envelope_as_a_corrupt_event(
    change: dict[str, Any], field: str, why: str
) -> None:
    good = envelopes([make_record()], "0_0")[0]
    reported: list[Any] = []
    broken = {**good, **change}
    chunk = decode_chunk(
        json.dumps([broken, good]).encode(), "0_0", "0_9", lambda i, e: reported.append(i)
    )
    # Only a readable envelope's anchor names a POST: the corrupt one is counted from the
    # read's start.
    assert [e.offset for e in chunk.events] == ["0_0&00000000", "0_9"]
    assert list(chunk.corrupt) == ["0_0&00000000"]
    assert list(chunk.corrupt["0_0&00000000"]) == [field]
    assert re.search(why, chunk.corrupt["0_0&00000000"][field])
    assert reported == []
