"""The State Protocol: messages in the protocol's JSON shape, and the materializer."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from eventbus.core import OLDEST, DecodeError, EventBus, MemoryStore, StoredEvent
from eventbus.core.state import ChangeMessage, ControlMessage, Materializer, parse_message
from eventbus.core.testing import raw_record

from ._support import OrderPlaced, PlainStore


@dataclasses.dataclass(frozen=True)
class User:
    name: str


def test_messages_are_stored_in_the_protocols_json_shape() -> None:
    store = MemoryStore()
    with EventBus(store=store) as bus:
        bus.publish(ChangeMessage.insert("user", "u1", {"name": "Ann"}, txid="t1"))
        bus.publish(
            ChangeMessage.update(
                "user",
                "u1",
                {"name": "Bo"},
                old_value={"name": "Ann"},
                timestamp="2025-01-15T10:35:00Z",
            )
        )
        bus.publish(ChangeMessage.delete("user", "u1"))
        bus.publish(ControlMessage("reset", "0001"))
        bus.publish(ControlMessage("snapshot-start"))
        stored = store.read().events
    assert [e.type_name for e in stored] == ["state.ChangeMessage"] * 3 + [
        "state.ControlMessage"
    ] * 2
    assert [json.loads(e.data) for e in stored] == [
        {
            "type": "user",
            "key": "u1",
            "value": {"name": "Ann"},
            "headers": {"operation": "insert", "txid": "t1"},
        },
        {
            "type": "user",
            "key": "u1",
            "value": {"name": "Bo"},
            "old_value": {"name": "Ann"},
            "headers": {"operation": "update", "timestamp": "2025-01-15T10:35:00Z"},
        },
        {"type": "user", "key": "u1", "headers": {"operation": "delete"}},
        {"headers": {"control": "reset", "offset": "0001"}},
        {"headers": {"control": "snapshot-start"}},
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ChangeMessage("", "k", "insert"), "type must be a non-empty string"),
        (lambda: ChangeMessage("t", "", "insert"), "key must be"),
        (lambda: ChangeMessage("t", "k", "merge"), "operation must be one of"),  # type: ignore[arg-type]
        (lambda: ChangeMessage("t", "k", "insert", txid=""), "txid must be"),
        (lambda: ControlMessage("pause"), "control must be one of"),  # type: ignore[arg-type]
        (lambda: ControlMessage("reset", offset=""), "offset must be"),
    ],
)
def test_malformed_messages_are_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"headers": {"control": "reset"}}, ControlMessage("reset")),
        (
            {"type": "t", "key": "k", "value": 1, "headers": {"operation": "insert"}},
            ChangeMessage("t", "k", "insert", 1),
        ),
        (
            {"type": "t", "key": "k", "headers": {"operation": "delete"}},
            ChangeMessage.delete("t", "k"),
        ),
        ([], None),
        ({"amount": 1}, None),
        ({"headers": "x"}, None),
        ({"headers": {"trace": "abc"}}, None),
        ({"type": "t", "headers": {"control": "reset"}}, None),
    ],
)
def test_parse_message_recognises_only_protocol_messages(data: object, expected: object) -> None:
    assert parse_message(data) == expected


def test_a_message_that_identifies_itself_but_breaks_the_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a value"):
        parse_message({"type": "t", "key": "k", "headers": {"operation": "insert"}})
    with pytest.raises(ValueError, match="needs a headers object"):
        ChangeMessage.__event_decode__({"type": "t", "key": "k"})
    with pytest.raises(ValueError, match="needs a headers object"):
        ControlMessage.__event_decode__({})


def _stored(offset: int, type_name: str, data: object) -> StoredEvent:
    record = raw_record(type_name, json.dumps(data))
    return StoredEvent(
        f"{offset:020d}", record.event_id, type_name, record.data, record.timestamp, {}, "x"
    )


def test_the_materializer_applies_changes_in_order_and_skips_foreign_records() -> None:
    store = MemoryStore()
    with EventBus(store=store) as bus:
        bus.publish(ChangeMessage.insert("user", "u1", {"name": "Ann"}))
        bus.publish(OrderPlaced("o-1", 1.0))  # foreign
        bus.publish(ChangeMessage.insert("user", "u2", {"name": "Cy"}))
        bus.publish(ChangeMessage.update("user", "u1", {"name": "Bo"}))
        bus.publish(ChangeMessage.insert("team", "t1", ["u1"]))
        last = bus.publish(ChangeMessage.delete("user", "u2"))
        materializer = Materializer()
        users = materializer.collection("user", lambda value: User(**value))
        assert materializer.catch_up(store) == 5
    assert materializer.offset == last
    assert users.get("u1") == User("Bo")
    assert users.get("u2") is None
    assert "u1" in users
    assert "u2" not in users
    assert (len(users), list(users), users.items()) == (1, ["u1"], [("u1", User("Bo"))])
    assert materializer.collection("team").get("t1") == ["u1"]
    assert materializer.types() == ["team", "user"]
    assert repr(materializer) == f"<Materializer 2 types at {last!r}>"


def test_protocol_messages_written_by_another_program_are_materialized() -> None:
    # As the protocol's TypeScript package writes them: bare JSON, no eventbus wire name.
    materializer = Materializer()
    assert materializer.apply(
        _stored(
            1,
            "ts.write",
            {"type": "user", "key": "u1", "value": 1, "headers": {"operation": "insert"}},
        )
    )
    assert not materializer.apply(_stored(2, "ts.other", {"headers": {"trace": "x"}}))
    assert not materializer.apply(_stored(3, "ts.other", {"amount": 2}))
    assert materializer.collection("user").get("u1") == 1
    assert materializer.offset == f"{3:020d}", "foreign records are passed over, not re-read"


def test_a_malformed_state_record_stops_the_materializer_with_nothing_changed() -> None:
    materializer = Materializer()
    materializer.apply(
        _stored(
            1,
            "state.ChangeMessage",
            {"type": "t", "key": "k", "value": 1, "headers": {"operation": "insert"}},
        )
    )
    bad = [
        _stored(
            2, "state.ChangeMessage", {"type": "t", "key": "k", "headers": {"operation": "insert"}}
        ),
        _stored(2, "state.ChangeMessage", {"amount": 1}),
        _stored(
            2,
            "state.ControlMessage",
            {"type": "t", "key": "k", "value": 1, "headers": {"operation": "insert"}},
        ),
        StoredEvent(
            f"{2:020d}",
            "id",
            "state.ControlMessage",
            "not json",
            _stored(1, "x", 1).timestamp,
            {},
            "x",
        ),
        _stored(2, "other", {"type": "t", "key": "k", "headers": {"operation": "merge"}}),
    ]
    for stored in bad:
        with pytest.raises(DecodeError, match="claims to be a state message"):
            materializer.apply(stored)
    assert materializer.offset == f"{1:020d}"
    assert materializer.collection("t").get("k") == 1


def test_reset_clears_every_collection_and_control_callbacks_fire() -> None:
    calls: list[object] = []
    materializer = Materializer(on_reset=lambda: calls.append("reset"), on_snapshot=calls.append)
    users = materializer.collection("user")
    materializer.apply_message(ChangeMessage.insert("user", "u1", 1))
    materializer.apply_message(ControlMessage("snapshot-start"))
    materializer.apply_message(ControlMessage("snapshot-end"))
    materializer.apply_message(ControlMessage("reset"))
    assert calls == [True, False, "reset"]
    assert len(users) == 0, "a view handed out before the reset sees it"
    quiet = Materializer()
    quiet.apply_message(ControlMessage("reset"))
    quiet.apply_message(ControlMessage("snapshot-start"))


def test_catch_up_reads_a_store_without_streaming_in_pages() -> None:
    store = PlainStore()
    with EventBus(store=store) as bus:
        for n in range(7):
            bus.publish(ChangeMessage.insert("n", str(n), n))
        materializer = Materializer()
        assert materializer.catch_up(store, batch_size=3) == 7
        assert materializer.catch_up(store) == 0
    assert len(materializer.collection("n")) == 7


def test_the_materializer_saves_and_loads_its_snapshot() -> None:
    store = MemoryStore()
    with EventBus(store=store) as bus:
        bus.publish(ChangeMessage.insert("user", "u1", {"name": "Ann"}))
        first = Materializer()
        first.catch_up(store)
        first.save_snapshot(store, "users")
        bus.publish(ChangeMessage.insert("user", "u2", {"name": "Cy"}))
        second = Materializer()
        view = second.collection("user")
        assert second.load_snapshot(store, "users")
        assert (second.offset, view.items()) == (first.offset, [("u1", {"name": "Ann"})])
        assert second.catch_up(store) == 1
        assert len(view) == 2
        assert not Materializer().load_snapshot(store, "missing")


@pytest.mark.parametrize(
    "blob",
    [
        "[]",
        "not json",
        '{"version": 2, "collections": {}}',
        '{"version": 1, "collections": {"t": []}}',
        '{"version": 1}',
    ],
)
def test_a_foreign_snapshot_is_refused_with_nothing_changed(blob: str) -> None:
    store = MemoryStore()
    store.save_snapshot("s", OLDEST, blob)
    materializer = Materializer()
    materializer.apply_message(ChangeMessage.insert("t", "k", 1))
    with pytest.raises(DecodeError, match="not a materializer snapshot"):
        materializer.load_snapshot(store, "s")
    assert materializer.collection("t").get("k") == 1
