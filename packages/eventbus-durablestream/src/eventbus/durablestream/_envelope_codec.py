"""The JSON message each event is stored as, and the naming of events read back.

One event is one JSON object (``v`` is the format version)::

    {"v": 1, "id": ..., "type": ..., "data": "<the event's JSON text>", "ts": "<ISO 8601>",
     "meta": [[key, value], ...], "origin": ..., "s": "<anchor>"}

``data`` travels as a JSON *string*: the server re-serialises JSON with JavaScript
semantics (``1.0`` becomes ``1``, integers beyond 2**53 lose digits), and a string is
the one JSON value it keeps exactly. Metadata is a list of pairs so that its order
survives too. ``s`` is the anchor of the POST, its ``Stream-Seq`` (see :mod:`._offsets`):
a reader uses it to name events only where the server's offsets bear it out.

Reading parses a response straight into typed envelopes with msgspec: about half the
time of ``json.loads``, and no work for the garbage collector (see ``_Envelope``). Only a
response msgspec refuses is parsed again message by message. There an envelope with an
unreadable field (written by another tool) is kept as a *corrupt* event: named like any
other, its unreadable fields stood in for (metadata ``{}``, timestamp the Unix epoch, text
``""``), so the store can raise ``StoreCorruptError`` for exactly that event. A message
that is no envelope of this format (written by something else) is reported to
``on_undecodable`` and kept the same way, its JSON text as ``data``: it is a position in
the stream like any event, and a durable subscription's poison policy decides about it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import msgspec

from eventbus.core import EventRecord, StoredEvent

from ._errors import MalformedResponseError
from ._offsets import (
    BEGINNING,
    COMMON_SUFFIXES,
    INDEX_WIDTH,
    POSITIONAL,
    SEPARATOR,
    is_server_offset,
)

__all__ = [
    "EPOCH",
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

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The timestamp a corrupt event's unreadable timestamp reads as."""


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
    """The messages of one server response, named.

    Attributes:
        events: One event per message, in log order, each with its token as ``offset``
            (a message that is no event stands in as a corrupt one).
        next_offset: The server offset after the response.
        corrupt: The offsets of the corrupt events among ``events``, each with its
            unreadable fields (``StoredEvent`` field name to reason), in field order;
            a message that is no event has the field ``"envelope"``.
        anchors: Each anchor a POST was named by, with the index of its first event
            in ``events``: where a token ``"<a>,<i>"`` counts from.
    """

    events: list[StoredEvent]
    next_offset: str
    corrupt: Mapping[str, Mapping[str, str]]
    anchors: Mapping[str, int]


class _Envelope(msgspec.Struct, gc=False):
    """An event's message as read back; msgspec checks every field's type while parsing.

    ``gc=False``: a catch-up read makes one per event, and untracked objects cost the
    garbage collector nothing (with ``json.loads`` dicts it ran a tenth of the read).
    """

    v: Literal[1]
    id: str
    type: str
    data: str
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    meta: list[tuple[str, str]]
    origin: str
    s: str = ""  # the POST's anchor: a claim, used only where borne out (see decode_chunk)


_ENVELOPES: Final = msgspec.json.Decoder(list[_Envelope])
# Each field of an envelope: the StoredEvent field it fills, its type, and what stands in for
# it when the message holds something unreadable there.
_FIELDS: Final[dict[str, tuple[str, Any, Any]]] = {
    "id": ("event_id", str, ""),
    "type": ("type_name", str, ""),
    "data": ("data", str, ""),
    "ts": ("timestamp", Annotated[datetime, msgspec.Meta(tz=True)], EPOCH),
    "meta": ("metadata", list[tuple[str, str]], []),
    "origin": ("origin", str, ""),
}
_NO_CORRUPT: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({})


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
# Read-only: a read result shares its events with the store's read cache.
_NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})
_SUFFIX: Final = f"{SEPARATOR}%0{INDEX_WIDTH}d"  # anchor + suffix: as _offsets.anchored
_POSITIONAL_SUFFIX: Final = f"{POSITIONAL}%0{INDEX_WIDTH}d"  # as _offsets.positional


def _parse(
    body: bytes, on_undecodable: UndecodableHandler
) -> tuple[list[_Envelope], dict[int, dict[str, str]]]:
    """One envelope per message of a response body, and the unreadable fields of the
    corrupt ones, by index.

    A corrupt envelope is kept with its unreadable fields stood in for; a message that is
    no envelope is reported and stands in as an envelope holding its JSON text as ``data``.
    Either way every message keeps its place: positions are counted in messages.
    """
    try:
        return _ENVELOPES.decode(body), {}
    except msgspec.DecodeError:
        # Some message is not a readable envelope, or the body holds a lone surrogate
        # (escaped: the encoder writes any str), which msgspec refuses and json accepts.
        # Sort the messages out one by one.
        pass
    try:
        items = json.loads(body)
    except ValueError as exc:
        raise MalformedResponseError(f"The stream data is not valid JSON: {body[:80]!r}.") from exc
    if not isinstance(items, list):
        raise MalformedResponseError(f"The stream data is not a JSON array: {body[:80]!r}.")
    envelopes: list[_Envelope] = []
    corrupt: dict[int, dict[str, str]] = {}
    for item in items:
        try:
            envelopes.append(msgspec.convert(item, _Envelope))
        except msgspec.ValidationError as exc:
            if _nameable(item):
                envelope, unreadable = _salvage(item)
                # msgspec refused the whole, so some field is unreadable; should none be
                # on its own, the refusal itself is the reason.
                corrupt[len(envelopes)] = unreadable or {"envelope": str(exc)}
                envelopes.append(envelope)
            else:
                why = _why_not(item, exc)
                on_undecodable(item, ValueError(why))
                corrupt[len(envelopes)] = {"envelope": f"the message is no event: {why}"}
                envelopes.append(_foreign(item))
    return envelopes, corrupt


def _nameable(item: Any) -> bool:
    """Whether a message is an envelope of this format (a dict of format version 1)."""
    return isinstance(item, dict) and type(item.get("v")) is int and item["v"] == FORMAT_VERSION


def _foreign(item: Any) -> _Envelope:
    """Stand in for a message that is no event: its JSON text as ``data``, nothing else."""
    return _Envelope(
        v=FORMAT_VERSION,
        id="",
        type="",
        data=json.dumps(item, ensure_ascii=False),
        ts=EPOCH,
        meta=[],
        origin="",
        s="",
    )


def _salvage(item: dict[str, Any]) -> tuple[_Envelope, dict[str, str]]:
    """Read what can be read of an envelope; return it and its unreadable fields, with why."""
    values: dict[str, Any] = {}
    unreadable: dict[str, str] = {}
    for key, (name, kind, stand_in) in _FIELDS.items():
        try:
            values[key] = msgspec.convert(item[key], kind)
        except KeyError:
            values[key] = stand_in
            unreadable[name] = f"`{key}` is missing"
        except msgspec.ValidationError as exc:
            values[key] = stand_in
            unreadable[name] = f"`{key}` holds {item[key]!r}: {exc}"
    # A corrupt envelope's anchor names nothing (see decode_chunk): no need to check it.
    return _Envelope(v=FORMAT_VERSION, **values), unreadable


def _why_not(item: Any, error: msgspec.ValidationError) -> str:
    """Why a message that is no envelope of this format (see _nameable) is none."""
    if not isinstance(item, dict) or "v" not in item:
        return f"it is not an eventbus envelope ({error})"
    return f"its format version {item['v']!r} is not {FORMAT_VERSION}"


def decode_chunk(
    body: bytes, start: str, next_offset: str, on_undecodable: UndecodableHandler
) -> DecodedChunk:
    """Decode the messages of one response and give each its token (see :mod:`._offsets`).

    The server says where the read starts (``start``) and ends (``next_offset``), not
    where its POSTs begin; a POST lands at or after its anchor, and the server takes each
    ``Stream-Seq`` once, in rising order. So:

    * A POST is named by its anchor (``"<a>,<i>"``, as its writer named it) when the
      anchor is borne out: a readable envelope whose anchor is a server offset from
      ``start`` (included) to ``next_offset`` (excluded), above the anchors named before
      it in the read. Every other message, whatever it holds, is counted on from the last
      name; those before the first named POST from the read's start (``"<start>&<i>"``).
    * Where a POST is known to start (at ``start``, or at the stream's beginning, or right
      after such a POST) and its anchor says so, the next POST's anchor is its end: its
      last event is named by that server offset, as its writer named it. A message that
      is no readable envelope breaks this chain until the next read.
    * The last message of the response is named ``next_offset``.

    A message that is not an envelope is reported to ``on_undecodable`` and kept as a
    corrupt event, as an envelope with an unreadable field is.

    Args:
        body: The response's data: a JSON array of messages, or nothing.
        start: The server offset the read started at (``"-1"``: the beginning).
        next_offset: The response's ``Stream-Next-Offset``.
        on_undecodable: Told about each message that is no event.

    Returns:
        The named events, with the corrupt ones listed.

    Raises:
        MalformedResponseError: ``body`` is not a JSON array.
    """
    envelopes, corrupt_at = _parse(body, on_undecodable) if body else ([], {})
    events: list[StoredEvent] = []
    add_event = events.append
    anchors: dict[str, int] = {}
    # The name being counted on: the read's start until a POST is named by its anchor.
    base = start
    anchor = ""
    anchored = False
    # Whether the current message's POST is known to start at its anchor: then the next
    # POST's anchor is where it ends.
    chained = False
    previous: StoredEvent | None = None
    index = 0
    common = len(COMMON_SUFFIXES)
    for position, envelope in enumerate(envelopes):
        claim = envelope.s
        sound = position not in corrupt_at
        if claim != anchor:
            if (
                sound
                and claim >= start
                and claim < next_offset
                and claim > anchor
                and is_server_offset(claim)
                # The read's first message starts where the read does.
                and (position or claim == start or start == BEGINNING)
            ):
                if not position:
                    chained = True
                elif chained:
                    _set_offset(previous, claim)  # its POST ends where this one starts
                base = anchor = claim
                anchors[claim] = position
                anchored = True
                index = 0
            else:
                chained = False
        elif not sound:
            chained = False
        timestamp = envelope.ts
        event = _new_event(StoredEvent)
        if anchored:
            _set_offset(
                event, base + (COMMON_SUFFIXES[index] if index < common else _SUFFIX % index)
            )
        else:
            _set_offset(event, base + _POSITIONAL_SUFFIX % index)
        index += 1
        _set_event_id(event, envelope.id)
        _set_type_name(event, envelope.type)
        _set_data(event, envelope.data)
        _set_timestamp(event, timestamp if timestamp.tzinfo is UTC else timestamp.astimezone(UTC))
        _set_metadata(
            event, MappingProxyType(dict(envelope.meta)) if envelope.meta else _NO_METADATA
        )
        _set_origin(event, envelope.origin)
        add_event(event)
        previous = event
    if previous is not None:  # the response ends where its last message does
        _set_offset(previous, next_offset)
    if not corrupt_at:
        return DecodedChunk(events, next_offset, _NO_CORRUPT, anchors)
    corrupt = {events[index].offset: fields for index, fields in corrupt_at.items()}
    return DecodedChunk(events, next_offset, corrupt, anchors)
