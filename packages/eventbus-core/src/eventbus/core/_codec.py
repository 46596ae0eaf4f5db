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

This module builds the codec of an event class (:func:`build_codec`) and holds the
JSON text fast paths of publishing and typed replay. The parts it is built from sit
below it, each importing only those further down:

* :mod:`._codec_objects`: the plans of dataclasses, attrs classes, ``NamedTuple``
  and ``TypedDict`` classes, and the compiler from declared types to converters,
* :mod:`._codec_adapters`: hook classes, pydantic models and msgspec Structs,
* :mod:`._codec_values`: the converters of plain values, string forms, enums,
  ``Literal``, containers and unions.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import operator
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._codec_adapters import (
    library_kind,
    msgspec_conv,
    msgspec_functions,
    pydantic_conv,
    pydantic_functions,
)
from ._codec_objects import OBJECT_NEW, Compiler, Field, Plan
from ._codec_values import (
    KIND_OF_TYPE,
    Conv,
    MismatchError,
    UnsupportedError,
    decode_error,
    encode_error,
    key_segment,
    qualified,
)
from ._exceptions import EncodeError, RegistrationError

__all__ = ["EventCodec", "build_codec"]

E = TypeVar("E")


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


def _fast_parser() -> Callable[[str], Any] | None:
    """msgspec's untyped JSON decoder, when the ``eventbus-core[fast]`` extra is installed.

    It parses stored event text about five times faster than the json module and yields
    the same values (dicts, lists, str, int of any size, float, bool, None). What it
    refuses and json accepts (NaN and Infinity literals, escaped lone surrogates) falls
    back to the json path, which also names what is wrong with malformed text. Only
    parsing changes: the checks and the rebuilding of events are the same code.
    """
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec.json.Decoder().decode


FAST_PARSE: Callable[[str], Any] | None = _fast_parser()
"""The parser codecs built from now on try first; None: the json module alone.
Tests set it to None to run the stdlib path with msgspec installed."""


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
        return f"EventCodec({self.name!r}, {qualified(self.event_type)})"


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
            f"{qualified(cls)} is a Protocol; events are instances of concrete classes, "
            "so subscribe or register the concrete event class instead."
        )
    if inspect.isabstract(cls):
        raise RegistrationError(
            f"{qualified(cls)} is abstract; events are instances of concrete classes, "
            "so subscribe or register the concrete event class instead."
        )
    compiler = Compiler()
    try:
        kind = library_kind(cls)
        if kind is pydantic_conv:
            return EventCodec(name, cls, *pydantic_functions(cls, name))
        if kind is msgspec_conv:
            return EventCodec(name, cls, *msgspec_functions(cls, name, sys.modules["msgspec"]))
        conv = compiler.object_conv(cls)
    except UnsupportedError as exc:
        where = f" ({exc.where})" if exc.where else ""
        raise RegistrationError(
            f"Cannot register {qualified(cls)} as an event class{where}: {exc.reason}."
        ) from None
    return _field_codec(cls, name, conv, compiler.plan(cls))


def _locate(value: Any, segments: list[str], seen: set[int]) -> str:
    """The JSON path of the first part of ``value`` that json cannot encode."""
    if id(value) not in seen:
        seen.add(id(value))
        if isinstance(value, dict):
            children = [(key_segment(str(k)), v) for k, v in value.items()]
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


_JSON_PYTYPES: typing.Final = frozenset(KIND_OF_TYPE)  # every type the JSON parser makes
_SlotSetter: typing.TypeAlias = tuple[str, frozenset[type], Callable[[Any, Any], None]]


def _slot_setters(cls: type, plan: Plan) -> tuple[_SlotSetter, ...] | None:
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


def _field_codec(cls: type[E], name: str, conv: Conv, plan: Plan | None) -> EventCodec[E]:
    enc_obj = conv.enc
    dec_obj = conv.dec

    def encode(event: E) -> str:
        try:
            obj = enc_obj(event)
        except MismatchError as exc:
            raise encode_error(cls, name, exc) from exc.__cause__
        try:
            return _dumps(obj)
        except (TypeError, ValueError) as exc:  # a non-JSON value under Any, NaN, a cycle
            path = _locate(obj, [], set())
            raise EncodeError(
                f"Cannot encode {qualified(cls)} event (wire name {name!r}) at {path}: {exc}."
            ) from exc

    def parse(data: str) -> Any:
        try:
            return _loads(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise decode_error(cls, name, "$", f"not valid JSON text ({exc!r})") from exc

    def scan(data: str) -> Any:
        # The scanner alone (no json.loads wrapper); json.loads names what is wrong.
        try:
            obj, end = _scan(data, 0)
        except (StopIteration, ValueError, TypeError, RecursionError):
            return parse(data)
        return obj if end == len(data) else parse(data)

    load = scan
    fast = FAST_PARSE
    if fast is not None:

        def load(data: str) -> Any:
            try:
                return fast(data)
            except Exception:  # msgspec.DecodeError, or bytes it cannot take: json decides
                return scan(data)

    def convert(obj: Any) -> E:
        try:
            return dec_obj(obj)  # type: ignore[no-any-return]
        except MismatchError as exc:
            raise decode_error(cls, name, exc.path, exc.message) from exc.__cause__

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
        new = OBJECT_NEW

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


# ---------------------------------------------------------------- flat classes as JSON text


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
    fields: list[Field],
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
