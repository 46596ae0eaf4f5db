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
from typing import Any

import pytest

from eventbus.core import OLDEST, StoreCorruptError, StoredEvent
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore


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
