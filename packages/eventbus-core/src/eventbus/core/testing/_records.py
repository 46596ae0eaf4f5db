"""Records for store tests, and the check that a stored event is the record appended."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from eventbus.core._ids import new_event_id
from eventbus.core._store import EventRecord, StoredEvent

if TYPE_CHECKING:
    from eventbus.core._store import Offset

__all__ = ["NOT_COUNTS", "assert_stored", "make_record", "not_an_int"]

# Values a store must refuse as a limit or batch size with TypeError: a bool is an int
# to Python, but read(after, True) is a mistake, not a page of one.
NOT_COUNTS: tuple[object, ...] = (True, False, 1.0, "1")


def not_an_int(name: str, value: object) -> str:
    """The message every store gives for a limit or batch size that is not an int."""
    return "^" + re.escape(f"{name} must be an int, got {value!r}.") + "$"


_counter = itertools.count()


def make_record(
    data: Any = None,
    *,
    type_name: str = "conformance.Event",
    metadata: dict[str, str] | None = None,
    timestamp: datetime | None = None,
    origin: str = "conformance-bus",
    event_id: str | None = None,
) -> EventRecord:
    """Build an :class:`~eventbus.core.EventRecord` for a store test.

    Args:
        data: Any JSON-serialisable value; by default a unique ``{"n": ...}``.
        type_name: The wire name.
        metadata: The metadata pairs; by default ``{"source": "conformance"}``.
        timestamp: A timezone-aware UTC time; by default now.
        origin: The publishing bus id.
        event_id: The event id; by default a new ULID.

    Returns:
        The record, with ``data`` encoded as JSON text (non-ASCII kept as is).
    """
    return EventRecord(
        event_id=new_event_id() if event_id is None else event_id,
        type_name=type_name,
        data=json.dumps({"n": next(_counter)} if data is None else data, ensure_ascii=False),
        timestamp=datetime.now(UTC) if timestamp is None else timestamp,
        metadata={"source": "conformance"} if metadata is None else metadata,
        origin=origin,
    )


def assert_stored(event: StoredEvent, record: EventRecord, offset: Offset | None = None) -> None:
    """Assert that ``event`` holds every field of ``record`` (and ``offset``, if given)."""
    assert isinstance(event, StoredEvent), f"a store must return StoredEvent, got {event!r}"
    if offset is not None:
        assert event.offset == offset, f"offset {event.offset!r} != appended {offset!r}"
    assert event.event_id == record.event_id
    assert event.type_name == record.type_name
    assert event.data == record.data, "data did not round-trip exactly"
    assert event.timestamp == record.timestamp, f"{event.timestamp!r} != {record.timestamp!r}"
    assert event.timestamp.utcoffset() == timedelta(0), f"{event.timestamp!r} is not UTC"
    assert dict(event.metadata) == dict(record.metadata)
    assert event.origin == record.origin
