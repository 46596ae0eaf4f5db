"""Object plans: how classes with named fields are read and rebuilt, and the type compiler.

A :class:`Plan` says how a dataclass, attrs class, ``NamedTuple`` or ``TypedDict`` is
taken apart into its fields and rebuilt from them; :class:`Compiler` turns each declared
field type into a converter, recursing into nested and recursive classes and handing
classes that bring their own JSON form to :mod:`._codec_adapters`.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import operator
import types
import typing
from collections.abc import Callable
from typing import Any

from ._codec_adapters import library_kind
from ._codec_values import (
    ANY,
    PLAIN,
    STRING_FORMS,
    Conv,
    Fn,
    MismatchError,
    UnsupportedError,
    dict_conv,
    enum_conv,
    fixed_tuple_conv,
    identity,
    key_segment,
    literal_conv,
    sequence_conv,
    show,
    union_conv,
)

__all__ = ["OBJECT_NEW", "Compiler", "Field", "Plan"]

# object.__new__: a dataclass with its own __new__ cannot be restored field by field, and
# the codec's fast path makes instances with it, without running __init__.
OBJECT_NEW: Any = object.__new__


class _Missing(enum.Enum):
    """A field absent from stored JSON that has no default: an error, or an omitted key."""

    REQUIRED = "required"
    OMIT = "omit"


_REQUIRED: typing.Final = _Missing.REQUIRED
_OMIT: typing.Final = _Missing.OMIT


class Field:
    """One named field: its converter, and what fills it when stored JSON lacks it."""

    __slots__ = ("conv", "missing", "name")

    def __init__(self, name: str, conv: Conv, missing: _Missing | Callable[[], Any]) -> None:
        self.name = name
        self.conv = conv
        self.missing = missing


class Plan:
    """How a class with named fields is read and rebuilt."""

    __slots__ = ("build", "fields", "get_values", "pytype")

    def __init__(
        self,
        pytype: type,
        fields: list[Field],
        get_values: Callable[[Any], tuple[Any, ...]] | None,
        build: Callable[[dict[str, Any]], Any],
    ) -> None:
        self.pytype = pytype
        self.fields = fields
        self.get_values = get_values
        self.build = build


class Compiler:
    """Compiles declared types into converters; one per codec, shared by nested classes."""

    def __init__(self) -> None:
        self._objects: dict[type, Conv] = {}
        self._plans: dict[type, Plan] = {}

    def compile(self, tp: object) -> Conv:
        conv = PLAIN.get(tp) if _hashable(tp) else None
        if conv is not None:
            return conv
        if isinstance(tp, type) and tp in STRING_FORMS:
            return STRING_FORMS[tp]
        if isinstance(tp, typing.NewType):
            return self.compile(tp.__supertype__)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            return self.compile(args[0])
        if origin is typing.Literal:
            return literal_conv(args)
        if origin is typing.Union or origin is types.UnionType:
            members = [self.compile(a) for a in args]
            return union_conv(members, " | ".join(m.describe for m in members))
        if origin is None and tp in (list, tuple, set, frozenset, dict):
            origin, args = tp, ()
        if origin in (list, set, frozenset):
            item = self.compile(args[0]) if args else ANY
            if origin is not list and item is ANY:
                raise UnsupportedError("set items need a declared type, not Any")
            return sequence_conv(origin, item, f"{origin.__name__}[{item.describe}]")
        if origin is tuple:
            if tp is tuple or (len(args) == 2 and args[1] is Ellipsis):
                item = self.compile(args[0]) if args else ANY
                return sequence_conv(tuple, item, f"tuple[{item.describe}, ...]")
            items = tuple(self.compile(a) for a in args)
            return fixed_tuple_conv(items, f"tuple[{', '.join(c.describe for c in items)}]")
        if origin is dict:
            key, value = args if args else (str, Any)
            conv = self.compile(value)
            return dict_conv(key, conv, f"dict[{getattr(key, '__name__', key)}, {conv.describe}]")
        if isinstance(tp, type):
            if issubclass(tp, enum.Enum):
                return enum_conv(tp)
            return self.object_conv(tp)
        raise UnsupportedError("it is not a type eventbus can store")

    def object_conv(self, cls: type) -> Conv:
        """The converter of an event-like class (cached, so recursive classes work)."""
        known = self._objects.get(cls)
        if known is not None:
            return known
        kind = library_kind(cls)
        if kind is not None:
            conv = kind(cls)
            self._objects[cls] = conv
            return conv
        # Register the shell first: a field may refer back to this class.
        conv = Conv(
            cls.__qualname__,
            pytypes=frozenset({cls}),
            kinds=frozenset(),
            enc=identity,
            dec=identity,
        )
        self._objects[cls] = conv
        plan = self._plan(cls)
        self._plans[cls] = plan
        conv.pytypes = frozenset({plan.pytype})
        conv.kinds = frozenset({"object"})
        conv.enc, conv.dec = _object_functions(cls, plan)
        return conv

    def plan(self, cls: type) -> Plan | None:
        return self._plans.get(cls)

    def _plan(self, cls: type) -> Plan:
        if dataclasses.is_dataclass(cls):
            return self._dataclass_plan(cls)
        if getattr(cls, "__attrs_attrs__", None) is not None:
            return self._attrs_plan(cls)
        if issubclass(cls, tuple) and hasattr(cls, "_fields"):
            return self._namedtuple_plan(cls)
        if typing.is_typeddict(cls):
            return self._typeddict_plan(cls)
        raise UnsupportedError(
            f"{cls.__qualname__} is not a dataclass, NamedTuple, TypedDict, attrs class, "
            "pydantic model or msgspec Struct and defines no __event_encode__/"
            "__event_decode__ hooks"
        )

    def _fields(
        self, cls: type, specs: list[tuple[str, object, _Missing | Callable[[], Any]]]
    ) -> list[Field]:
        fields = []
        for name, tp, missing in specs:
            try:
                conv = self.compile(tp)
            except UnsupportedError as exc:
                if not exc.where:
                    exc.where = f"field {cls.__qualname__}.{name} of type {_type_repr(tp)}"
                raise
            fields.append(Field(name, conv, missing))
        return fields

    def _dataclass_plan(self, cls: type) -> Plan:
        if cls.__new__ is not OBJECT_NEW:
            raise UnsupportedError(
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

        return Plan(
            cls,
            fields,
            _getter([f.name for f in fields]),
            build_slotted if slotted else build_dict,
        )

    def _attrs_plan(self, cls: type) -> Plan:
        nothing = importlib.import_module("attr").NOTHING
        hints = _hints(cls)
        specs: list[tuple[str, object, _Missing | Callable[[], Any]]] = []
        aliases: dict[str, str] = {}
        for a in cls.__attrs_attrs__:  # type: ignore[attr-defined]
            if not a.init:
                continue
            tp = hints.get(a.name, a.type)
            if tp is None:
                raise UnsupportedError(f"field {cls.__qualname__}.{a.name} has no type annotation")
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
                raise MismatchError(f"{cls.__qualname__}(...) raised {exc!r}") from exc

        return Plan(cls, fields, _getter([f.name for f in fields]), build)

    def _namedtuple_plan(self, cls: type) -> Plan:
        hints = _hints(cls)
        defaults: dict[str, Any] = cls._field_defaults  # type: ignore[attr-defined]
        specs: list[tuple[str, object, _Missing | Callable[[], Any]]] = []
        for name in cls._fields:  # type: ignore[attr-defined]
            if name not in hints:
                raise UnsupportedError(f"field {cls.__qualname__}.{name} has no type annotation")
            missing = _constant(defaults[name]) if name in defaults else _REQUIRED
            specs.append((name, hints[name], missing))
        fields = self._fields(cls, specs)

        def build(values: dict[str, Any]) -> Any:
            return cls(**values)

        return Plan(cls, fields, identity, build)

    def _typeddict_plan(self, cls: type) -> Plan:
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
        return Plan(dict, self._fields(cls, specs), None, identity)


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
        raise UnsupportedError(
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


def _object_functions(cls: type, plan: Plan) -> tuple[Fn, Fn]:
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
            raise MismatchError(f"expected {label}, got {show(obj)}")
        if get_values is None:
            return _encode_mapping(obj)
        values = get_values(obj)
        for index, plain in checks:
            if type(values[index]) not in plain:
                raise MismatchError(
                    f"expected {convs[index].describe}, got {show(values[index])}"
                ).at(key_segment(keys[index]))
        out = dict(zip(keys, values, strict=True))
        key = ""
        try:
            for key, conv in converted:
                out[key] = conv.enc(out[key])
        except MismatchError as exc:
            raise exc.at(key_segment(key)) from exc.__cause__
        return out

    def _encode_mapping(obj: dict[str, Any]) -> Any:
        extra = obj.keys() - keyset
        if extra:
            raise MismatchError(f"{label} has no key {sorted(extra)[0]!r}")
        out = {}
        for field in fields:
            if field.name in obj:
                try:
                    out[field.name] = field.conv.enc(obj[field.name])
                except MismatchError as exc:
                    raise exc.at(key_segment(field.name)) from exc.__cause__
            elif field.missing is _REQUIRED:
                raise MismatchError(f"{label} is missing required key {field.name!r}")
        return out

    def dec(data: Any) -> Any:
        if type(data) is not dict:
            raise MismatchError(f"expected {label} as a JSON object, got {show(data)}")
        if data.keys() != keyset:
            return _decode_partial(data)
        for index, plain in checks:
            key = keys[index]
            if type(data[key]) not in plain:
                raise MismatchError(f"expected {convs[index].describe}, got {show(data[key])}").at(
                    key_segment(key)
                )
        # The dict is fresh from the JSON parser, so it is converted in place.
        key = ""
        try:
            for key, conv in converted:
                data[key] = conv.dec(data[key])
        except MismatchError as exc:
            raise exc.at(key_segment(key)) from exc.__cause__
        return build(data)

    def _decode_partial(data: dict[str, Any]) -> Any:
        extra = data.keys() - keyset
        if extra:
            raise MismatchError(f"{label} has no field {sorted(extra)[0]!r}")
        out = {}
        for field in fields:
            if field.name in data:
                try:
                    out[field.name] = field.conv.dec(data[field.name])
                except MismatchError as exc:
                    raise exc.at(key_segment(field.name)) from exc.__cause__
            elif field.missing is _REQUIRED:
                raise MismatchError(f"{label} is missing required field {field.name!r}")
            elif field.missing is not _OMIT:
                out[field.name] = field.missing()
        return build(out)

    return enc, dec
