"""Event codecs: one per event class, built once at registration, JSON text both ways.

A codec is compiled from the class's declared field types when the class is
registered, so encoding and decoding never reflect on the class again. Fields whose
values JSON holds as they are (``str``, ``int``, ``float``, ``bool``, ``None``,
``Any`` and unions of these) are only type-checked, never converted.

Supported event classes:

* dataclasses (restored like :mod:`pickle` restores them: ``__init__`` and
  ``__post_init__`` are not run again, every field, including ``init=False`` ones,
  is stored),
* ``NamedTuple`` and ``TypedDict`` classes (a ``TypedDict`` decodes to a ``dict``),
* attrs classes (rebuilt through their ``__init__``, so validators run),
* any class with the hook pair ``__event_encode__(self) -> dict`` (JSON-ready
  values) and classmethod ``__event_decode__(cls, data: dict) -> Self``; a class
  that defines the hooks is always encoded through them, whatever else it is,
* pydantic v2 models and msgspec Structs, which use their own JSON support (and
  their own rules: msgspec does not type-check fields when encoding).

None of the optional libraries is imported here: a class is recognised as a pydantic
model or msgspec Struct only when that library is already loaded (it must be, for
the class to exist).

Field types and their JSON form: ``str``/``int``/``float``/``bool``/``None`` as
themselves (big integers stay exact; ``1.0`` stays a float; NaN and infinities are
rejected because JSON has no such numbers); ``datetime``/``date``/``time`` as ISO
8601 strings (an aware datetime keeps its UTC offset, not its zone name);
``Decimal`` and ``UUID`` as strings; ``bytes`` as base64; enums by value;
``list``/``tuple``/``set``/``frozenset`` as arrays (decoded back to their own
type); ``dict`` with ``str``, ``int``, ``UUID`` or str-valued enum keys as objects;
``Literal``; ``Optional`` and unions whose members have distinct JSON forms;
nested event-like classes of every kind above, including recursive ones; ``Any``
for a value that is already plain JSON (stored and returned as it is).

Types are checked exactly (a ``bool`` is not an ``int``, an ``IntEnum`` member is
not an ``int``) so that every value decodes to what was encoded. Unknown keys in
stored JSON are an error; a missing key is filled from the field's default when it
has one, so adding a field with a default needs no upcaster.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import importlib
import inspect
import json
import math
import operator
import reprlib
import sys
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar
from uuid import UUID

from ._exceptions import DecodeError, EncodeError, RegistrationError

__all__ = ["EventCodec", "build_codec"]

E = TypeVar("E")

_Fn: typing.TypeAlias = Callable[[Any], Any]


def _make_dumps() -> Callable[[Any], str]:
    """Compact JSON text, NaN refused: json's C encoder, built once.

    ``JSONEncoder.encode`` builds a new C encoder on every call, which costs more than
    the encoding itself for a small event; the encoder is stateless, so it is reused.
    """
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - only interpreters without json's C accelerator
        return encoder.encode
    iterencode = make(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    join = "".join

    def dumps(value: Any) -> str:
        # Without the marker dict (whose entries an exception would leave behind) a
        # cycle shows up as unbounded recursion; report it the way json does.
        try:
            return join(iterencode(value, 0))
        except RecursionError:
            raise ValueError("Circular reference detected") from None

    return dumps


_dumps = _make_dumps()
_loads = json.loads
# json.loads spends most of its time on two whitespace regexes around the C scanner;
# stored JSON rarely has surrounding whitespace, so the scanner is called directly and
# json.loads only parses what the scanner alone does not accept in full.
_scan: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]
_JSON_KINDS = frozenset({"str", "int", "float", "bool", "null", "array", "object"})
_KIND_OF_TYPE: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
    list: "array",
    dict: "object",
}
_OBJECT_NEW: Any = object.__new__
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


class EventCodec(Generic[E]):
    """The compiled JSON codec of one event class under one wire name.

    Attributes:
        name: The wire name stored with every event of this class.
        event_type: The event class.
        encode: ``encode(event) -> str``: the event as compact JSON text. Raises
            :class:`~eventbus.core.EncodeError` naming the class and the field when
            a value does not fit its declared type or cannot be held in JSON.
        decode: ``decode(data) -> event``: the event rebuilt from JSON text. Raises
            :class:`~eventbus.core.DecodeError` naming the class and the JSON path
            (``$.items[2].price``) when the text is not JSON or does not fit.
    """

    __slots__ = ("decode", "encode", "event_type", "name")

    name: str
    event_type: type[E]
    encode: Callable[[E], str]
    decode: Callable[[str], E]

    def __init__(
        self,
        name: str,
        cls: type[E],
        encode: Callable[[E], str],
        decode: Callable[[str], E],
    ) -> None:
        self.name = name
        self.event_type = cls
        self.encode = encode
        self.decode = decode

    def __repr__(self) -> str:
        return f"EventCodec({self.name!r}, {_qualified(self.event_type)})"


class _MismatchError(Exception):
    """A value does not fit its declared type; the JSON path is collected while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []

    def at(self, segment: str) -> _MismatchError:
        self.segments.append(segment)
        return self

    @property
    def path(self) -> str:
        return "$" + "".join(reversed(self.segments))


class _UnsupportedError(Exception):
    """A declared type cannot be stored; raised while compiling a codec."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = ""


class _Missing(enum.Enum):
    REQUIRED = "required"
    OMIT = "omit"


_REQUIRED: typing.Final = _Missing.REQUIRED
_OMIT: typing.Final = _Missing.OMIT


class _Conv:
    """How one declared type maps to JSON and back.

    ``plain`` is set when JSON holds the value as it is: the value is then valid
    exactly when ``type(value) in plain`` and is never converted. ``passthrough`` is
    also true for ``Any`` (no check at all). ``pytypes`` and ``kinds`` are the Python
    types and JSON kinds the type produces (``None`` in ``pytypes``: any).
    """

    __slots__ = ("dec", "describe", "enc", "kinds", "passthrough", "plain", "pytypes")

    def __init__(
        self,
        describe: str,
        *,
        pytypes: frozenset[type] | None,
        kinds: frozenset[str],
        enc: _Fn,
        dec: _Fn,
        plain: frozenset[type] | None = None,
        passthrough: bool = False,
    ) -> None:
        self.describe = describe
        self.pytypes = pytypes
        self.kinds = kinds
        self.enc = enc
        self.dec = dec
        self.plain = plain
        self.passthrough = passthrough


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _show(value: object) -> str:
    return f"{_short.repr(value)} ({type(value).__name__})"


def _key_segment(key: str) -> str:
    if key.isidentifier():
        return "." + key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def _identity(value: Any) -> Any:
    return value


# ---------------------------------------------------------------- scalar types


def _plain(describe: str, pytypes: tuple[type, ...]) -> _Conv:
    allowed = frozenset(pytypes)

    def check(value: Any) -> Any:
        if type(value) in allowed:
            return value
        raise _MismatchError(f"expected {describe}, got {_show(value)}")

    kinds = frozenset(_KIND_OF_TYPE[t] for t in pytypes)
    return _Conv(
        describe,
        pytypes=allowed,
        kinds=kinds,
        enc=check,
        dec=check,
        plain=allowed,
        passthrough=True,
    )


_ANY = _Conv(
    "any JSON value",
    pytypes=None,
    kinds=_JSON_KINDS,
    enc=_identity,
    dec=_identity,
    passthrough=True,
)
_PLAIN: dict[object, _Conv] = {
    str: _plain("str", (str,)),
    int: _plain("int", (int,)),
    float: _plain("float", (float, int)),
    bool: _plain("bool", (bool,)),
    None: _plain("None", (type(None),)),
    type(None): _plain("None", (type(None),)),
    Any: _ANY,
    object: _ANY,
}


def _string_form(
    cls: type,
    describe: str,
    to_text: Callable[[Any], str],
    from_text: Callable[[str], Any],
    errors: tuple[type[Exception], ...],
) -> _Conv:
    """A type stored as a JSON string (dates, decimals, UUIDs, bytes)."""

    def enc(value: Any) -> str:
        if type(value) is cls:
            return to_text(value)
        raise _MismatchError(f"expected {describe}, got {_show(value)}")

    def dec(value: Any) -> Any:
        if type(value) is str:
            try:
                return from_text(value)
            except errors as exc:
                raise _MismatchError(f"expected {describe} text, got {_show(value)}") from exc
        raise _MismatchError(f"expected {describe} text, got {_show(value)}")

    return _Conv(describe, pytypes=frozenset({cls}), kinds=frozenset({"str"}), enc=enc, dec=dec)


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


_STRING_FORMS: dict[type, _Conv] = {
    datetime: _string_form(
        datetime, "datetime", datetime.isoformat, datetime.fromisoformat, (ValueError,)
    ),
    date: _string_form(date, "date", date.isoformat, date.fromisoformat, (ValueError,)),
    time: _string_form(time, "time", time.isoformat, time.fromisoformat, (ValueError,)),
    Decimal: _string_form(Decimal, "Decimal", str, Decimal, (InvalidOperation,)),
    UUID: _string_form(UUID, "UUID", str, UUID, (ValueError,)),
    bytes: _string_form(bytes, "bytes", _b64encode, _b64decode, (binascii.Error, ValueError)),
}


def _enum_conv(cls: type[enum.Enum]) -> _Conv:
    value_types = {type(member.value) for member in cls}
    if not value_types <= {str, int, float, bool}:
        raise _UnsupportedError(
            f"the values of enum {cls.__qualname__} must be str, int, float or bool to be "
            "stored by value"
        )
    allowed = frozenset(value_types)

    def enc(value: Any) -> Any:
        if type(value) is cls:
            return value.value
        raise _MismatchError(f"expected a {cls.__qualname__} member, got {_show(value)}")

    def dec(value: Any) -> Any:
        if type(value) in allowed:
            try:
                return cls(value)
            except ValueError:
                pass
        raise _MismatchError(f"expected a value of enum {cls.__qualname__}, got {_show(value)}")

    kinds = frozenset(_KIND_OF_TYPE[t] for t in value_types)
    return _Conv(cls.__qualname__, pytypes=frozenset({cls}), kinds=kinds, enc=enc, dec=dec)


def _literal_conv(values: tuple[Any, ...]) -> _Conv:
    if not all(type(v) in (str, int, bool, type(None)) for v in values):
        raise _UnsupportedError("Literal values must be str, int, bool or None")
    allowed = frozenset((type(v), v) for v in values)
    describe = "one of " + ", ".join(repr(v) for v in values)

    def check(value: Any) -> Any:
        if (type(value), value) in allowed:
            return value
        raise _MismatchError(f"expected {describe}, got {_show(value)}")

    pytypes = frozenset(type(v) for v in values)
    kinds = frozenset(_KIND_OF_TYPE[t] for t in pytypes)
    return _Conv(describe, pytypes=pytypes, kinds=kinds, enc=check, dec=check)


# ---------------------------------------------------------------- containers


def _sequence_conv(origin: type, item: _Conv, describe: str) -> _Conv:
    """``list[T]``, ``tuple[T, ...]``, ``set[T]`` and ``frozenset[T]``: JSON arrays."""
    rebuild: Callable[[list[Any]], Any] | None = None if origin is list else origin
    exact: Any = origin  # typed Any: mypy would narrow checked values to "object"
    plain = item.plain

    def enc(value: Any) -> Any:
        if type(value) is not exact:
            raise _MismatchError(f"expected {describe}, got {_show(value)}")
        if item.passthrough:
            if plain is not None:
                for index, x in enumerate(value):
                    if type(x) not in plain:
                        raise _MismatchError(f"expected {item.describe}, got {_show(x)}").at(
                            f"[{index}]"
                        )
            return value if rebuild is None else list(value)
        out = []
        index = 0
        try:
            for index, x in enumerate(value):  # noqa: B007 - index names the failing item
                out.append(item.enc(x))
        except _MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return out

    def dec(value: Any) -> Any:
        if type(value) is not list:
            raise _MismatchError(f"expected {describe} as a JSON array, got {_show(value)}")
        if item.passthrough:
            if plain is not None:
                for index, x in enumerate(value):
                    if type(x) not in plain:
                        raise _MismatchError(f"expected {item.describe}, got {_show(x)}").at(
                            f"[{index}]"
                        )
            return value if rebuild is None else rebuild(value)
        out = []
        index = 0
        try:
            for index, x in enumerate(value):  # noqa: B007 - index names the failing item
                out.append(item.dec(x))
        except _MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return out if rebuild is None else rebuild(out)

    return _Conv(
        describe, pytypes=frozenset({origin}), kinds=frozenset({"array"}), enc=enc, dec=dec
    )


def _fixed_tuple_conv(items: tuple[_Conv, ...], describe: str) -> _Conv:
    size = len(items)

    def enc(value: Any) -> Any:
        if type(value) is not tuple or len(value) != size:
            raise _MismatchError(f"expected {describe}, got {_show(value)}")
        out = []
        index = 0
        try:
            for index, (conv, x) in enumerate(zip(items, value, strict=True)):  # noqa: B007
                out.append(conv.enc(x))
        except _MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return out

    def dec(value: Any) -> Any:
        if type(value) is not list or len(value) != size:
            raise _MismatchError(
                f"expected {describe} as a JSON array of {size}, got {_show(value)}"
            )
        out = []
        index = 0
        try:
            for index, (conv, x) in enumerate(zip(items, value, strict=True)):  # noqa: B007
                out.append(conv.dec(x))
        except _MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return tuple(out)

    return _Conv(describe, pytypes=frozenset({tuple}), kinds=frozenset({"array"}), enc=enc, dec=dec)


def _dict_key(tp: object) -> tuple[_Fn, _Fn]:
    """How a dict key type maps to a JSON object key and back."""
    if tp is str:
        return _PLAIN[str].enc, _PLAIN[str].dec
    if tp is int:

        def enc_int(key: Any) -> str:
            if type(key) is int:
                return str(key)
            raise _MismatchError(f"expected an int key, got {_show(key)}")

        def dec_int(key: str) -> int:
            try:
                number = int(key)
            except ValueError:
                number = None
            if number is None or str(number) != key:
                raise _MismatchError(f"expected an int key, got {key!r}")
            return number

        return enc_int, dec_int
    if tp is UUID:
        conv = _STRING_FORMS[UUID]
        return conv.enc, conv.dec
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        conv = _enum_conv(tp)
        if conv.kinds == {"str"}:
            return conv.enc, conv.dec
    raise _UnsupportedError("dict keys must be str, int, UUID or an enum with str values")


def _dict_conv(key: object, value: _Conv, describe: str) -> _Conv:
    enc_key, dec_key = _dict_key(key)

    def enc(obj: Any) -> Any:
        if type(obj) is not dict:
            raise _MismatchError(f"expected {describe}, got {_show(obj)}")
        out = {}
        for k, v in obj.items():
            encoded = enc_key(k)
            try:
                out[encoded] = value.enc(v)
            except _MismatchError as exc:
                raise exc.at(_key_segment(encoded)) from exc.__cause__
        return out

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise _MismatchError(f"expected {describe} as a JSON object, got {_show(obj)}")
        out = {}
        for k, v in obj.items():
            try:
                out[dec_key(k)] = value.dec(v)
            except _MismatchError as exc:
                raise exc.at(_key_segment(k)) from exc.__cause__
        return out

    return _Conv(describe, pytypes=frozenset({dict}), kinds=frozenset({"object"}), enc=enc, dec=dec)


def _union_conv(members: list[_Conv], describe: str) -> _Conv:
    if all(m.passthrough for m in members):
        if any(m.plain is None for m in members):
            return _ANY
        pytypes = frozenset().union(*(m.plain or () for m in members))
        return _plain(describe, tuple(sorted(pytypes, key=lambda t: t.__name__)))
    by_pytype: dict[type, _Conv] = {}
    by_kind: dict[str, _Conv] = {}
    for member in members:
        if member.pytypes is None:
            raise _UnsupportedError("Any cannot be combined with other types in a union")
        for pytype in member.pytypes:
            other = by_pytype.setdefault(pytype, member)
            if other is not member and not (other.passthrough and member.passthrough):
                raise _UnsupportedError(
                    f"{other.describe} and {member.describe} overlap in the union"
                )
        for kind in member.kinds:
            other = by_kind.setdefault(kind, member)
            if other is not member and not (other.passthrough and member.passthrough):
                raise _UnsupportedError(
                    f"{other.describe} and {member.describe} are both stored as JSON {kind} "
                    "values, so the union could not be decoded"
                )

    def enc(value: Any) -> Any:
        conv = by_pytype.get(type(value))
        if conv is None:
            raise _MismatchError(f"expected {describe}, got {_show(value)}")
        return conv.enc(value)

    def dec(value: Any) -> Any:
        conv = by_kind.get(_KIND_OF_TYPE[type(value)])
        if conv is None:
            raise _MismatchError(f"expected {describe}, got {_show(value)}")
        return conv.dec(value)

    return _Conv(
        describe,
        pytypes=frozenset(by_pytype),
        kinds=frozenset(by_kind),
        enc=enc,
        dec=dec,
    )


# ---------------------------------------------------------------- event-like classes


class _Field:
    __slots__ = ("conv", "missing", "name")

    def __init__(self, name: str, conv: _Conv, missing: _Missing | Callable[[], Any]) -> None:
        self.name = name
        self.conv = conv
        self.missing = missing


class _Plan:
    """How a class with named fields is read and rebuilt."""

    __slots__ = ("build", "fields", "get_values", "pytype")

    def __init__(
        self,
        pytype: type,
        fields: list[_Field],
        get_values: Callable[[Any], tuple[Any, ...]] | None,
        build: Callable[[dict[str, Any]], Any],
    ) -> None:
        self.pytype = pytype
        self.fields = fields
        self.get_values = get_values
        self.build = build


class _Compiler:
    """Compiles declared types into converters; one per codec, shared by nested classes."""

    def __init__(self) -> None:
        self._objects: dict[type, _Conv] = {}
        self._plans: dict[type, _Plan] = {}

    def compile(self, tp: object) -> _Conv:
        conv = _PLAIN.get(tp) if _hashable(tp) else None
        if conv is not None:
            return conv
        if isinstance(tp, type) and tp in _STRING_FORMS:
            return _STRING_FORMS[tp]
        if isinstance(tp, typing.NewType):
            return self.compile(tp.__supertype__)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            return self.compile(args[0])
        if origin is typing.Literal:
            return _literal_conv(args)
        if origin is typing.Union or origin is types.UnionType:
            members = [self.compile(a) for a in args]
            return _union_conv(members, " | ".join(m.describe for m in members))
        if origin is None and tp in (list, tuple, set, frozenset, dict):
            origin, args = tp, ()
        if origin in (list, set, frozenset):
            item = self.compile(args[0]) if args else _ANY
            if origin is not list and item is _ANY:
                raise _UnsupportedError("set items need a declared type, not Any")
            return _sequence_conv(origin, item, f"{origin.__name__}[{item.describe}]")
        if origin is tuple:
            if tp is tuple or (len(args) == 2 and args[1] is Ellipsis):
                item = self.compile(args[0]) if args else _ANY
                return _sequence_conv(tuple, item, f"tuple[{item.describe}, ...]")
            items = tuple(self.compile(a) for a in args)
            return _fixed_tuple_conv(items, f"tuple[{', '.join(c.describe for c in items)}]")
        if origin is dict:
            key, value = args if args else (str, Any)
            conv = self.compile(value)
            return _dict_conv(key, conv, f"dict[{getattr(key, '__name__', key)}, {conv.describe}]")
        if isinstance(tp, type):
            if issubclass(tp, enum.Enum):
                return _enum_conv(tp)
            return self.object_conv(tp)
        raise _UnsupportedError("it is not a type eventbus can store")

    def object_conv(self, cls: type) -> _Conv:
        """The converter of an event-like class (cached, so recursive classes work)."""
        known = self._objects.get(cls)
        if known is not None:
            return known
        kind = _library_kind(cls)
        if kind is not None:
            conv = kind(cls)
            self._objects[cls] = conv
            return conv
        # Register the shell first: a field may refer back to this class.
        conv = _Conv(
            cls.__qualname__,
            pytypes=frozenset({cls}),
            kinds=frozenset(),
            enc=_identity,
            dec=_identity,
        )
        self._objects[cls] = conv
        plan = self._plan(cls)
        self._plans[cls] = plan
        conv.pytypes = frozenset({plan.pytype})
        conv.kinds = frozenset({"object"})
        conv.enc, conv.dec = _object_functions(cls, plan)
        return conv

    def plan(self, cls: type) -> _Plan | None:
        return self._plans.get(cls)

    def _plan(self, cls: type) -> _Plan:
        if dataclasses.is_dataclass(cls):
            return self._dataclass_plan(cls)
        if getattr(cls, "__attrs_attrs__", None) is not None:
            return self._attrs_plan(cls)
        if issubclass(cls, tuple) and hasattr(cls, "_fields"):
            return self._namedtuple_plan(cls)
        if typing.is_typeddict(cls):
            return self._typeddict_plan(cls)
        raise _UnsupportedError(
            f"{cls.__qualname__} is not a dataclass, NamedTuple, TypedDict, attrs class, "
            "pydantic model or msgspec Struct and defines no __event_encode__/"
            "__event_decode__ hooks"
        )

    def _fields(
        self, cls: type, specs: list[tuple[str, object, _Missing | Callable[[], Any]]]
    ) -> list[_Field]:
        fields = []
        for name, tp, missing in specs:
            try:
                conv = self.compile(tp)
            except _UnsupportedError as exc:
                if not exc.where:
                    exc.where = f"field {cls.__qualname__}.{name} of type {_type_repr(tp)}"
                raise
            fields.append(_Field(name, conv, missing))
        return fields

    def _dataclass_plan(self, cls: type) -> _Plan:
        if cls.__new__ is not _OBJECT_NEW:
            raise _UnsupportedError(
                f"dataclass {cls.__qualname__} defines __new__, so it cannot be restored "
                "field by field; give it __event_encode__/__event_decode__ hooks"
            )
        hints = _hints(cls)
        specs: list[tuple[str, object, _Missing | Callable[[], Any]]] = []
        slotted = False
        for f in dataclasses.fields(cls):
            missing: _Missing | Callable[[], Any] = _REQUIRED
            if f.default is not dataclasses.MISSING:
                missing = _constant(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                missing = f.default_factory
            specs.append((f.name, hints[f.name], missing))
            slotted = slotted or isinstance(
                inspect.getattr_static(cls, f.name, None), types.MemberDescriptorType
            )
        fields = self._fields(cls, specs)
        new: Callable[[type], Any] = object.__new__
        setattr_ = object.__setattr__

        # Restore the instance as pickle would: the stored values were a valid
        # instance's fields, so __init__ (and __post_init__) are not run again.
        def build_slotted(values: dict[str, Any]) -> Any:
            obj = new(cls)
            for name, value in values.items():
                setattr_(obj, name, value)
            return obj

        def build_dict(values: dict[str, Any]) -> Any:
            obj = new(cls)
            obj.__dict__.update(values)
            return obj

        return _Plan(
            cls,
            fields,
            _getter([f.name for f in fields]),
            build_slotted if slotted else build_dict,
        )

    def _attrs_plan(self, cls: type) -> _Plan:
        nothing = importlib.import_module("attr").NOTHING
        hints = _hints(cls)
        specs: list[tuple[str, object, _Missing | Callable[[], Any]]] = []
        aliases: dict[str, str] = {}
        for a in cls.__attrs_attrs__:  # type: ignore[attr-defined]
            if not a.init:
                continue
            tp = hints.get(a.name, a.type)
            if tp is None:
                raise _UnsupportedError(f"field {cls.__qualname__}.{a.name} has no type annotation")
            specs.append((a.name, tp, _REQUIRED if a.default is nothing else _OMIT))
            aliases[a.name] = getattr(a, "alias", None) or a.name
        fields = self._fields(cls, specs)
        renames = {name: alias for name, alias in aliases.items() if name != alias}

        def build(values: dict[str, Any]) -> Any:
            if renames:
                values = {renames.get(k, k): v for k, v in values.items()}
            try:
                return cls(**values)
            except Exception as exc:  # a validator or converter rejected a stored value
                raise _MismatchError(f"{cls.__qualname__}(...) raised {exc!r}") from exc

        return _Plan(cls, fields, _getter([f.name for f in fields]), build)

    def _namedtuple_plan(self, cls: type) -> _Plan:
        hints = _hints(cls)
        defaults: dict[str, Any] = cls._field_defaults  # type: ignore[attr-defined]
        specs: list[tuple[str, object, _Missing | Callable[[], Any]]] = []
        for name in cls._fields:  # type: ignore[attr-defined]
            if name not in hints:
                raise _UnsupportedError(f"field {cls.__qualname__}.{name} has no type annotation")
            missing = _constant(defaults[name]) if name in defaults else _REQUIRED
            specs.append((name, hints[name], missing))
        fields = self._fields(cls, specs)

        def build(values: dict[str, Any]) -> Any:
            return cls(**values)

        return _Plan(cls, fields, _identity, build)

    def _typeddict_plan(self, cls: type) -> _Plan:
        # With string annotations __required_keys__ misses NotRequired[...] on 3.11-3.13,
        # so the wrappers are read from the resolved hints.
        hints = _hints(cls, extras=True)
        required: frozenset[str] = cls.__required_keys__  # type: ignore[attr-defined]
        specs: list[tuple[str, object, _Missing | Callable[[], Any]]] = []
        for name, tp in hints.items():
            origin = typing.get_origin(tp)
            is_required = name in required
            if origin is typing.NotRequired or origin is typing.Required:
                is_required = origin is typing.Required
                tp = typing.get_args(tp)[0]
            specs.append((name, tp, _REQUIRED if is_required else _OMIT))
        return _Plan(dict, self._fields(cls, specs), None, _identity)


def _hashable(tp: object) -> bool:
    try:
        hash(tp)
    except TypeError:
        return False
    return True


def _type_repr(tp: object) -> str:
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _hints(cls: type, *, extras: bool = False) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=extras)
    except Exception as exc:  # NameError for an unresolvable string annotation, and others
        raise _UnsupportedError(
            f"the annotations of {cls.__qualname__} could not be resolved ({exc}); event "
            "classes must be defined at module level with importable annotation names"
        ) from exc


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get_one = operator.attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return operator.attrgetter(*names)


def _object_functions(cls: type, plan: _Plan) -> tuple[_Fn, _Fn]:
    """The encode and decode functions of a class with named fields."""
    fields = plan.fields
    keys = tuple(f.name for f in fields)
    keyset = frozenset(keys)
    convs = tuple(f.conv for f in fields)
    # Plain fields are only type-checked; the others go through their converters.
    checks = tuple((i, c.plain) for i, c in enumerate(convs) if c.plain is not None)
    converted = tuple((f.name, f.conv) for f in fields if not f.conv.passthrough)
    get_values = plan.get_values
    build = plan.build
    pytype: Any = plan.pytype  # typed Any: mypy would narrow checked values to "object"
    label = cls.__qualname__

    def enc(obj: Any) -> Any:
        if type(obj) is not pytype:
            raise _MismatchError(f"expected {label}, got {_show(obj)}")
        if get_values is None:
            return _encode_mapping(obj)
        values = get_values(obj)
        for index, plain in checks:
            if type(values[index]) not in plain:
                raise _MismatchError(
                    f"expected {convs[index].describe}, got {_show(values[index])}"
                ).at(_key_segment(keys[index]))
        out = dict(zip(keys, values, strict=True))
        key = ""
        try:
            for key, conv in converted:
                out[key] = conv.enc(out[key])
        except _MismatchError as exc:
            raise exc.at(_key_segment(key)) from exc.__cause__
        return out

    def _encode_mapping(obj: dict[str, Any]) -> Any:
        extra = obj.keys() - keyset
        if extra:
            raise _MismatchError(f"{label} has no key {sorted(extra)[0]!r}")
        out = {}
        for field in fields:
            if field.name in obj:
                try:
                    out[field.name] = field.conv.enc(obj[field.name])
                except _MismatchError as exc:
                    raise exc.at(_key_segment(field.name)) from exc.__cause__
            elif field.missing is _REQUIRED:
                raise _MismatchError(f"{label} is missing required key {field.name!r}")
        return out

    def dec(data: Any) -> Any:
        if type(data) is not dict:
            raise _MismatchError(f"expected {label} as a JSON object, got {_show(data)}")
        if data.keys() != keyset:
            return _decode_partial(data)
        for index, plain in checks:
            key = keys[index]
            if type(data[key]) not in plain:
                raise _MismatchError(
                    f"expected {convs[index].describe}, got {_show(data[key])}"
                ).at(_key_segment(key))
        # The dict is fresh from the JSON parser, so it is converted in place.
        key = ""
        try:
            for key, conv in converted:
                data[key] = conv.dec(data[key])
        except _MismatchError as exc:
            raise exc.at(_key_segment(key)) from exc.__cause__
        return build(data)

    def _decode_partial(data: dict[str, Any]) -> Any:
        extra = data.keys() - keyset
        if extra:
            raise _MismatchError(f"{label} has no field {sorted(extra)[0]!r}")
        out = {}
        for field in fields:
            if field.name in data:
                try:
                    out[field.name] = field.conv.dec(data[field.name])
                except _MismatchError as exc:
                    raise exc.at(_key_segment(field.name)) from exc.__cause__
            elif field.missing is _REQUIRED:
                raise _MismatchError(f"{label} is missing required field {field.name!r}")
            elif field.missing is not _OMIT:
                out[field.name] = field.missing()
        return build(out)

    return enc, dec


# ---------------------------------------------------------------- hooks and libraries


def _library_kind(cls: type) -> Callable[[type], _Conv] | None:
    """The converter factory for hook classes, pydantic models and msgspec Structs."""
    if callable(getattr(cls, "__event_encode__", None)) or callable(
        getattr(cls, "__event_decode__", None)
    ):
        return _hook_conv
    pydantic_main = sys.modules.get("pydantic.main")
    if pydantic_main is not None and issubclass(cls, pydantic_main.BaseModel):
        return _pydantic_conv
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and issubclass(cls, msgspec.Struct):
        return _msgspec_conv
    return None


def _hook_conv(cls: type) -> _Conv:
    encode_hook = getattr(cls, "__event_encode__", None)
    decode_hook = getattr(cls, "__event_decode__", None)
    if not (callable(encode_hook) and callable(decode_hook)):
        raise _UnsupportedError(
            f"{cls.__qualname__} must define both __event_encode__(self) -> dict and "
            "classmethod __event_decode__(cls, data: dict), not just one of them"
        )
    label = cls.__qualname__
    exact: Any = cls

    def enc(obj: Any) -> Any:
        if type(obj) is not exact:
            raise _MismatchError(f"expected {label}, got {_show(obj)}")
        try:
            data = obj.__event_encode__()
        except Exception as exc:
            raise _MismatchError(f"{label}.__event_encode__() raised {exc!r}") from exc
        if type(data) is not dict:
            raise _MismatchError(f"{label}.__event_encode__() returned {_show(data)}, not a dict")
        return data

    def dec(data: Any) -> Any:
        if type(data) is not dict:
            raise _MismatchError(f"expected {label} as a JSON object, got {_show(data)}")
        try:
            obj = cls.__event_decode__(data)  # type: ignore[attr-defined]
        except Exception as exc:
            raise _MismatchError(f"{label}.__event_decode__() raised {exc!r}") from exc
        if type(obj) is not cls:
            raise _MismatchError(f"{label}.__event_decode__() returned {_show(obj)}, not a {label}")
        return obj

    return _Conv(label, pytypes=frozenset({cls}), kinds=frozenset({"object"}), enc=enc, dec=dec)


def _pydantic_path(exc: Exception) -> tuple[str, list[str]]:
    """The first error of a pydantic ValidationError and its path segments, innermost first."""
    first = exc.errors()[0]  # type: ignore[attr-defined]
    segments = [f"[{p}]" if isinstance(p, int) else _key_segment(str(p)) for p in first["loc"]]
    return str(first["msg"]), segments[::-1]


def _pydantic_conv(cls: type) -> _Conv:
    validation_error = sys.modules["pydantic_core"].ValidationError
    label = cls.__qualname__
    exact: Any = cls

    def enc(obj: Any) -> Any:
        if type(obj) is not exact:
            raise _MismatchError(f"expected {label}, got {_show(obj)}")
        try:
            return obj.model_dump(mode="json")
        except Exception as exc:  # pydantic's serialization errors have no common base
            raise _MismatchError(f"pydantic could not serialize {label}: {exc}") from exc

    def dec(data: Any) -> Any:
        try:
            return cls.model_validate(data)  # type: ignore[attr-defined]
        except validation_error as exc:
            message, segments = _pydantic_path(exc)
            invalid = _MismatchError(message)
            invalid.segments.extend(segments)
            raise invalid from exc

    return _Conv(label, pytypes=frozenset({cls}), kinds=frozenset({"object"}), enc=enc, dec=dec)


def _msgspec_conv(cls: type) -> _Conv:
    msgspec = sys.modules["msgspec"]
    label = cls.__qualname__
    exact: Any = cls

    def enc(obj: Any) -> Any:
        if type(obj) is not exact:
            raise _MismatchError(f"expected {label}, got {_show(obj)}")
        try:
            return msgspec.to_builtins(obj)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise _MismatchError(f"msgspec could not encode {label}: {exc}") from exc

    def dec(data: Any) -> Any:
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise _MismatchError(f"{exc}") from exc

    return _Conv(label, pytypes=frozenset({cls}), kinds=frozenset({"object"}), enc=enc, dec=dec)


# ---------------------------------------------------------------- the codec


def build_codec(cls: type[E], name: str) -> EventCodec[E]:
    """Compile the codec of one event class.

    Args:
        cls: The event class.
        name: Its wire name.

    Returns:
        The codec, ready to encode and decode.

    Raises:
        RegistrationError: ``cls`` is abstract, a ``Protocol``, not a supported kind
            of class, or has a field whose type cannot be stored; the message names
            the class and the field.
    """
    if getattr(cls, "_is_protocol", False):
        raise RegistrationError(
            f"{_qualified(cls)} is a Protocol; events are instances of concrete classes, "
            "so subscribe or register the concrete event class instead."
        )
    if inspect.isabstract(cls):
        raise RegistrationError(
            f"{_qualified(cls)} is abstract; events are instances of concrete classes, "
            "so subscribe or register the concrete event class instead."
        )
    compiler = _Compiler()
    try:
        kind = _library_kind(cls)
        if kind is _pydantic_conv:
            return _pydantic_codec(cls, name)
        if kind is _msgspec_conv:
            return _msgspec_codec(cls, name, sys.modules["msgspec"])
        conv = compiler.object_conv(cls)
    except _UnsupportedError as exc:
        where = f" ({exc.where})" if exc.where else ""
        raise RegistrationError(
            f"Cannot register {_qualified(cls)} as an event class{where}: {exc.reason}."
        ) from None
    return _field_codec(cls, name, conv, compiler.plan(cls))


def _encode_error(cls: type, name: str, exc: _MismatchError) -> EncodeError:
    return EncodeError(
        f"Cannot encode {_qualified(cls)} event (wire name {name!r}) at {exc.path}: {exc.message}."
    )


def _decode_error(cls: type, name: str, path: str, message: str) -> DecodeError:
    return DecodeError(
        f"Cannot decode stored {name!r} data as {_qualified(cls)} at {path}: {message}."
    )


def _locate(value: Any, segments: list[str], seen: set[int]) -> str:
    """The JSON path of the first part of ``value`` that json cannot encode."""
    if id(value) not in seen:
        seen.add(id(value))
        if isinstance(value, dict):
            children = [(_key_segment(str(k)), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(f"[{i}]", v) for i, v in enumerate(value)]
        else:
            children = []
        for segment, child in children:
            try:
                _dumps(child)
            except (TypeError, ValueError):
                segments.append(segment)
                return _locate(child, segments, seen)
    return "$" + "".join(segments)


_JSON_PYTYPES: typing.Final = frozenset(_KIND_OF_TYPE)  # every type the JSON parser makes
_SlotSetter: typing.TypeAlias = tuple[str, frozenset[type], Callable[[Any, Any], None]]


def _slot_setters(cls: type, plan: _Plan) -> tuple[_SlotSetter, ...] | None:
    """Each field's name, exact allowed types and slot setter, if every field is a slot.

    ``Any`` allows every type the JSON parser makes. ``None`` when ``cls`` is not a
    dataclass or keeps a field in its ``__dict__``.
    """
    if not dataclasses.is_dataclass(cls):
        return None
    setters = []
    for f in plan.fields:
        slot = inspect.getattr_static(cls, f.name, None)
        if not isinstance(slot, types.MemberDescriptorType):
            return None
        setters.append((f.name, f.conv.plain or _JSON_PYTYPES, slot.__set__))
    return tuple(setters)


def _field_codec(cls: type[E], name: str, conv: _Conv, plan: _Plan | None) -> EventCodec[E]:
    enc_obj = conv.enc
    dec_obj = conv.dec

    def encode(event: E) -> str:
        try:
            obj = enc_obj(event)
        except _MismatchError as exc:
            raise _encode_error(cls, name, exc) from exc.__cause__
        try:
            return _dumps(obj)
        except (TypeError, ValueError) as exc:  # a non-JSON value under Any, NaN, a cycle
            path = _locate(obj, [], set())
            raise EncodeError(
                f"Cannot encode {_qualified(cls)} event (wire name {name!r}) at {path}: {exc}."
            ) from exc

    def parse(data: str) -> Any:
        try:
            return _loads(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise _decode_error(cls, name, "$", f"not valid JSON text ({exc!r})") from exc

    def load(data: str) -> Any:
        # The scanner alone (no json.loads wrapper); json.loads names what is wrong.
        try:
            obj, end = _scan(data, 0)
        except (StopIteration, ValueError, TypeError, RecursionError):
            return parse(data)
        return obj if end == len(data) else parse(data)

    def convert(obj: Any) -> E:
        try:
            return dec_obj(obj)  # type: ignore[no-any-return]
        except _MismatchError as exc:
            raise _decode_error(cls, name, exc.path, exc.message) from exc.__cause__

    def decode_general(data: str) -> E:
        return convert(load(data))

    if plan is None or plan.pytype is not cls or not all(f.conv.passthrough for f in plan.fields):
        return EventCodec(name, cls, encode, decode_general)

    # And of publishing: such a class is written as JSON text without a dict.
    write: Callable[[E], str] = encode
    get_values = plan.get_values
    if get_values is not None and all(
        f.conv.plain is not None and f.conv.plain <= _TEXT_OF.keys() for f in plan.fields
    ):
        write = _plain_encoder(cls, plan.fields, get_values, encode)

    # The hot path of typed replay: a flat class of plain fields is type-checked
    # and rebuilt from the parsed dict without converting anything.
    keyset = frozenset(f.name for f in plan.fields)
    checks = tuple((f.name, f.conv.plain) for f in plan.fields if f.conv.plain is not None)
    build = plan.build
    slots = _slot_setters(cls, plan)

    if slots is not None:
        count = len(slots)
        new = _OBJECT_NEW

        def decode_slotted(data: str) -> E:
            # decode_plain for a class whose fields are all slots: one pass checks each
            # value and fills its slot (len plus every name found means the same keys).
            obj = load(data)
            if type(obj) is dict and len(obj) == count:
                event = new(cls)
                try:
                    for key, plain, set_slot in slots:
                        value = obj[key]
                        if type(value) not in plain:
                            break
                        set_slot(event, value)
                    else:
                        return event  # type: ignore[no-any-return]
                except KeyError:  # another key instead: the general path names it
                    pass
            return convert(obj)

        return EventCodec(name, cls, write, decode_slotted)

    def decode_plain(data: str) -> E:
        obj = load(data)
        if type(obj) is dict and obj.keys() == keyset:
            for key, plain in checks:
                if type(obj[key]) not in plain:
                    break
            else:
                return build(obj)  # type: ignore[no-any-return]
        return convert(obj)

    return EventCodec(name, cls, write, decode_plain)


# The JSON text of a plain value of each exact type, written as _dumps writes it.
_TEXT_OF: dict[type, Callable[[Any], str]] = {
    str: json.encoder.encode_basestring,
    int: int.__repr__,
    float: float.__repr__,
    bool: {True: "true", False: "false"}.__getitem__,
    type(None): {None: "null"}.__getitem__,
}
_NUMBERS: typing.Final = frozenset({int, float})


def _text_of(value: Any) -> str:
    return _TEXT_OF[type(value)](value)


def _writer(plain: frozenset[type]) -> Callable[[Any], str]:
    """The fastest function that writes every value of one of the ``plain`` types."""
    if plain == {str}:
        return _TEXT_OF[str]
    if plain <= _NUMBERS:
        return repr  # exact ints and floats: what json writes
    return _text_of


def _plain_encoder(
    cls: type[E],
    fields: list[_Field],
    get_values: Callable[[Any], tuple[Any, ...]],
    general: Callable[[E], str],
) -> Callable[[E], str]:
    """The hot path of publishing: a flat dataclass of plain fields written as JSON text.

    The text is filled into a template of the keys, skipping the dict and json's
    encoder. Anything unusual (a value of the wrong type, a NaN, an int too long for
    ``str``) goes to ``general``, which raises the usual EncodeError.
    """
    keys = [f.name for f in fields]
    template = "{%s}" % ",".join(  # noqa: UP031 - the JSON text holds braces, not fields
        _TEXT_OF[str](key).replace("%", "%%") + ":%s" for key in keys
    )
    plains = [f.conv.plain or frozenset() for f in fields]
    checks = tuple(enumerate(plains))
    writers = tuple(_writer(plain) for plain in plains)
    floats = tuple(i for i, plain in enumerate(plains) if float in plain)
    call = operator.call
    isfinite = math.isfinite

    def encode(event: E) -> str:
        if type(event) is not cls:
            return general(event)
        values = get_values(event)
        for index, plain in checks:
            if type(values[index]) not in plain:
                return general(event)
        for index in floats:
            value = values[index]
            if type(value) is float and not isfinite(value):
                return general(event)
        try:
            return template % tuple(map(call, writers, values))
        except ValueError:  # an int beyond sys.get_int_max_str_digits()
            return general(event)

    return encode


def _pydantic_codec(cls: type[E], name: str) -> EventCodec[E]:
    validation_error = sys.modules["pydantic_core"].ValidationError
    validate_json = cls.model_validate_json  # type: ignore[attr-defined]

    def encode(event: E) -> str:
        if type(event) is not cls:
            raise _encode_error(
                cls, name, _MismatchError(f"expected {cls.__qualname__}, got {_show(event)}")
            )
        try:
            return event.model_dump_json()  # type: ignore[attr-defined, no-any-return]
        except Exception as exc:  # pydantic's serialization errors have no common base
            raise EncodeError(
                f"Cannot encode {_qualified(cls)} event (wire name {name!r}): pydantic could "
                f"not serialize it: {exc}."
            ) from exc

    def decode(data: str) -> E:
        try:
            return validate_json(data)  # type: ignore[no-any-return]
        except validation_error as exc:
            message, segments = _pydantic_path(exc)
            raise _decode_error(cls, name, "$" + "".join(reversed(segments)), message) from exc

    return EventCodec(name, cls, encode, decode)


def _msgspec_codec(cls: type[E], name: str, msgspec: Any) -> EventCodec[E]:
    try:
        decoder = msgspec.json.Decoder(cls)
    except TypeError as exc:
        raise _UnsupportedError(str(exc)) from exc
    encoder = msgspec.json.Encoder()
    decode_json = decoder.decode
    encode_json = encoder.encode

    def encode(event: E) -> str:
        if type(event) is not cls:
            raise _encode_error(
                cls, name, _MismatchError(f"expected {cls.__qualname__}, got {_show(event)}")
            )
        try:
            return encode_json(event).decode("utf-8")  # type: ignore[no-any-return]
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise EncodeError(
                f"Cannot encode {_qualified(cls)} event (wire name {name!r}): msgspec could "
                f"not encode it: {exc}."
            ) from exc

    def decode(data: str) -> E:
        try:
            return decode_json(data)  # type: ignore[no-any-return]
        except (TypeError, msgspec.DecodeError) as exc:  # ValidationError is a DecodeError
            raise DecodeError(
                f"Cannot decode stored {name!r} data as {_qualified(cls)}: {exc}."
            ) from exc

    return EventCodec(name, cls, encode, decode)
