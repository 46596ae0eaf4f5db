"""Records into rows and rows back into StoredEvents, field by field."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from eventbus.core import StoredEvent
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore
from eventbus.sqlite import _rows as rows_module

from ._support import raw


def test_stored_event_fields_match_the_fast_decoder() -> None:
    names = tuple(field.name for field in dataclasses.fields(StoredEvent))
    assert names == rows_module.STORED_EVENT_FIELDS


def test_every_field_round_trips_including_empty_metadata(store: SQLiteStore) -> None:
    plain = make_record(metadata={})
    tagged = make_record(metadata={"trace": "t-1", "ünï": "cödé"})
    offsets = store.append_batch([plain, tagged])
    events = store.read().events
    assert [e.offset for e in events] == offsets
    assert events[0].metadata == {}
    assert events[1].metadata == {"trace": "t-1", "ünï": "cödé"}
    for event, record in zip(events, [plain, tagged], strict=True):
        assert (event.event_id, event.type_name, event.data, event.origin) == (
            record.event_id,
            record.type_name,
            record.data,
            record.origin,
        )
        assert event.timestamp == record.timestamp
    with pytest.raises(TypeError):
        events[1].metadata["trace"] = "changed"  # type: ignore[index]


def test_non_utc_timestamp_keeps_its_instant(store: SQLiteStore) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    store.append(make_record(timestamp=moment))
    assert store.read().events[0].timestamp == moment


class _Moment(datetime):
    """A datetime subclass: stored through its own isoformat()."""


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no fraction: isoformat leaves it out
        datetime(1, 1, 1, tzinfo=UTC),
        _Moment(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_timestamps_are_stored_as_their_isoformat_text(
    db: Path, store: SQLiteStore, moment: datetime
) -> None:
    store.append(make_record(timestamp=moment))
    with contextlib.closing(raw(db)) as conn:
        (text,) = conn.execute("SELECT timestamp FROM events").fetchone()
    assert text == moment.isoformat()
    assert store.read().events[0].timestamp == moment


def test_naive_timestamp_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="naive timestamp"):
        store.append(make_record(timestamp=datetime(2026, 1, 1)))
    assert store.read().events == []


def test_non_records_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(TypeError, match="EventRecord instances"):
        store.append({"data": "{}"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EventRecord instances"):
        store.append_batch([make_record(), "nope"])  # type: ignore[list-item]
    assert store.read().events == []


def test_good_rows_take_the_fast_way_and_both_ways_agree(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [
        make_record({"n": 1}, metadata={}),
        make_record({"n": 2}, metadata={"trace": "t-1", "user": "ü"}),
        make_record(
            {"n": 3},
            metadata={},
            timestamp=datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=5))),
        ),
    ]
    store.append_batch(records)
    rows = store._db.query(rows_module.SELECT, (0, 10))
    careful = rows_module.decode_checked(rows, store.path)

    def refuse(rows: object, path: str) -> list[StoredEvent]:
        raise AssertionError("good rows fell back to the careful decoder")

    monkeypatch.setattr(rows_module, "decode_checked", refuse)
    assert rows_module.decode(rows, store.path) == careful
    assert store.read().events == careful
    assert [dict(e.metadata) for e in careful] == [{}, {"trace": "t-1", "user": "ü"}, {}]
