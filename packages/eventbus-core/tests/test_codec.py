"""The event codec: exact round trips, compiled per class, clear errors with JSON paths."""

from __future__ import annotations

import abc
import collections
import enum
import json
import math
import sys
import typing
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, NewType, NotRequired, Protocol, TypedDict

import pytest

from eventbus.core import DecodeError, EncodeError, RegistrationError
from eventbus.core import _codec as codec_module
from eventbus.core._codec import EventCodec, build_codec

# ---------------------------------------------------------------- event classes


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Size(enum.StrEnum):
    SMALL = "s"
    LARGE = "l"


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class Shape(enum.Enum):
    SQUARE = (1, 1)


Sku = NewType("Sku", str)


@dataclass(frozen=True)
class Flat:
    order_id: str
    amount: float


@dataclass(frozen=True, slots=True)
class FlatSlots:
    order_id: str
    amount: float


@dataclass
class Empty:
    pass


@dataclass(frozen=True)
class Line:
    sku: Sku
    price: Decimal
    quantity: int = 1


@dataclass
class Everything:
    id: uuid.UUID
    at: datetime
    naive: datetime
    day: date
    clock: time
    lines: list[Line]
    tags: frozenset[str]
    seen: set[int]
    when: frozenset[date]
    color: Color
    level: Level
    size: Size
    perm: Perm
    raw: bytes
    numbers: tuple[int, ...]
    pair: tuple[int, str]
    nothing: tuple[()]
    by_day: dict[int, list[date]]
    by_id: dict[uuid.UUID, str]
    by_color: dict[Color, int]
    mode: Literal["a", "b", 3]
    maybe: time | None
    either: int | str
    number: int | float | datetime
    line: Line | None
    big: int
    ratio: float
    payload: Any
    loose_list: list  # type: ignore[type-arg]
    loose_dict: dict  # type: ignore[type-arg]
    loose_tuple: tuple  # type: ignore[type-arg]
    mixed: list[Any]
    flag: bool
    note: str | None


def _everything(**changes: Any) -> Everything:
    values: dict[str, Any] = {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "at": datetime(
            2026, 11, 26, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))
        ),
        "naive": datetime(2026, 1, 2, 3, 4, 5),
        "day": date(2026, 2, 28),
        "clock": time(23, 59, 1, 5, tzinfo=UTC),
        "lines": [Line(Sku("a"), Decimal("1.10"), 2), Line(Sku("é"), Decimal("-0.000"))],
        "tags": frozenset({"x", "y"}),
        "seen": {1, 2, 3},
        "when": frozenset({date(2020, 1, 1)}),
        "color": Color.GREEN,
        "level": Level.HIGH,
        "size": Size.LARGE,
        "perm": Perm.READ | Perm.WRITE,
        "raw": bytes(range(256)),
        "numbers": (1, 2, 3),
        "pair": (7, "seven"),
        "nothing": (),
        "by_day": {-5: [date(2021, 3, 4)], 10: []},
        "by_id": {uuid.UUID(int=1): "one"},
        "by_color": {Color.RED: 1},
        "mode": 3,
        "maybe": None,
        "either": "text",
        "number": datetime(2020, 1, 1, tzinfo=UTC),
        "line": Line(Sku("b"), Decimal("2")),
        "big": 2**70,
        "ratio": 1.0,
        "payload": {"k": [1, "two", None, True, 2.5]},
        "loose_list": [1, "a"],
        "loose_dict": {"a": [1]},
        "loose_tuple": (1, "a"),
        "mixed": [{"x": 1}],
        "flag": False,
        "note": "n",
    }
    values.update(changes)
    return Everything(**values)


@dataclass
class Defaults:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=list)
    derived: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.derived = self.name.upper()


@dataclass
class Node:
    name: str
    children: list[Node]


@dataclass
class Wrapper:
    inner: Line
    items: list[Line]


class Point(NamedTuple):
    x: int
    y: int = 0


class Shipment(NamedTuple):
    when: datetime
    lines: list[Line]


Untyped = collections.namedtuple("Untyped", ["a"])


class Movie(TypedDict):
    title: str
    year: Annotated[int, "the release year"]
    rating: NotRequired[float]


class Cast(TypedDict):
    movie: Movie
    released: date


class Money:
    """A plain class with the documented hooks."""

    def __init__(self, amount: Decimal, currency: str) -> None:
        self.amount = amount
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (self.amount, self.currency) == (
            other.amount,
            other.currency,
        )

    __hash__ = None  # type: ignore[assignment]

    def __event_encode__(self) -> dict[str, Any]:
        return {"amount": str(self.amount), "currency": self.currency}

    @classmethod
    def __event_decode__(cls, data: dict[str, Any]) -> Money:
        return cls(Decimal(data["amount"]), data["currency"])


@dataclass
class Invoice:
    total: Money
    extra: list[Money]


class HalfHooked:
    def __event_encode__(self) -> dict[str, Any]:
        return {}


class BadHooks:
    """Hooks that break their contract, switched by ``mode``."""

    mode = "ok"

    def __event_encode__(self) -> Any:
        if BadHooks.mode == "raise":
            raise RuntimeError("boom")
        if BadHooks.mode == "list":
            return [1]
        if BadHooks.mode == "nan":
            return {"x": math.nan}
        return {"ok": 1}

    @classmethod
    def __event_decode__(cls, data: dict[str, Any]) -> Any:
        if BadHooks.mode == "raise":
            raise KeyError("missing")
        if BadHooks.mode == "wrong":
            return Money(Decimal(1), "EUR")
        return cls()


class NotAnEvent:
    pass


@dataclass
class HasPlainClass:
    thing: NotAnEvent


@dataclass
class HasNestedBad:
    wrapper: HasPlainClass


@dataclass
class WithNew:
    x: int

    def __new__(cls, *args: Any, **kwargs: Any) -> WithNew:
        return super().__new__(cls)


@dataclass
class Unresolvable:
    x: Undefined  # type: ignore[name-defined]  # noqa: F821


@dataclass
class UnhashableAnnotation:
    x: [int]  # type: ignore[valid-type, misc]


class Listener(Protocol):
    def hear(self) -> None: ...


class AbstractEvent(abc.ABC):
    @abc.abstractmethod
    def kind(self) -> str: ...


T = typing.TypeVar("T")


def _unsupported(tp: object) -> type:
    """A module-level dataclass with one field of type ``tp``."""
    cls: type = dataclass(
        type("Holder", (), {"__annotations__": {"value": tp}, "__module__": __name__})
    )
    return cls


def codec(cls: type[Any]) -> EventCodec[Any]:
    return build_codec(cls, f"test.{cls.__qualname__}")


@pytest.fixture(autouse=True, params=["msgspec parser", "json parser"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs on both parsers: what they decode and report must agree."""
    if request.param == "json parser":
        monkeypatch.setattr(codec_module, "FAST_PARSE", None)
    elif codec_module.FAST_PARSE is None:
        pytest.skip("msgspec is not installed")


def test_without_msgspec_there_is_no_fast_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import msgspec raises ImportError
    assert codec_module._fast_parser() is None


def test_text_msgspec_refuses_and_json_accepts_decodes_the_json_way() -> None:
    @dataclass(frozen=True)
    class Reading:
        value: float

    c = codec(Reading)
    assert c.decode('{"value":1e400}') == Reading(math.inf)
    assert math.isnan(c.decode('{"value":NaN}').value)
    assert c.decode('{"value":-Infinity}') == Reading(-math.inf)


# ---------------------------------------------------------------- round trips


def test_flat_dataclass_round_trips_as_compact_json() -> None:
    c = codec(Flat)
    text = c.encode(Flat("o-1", 99.5))
    assert text == '{"order_id":"o-1","amount":99.5}'
    assert c.decode(text) == Flat("o-1", 99.5)
    assert c.name == "test.Flat"
    assert c.event_type is Flat
    assert repr(c) == f"EventCodec('test.Flat', {__name__}.Flat)"


def test_flat_slots_dataclass_round_trips() -> None:
    c = codec(FlatSlots)
    event = c.decode(c.encode(FlatSlots("o-2", 3)))
    assert event == FlatSlots("o-2", 3)
    assert type(event.amount) is int


def test_empty_dataclass_round_trips() -> None:
    c = codec(Empty)
    assert c.encode(Empty()) == "{}"
    assert c.decode("{}") == Empty()


def test_every_supported_field_type_round_trips_exactly() -> None:
    c = codec(Everything)
    original = _everything()
    text = c.encode(original)
    restored = c.decode(text)
    assert restored == original
    assert restored.at.utcoffset() == timedelta(hours=5, minutes=30)
    assert restored.naive.tzinfo is None
    assert str(restored.lines[1].price) == "-0.000"
    assert type(restored.ratio) is float
    assert type(restored.tags) is frozenset
    assert type(restored.seen) is set
    assert type(restored.numbers) is tuple
    assert type(restored.loose_tuple) is tuple
    assert restored.level is Level.HIGH
    assert restored.perm == Perm.READ | Perm.WRITE
    assert restored.big == 2**70
    # JSON text is compact and keeps non-ASCII characters as they are.
    assert ", " not in text
    assert '"sku":"é"' in text
    assert json.loads(text)["raw"].isascii()


@pytest.mark.parametrize(
    ("number", "kind"),
    [(5, int), (5.0, float), (datetime(2020, 1, 1, tzinfo=UTC), datetime)],
)
def test_numeric_union_members_keep_their_type(number: Any, kind: type) -> None:
    c = codec(Everything)
    restored = c.decode(c.encode(_everything(number=number, either=4, maybe=time(1))))
    assert type(restored.number) is kind
    assert restored.either == 4
    assert restored.maybe == time(1)


@pytest.mark.parametrize("value", [2**53 + 1, -(2**64), 0])
def test_integers_beyond_double_precision_are_exact(value: int) -> None:
    c = codec(Everything)
    assert c.decode(c.encode(_everything(big=value))).big == value


def test_defaults_fill_missing_keys_and_post_init_is_not_rerun() -> None:
    c = codec(Defaults)
    event = Defaults("ann", 2, ["x"])
    text = c.encode(event)
    assert json.loads(text) == {"name": "ann", "count": 2, "tags": ["x"], "derived": "ANN"}
    assert c.decode(text) == event
    # An event stored before count/tags/derived existed decodes with their defaults.
    old = c.decode('{"name":"bob"}')
    assert (old.name, old.count, old.tags, old.derived) == ("bob", 0, [], "")
    # Restored like pickle: stored values win over what __post_init__ would compute.
    assert c.decode('{"name":"x","count":1,"tags":[],"derived":"kept"}').derived == "kept"


def test_recursive_dataclass_round_trips() -> None:
    c = codec(Node)
    tree = Node("root", [Node("a", []), Node("b", [Node("c", [])])])
    assert c.decode(c.encode(tree)) == tree


def test_namedtuple_round_trips_as_an_object() -> None:
    c = codec(Point)
    assert c.encode(Point(1, 2)) == '{"x":1,"y":2}'
    assert c.decode('{"x":1,"y":2}') == Point(1, 2)
    assert c.decode('{"x":5}') == Point(5, 0)
    s = codec(Shipment)
    shipment = Shipment(datetime(2020, 5, 5, tzinfo=UTC), [Line(Sku("a"), Decimal("3"))])
    assert s.decode(s.encode(shipment)) == shipment


def test_typeddict_round_trips_as_a_dict() -> None:
    c = codec(Movie)
    movie: Movie = {"title": "Up", "year": 2009}
    assert c.decode(c.encode(movie)) == movie
    rated: Movie = {"title": "Up", "year": 2009, "rating": 8}
    assert c.decode(c.encode(rated)) == rated
    nested = codec(Cast)
    cast: Cast = {"movie": movie, "released": date(2009, 5, 29)}
    assert nested.decode(nested.encode(cast)) == cast


def test_hook_class_round_trips_top_level_and_nested() -> None:
    c = codec(Money)
    money = Money(Decimal("9.99"), "EUR")
    assert c.encode(money) == '{"amount":"9.99","currency":"EUR"}'
    assert c.decode(c.encode(money)) == money
    invoice = Invoice(money, [Money(Decimal(1), "USD")])
    ic = codec(Invoice)
    assert ic.decode(ic.encode(invoice)) == invoice


def test_nested_dataclasses_use_their_own_converters() -> None:
    c = codec(Wrapper)
    event = Wrapper(Line(Sku("a"), Decimal("1")), [Line(Sku("b"), Decimal("2.50"), 3)])
    assert json.loads(c.encode(event)) == {
        "inner": {"sku": "a", "price": "1", "quantity": 1},
        "items": [{"sku": "b", "price": "2.50", "quantity": 3}],
    }
    assert c.decode(c.encode(event)) == event


# ---------------------------------------------------------------- registration errors


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (Listener, "is a Protocol"),
        (AbstractEvent, "is abstract"),
        (NotAnEvent, "is not a dataclass, NamedTuple, TypedDict"),
        (int, "is not a dataclass"),
        (Color, "is not a dataclass"),
        (HalfHooked, "must define both __event_encode__"),
        (HasPlainClass, "field HasPlainClass.thing of type NotAnEvent"),
        (HasNestedBad, "field HasPlainClass.thing of type NotAnEvent"),
        (WithNew, "defines __new__"),
        (Unresolvable, "could not be resolved"),
        (UnhashableAnnotation, "not a type eventbus can store"),
        (Untyped, "Untyped.a has no type annotation"),
    ],
)
def test_unsupported_classes_are_rejected_naming_class_and_field(cls: type, message: str) -> None:
    with pytest.raises(
        RegistrationError, match=r"Cannot register|is a Protocol|is abstract"
    ) as info:
        codec(cls)
    assert message in str(info.value)
    assert cls.__qualname__ in str(info.value)


@pytest.mark.parametrize(
    ("tp", "message"),
    [
        (Shape, "must be str, int, float or bool"),
        (T, "not a type eventbus can store"),
        (typing.Callable[[], int], "not a type eventbus can store"),
        (dict[float, int], "dict keys must be"),
        (dict[Level, int], "dict keys must be"),
        (Literal[1.5], "Literal values must be"),
        (set[Any], "set items need a declared type"),
        (set, "set items need a declared type"),
        (list[int] | list[str], "overlap in the union"),
        (datetime | str, "are both stored as JSON str"),
        (datetime | Any, "Any cannot be combined"),
    ],
)
def test_unsupported_field_types_are_rejected(tp: object, message: str) -> None:
    with pytest.raises(RegistrationError, match=r"Holder\.value") as info:
        codec(_unsupported(tp))
    assert message in str(info.value)


def test_unions_of_plain_types_collapse() -> None:
    assert codec(_unsupported(int | Any)).decode('{"value":[1]}').value == [1]
    union = typing.Union[int, str, None]  # noqa: UP007 - the typing.Union spelling
    c = codec(_unsupported(union))
    assert c.decode('{"value":null}').value is None
    with pytest.raises(DecodeError, match=r"\$\.value: expected int \| str \| None, got 1\.5"):
        c.decode('{"value":1.5}')


# ---------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"big": True}, "$.big", "expected int, got True (bool)"),
        ({"big": Level.LOW}, "$.big", "expected int, got"),
        ({"ratio": "1"}, "$.ratio", "expected float, got '1' (str)"),
        ({"ratio": math.nan}, "$.ratio", "Out of range float values"),
        ({"payload": {"k": [1, object()]}}, "$.payload.k[1]", "not JSON serializable"),
        ({"at": date(2020, 1, 1)}, "$.at", "expected datetime"),
        ({"day": datetime(2020, 1, 1)}, "$.day", "expected date"),
        ({"color": Level.LOW}, "$.color", "expected a Color member"),
        ({"mode": "c"}, "$.mode", "expected one of 'a', 'b', 3"),
        ({"mode": True}, "$.mode", "expected one of"),
        ({"tags": {"x"}}, "$.tags", "expected frozenset[str]"),
        ({"tags": frozenset({1})}, "$.tags[0]", "expected str, got 1"),
        ({"numbers": [1]}, "$.numbers", "expected tuple[int, ...]"),
        (
            {"lines": [Line(Sku("a"), Decimal(1)), Line(Sku("b"), 2.5)]},  # type: ignore[arg-type]
            "$.lines[1].price",
            "expected Decimal",
        ),
        ({"when": frozenset({1})}, "$.when[0]", "expected date"),
        ({"pair": (1, 2)}, "$.pair[1]", "expected str"),
        ({"pair": (1,)}, "$.pair", "expected tuple[int, str]"),
        ({"by_day": {"1": []}}, "$.by_day", "expected an int key"),
        ({"by_day": {1: [5]}}, '$.by_day["1"][0]', "expected date"),
        ({"by_day": [1]}, "$.by_day", "expected dict[int, list[date]]"),
        ({"either": 1.5}, "$.either", "expected int | str"),
        ({"number": "x"}, "$.number", "expected int | float | datetime"),
        ({"line": Flat("a", 1)}, "$.line", "expected Line | None"),
        ({"line": Line(Sku("a"), "1")}, "$.line.price", "expected Decimal"),  # type: ignore[arg-type]
        ({"payload": {"self": None}}, None, None),
    ],
)
def test_encode_errors_name_class_and_path(
    changes: dict[str, Any], path: str | None, message: str | None
) -> None:
    c = codec(Everything)
    event = _everything(**changes)
    if path is None:
        assert c.decode(c.encode(event)) == event
        return
    with pytest.raises(EncodeError) as info:
        c.encode(event)
    text = str(info.value)
    assert f"{__name__}.Everything" in text
    assert f" at {path}: " in text
    assert message is not None
    assert message in text


def test_encode_rejects_a_cycle_under_any() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic
    with pytest.raises(EncodeError, match=r"at \$\.payload\.me: Circular reference"):
        codec(Everything).encode(_everything(payload=cyclic))


def test_encode_rejects_an_instance_of_another_class() -> None:
    with pytest.raises(EncodeError, match=r"at \$: expected Flat, got FlatSlots"):
        codec(Flat).encode(FlatSlots("a", 1))


def test_encode_errors_for_flat_and_plain_list_items() -> None:
    with pytest.raises(EncodeError, match=r"at \$\.amount: expected float, got None"):
        codec(Flat).encode(Flat("a", None))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=r"at \$\.children\[0\]: expected Node"):
        codec(Node).encode(Node("r", [Flat("a", 1)]))  # type: ignore[list-item]
    with pytest.raises(EncodeError, match=r"at \$\.tags\[1\]: expected str, got 2"):
        codec(Defaults).encode(Defaults("a", 1, ["x", 2]))  # type: ignore[list-item]


def test_typeddict_encode_checks_keys() -> None:
    c = codec(Movie)
    with pytest.raises(EncodeError, match="Movie has no key 'studio'"):
        c.encode({"title": "Up", "year": 1, "studio": "P"})
    with pytest.raises(EncodeError, match="Movie is missing required key 'year'"):
        c.encode({"title": "Up"})
    with pytest.raises(EncodeError, match=r"at \$\.rating: expected float"):
        c.encode({"title": "Up", "year": 1, "rating": "good"})
    with pytest.raises(EncodeError, match=r"at \$: expected Movie"):
        c.encode(["Up"])


def test_hook_contract_violations_raise() -> None:
    c = codec(BadHooks)
    try:
        BadHooks.mode = "raise"
        with pytest.raises(EncodeError, match=r"__event_encode__\(\) raised RuntimeError") as enc:
            c.encode(BadHooks())
        assert isinstance(enc.value.__cause__, RuntimeError)
        with pytest.raises(DecodeError, match=r"__event_decode__\(\) raised KeyError") as dec:
            c.decode("{}")
        assert isinstance(dec.value.__cause__, KeyError)
        BadHooks.mode = "list"
        with pytest.raises(EncodeError, match=r"returned \[1\] \(list\), not a dict"):
            c.encode(BadHooks())
        BadHooks.mode = "nan"
        with pytest.raises(EncodeError, match=r"at \$\.x: Out of range float"):
            c.encode(BadHooks())
        BadHooks.mode = "wrong"
        with pytest.raises(DecodeError, match=r"returned .* \(Money\), not a BadHooks"):
            c.decode("{}")
        BadHooks.mode = "ok"
        assert c.encode(BadHooks()) == '{"ok":1}'
        assert type(c.decode("{}")) is BadHooks
        with pytest.raises(DecodeError, match=r"at \$: expected BadHooks as a JSON object"):
            c.decode("[]")
        with pytest.raises(EncodeError, match=r"at \$: expected BadHooks, got"):
            c.encode(Money(Decimal(1), "EUR"))
    finally:
        BadHooks.mode = "ok"


# ---------------------------------------------------------------- decode errors


def _everything_json(**changes: Any) -> str:
    data = json.loads(codec(Everything).encode(_everything()))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"big": 1.0}, "$.big", "expected int, got 1.0 (float)"),
        ({"big": True}, "$.big", "expected int, got True (bool)"),
        ({"at": "yesterday"}, "$.at", "expected datetime text, got 'yesterday'"),
        ({"at": 5}, "$.at", "expected datetime text, got 5 (int)"),
        ({"raw": "!!"}, "$.raw", "expected bytes text"),
        ({"id": "nope"}, "$.id", "expected UUID text"),
        ({"color": "blue"}, "$.color", "expected a value of enum Color, got 'blue'"),
        ({"level": True}, "$.level", "expected a value of enum Level, got True"),
        ({"level": "1"}, "$.level", "expected a value of enum Level"),
        ({"mode": "z"}, "$.mode", "expected one of 'a', 'b', 3"),
        ({"tags": "x"}, "$.tags", "expected frozenset[str] as a JSON array"),
        ({"tags": ["x", 1]}, "$.tags[1]", "expected str, got 1"),
        ({"when": ["2020-01-01", "bad"]}, "$.when[1]", "expected date text"),
        ({"when": {}}, "$.when", "as a JSON array"),
        ({"pair": [1]}, "$.pair", "expected tuple[int, str] as a JSON array of 2"),
        ({"pair": [1, 2]}, "$.pair[1]", "expected str, got 2"),
        ({"by_day": {"01": []}}, '$.by_day["01"]', "expected an int key, got '01'"),
        ({"by_day": {"x": []}}, "$.by_day.x", "expected an int key, got 'x'"),
        ({"by_day": {"2": ["bad"]}}, '$.by_day["2"][0]', "expected date text"),
        ({"by_day": []}, "$.by_day", "as a JSON object"),
        ({"by_id": {"not-a-uuid": "x"}}, '$.by_id["not-a-uuid"]', "expected UUID text"),
        (
            {"loose_dict": {"a b": 1, "ok": 2}, "by_color": {"purple": 1}},
            "$.by_color.purple",
            "Color",
        ),
        ({"either": None}, "$.either", "expected int | str, got None"),
        ({"number": [1]}, "$.number", "expected int | float | datetime, got [1]"),
        ({"number": "soon"}, "$.number", "expected datetime text"),
        ({"line": {"sku": "a"}}, "$.line", "Line is missing required field 'price'"),
        ({"line": {"sku": "a", "price": "1", "colour": 1}}, "$.line", "Line has no field 'colour'"),
        ({"line": {"sku": 5, "price": "1", "quantity": 1}}, "$.line.sku", "expected str, got 5"),
        ({"line": {"sku": "a", "price": "x", "quantity": 1}}, "$.line.price", "expected Decimal"),
        ({"line": {"sku": "a", "price": "x"}}, "$.line.price", "expected Decimal"),
        ({"line": "a"}, "$.line", "expected Line | None, got 'a'"),
        (
            {"lines": [{"sku": "a", "price": "1", "quantity": 1}, 3]},
            "$.lines[1]",
            "expected Line as a JSON object",
        ),
    ],
)
def test_decode_errors_name_class_and_json_path(
    changes: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(DecodeError) as info:
        codec(Everything).decode(_everything_json(**changes))
    text = str(info.value)
    assert f"as {__name__}.Everything at {path}: " in text
    assert message in text


def test_decode_keys_that_are_not_identifiers_are_quoted_in_paths() -> None:
    c = codec(_unsupported(dict[str, list[int]]))
    with pytest.raises(DecodeError, match=r'at \$\.value\["a b"\]\[0\]: expected int'):
        c.decode('{"value":{"a b":["x"]}}')


@pytest.mark.parametrize("cls", [Flat, FlatSlots, Everything, Money, Movie])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON text"),
        ("", "not valid JSON text"),
        (None, "not valid JSON text"),
        ("[1, 2]", "as a JSON object, got [1, 2] (list)"),
        ('{"order_id":"a","amount":1} x', "not valid JSON text"),
        ("[" * 100_000, "not valid JSON text (RecursionError"),
    ],
)
def test_corrupt_json_raises_decode_error(cls: type, data: Any, message: str) -> None:
    with pytest.raises(DecodeError, match="Cannot decode stored") as info:
        codec(cls).decode(data)
    assert message in str(info.value)
    assert info.value.args[0].endswith(".")


def test_surrounding_whitespace_is_accepted() -> None:
    flat = codec(Flat)
    assert flat.decode(' \n{"order_id":"a","amount":1}\t') == Flat("a", 1)
    assert flat.decode('{"order_id":"a","amount":1} ') == Flat("a", 1)
    text = _everything_json()
    assert codec(Everything).decode(f" {text}") == _everything()
    assert codec(Everything).decode(f"{text}\n") == _everything()


@pytest.mark.parametrize("cls", [Flat, FlatSlots], ids=["dict-built", "slot-filled"])
def test_flat_decode_errors(cls: type[Any]) -> None:
    c, name = codec(cls), cls.__name__
    with pytest.raises(DecodeError, match=r"at \$\.amount: expected float, got '1' \(str\)"):
        c.decode('{"order_id":"a","amount":"1"}')
    with pytest.raises(DecodeError, match=rf"at \$: {name} is missing required field 'amount'"):
        c.decode('{"order_id":"a"}')
    with pytest.raises(DecodeError, match=rf"at \$: {name} has no field 'extra'"):
        c.decode('{"order_id":"a","amount":1,"extra":0}')
    with pytest.raises(DecodeError, match=r"at \$\.amount: expected float, got None"):
        c.decode('{"order_id":"a","amount":null}')
    with pytest.raises(DecodeError, match=rf"at \$: {name} has no field 'extra'"):
        c.decode('{"order_id":"a","extra":0}')  # as many keys as fields, one of them wrong


@dataclass(frozen=True, slots=True)
class SlotsWithDefaults:
    name: str
    anything: Any = None
    count: int = 0


def test_a_slotted_flat_class_decodes_any_key_order_and_fills_defaults() -> None:
    c = codec(SlotsWithDefaults)
    assert c.decode('{"name":"a","anything":[1,{"b":null}],"count":2}') == SlotsWithDefaults(
        "a", [1, {"b": None}], 2
    )
    assert c.decode('{"count":3,"anything":1.5,"name":"b"}') == SlotsWithDefaults("b", 1.5, 3)
    event = c.decode('{"name":"c"}')  # missing fields: the general path fills the defaults
    assert event == SlotsWithDefaults("c")
    assert not hasattr(event, "__dict__")


def test_flat_decode_of_partial_data_with_defaults_takes_the_slow_path() -> None:
    c = codec(Line)
    assert c.decode('{"sku":"a","price":"1.5"}') == Line(Sku("a"), Decimal("1.5"))
    p = codec(Point)
    with pytest.raises(DecodeError, match=r"at \$\.y: expected int"):
        p.decode('{"x":1,"y":"2"}')
    with pytest.raises(DecodeError, match=r"at \$\.y: expected int"):
        p.decode('{"y":"2","x":1}'[:-1] + "}")


def test_typeddict_decode_errors() -> None:
    c = codec(Movie)
    with pytest.raises(DecodeError, match="Movie is missing required field 'year'"):
        c.decode('{"title":"Up"}')
    with pytest.raises(DecodeError, match=r"at \$\.rating: expected float"):
        c.decode('{"title":"Up","year":1,"rating":"x"}')


def test_library_detection_needs_no_import(monkeypatch: pytest.MonkeyPatch) -> None:
    # A class can only be a pydantic model or msgspec Struct if that library is loaded,
    # so when it is not, the codec never looks further and imports nothing.
    monkeypatch.delitem(sys.modules, "pydantic.main", raising=False)
    monkeypatch.delitem(sys.modules, "msgspec", raising=False)
    c = codec(Flat)
    assert c.decode(c.encode(Flat("a", 1.5))) == Flat("a", 1.5)
    assert "pydantic.main" not in sys.modules
    assert "msgspec" not in sys.modules


# ---------------------------------------------------------------- flat plain classes


@dataclass(frozen=True, slots=True)
class AllPlain:
    """Only plain fields: encoded through the JSON template, not json's encoder."""

    text: str
    maybe: str | None
    flag: bool
    ratio: float
    count: int
    nothing: None = None


def _json_text(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize(
    "event",
    [
        AllPlain("plain", "x", True, 1.5, 3),
        AllPlain('quo"te\\ \n\x00 ünï €', None, False, 2, -(10**30)),
        AllPlain("", "", False, -0.0, 0),
        AllPlain("e", None, True, 1e300, 1),
    ],
)
def test_a_flat_class_is_written_as_json_would_write_it(event: AllPlain) -> None:
    c = codec(AllPlain)
    text = c.encode(event)
    assert text == _json_text(
        {
            "text": event.text,
            "maybe": event.maybe,
            "flag": event.flag,
            "ratio": event.ratio,
            "count": event.count,
            "nothing": None,
        }
    )
    assert c.decode(text) == event


@pytest.mark.parametrize("ratio", [math.nan, math.inf, -math.inf])
def test_a_flat_class_refuses_non_finite_floats(ratio: float) -> None:
    with pytest.raises(EncodeError, match=r"at \$\.ratio: Out of range float values"):
        codec(AllPlain).encode(AllPlain("a", None, True, ratio, 1))


def test_a_flat_class_refuses_an_int_too_long_to_write() -> None:
    huge = 10 ** (sys.get_int_max_str_digits() + 1)
    with pytest.raises(EncodeError, match=r"at \$\.count: .*integer string conversion"):
        codec(AllPlain).encode(AllPlain("a", None, True, 1.0, huge))


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"flag": 1}, "$.flag", "expected bool, got 1"),
        ({"maybe": 1}, "$.maybe", "expected str | None, got 1"),
        ({"count": True}, "$.count", "expected int, got True"),
    ],
)
def test_a_flat_class_reports_wrong_types_at_their_path(
    changes: dict[str, Any], path: str, message: str
) -> None:
    fields = {"text": "a", "maybe": None, "flag": True, "ratio": 1.0, "count": 1, **changes}
    with pytest.raises(EncodeError) as info:
        codec(AllPlain).encode(AllPlain(**fields))
    assert f"at {path}: {message}" in str(info.value)
