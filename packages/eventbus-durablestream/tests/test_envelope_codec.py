"""The stored envelope is exactly the JSON its module documents, byte for byte."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventbus.core import EventRecord
from eventbus.core.testing import make_record
from eventbus.durablestream._envelope_codec import FORMAT_VERSION, encode_batch


def _reference(records: list[EventRecord], anchor: str) -> bytes:
    """The envelope as ``json.dumps`` writes it from the documented fields."""
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


TRICKY = [
    make_record(),
    make_record({"text": 'quotes " and \\ back\nslash', "emoji": "🎉", "é": 1.0}),
    dataclasses.replace(make_record(), data='"\ud800 a lone surrogate"'),
    make_record(metadata={}, type_name='we"ird\tname', origin="ünïcode"),
    make_record(metadata={"b": "2", "a": "1", "ключ": "значение"}),
    make_record(timestamp=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    dataclasses.replace(
        make_record(), timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5)))
    ),
]


@pytest.mark.parametrize("record", TRICKY, ids=range(len(TRICKY)))
def test_each_envelope_is_the_documented_json(record: EventRecord) -> None:
    assert encode_batch([record], "0_0") == _reference([record], "0_0")


def test_a_batch_is_one_json_array_of_envelopes() -> None:
    body = encode_batch(TRICKY, 'an "anchor"')
    assert body == _reference(TRICKY, 'an "anchor"')
    assert body.isascii()
    decoded = json.loads(body)
    assert [item["id"] for item in decoded] == [r.event_id for r in TRICKY]
    assert decoded[2]["data"] == TRICKY[2].data  # the lone surrogate survives
