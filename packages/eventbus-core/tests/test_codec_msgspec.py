"""msgspec Structs as events: msgspec's own JSON codec, our errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from eventbus.core import DecodeError, EncodeError, RegistrationError
from eventbus.core._codec import EventCodec, build_codec

msgspec = pytest.importorskip("msgspec")
Struct: Any = msgspec.Struct


class Line(Struct):  # type: ignore[misc]
    sku: str
    price: Decimal


class Shipped(Struct):  # type: ignore[misc]
    id: UUID
    at: datetime
    lines: list[Line]
    raw: bytes
    big: int
    payload: Any = None


NOT_A_TYPE = 5


class Unsupported(Struct):  # type: ignore[misc]
    value: NOT_A_TYPE  # type: ignore[valid-type]


@dataclass
class Holder:
    shipped: Shipped
    many: list[Shipped]


def _shipped(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "id": UUID(int=3),
        "at": datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        "lines": [Line("a", Decimal("1.10"))],
        "raw": b"\x00\x01",
        "big": 2**60,
    }
    values.update(changes)
    return Shipped(**values)


def codec(cls: type[Any]) -> EventCodec[Any]:
    return build_codec(cls, f"test.{cls.__qualname__}")


def test_struct_round_trips_through_msgspec_json() -> None:
    c = codec(Shipped)
    event = _shipped()
    text = c.encode(event)
    assert isinstance(text, str)
    assert c.decode(text) == event


def test_struct_with_unsupported_field_is_rejected() -> None:
    with pytest.raises(RegistrationError, match=r"Cannot register .*Unsupported"):
        codec(Unsupported)


def test_struct_errors() -> None:
    c = codec(Shipped)
    with pytest.raises(EncodeError, match=r"at \$: expected Shipped, got"):
        c.encode(Line("a", Decimal(1)))
    with pytest.raises(EncodeError, match="msgspec could not encode it") as info:
        c.encode(_shipped(payload=object()))
    assert isinstance(info.value.__cause__, TypeError)
    bad = c.encode(_shipped()).replace('"1.10"', '"x"')
    with pytest.raises(DecodeError, match=r"as .*Shipped: .*\$\.lines\[0\]\.price"):
        c.decode(bad)
    with pytest.raises(DecodeError, match=r"as .*Shipped: "):
        c.decode("{not json")
    with pytest.raises(DecodeError, match=r"as .*Shipped: "):
        c.decode(None)  # type: ignore[arg-type]


def test_struct_nested_in_a_dataclass() -> None:
    c = codec(Holder)
    holder = Holder(_shipped(), [_shipped(big=1)])
    assert c.decode(c.encode(holder)) == holder
    with pytest.raises(EncodeError, match=r"at \$\.many\[0\]: expected Shipped"):
        c.encode(Holder(_shipped(), [Line("a", Decimal(1))]))
    with pytest.raises(EncodeError, match=r"at \$\.shipped: msgspec could not encode Shipped"):
        c.encode(Holder(_shipped(payload=object()), []))
    bad = c.encode(holder).replace('"1.10"', '"x"')
    with pytest.raises(DecodeError, match=r"at \$\.shipped: .*price"):
        c.decode(bad)
