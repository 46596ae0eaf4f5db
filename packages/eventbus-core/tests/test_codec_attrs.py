"""attrs classes as events: compiled field by field, rebuilt through __init__."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from eventbus.core import DecodeError, RegistrationError
from eventbus.core._codec import EventCodec, build_codec

attrs = pytest.importorskip("attrs")
attr = pytest.importorskip("attr")


@attrs.define
class Booking:
    guest: str
    nights: int = attrs.field(validator=attrs.validators.gt(0))
    _code: str = "none"
    computed: int = attrs.field(init=False, default=0)


@attrs.frozen
class Stay:
    day: date
    guests: list[str]


@attr.s
class Legacy:
    count = attr.ib(type=int)


@attr.s
class Untyped:
    count = attr.ib()


@dataclass
class Holder:
    stay: Stay


def new(cls: type, *args: Any) -> Any:
    """An instance of ``cls``; mypy cannot see attrs' __init__ when attrs is imported lazily."""
    return cls(*args)


def codec(cls: type[Any]) -> EventCodec[Any]:
    return build_codec(cls, f"test.{cls.__qualname__}")


def test_attrs_class_round_trips_with_private_aliases_and_defaults() -> None:
    c = codec(Booking)
    booking = new(Booking, "ann", 2, "XY")
    text = c.encode(booking)
    assert text == '{"guest":"ann","nights":2,"_code":"XY"}'
    assert c.decode(text) == booking
    assert c.decode('{"guest":"bob","nights":1}') == new(Booking, "bob", 1)


def test_attrs_validators_run_on_decode() -> None:
    with pytest.raises(DecodeError, match=r"at \$: Booking\(\.\.\.\) raised ValueError") as info:
        codec(Booking).decode('{"guest":"ann","nights":0}')
    assert isinstance(info.value.__cause__, ValueError)


def test_frozen_attrs_and_nesting() -> None:
    c = codec(Holder)
    holder = Holder(new(Stay, date(2026, 1, 1), ["a", "b"]))
    assert c.decode(c.encode(holder)) == holder
    with pytest.raises(DecodeError, match=r"at \$\.stay\.day: expected date text"):
        c.decode('{"stay":{"day":"soon","guests":[]}}')


def test_attr_ib_type_is_used_without_annotations() -> None:
    c = codec(Legacy)
    assert c.decode(c.encode(new(Legacy, 3))) == new(Legacy, 3)
    with pytest.raises(RegistrationError, match=r"Untyped\.count has no type annotation"):
        codec(Untyped)
