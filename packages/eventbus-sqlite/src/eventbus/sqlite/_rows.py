"""The row format of the events table: records into rows, and rows back into StoredEvents.

Offsets are the ``INTEGER PRIMARY KEY`` of the ``events`` table written as 20
zero-padded decimal digits, so comparing offsets as strings compares log positions.

Decoding is the hot loop of every replay, so :func:`decode` turns a page of rows into
events the fast way and only when that raises looks at the rows one by one, to return
the readable rows before the first bad one, or to raise
:class:`~eventbus.core.StoreCorruptError` naming the bad row and its field.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from eventbus.core import EventRecord, StoreCorruptError, StoredEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "INSERT_ONE",
    "ROWS_PER_INSERT",
    "SELECT",
    "SELECT_BYTES",
    "STORED_EVENT_FIELDS",
    "WIDTH",
    "Row",
    "decode",
    "decode_checked",
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

SELECT_BYTES: Final = (
    "SELECT printf('%020d', position), CAST(event_id AS BLOB), CAST(type_name AS BLOB), "
    "CAST(data AS BLOB), CAST(timestamp AS BLOB), CAST(metadata AS BLOB), "
    "CAST(origin AS BLOB) FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
""":data:`SELECT` with the text columns as bytes: for a page holding text that is not
UTF-8, which makes ``sqlite3`` fail the whole fetch of :data:`SELECT`."""

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
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = datetime.fromisoformat
_loads = json.loads
# json.loads without its per-call checks of arguments: faster by about what the checks
# of metadata below cost. Text only; bytes (a BLOB) take the slow way.
_decode_json = json.JSONDecoder().decode
# "".join(pairs.values()) raises unless pairs is a dict whose values are all strings
# (AttributeError, TypeError): the check of metadata without a loop in Python.
_join = "".join


def decode(rows: list[Any], path: str) -> list[StoredEvent]:
    """Turn :data:`SELECT` rows into StoredEvents: the hot loop of every replay.

    Args:
        rows: At least one row.
        path: The database path, named in errors.

    Returns:
        The events of ``rows`` or, when a row cannot be read, those before it (at
        least one).

    Raises:
        StoreCorruptError: The first row cannot be read.
    """
    events: list[StoredEvent] = []
    append = events.append
    try:
        for offset, event_id, type_name, data, timestamp, metadata, origin in rows:
            event = _new_event(StoredEvent)
            _set_offset(event, offset)
            _set_event_id(event, event_id)
            _set_type_name(event, type_name)
            _set_data(event, data)
            moment = _fromisoformat(timestamp)
            if moment.tzinfo is None:
                raise ValueError(timestamp)
            _set_timestamp(event, moment)
            if metadata is None:
                _set_metadata(event, _EMPTY)
            else:
                pairs = _decode_json(metadata)
                _join(pairs.values())
                _set_metadata(event, MappingProxyType(pairs))
            _set_origin(event, origin)
            append(event)
    except Exception:  # any failure of the fast way: find the bad row the slow way
        return decode_checked(rows, path)
    return events


def _as_is(value: object) -> object:
    return value


def _timestamp(value: Any) -> datetime:
    moment = _fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("it has no UTC offset")
    return moment


def _metadata(value: Any) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    pairs = _loads(value)
    if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
        raise ValueError("it is not a JSON object of string pairs")
    return MappingProxyType(pairs)


# Each column after the offset: its field, how it is read (exactly as decode reads
# it, but one field at a time), and its value when it cannot be read.
_COLUMNS: Final[tuple[tuple[str, Callable[[Any], object], object], ...]] = (
    ("event_id", _as_is, ""),
    ("type_name", _as_is, ""),
    ("data", _as_is, ""),
    ("timestamp", _timestamp, _EPOCH),
    ("metadata", _metadata, _EMPTY),
    ("origin", _as_is, ""),
)


def decode_checked(rows: list[Any], path: str, *, as_bytes: bool = False) -> list[StoredEvent]:
    """Decode ``rows`` one field at a time, stopping before the first unreadable row.

    The slow way of :func:`decode`, which it falls back to.

    Args:
        rows: Rows of :data:`SELECT`, or of :data:`SELECT_BYTES` with ``as_bytes``.
        path: The database path, named in errors.
        as_bytes: The text columns are bytes, to be decoded as UTF-8.

    Returns:
        The events before the first unreadable row (all of them if none is).

    Raises:
        StoreCorruptError: The first row cannot be read.
    """
    events: list[StoredEvent] = []
    for row in rows:
        offset = row[0]
        values: dict[str, Any] = {}
        problems: list[tuple[str, object, Exception]] = []
        for (name, read, blank), value in zip(_COLUMNS, row[1:], strict=True):
            try:
                values[name] = read(value.decode() if as_bytes and value is not None else value)
            except Exception as exc:  # what utf-8, json or fromisoformat refused
                problems.append((name, value, exc))
                values[name] = blank
        event = StoredEvent(offset=offset, **values)
        if problems:
            if events:
                return events
            raise _corrupt(path, event, problems)
        events.append(event)
    return events


def _corrupt(
    path: str, record: StoredEvent, problems: list[tuple[str, object, Exception]]
) -> StoreCorruptError:
    field, value, exc = problems[0]
    shown = repr(value)
    if len(shown) > 80:
        shown = f"{shown[:77]}..."
    others = "".join(f" (and its {name})" for name, _, _ in problems[1:])
    error = StoreCorruptError(
        f"The event at offset {record.offset} in the SQLite database {path!r} cannot be "
        f"read: its {field} {shown} is unreadable ({exc}){others}. It was written by "
        f"another tool or edited by hand; read after offset {record.offset!r} to skip it.",
        store=path,
        offset=record.offset,
        field=field,
        record=record,
    )
    error.__cause__ = exc
    return error
