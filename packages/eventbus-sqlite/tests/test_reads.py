"""Reads: offsets, pages, streaming, and rows another tool wrote badly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventbus.core import OLDEST, OffsetError, StoreCorruptError, StoredEvent
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

from ._support import Sql, raw, write_row


def test_offsets_are_fixed_width_and_sort_as_strings(store: SQLiteStore) -> None:
    offsets = store.append_batch([make_record() for _ in range(12)])
    assert all(len(o) == 20 and o.isdigit() for o in offsets)
    assert offsets == sorted(offsets)
    assert offsets[9] == "00000000000000000010"
    assert store.compare_offsets(offsets[8], offsets[9]) == -1  # "9" > "10" as text unpadded
    assert store.compare_offsets(offsets[9], offsets[9]) == 0


def test_offsets_from_another_store_are_refused(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "a.db") as big, SQLiteStore(tmp_path / "b.db") as small:
        foreign = big.append_batch([make_record() for _ in range(5)])[-1]
        small.append(make_record())
        for call in (
            lambda: small.read(foreign),
            lambda: small.iter_events(foreign),
            lambda: small.tail(foreign, timeout=0),
            lambda: small.compare_offsets(foreign, "00000000000000000001"),
            lambda: small.save_checkpoint("s", foreign),
        ):
            with pytest.raises(OffsetError, match="past the tail"):
                call()
        assert small.load_checkpoint("s") is None


def test_positions_are_never_reused_after_deleting_the_newest(store: SQLiteStore) -> None:
    first, second = store.append_batch([make_record(), make_record()])
    store._db.writer.execute("DELETE FROM events WHERE position = 2")
    third = store.append(make_record())
    assert store.compare_offsets(third, second) > 0
    assert [e.offset for e in store.read().events] == [first, third]


def test_iter_events_uses_the_read_batch_size(db: Path) -> None:
    with SQLiteStore(db, read_batch_size=2) as store:
        offsets = store.append_batch([make_record() for _ in range(5)])
        queries: list[str] = []
        store._db.reader().conn.set_trace_callback(queries.append)
        assert [e.offset for e in store.iter_events()] == offsets
        selects = [q for q in queries if "FROM events WHERE position >" in q]
        assert len(selects) == 4  # 2 + 2 + 1, then the empty page that ends it
        assert [e.offset for e in store.iter_events(offsets[1], batch_size=10)] == offsets[2:]


def test_reads_do_not_wait_for_a_writer(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    writer = raw(db)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO events (event_id, type_name, data, timestamp, origin) "
        "VALUES ('x', 't', '{}', '2026-01-01T00:00:00+00:00', 'o')"
    )
    try:
        assert [e.offset for e in store.read().events] == [offset]  # WAL snapshot
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# -- rows another tool wrote badly ------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONG = "not json " * 20

BAD_ROWS = [
    pytest.param({"metadata": "not json"}, "metadata", id="metadata-not-json"),
    pytest.param({"metadata": '["trace", "t-1"]'}, "metadata", id="metadata-an-array"),
    pytest.param({"metadata": '"trace"'}, "metadata", id="metadata-a-string"),
    pytest.param({"metadata": 42}, "metadata", id="metadata-a-number"),
    pytest.param({"metadata": '{"retries": 3}'}, "metadata", id="metadata-a-number-value"),
    pytest.param({"metadata": '{"a": {"b": "c"}}'}, "metadata", id="metadata-nested"),
    pytest.param({"metadata": '{"a": null}'}, "metadata", id="metadata-null-value"),
    pytest.param({"metadata": _LONG}, "metadata", id="metadata-long"),
    pytest.param({"metadata": Sql("CAST(X'7BFF7D' AS TEXT)")}, "metadata", id="metadata-not-utf8"),
    pytest.param({"timestamp": "yesterday at noon"}, "timestamp", id="timestamp-unparseable"),
    pytest.param({"timestamp": "2026-01-02 03:04:05"}, "timestamp", id="timestamp-naive"),
    pytest.param({"timestamp": 1767323045}, "timestamp", id="timestamp-a-number"),
    pytest.param({"timestamp": Sql("X'00'")}, "timestamp", id="timestamp-a-blob"),
    pytest.param({"data": Sql("CAST(X'FF' AS TEXT)")}, "data", id="data-not-utf8"),
    pytest.param({"event_id": Sql("CAST(X'FF' AS TEXT)")}, "event_id", id="event-id-not-utf8"),
    pytest.param({"type_name": Sql("CAST(X'FF' AS TEXT)")}, "type_name", id="type-not-utf8"),
    pytest.param({"origin": Sql("CAST(X'FF' AS TEXT)")}, "origin", id="origin-not-utf8"),
]


def _store_with_a_bad_row(db: Path, columns: dict[str, object]) -> tuple[str, str, str]:
    """Three events: good, bad (written by another tool), good; their offsets."""
    with SQLiteStore(db) as store:
        first = store.append(make_record({"n": 1}))
    bad = write_row(db, **columns)
    with SQLiteStore(db) as store:
        last = store.append(make_record({"n": 3}))
    return first, bad, last


@pytest.mark.parametrize(("columns", "field"), BAD_ROWS)
def test_a_read_stops_before_a_bad_row_and_the_next_raises_naming_it(
    db: Path, columns: dict[str, object], field: str
) -> None:
    first, bad, last = _store_with_a_bad_row(db, columns)
    with SQLiteStore(db) as store:
        page = store.read(limit=10)
        assert [e.offset for e in page.events] == [first]  # a short page
        assert page.next == first
        with pytest.raises(StoreCorruptError) as caught:
            store.read(page.next, limit=10)
        error = caught.value
        assert (error.store, error.offset, error.field) == (str(db), bad, field)
        message = str(error)
        assert repr(str(db)) in message
        assert bad in message
        assert f"its {field} " in message
        assert error.__cause__ is not None
        # The offset is an exact resume point: the next read skips only the bad row.
        assert error.offset is not None
        assert [e.offset for e in store.read(error.offset, limit=10).events] == [last]


def test_a_long_bad_value_is_shortened_in_the_message(db: Path) -> None:
    _, bad, _ = _store_with_a_bad_row(db, {"metadata": _LONG})
    with SQLiteStore(db) as store, pytest.raises(StoreCorruptError) as caught:
        store.read(store.read().next)
    assert caught.value.offset == bad
    assert repr(_LONG) not in str(caught.value)
    assert f"its metadata {repr(_LONG)[:77]}... is unreadable" in str(caught.value)


def test_the_error_carries_what_could_be_read(db: Path) -> None:
    SQLiteStore(db).close()
    bad_metadata = write_row(db, event_id="m", metadata="{oops", data='{"n": 1}')
    bad_timestamp = write_row(db, timestamp="noon", metadata='{"trace": "t-1"}')
    both = write_row(db, timestamp="noon", metadata="{oops")
    with SQLiteStore(db) as store:
        with pytest.raises(StoreCorruptError) as caught:
            store.read()
        assert caught.value.record == StoredEvent(
            offset=bad_metadata,
            event_id="m",
            type_name="shop.OrderPlaced",
            data='{"n": 1}',
            timestamp=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            metadata={},
            origin="another-tool",
        )
        with pytest.raises(StoreCorruptError) as caught:
            store.read(bad_metadata)
        record = caught.value.record
        assert record is not None
        assert (record.offset, record.timestamp, dict(record.metadata)) == (
            bad_timestamp,
            _EPOCH,
            {"trace": "t-1"},
        )
        with pytest.raises(StoreCorruptError) as caught:
            store.read(bad_timestamp)
        record = caught.value.record
        assert record is not None
        assert (record.timestamp, dict(record.metadata)) == (_EPOCH, {})
        assert caught.value.field == "timestamp"  # the first unreadable column
        assert "(and its metadata)" in str(caught.value)
        assert store.read(both).events == []


def test_iter_events_yields_every_readable_event_then_raises_at_the_bad_one(db: Path) -> None:
    with SQLiteStore(db) as store:
        before = store.append_batch([make_record({"n": n}) for n in range(3)])
    bad = write_row(db, metadata="[]")
    with SQLiteStore(db) as store:
        after = store.append_batch([make_record({"n": n}) for n in range(3, 6)])
        events = store.iter_events(batch_size=2)  # the bad row is mid-batch
        assert [next(events).offset for _ in before] == before
        with pytest.raises(StoreCorruptError) as caught:
            next(events)
        resume = caught.value.offset
        assert (resume, caught.value.field) == (bad, "metadata")
        assert resume is not None
        assert [e.offset for e in store.iter_events(resume)] == after


def test_metadata_written_as_a_blob_of_json_is_read(db: Path) -> None:
    # Not text, so the fast decoder refuses it; the careful one reads it as UTF-8.
    SQLiteStore(db).close()
    offset = write_row(db, metadata=b'{"trace": "t-1"}')
    with SQLiteStore(db) as store:
        (event,) = store.read().events
    assert (event.offset, dict(event.metadata)) == (offset, {"trace": "t-1"})


def test_a_good_page_after_a_bad_row_reads_in_full(db: Path) -> None:
    first, bad, last = _store_with_a_bad_row(db, {"metadata": "{"})
    with SQLiteStore(db) as store:
        assert [e.offset for e in store.read(bad).events] == [last]
        assert [e.offset for e in store.iter_events(bad)] == [last]
        assert [e.offset for e in store.read(OLDEST, limit=1).events] == [first]
