"""The row format of the events table: records into rows, and rows back into StoredEvents.

Offsets are the ``INTEGER PRIMARY KEY`` of the ``events`` table written as 20
zero-padded decimal digits, so comparing offsets as strings compares log positions.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from eventbus.core import EventRecord, StoredEvent

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "INSERT_ONE",
    "ROWS_PER_INSERT",
    "SELECT",
    "STORED_EVENT_FIELDS",
    "WIDTH",
    "Row",
    "decode",
    "insert_sql",
    "row_values",
]

WIDTH: Final = 20
"""The number of digits of an offset."""

ROWS_PER_INSERT: Final = 64
"""Rows per multi-row ``INSERT``: 6 parameters a row stays far below SQLite's limit of 999."""


@functools.cache
def insert_sql(rows: int) -> str:
    """The ``INSERT`` statement for ``rows`` rows (cached: one text per size)."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO events (event_id, type_name, data, timestamp, metadata, origin) "
        f"VALUES {values}"
    )


INSERT_ONE: Final = insert_sql(1)

# The offset is formatted by SQLite (printf, as "%020d"): cheaper than in Python.
SELECT: Final = (
    "SELECT printf('%020d', position), event_id, type_name, data, timestamp, metadata, "
    "origin FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
"""One page of events after a position, in the column order :func:`decode` reads."""

Row = tuple[str, str, str, str, str | None, str]
"""The values of one ``INSERT`` row: event_id, type_name, data, timestamp, metadata, origin."""

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def row_values(record: EventRecord) -> Row:
    """Check that ``record`` can be stored and return its row of the events table.

    Raises:
        TypeError: ``record`` is not an EventRecord.
        ValueError: Its timestamp is naive.
    """
    if not isinstance(record, EventRecord):
        raise TypeError(f"A store appends EventRecord instances, got {record!r}.")
    timestamp = record.timestamp
    if timestamp.tzinfo is UTC and type(timestamp) is datetime:
        # What the bus stamps. This writes what isoformat() writes, at two thirds
        # of the cost: isoformat() looks the offset up through the tzinfo.
        text = f"{timestamp.date().isoformat()}T{timestamp.time().isoformat()}+00:00"
    elif timestamp.utcoffset() is None:
        raise ValueError(
            f"EventRecord {record.event_id!r} has a naive timestamp "
            f"{timestamp!r}; stores keep timezone-aware UTC datetimes."
        )
    else:
        text = timestamp.isoformat()
    metadata = record.metadata
    return (
        record.event_id,
        record.type_name,
        record.data,
        text,
        _dumps(dict(metadata)) if metadata else None,
        record.origin,
    )


# StoredEvent is a frozen slotted dataclass: its __init__ pays an object.__setattr__
# per field. Replay builds millions of them, so decode fills the slots directly
# through their descriptors (test_rows checks these are exactly its fields).
STORED_EVENT_FIELDS: Final = (
    "offset",
    "event_id",
    "type_name",
    "data",
    "timestamp",
    "metadata",
    "origin",
)
_new_event = object.__new__
(
    _set_offset,
    _set_event_id,
    _set_type_name,
    _set_data,
    _set_timestamp,
    _set_metadata,
    _set_origin,
) = (getattr(StoredEvent, name).__set__ for name in STORED_EVENT_FIELDS)

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_fromisoformat = datetime.fromisoformat
_loads = json.loads


def decode(rows: list[Any]) -> list[StoredEvent]:
    """Turn :data:`SELECT` rows into StoredEvents: the hot loop of every replay."""
    events: list[StoredEvent] = []
    append = events.append
    for offset, event_id, type_name, data, timestamp, metadata, origin in rows:
        event = _new_event(StoredEvent)
        _set_offset(event, offset)
        _set_event_id(event, event_id)
        _set_type_name(event, type_name)
        _set_data(event, data)
        _set_timestamp(event, _fromisoformat(timestamp))
        _set_metadata(event, _EMPTY if metadata is None else MappingProxyType(_loads(metadata)))
        _set_origin(event, origin)
        append(event)
    return events
