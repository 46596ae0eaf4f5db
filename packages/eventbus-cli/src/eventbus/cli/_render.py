"""How events, offsets and times are printed: one line of text, or one JSON object."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console

from eventbus.core import Boundary

if TYPE_CHECKING:
    from datetime import datetime

    from eventbus.core import Checkpoint, StoredEvent

__all__ = ["console", "event_json", "event_line", "event_object", "offset_text", "time_text"]


def console() -> Console:
    """A Rich console on stdout; when stdout is not a terminal, lines are never cut at
    80 columns (offsets, URLs and ids must survive a pipe whole)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 10_000)


def offset_text(offset: Checkpoint) -> str:
    """An offset as typed back into the command: ``oldest`` for OLDEST."""
    return offset.value if isinstance(offset, Boundary) else offset


def time_text(moment: datetime) -> str:
    """UTC, ISO 8601, milliseconds, ``Z``: ``2026-01-01T12:00:00.000Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_object(event: StoredEvent) -> dict[str, Any]:
    """The JSON form of an event: its data parsed when it is JSON, else kept as text."""
    try:
        data: Any = json.loads(event.data)
    except ValueError:
        data = event.data
    return {
        "offset": event.offset,
        "id": event.event_id,
        "type": event.type_name,
        "timestamp": time_text(event.timestamp),
        "origin": event.origin,
        "metadata": dict(event.metadata),
        "data": data,
    }


def event_json(event: StoredEvent) -> str:
    """One line of JSON: offset, id, type, timestamp, origin, metadata, data."""
    return json.dumps(event_object(event), ensure_ascii=False)


def event_line(event: StoredEvent) -> str:
    """One line of text: offset, timestamp, wire name, the JSON data."""
    return f"{event.offset}  {time_text(event.timestamp)}  {event.type_name}  {event.data}"
