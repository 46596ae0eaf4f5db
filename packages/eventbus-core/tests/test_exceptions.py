"""The exception classes: what StoreCorruptError carries for a reader that resumes past it."""

from __future__ import annotations

from datetime import UTC, datetime

from eventbus.core import StoreCorruptError, StoredEvent, StoreError


def test_store_corrupt_error_names_the_store_offset_and_field_and_carries_the_record() -> None:
    readable = StoredEvent(
        offset="00000000000000000007",
        event_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
        type_name="orders.Placed",
        data="{}",
        timestamp=datetime(1970, 1, 1, tzinfo=UTC),
        metadata={},
        origin="bus-1",
    )
    error = StoreCorruptError(
        "The metadata of the record at '00000000000000000007' is not a JSON object.",
        store="/var/lib/app/events.db",
        offset=readable.offset,
        field="metadata",
        record=readable,
    )
    assert isinstance(error, StoreError)
    assert str(error).startswith("The metadata of the record")
    assert (error.store, error.offset, error.field) == (
        "/var/lib/app/events.db",
        "00000000000000000007",
        "metadata",
    )
    assert error.record is readable


def test_store_corrupt_error_defaults_to_knowing_nothing_but_the_message() -> None:
    error = StoreCorruptError("Unreadable.")
    assert (error.store, error.offset, error.field, error.record) == ("", None, None, None)
