"""Messages another writer appends never move an event's offset.

The store names events only by what the server says (the offset a read started at, the
index within it, the offset after it); whatever a message holds, ``s`` included, names
nothing. A message that is no event is a position of its own: reads stop there with
``StoreCorruptError`` at its exact offset, and resuming after it yields exactly the rest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from eventbus.core import OLDEST, StoreCorruptError, StoredEvent
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore
from eventbus.durablestream._envelope_codec import decode_chunk, encode_batch

if TYPE_CHECKING:
    from conftest import RecordingTransport


@pytest.fixture
def path() -> str:
    return f"/v1/stream/eventbus-foreign-{uuid.uuid4().hex}"


@pytest.fixture
def client(ds_url: str) -> Iterator[DurableStreamClient]:
    with DurableStreamClient(ds_url) as opened:
        yield opened


def foreign(client: DurableStreamClient, path: str, *items: Any) -> None:
    """Append ``items`` as one POST of another writer (no ``Stream-Seq``)."""
    client.append(path, json.dumps(list(items)), content_type="application/json")


def read_all(store: DurableStreamStore, after: str | object = OLDEST) -> list[object]:
    """Everything after ``after``: each event's id, and ``("foreign", offset)`` per foreign
    message, reading on after each ``StoreCorruptError``, one event per page."""
    seen: list[object] = []
    position: Any = after
    while True:
        try:
            page = store.read(position, limit=1)
        except StoreCorruptError as exc:
            seen.append(("foreign", exc.offset))
            position = exc.offset
            continue
        if not page.events:
            return seen
        seen.append(page.events[0].event_id)
        position = page.next


def _build(
    store: DurableStreamStore, client: DurableStreamClient, path: str, layout: str
) -> list[str]:
    """Fill the stream; return the event ids in order, ``"*"`` for each foreign message."""
    tail = client.head(path).next_offset
    # Foreign messages carrying `s`: an earlier offset (duplicates), a far future one (a
    # stall), a plain text; `v: 1` makes them look like envelopes.
    far = "9999999999999999_9999999999999999"
    order: list[str] = []
    batch = [make_record({"n": i}) for i in range(3)]
    single = make_record({"n": 9})
    if layout == "before":
        foreign(client, path, {"v": 1, "s": far}, {"s": tail, "x": 1})
        order += ["*", "*"]
    store.append_batch(batch)
    order += [r.event_id for r in batch]
    if layout == "among":
        foreign(client, path, {"v": 1, "s": tail}, "plain text", {"v": 1, "s": far, "id": "x"})
        order += ["*", "*", "*"]
    store.append(single)
    order.append(single.event_id)
    more = [make_record({"n": i}) for i in range(10, 12)]
    store.append_batch(more)
    order += [r.event_id for r in more]
    if layout == "after":
        foreign(client, path, {"v": 1, "s": tail}, [1, 2])
        order += ["*", "*"]
    return order


@pytest.mark.parametrize("layout", ["before", "among", "after"])
def test_resume_after_every_offset_yields_exactly_the_rest(
    ds_url: str, client: DurableStreamClient, path: str, layout: str
) -> None:
    undecodable: list[Any] = []
    with DurableStreamStore(
        ds_url, path, on_undecodable=lambda item, error: undecodable.append(item)
    ) as store:
        order = _build(store, client, path, layout)
        seen = read_all(store)
        assert [x if isinstance(x, str) else "*" for x in seen] == order
        assert undecodable  # still told, as before
        # Each position, resumed from in a fresh store (nothing cached), yields the rest.
        offsets: list[Any] = []
        position: Any = OLDEST
        for _ in order:
            try:
                page = store.read(position, limit=1)
                position = page.next
            except StoreCorruptError as exc:
                position = exc.offset
            offsets.append(position)
    for i, offset in enumerate(offsets):
        with DurableStreamStore(ds_url, path) as fresh:
            rest = read_all(fresh, offset)
        assert [x if isinstance(x, str) else "*" for x in rest] == order[i + 1 :], (i, offset)
        with DurableStreamStore(ds_url, path) as fresh:  # in pages as large as they come
            events: list[StoredEvent] = []
            position = offset
            while True:
                try:
                    page = fresh.read(position, limit=100)
                except StoreCorruptError as exc:
                    position = exc.offset
                    continue
                if not page.events:
                    break
                events += page.events
                position = page.next
        assert [e.event_id for e in events] == [x for x in order[i + 1 :] if x != "*"]


def test_a_foreign_message_raises_store_corrupt_error_with_what_is_known(
    ds_url: str, client: DurableStreamClient, path: str
) -> None:
    with DurableStreamStore(ds_url, path) as store:
        first = make_record({"n": 1})
        store.append(first)
        foreign(client, path, {"s": "0", "hello": "world"})
        after = store.append(make_record({"n": 2}))
        page = store.read(OLDEST, limit=10)
        assert [e.event_id for e in page.events] == [first.event_id]
        with pytest.raises(StoreCorruptError) as caught:
            store.read(page.next)
        error = caught.value
        assert error.store == ds_url + path
        assert error.field == "envelope"
        assert error.record is not None
        assert json.loads(error.record.data) == {"s": "0", "hello": "world"}
        assert error.record.offset == error.offset
        assert error.offset is not None
        assert error.offset in str(error)
        assert [e.offset for e in store.read(error.offset).events] == [after]


def test_appends_name_their_events_exactly_after_a_foreign_writer(
    ds_url: str, client: DurableStreamClient, path: str
) -> None:
    with DurableStreamStore(ds_url, path) as store:
        store.append(make_record({"n": 0}))  # the store now believes it knows the tail
        foreign(client, path, {"v": 1, "s": "x"})
        batch = [make_record({"n": i}) for i in range(3)]
        offsets = store.append_batch(batch)
        for record, offset in zip(batch, offsets, strict=True):
            with DurableStreamStore(ds_url, path) as fresh:
                rest = fresh.read(offset).events
            after = [r.event_id for r in batch[batch.index(record) + 1 :]]
            assert [e.event_id for e in rest] == after


def test_an_append_makes_one_request_whatever_its_size(
    ds_url: str, path: str, recording: RecordingTransport
) -> None:
    with DurableStreamStore(ds_url, path, transport=recording) as store:
        store.append(make_record())
        with DurableStreamClient(ds_url) as other:
            foreign(other, path, {"v": 1, "s": "x"})
        recording.requests.clear()
        offsets = store.append_batch([make_record() for _ in range(5)])
        # the names come from the response and the count sent
        assert [r.method for r in recording.requests] == ["POST"]
    with DurableStreamStore(ds_url, path) as fresh:
        assert [e.offset for e in fresh.read(offsets[1]).events] == offsets[2:]


def _messages(*layout: str) -> bytes:
    """A response body: an envelope anchored at each offset named, ``"F"`` another writer's
    message, ``"C<anchor>"`` a corrupt envelope with that anchor."""
    items: list[Any] = []
    for claim in layout:
        if claim == "F":
            items.append({"foreign": True})
            continue
        envelope = json.loads(encode_batch([make_record()], claim.lstrip("C")))[0]
        if claim.startswith("C"):
            envelope["meta"] = "not pairs"
        items.append(envelope)
    return json.dumps(items).encode()


@pytest.mark.parametrize(
    ("start", "layout", "names"),
    [
        # POSTs known to start at their anchors: each last event named by the next anchor.
        (
            "0_1",
            ["0_1", "0_1", "0_5", "0_7", "0_7"],
            ["0_1,00000000", "0_5", "0_7", "0_7,00000000", "0_9"],
        ),
        (  # from the beginning, the first POST starts the stream
            "-1",
            ["0_0", "0_3"],
            ["0_3", "0_9"],
        ),
        (  # another writer's message breaks the chain: counted on, nothing renamed
            "0_1",
            ["0_1", "0_1", "F", "0_5", "0_5"],
            ["0_1,00000000", "0_1,00000001", "0_1,00000002", "0_5,00000000", "0_9"],
        ),
        (  # so does a corrupt envelope with the POST's own anchor
            "0_1",
            ["0_1", "C0_1", "0_5", "0_6"],
            ["0_1,00000000", "0_1,00000001", "0_5,00000000", "0_9"],
        ),
        (  # the read's first message starts where the read does, whatever its anchor says
            "0_1",
            ["0_2", "0_5", "0_6"],
            ["0_1&00000000", "0_5,00000000", "0_9"],
        ),
        (  # anchors before the read's start, not rising, or past its end name nothing
            "0_3",
            ["0_2", "0_4", "0_3", "0_9", "Z"],
            ["0_3&00000000", "0_4,00000000", "0_4,00000001", "0_4,00000002", "0_9"],
        ),
        (  # before the first named POST, counted from the read's start
            "-1",
            ["F", "C0_0", "0_0", "0_4"],
            ["-1&00000000", "-1&00000001", "0_0,00000000", "0_9"],
        ),
    ],
)
def test_names_come_from_server_offsets_and_counts(
    start: str, layout: list[str], names: list[str]
) -> None:
    chunk = decode_chunk(_messages(*layout), start, "0_9", lambda item, error: None)
    assert [e.offset for e in chunk.events] == names
