"""The JSON message each event is stored as, and the naming of events read back.

One event is one JSON object (``v`` is the format version)::

    {"v": 1, "id": ..., "type": ..., "data": "<the event's JSON text>", "ts": "<ISO 8601>",
     "meta": [[key, value], ...], "origin": ..., "s": "<anchor>"}

``data`` travels as a JSON *string*: the server re-serialises JSON with JavaScript
semantics (``1.0`` becomes ``1``, integers beyond 2**53 lose digits), and a string is
the one JSON value it keeps exactly. Metadata is a list of pairs so that its order
survives too. ``s`` is the anchor of the POST (see :mod:`._offsets`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from eventbus.core import EventRecord, StoredEvent

from ._offsets import anchored

__all__ = ["FORMAT_VERSION", "DecodedChunk", "UndecodableHandler", "decode_chunk", "encode_batch"]

FORMAT_VERSION: Final = 1

UndecodableHandler = Callable[[Any, Exception], object]
"""Called with a stream message the store cannot read as an event, and why."""


def encode_batch(records: Sequence[EventRecord], anchor: str) -> bytes:
    """Encode records as the JSON array body of one POST appended at ``anchor``.

    Args:
        records: The events, in order; at least one.
        anchor: The stream's tail the POST is appended at (its ``Stream-Seq``).

    Returns:
        ASCII JSON (every other character escaped, so lone surrogates survive too).
    """
    return json.dumps(
        [
            {
                "v": FORMAT_VERSION,
                "id": r.event_id,
                "type": r.type_name,
                "data": r.data,
                "ts": r.timestamp.astimezone(UTC).isoformat(),
                "meta": [[k, v] for k, v in r.metadata.items()],
                "origin": r.origin,
                "s": anchor,
            }
            for r in records
        ],
        separators=(",", ":"),
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class DecodedChunk:
    """The events of one server response, named.

    Attributes:
        events: The events in log order, each with its token as ``offset``.
        anchors: The anchor of each event's POST, parallel to ``events``.
        next_offset: The server offset after the response.
    """

    events: list[StoredEvent]
    anchors: list[str]
    next_offset: str


def _decode_one(item: Any) -> tuple[str, tuple[Any, ...]]:
    if not isinstance(item, dict) or item.get("v") != FORMAT_VERSION:
        raise ValueError("it is not an eventbus envelope of format version 1")
    fields: tuple[Any, ...] = (
        item.get("id"),
        item.get("type"),
        item.get("data"),
        item.get("origin"),
    )
    anchor, ts, meta = item.get("s"), item.get("ts"), item.get("meta")
    if not all(isinstance(f, str) for f in (*fields, anchor, ts)) or not isinstance(meta, list):
        raise ValueError("a field is missing or has the wrong type")
    assert isinstance(anchor, str)  # checked just above, for mypy
    assert isinstance(ts, str)
    timestamp = datetime.fromisoformat(ts)
    if timestamp.utcoffset() is None:
        raise ValueError(f"the timestamp {ts!r} has no UTC offset")
    metadata = dict(meta)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("a metadata key or value is not a string")
    event_id, type_name, data, origin = fields
    # Read-only: a read result shares its events with the store's read cache.
    frozen = MappingProxyType(metadata)
    return anchor, (event_id, type_name, data, timestamp.astimezone(UTC), frozen, origin)


def decode_chunk(
    items: list[Any], next_offset: str, on_undecodable: UndecodableHandler
) -> DecodedChunk:
    """Decode the messages of one response and give each event its token.

    A message that is not an envelope is reported to ``on_undecodable`` and skipped;
    the events around it keep their names.

    Args:
        items: The response's messages (whole POSTs, as servers return them).
        next_offset: The response's ``Stream-Next-Offset``.
        on_undecodable: Told about each skipped message.

    Returns:
        The named events.
    """
    decoded: list[tuple[str, tuple[Any, ...]]] = []
    for item in items:
        try:
            decoded.append(_decode_one(item))
        except (ValueError, TypeError) as exc:
            on_undecodable(item, exc)
    events: list[StoredEvent] = []
    anchors: list[str] = []
    index = 0
    count = len(decoded)
    for position, (anchor, fields) in enumerate(decoded):
        following = decoded[position + 1][0] if position + 1 < count else None
        if following == anchor:
            token = anchored(anchor, index)
            index += 1
        else:
            # The last event of its POST: the server offset after the POST, which is
            # the next POST's anchor, or the response's end for the last POST.
            token = next_offset if following is None else following
            index = 0
        events.append(StoredEvent(token, *fields))
        anchors.append(anchor)
    return DecodedChunk(events, anchors, next_offset)
