"""pydantic v2 models as events: their own JSON support, our errors and JSON paths."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from eventbus.core import DecodeError, EncodeError, RegistrationError
from eventbus.core._codec import EventCodec, build_codec
from eventbus.core._names import event_name

pydantic = pytest.importorskip("pydantic", minversion="2")
BaseModel: Any = pydantic.BaseModel


class Line(BaseModel):  # type: ignore[misc]
    sku: str
    price: Decimal


class Order(BaseModel):  # type: ignore[misc]
    __event_name__ = "orders.pydantic"

    id: UUID
    at: datetime
    lines: list[Line]
    big: int
    blob: Any = None


class Hooked(BaseModel):  # type: ignore[misc]
    x: int

    def __event_encode__(self) -> dict[str, Any]:
        return {"x": self.x}

    @classmethod
    def __event_decode__(cls, data: dict[str, Any]) -> Hooked:
        return cls(x=data["x"] * 10)


@dataclass
class Holder:
    order: Order
    many: list[Order]


def _order(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "id": UUID(int=7),
        "at": datetime(2026, 11, 26, 9, 0, 1, 5, tzinfo=UTC),
        "lines": [Line(sku="a", price=Decimal("1.10")), Line(sku="b", price=Decimal("2"))],
        "big": 2**70,
    }
    values.update(changes)
    return Order(**values)


def codec(cls: type[Any]) -> EventCodec[Any]:
    return build_codec(cls, event_name(cls))


def test_model_round_trips_through_pydantic_json() -> None:
    c = codec(Order)
    assert c.name == "orders.pydantic"
    order = _order()
    text = c.encode(order)
    assert '"price":"1.10"' in text
    assert c.decode(text) == order


def test_model_errors() -> None:
    c = codec(Order)
    with pytest.raises(EncodeError, match=r"at \$: expected Order, got"):
        c.encode(Line(sku="a", price=Decimal(1)))
    with pytest.raises(EncodeError, match="pydantic could not serialize it") as info:
        c.encode(_order(blob=object()))
    assert info.value.__cause__ is not None
    data = c.encode(_order()).replace('"2"', '"two"')
    with pytest.raises(DecodeError, match=r"as .*Order at \$\.lines\[1\]\.price: "):
        c.decode(data)
    with pytest.raises(DecodeError, match=r"at \$: Invalid JSON"):
        c.decode("{bad")


def test_hooks_take_precedence_over_pydantic() -> None:
    c = codec(Hooked)
    assert c.decode(c.encode(Hooked(x=2))) == Hooked(x=20)


def test_model_nested_in_a_dataclass() -> None:
    c = codec(Holder)
    holder = Holder(_order(), [_order(big=1)])
    assert c.decode(c.encode(holder)) == holder
    with pytest.raises(EncodeError, match=r"at \$\.many\[0\]: expected Order"):
        c.encode(Holder(_order(), [Line(sku="a", price=Decimal(1))]))
    with pytest.raises(EncodeError, match=r"at \$\.order: pydantic could not serialize Order"):
        c.encode(Holder(_order(blob=object()), []))
    data = c.encode(holder).replace('"1.10"', '"x"')
    with pytest.raises(DecodeError, match=r"at \$\.order\.lines\[0\]\.price: "):
        c.decode(data)


def test_abstract_model_is_rejected() -> None:
    import abc

    class Base(BaseModel, abc.ABC):  # type: ignore[misc]
        @abc.abstractmethod
        def kind(self) -> str: ...

    with pytest.raises(RegistrationError, match="is abstract"):
        codec(Base)
