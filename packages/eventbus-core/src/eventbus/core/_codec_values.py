"""Converter building blocks: how one declared field type maps to JSON-ready values and back.

A :class:`Conv` is the compiled form of one type: plain values (``str``, ``int``,
``float``, ``bool``, ``None``, ``Any``), types stored as strings (dates, ``Decimal``,
``UUID``, ``bytes``), enums, ``Literal``, and the containers and unions built from
other converters. Mismatches raise :class:`MismatchError`, which collects the JSON path
while unwinding; types that cannot be stored raise :class:`UnsupportedError` while
compiling. This is the bottom of the codec modules: it imports none of them.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import reprlib
import typing
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from ._exceptions import DecodeError, EncodeError

__all__ = [
    "ANY",
    "KIND_OF_TYPE",
    "PLAIN",
    "STRING_FORMS",
    "Conv",
    "Fn",
    "MismatchError",
    "UnsupportedError",
    "decode_error",
    "dict_conv",
    "encode_error",
    "enum_conv",
    "fixed_tuple_conv",
    "identity",
    "key_segment",
    "literal_conv",
    "qualified",
    "sequence_conv",
    "show",
    "union_conv",
]

Fn: typing.TypeAlias = Callable[[Any], Any]

_JSON_KINDS = frozenset({"str", "int", "float", "bool", "null", "array", "object"})
# The JSON kind of each type the JSON parser makes: unions are decoded by kind.
KIND_OF_TYPE: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
    list: "array",
    dict: "object",
}
# Values quoted in error messages are cut short: an event may hold a long text.
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


# ---------------------------------------------------------------- converters and errors


class MismatchError(Exception):
    """A value does not fit its declared type; the JSON path is collected while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []

    def at(self, segment: str) -> MismatchError:
        self.segments.append(segment)
        return self

    @property
    def path(self) -> str:
        return "$" + "".join(reversed(self.segments))


class UnsupportedError(Exception):
    """A declared type cannot be stored; raised while compiling a codec."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = ""


class Conv:
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
        enc: Fn,
        dec: Fn,
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


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def show(value: object) -> str:
    return f"{_short.repr(value)} ({type(value).__name__})"


def key_segment(key: str) -> str:
    if key.isidentifier():
        return "." + key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def identity(value: Any) -> Any:
    return value


def encode_error(cls: type, name: str, exc: MismatchError) -> EncodeError:
    return EncodeError(
        f"Cannot encode {qualified(cls)} event (wire name {name!r}) at {exc.path}: {exc.message}."
    )


def decode_error(cls: type, name: str, path: str, message: str) -> DecodeError:
    return DecodeError(
        f"Cannot decode stored {name!r} data as {qualified(cls)} at {path}: {message}."
    )


# ---------------------------------------------------------------- scalar types


def _plain(describe: str, pytypes: tuple[type, ...]) -> Conv:
    allowed = frozenset(pytypes)

    def check(value: Any) -> Any:
        if type(value) in allowed:
            return value
        raise MismatchError(f"expected {describe}, got {show(value)}")

    kinds = frozenset(KIND_OF_TYPE[t] for t in pytypes)
    return Conv(
        describe,
        pytypes=allowed,
        kinds=kinds,
        enc=check,
        dec=check,
        plain=allowed,
        passthrough=True,
    )


ANY = Conv(
    "any JSON value",
    pytypes=None,
    kinds=_JSON_KINDS,
    enc=identity,
    dec=identity,
    passthrough=True,
)
PLAIN: dict[object, Conv] = {
    str: _plain("str", (str,)),
    int: _plain("int", (int,)),
    float: _plain("float", (float, int)),
    bool: _plain("bool", (bool,)),
    None: _plain("None", (type(None),)),
    type(None): _plain("None", (type(None),)),
    Any: ANY,
    object: ANY,
}


def _string_form(
    cls: type,
    describe: str,
    to_text: Callable[[Any], str],
    from_text: Callable[[str], Any],
    errors: tuple[type[Exception], ...],
) -> Conv:
    """A type stored as a JSON string (dates, decimals, UUIDs, bytes)."""

    def enc(value: Any) -> str:
        if type(value) is cls:
            return to_text(value)
        raise MismatchError(f"expected {describe}, got {show(value)}")

    def dec(value: Any) -> Any:
        if type(value) is str:
            try:
                return from_text(value)
            except errors as exc:
                raise MismatchError(f"expected {describe} text, got {show(value)}") from exc
        raise MismatchError(f"expected {describe} text, got {show(value)}")

    return Conv(describe, pytypes=frozenset({cls}), kinds=frozenset({"str"}), enc=enc, dec=dec)


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


STRING_FORMS: dict[type, Conv] = {
    datetime: _string_form(
        datetime, "datetime", datetime.isoformat, datetime.fromisoformat, (ValueError,)
    ),
    date: _string_form(date, "date", date.isoformat, date.fromisoformat, (ValueError,)),
    time: _string_form(time, "time", time.isoformat, time.fromisoformat, (ValueError,)),
    Decimal: _string_form(Decimal, "Decimal", str, Decimal, (InvalidOperation,)),
    UUID: _string_form(UUID, "UUID", str, UUID, (ValueError,)),
    bytes: _string_form(bytes, "bytes", _b64encode, _b64decode, (binascii.Error, ValueError)),
}


def enum_conv(cls: type[enum.Enum]) -> Conv:
    value_types = {type(member.value) for member in cls}
    if not value_types <= {str, int, float, bool}:
        raise UnsupportedError(
            f"the values of enum {cls.__qualname__} must be str, int, float or bool to be "
            "stored by value"
        )
    allowed = frozenset(value_types)

    def enc(value: Any) -> Any:
        if type(value) is cls:
            return value.value
        raise MismatchError(f"expected a {cls.__qualname__} member, got {show(value)}")

    def dec(value: Any) -> Any:
        if type(value) in allowed:
            try:
                return cls(value)
            except ValueError:
                pass
        raise MismatchError(f"expected a value of enum {cls.__qualname__}, got {show(value)}")

    kinds = frozenset(KIND_OF_TYPE[t] for t in value_types)
    return Conv(cls.__qualname__, pytypes=frozenset({cls}), kinds=kinds, enc=enc, dec=dec)


def literal_conv(values: tuple[Any, ...]) -> Conv:
    if not all(type(v) in (str, int, bool, type(None)) for v in values):
        raise UnsupportedError("Literal values must be str, int, bool or None")
    allowed = frozenset((type(v), v) for v in values)
    describe = "one of " + ", ".join(repr(v) for v in values)

    def check(value: Any) -> Any:
        if (type(value), value) in allowed:
            return value
        raise MismatchError(f"expected {describe}, got {show(value)}")

    pytypes = frozenset(type(v) for v in values)
    kinds = frozenset(KIND_OF_TYPE[t] for t in pytypes)
    return Conv(describe, pytypes=pytypes, kinds=kinds, enc=check, dec=check)


# ---------------------------------------------------------------- containers


def sequence_conv(origin: type, item: Conv, describe: str) -> Conv:
    """``list[T]``, ``tuple[T, ...]``, ``set[T]`` and ``frozenset[T]``: JSON arrays."""
    rebuild: Callable[[list[Any]], Any] | None = None if origin is list else origin
    exact: Any = origin  # typed Any: mypy would narrow checked values to "object"
    plain = item.plain

    def enc(value: Any) -> Any:
        if type(value) is not exact:
            raise MismatchError(f"expected {describe}, got {show(value)}")
        if item.passthrough:
            if plain is not None:
                for index, x in enumerate(value):
                    if type(x) not in plain:
                        raise MismatchError(f"expected {item.describe}, got {show(x)}").at(
                            f"[{index}]"
                        )
            return value if rebuild is None else list(value)
        out = []
        index = 0
        try:
            for index, x in enumerate(value):  # noqa: B007 - index names the failing item
                out.append(item.enc(x))
        except MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return out

    def dec(value: Any) -> Any:
        if type(value) is not list:
            raise MismatchError(f"expected {describe} as a JSON array, got {show(value)}")
        if item.passthrough:
            if plain is not None:
                for index, x in enumerate(value):
                    if type(x) not in plain:
                        raise MismatchError(f"expected {item.describe}, got {show(x)}").at(
                            f"[{index}]"
                        )
            return value if rebuild is None else rebuild(value)
        out = []
        index = 0
        try:
            for index, x in enumerate(value):  # noqa: B007 - index names the failing item
                out.append(item.dec(x))
        except MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return out if rebuild is None else rebuild(out)

    return Conv(describe, pytypes=frozenset({origin}), kinds=frozenset({"array"}), enc=enc, dec=dec)


def fixed_tuple_conv(items: tuple[Conv, ...], describe: str) -> Conv:
    size = len(items)

    def enc(value: Any) -> Any:
        if type(value) is not tuple or len(value) != size:
            raise MismatchError(f"expected {describe}, got {show(value)}")
        out = []
        index = 0
        try:
            for index, (conv, x) in enumerate(zip(items, value, strict=True)):  # noqa: B007
                out.append(conv.enc(x))
        except MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return out

    def dec(value: Any) -> Any:
        if type(value) is not list or len(value) != size:
            raise MismatchError(f"expected {describe} as a JSON array of {size}, got {show(value)}")
        out = []
        index = 0
        try:
            for index, (conv, x) in enumerate(zip(items, value, strict=True)):  # noqa: B007
                out.append(conv.dec(x))
        except MismatchError as exc:
            raise exc.at(f"[{index}]") from exc.__cause__
        return tuple(out)

    return Conv(describe, pytypes=frozenset({tuple}), kinds=frozenset({"array"}), enc=enc, dec=dec)


def _dict_key(tp: object) -> tuple[Fn, Fn]:
    """How a dict key type maps to a JSON object key and back."""
    if tp is str:
        return PLAIN[str].enc, PLAIN[str].dec
    if tp is int:

        def enc_int(key: Any) -> str:
            if type(key) is int:
                return str(key)
            raise MismatchError(f"expected an int key, got {show(key)}")

        def dec_int(key: str) -> int:
            try:
                number = int(key)
            except ValueError:
                number = None
            if number is None or str(number) != key:
                raise MismatchError(f"expected an int key, got {key!r}")
            return number

        return enc_int, dec_int
    if tp is UUID:
        conv = STRING_FORMS[UUID]
        return conv.enc, conv.dec
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        conv = enum_conv(tp)
        if conv.kinds == {"str"}:
            return conv.enc, conv.dec
    raise UnsupportedError("dict keys must be str, int, UUID or an enum with str values")


def dict_conv(key: object, value: Conv, describe: str) -> Conv:
    enc_key, dec_key = _dict_key(key)

    def enc(obj: Any) -> Any:
        if type(obj) is not dict:
            raise MismatchError(f"expected {describe}, got {show(obj)}")
        out = {}
        for k, v in obj.items():
            encoded = enc_key(k)
            try:
                out[encoded] = value.enc(v)
            except MismatchError as exc:
                raise exc.at(key_segment(encoded)) from exc.__cause__
        return out

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise MismatchError(f"expected {describe} as a JSON object, got {show(obj)}")
        out = {}
        for k, v in obj.items():
            try:
                out[dec_key(k)] = value.dec(v)
            except MismatchError as exc:
                raise exc.at(key_segment(k)) from exc.__cause__
        return out

    return Conv(describe, pytypes=frozenset({dict}), kinds=frozenset({"object"}), enc=enc, dec=dec)


def union_conv(members: list[Conv], describe: str) -> Conv:
    if all(m.passthrough for m in members):
        if any(m.plain is None for m in members):
            return ANY
        pytypes = frozenset().union(*(m.plain or () for m in members))
        return _plain(describe, tuple(sorted(pytypes, key=lambda t: t.__name__)))
    by_pytype: dict[type, Conv] = {}
    by_kind: dict[str, Conv] = {}
    for member in members:
        if member.pytypes is None:
            raise UnsupportedError("Any cannot be combined with other types in a union")
        for pytype in member.pytypes:
            other = by_pytype.setdefault(pytype, member)
            if other is not member and not (other.passthrough and member.passthrough):
                raise UnsupportedError(
                    f"{other.describe} and {member.describe} overlap in the union"
                )
        for kind in member.kinds:
            other = by_kind.setdefault(kind, member)
            if other is not member and not (other.passthrough and member.passthrough):
                raise UnsupportedError(
                    f"{other.describe} and {member.describe} are both stored as JSON {kind} "
                    "values, so the union could not be decoded"
                )

    def enc(value: Any) -> Any:
        conv = by_pytype.get(type(value))
        if conv is None:
            raise MismatchError(f"expected {describe}, got {show(value)}")
        return conv.enc(value)

    def dec(value: Any) -> Any:
        conv = by_kind.get(KIND_OF_TYPE[type(value)])
        if conv is None:
            raise MismatchError(f"expected {describe}, got {show(value)}")
        return conv.dec(value)

    return Conv(
        describe,
        pytypes=frozenset(by_pytype),
        kinds=frozenset(by_kind),
        enc=enc,
        dec=dec,
    )
