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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from eventbus.core import EventRecord, StoredEvent

from ._offsets import COMMON_SUFFIXES, INDEX_WIDTH, SEPARATOR

__all__ = [
    "FORMAT_VERSION",
    "STORED_EVENT_FIELDS",
    "DecodedChunk",
    "UndecodableHandler",
    "decode_chunk",
    "encode_batch",
]

FORMAT_VERSION: Final = 1

UndecodableHandler = Callable[[Any, Exception], object]
"""Called with a stream message the store cannot read as an event, and why."""


# json's C string encoder, the one json.dumps(ensure_ascii=True) calls for each string:
# the envelope is assembled from a template around it, at half the cost of building a
# dict per event for json.dumps (a test checks the bytes are json.dumps' own).
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


def _meta_json(metadata: Mapping[str, str]) -> str:
    if not metadata:
        return "[]"
    return json.dumps([[k, v] for k, v in metadata.items()], separators=(",", ":"))


def encode_batch(records: Sequence[EventRecord], anchor: str) -> bytes:
    """Encode records as the JSON array body of one POST appended at ``anchor``.

    Args:
        records: The events, in order; at least one.
        anchor: The stream's tail the POST is appended at (its ``Stream-Seq``).

    Returns:
        ASCII JSON (every other character escaped, so lone surrogates survive too).
    """
    s = _json_string(anchor)
    envelopes = []
    for r in records:
        ts = r.timestamp if r.timestamp.tzinfo is UTC else r.timestamp.astimezone(UTC)
        envelopes.append(
            f'{{"v":{FORMAT_VERSION},"id":{_json_string(r.event_id)},'
            f'"type":{_json_string(r.type_name)},"data":{_json_string(r.data)},'
            # isoformat() is ASCII digits and punctuation: nothing to escape.
            f'"ts":"{ts.isoformat()}","meta":{_meta_json(r.metadata)},'
            f'"origin":{_json_string(r.origin)},"s":{s}}}'
        )
    return f"[{','.join(envelopes)}]".encode("ascii")


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


# StoredEvent is a frozen slotted dataclass: its __init__ pays an object.__setattr__ per
# field. A catch-up read builds thousands per response, so decode_chunk fills the slots
# through their descriptors (a test checks these are exactly its fields), and sets an
# event's offset once the next event shows what it is.
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
_fromisoformat = datetime.fromisoformat
# Read-only: a read result shares its events with the store's read cache.
_NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})
_SUFFIX: Final = f"{SEPARATOR}%0{INDEX_WIDTH}d"  # anchor + suffix: as _offsets.anchored


def _metadata(meta: list[Any]) -> Mapping[str, str]:
    metadata = dict(meta)
    for key, value in metadata.items():
        if type(key) is not str or type(value) is not str:
            raise ValueError("a metadata key or value is not a string")
    return MappingProxyType(metadata)


def decode_chunk(
    items: list[Any], next_offset: str, on_undecodable: UndecodableHandler
) -> DecodedChunk:
    """Decode the messages of one response and give each event its token.

    A message that is not an envelope is reported to ``on_undecodable`` and skipped;
    the events around it keep their names. ``items`` is consumed: each entry is replaced
    by ``None`` once read.

    Args:
        items: The response's messages (whole POSTs, as servers return them).
        next_offset: The response's ``Stream-Next-Offset``.
        on_undecodable: Told about each skipped message.

    Returns:
        The named events.
    """
    events: list[StoredEvent] = []
    anchors: list[str] = []
    add_event = events.append
    add_anchor = anchors.append
    # An event is named once the next one shows whether its POST goes on.
    waiting: StoredEvent | None = None
    waiting_anchor = ""
    index = 0
    common = len(COMMON_SUFFIXES)
    for position, item in enumerate(items):
        # Let each message go once read, so a large catch-up read never holds the parsed
        # messages and their events at once (less memory, and far less work for the
        # garbage collector, which would otherwise traverse both).
        items[position] = None
        try:
            try:
                version, anchor, ts, meta = item["v"], item["s"], item["ts"], item["meta"]
                event_id, type_name, data = item["id"], item["type"], item["data"]
                origin = item["origin"]
            except (KeyError, TypeError, IndexError):
                raise ValueError("it is not an eventbus envelope") from None
            if version != FORMAT_VERSION:
                raise ValueError(f"its format version {version!r} is not {FORMAT_VERSION}")
            if not (
                type(anchor) is type(ts) is type(event_id) is type(type_name) is type(data) is str
                and type(origin) is str
                and type(meta) is list
            ):
                raise ValueError("a field is missing or has the wrong type")
            timestamp = _fromisoformat(ts)
            if timestamp.tzinfo is not UTC:
                if timestamp.utcoffset() is None:
                    raise ValueError(f"the timestamp {ts!r} has no UTC offset")
                timestamp = timestamp.astimezone(UTC)
            metadata = _metadata(meta) if meta else _NO_METADATA
        except (ValueError, TypeError) as exc:
            on_undecodable(item, exc)
            continue
        event = _new_event(StoredEvent)
        _set_event_id(event, event_id)
        _set_type_name(event, type_name)
        _set_data(event, data)
        _set_timestamp(event, timestamp)
        _set_metadata(event, metadata)
        _set_origin(event, origin)
        if waiting is not None:
            if anchor == waiting_anchor:
                suffix = COMMON_SUFFIXES[index] if index < common else _SUFFIX % index
                _set_offset(waiting, waiting_anchor + suffix)
                index += 1
            else:
                # The last event of its POST: the server offset after the POST, which
                # is the next POST's anchor.
                _set_offset(waiting, anchor)
                index = 0
        add_event(event)
        add_anchor(anchor)
        waiting = event
        waiting_anchor = anchor
    if waiting is not None:  # the last POST of the response ends at its end
        _set_offset(waiting, next_offset)
    return DecodedChunk(events, anchors, next_offset)
