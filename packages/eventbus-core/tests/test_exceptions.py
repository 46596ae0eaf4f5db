"""The exception tree (_exceptions.py): what the classes carry for their handlers."""

from __future__ import annotations

from datetime import UTC, datetime

from eventbus.core import StoreCorruptError, StoredEvent, StoreError


def test_store_corrupt_error_carries_the_store_offset_field_and_record() -> None:
    record = StoredEvent(
        offset="7",
        event_id="01J00000000000000000000000",
        type_name="order.placed",
        data="{}",
        timestamp=datetime(1970, 1, 1, tzinfo=UTC),
        metadata={},
        origin="bus-1",
    )
    error = StoreCorruptError(
        "The metadata of the event at offset '7' is not a JSON object.",
        store="/tmp/events.db",
        offset="7",
        field="metadata",
        record=record,
    )
    assert isinstance(error, StoreError)
    assert str(error) == "The metadata of the event at offset '7' is not a JSON object."
    assert (error.store, error.offset, error.field, error.record) == (
        "/tmp/events.db",
        "7",
        "metadata",
        record,
    )


def test_store_corrupt_error_defaults_to_knowing_nothing_more() -> None:
    error = StoreCorruptError("A stored record cannot be read.")
    assert (error.store, error.offset, error.field, error.record) == ("", None, None, None)
