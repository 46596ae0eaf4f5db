"""Adapters for classes that bring their own JSON form: hook classes, pydantic, msgspec.

A class with the ``__event_encode__``/``__event_decode__`` hook pair, a pydantic v2
model or a msgspec Struct is converted by its own code. Neither library is imported
here: a class is recognised only when its library is already loaded (it must be, for
the class to exist). Nested, such a class is a converter; as a whole event, pydantic and
msgspec classes get their library's JSON text functions directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ._codec_values import (
    Conv,
    MismatchError,
    UnsupportedError,
    decode_error,
    encode_error,
    key_segment,
    qualified,
    show,
)
from ._exceptions import DecodeError, EncodeError

__all__ = [
    "library_kind",
    "msgspec_conv",
    "msgspec_functions",
    "pydantic_conv",
    "pydantic_functions",
]

E = TypeVar("E")


# ---------------------------------------------------------------- converters


def library_kind(cls: type) -> Callable[[type], Conv] | None:
    """The converter factory for hook classes, pydantic models and msgspec Structs."""
    if callable(getattr(cls, "__event_encode__", None)) or callable(
        getattr(cls, "__event_decode__", None)
    ):
        return _hook_conv
    pydantic_main = sys.modules.get("pydantic.main")
    if pydantic_main is not None and issubclass(cls, pydantic_main.BaseModel):
        return pydantic_conv
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and issubclass(cls, msgspec.Struct):
        return msgspec_conv
    return None


def _hook_conv(cls: type) -> Conv:
    encode_hook = getattr(cls, "__event_encode__", None)
    decode_hook = getattr(cls, "__event_decode__", None)
    if not (callable(encode_hook) and callable(decode_hook)):
        raise UnsupportedError(
            f"{cls.__qualname__} must define both __event_encode__(self) -> dict and "
            "classmethod __event_decode__(cls, data: dict), not just one of them"
        )
    label = cls.__qualname__
    exact: Any = cls

    def enc(obj: Any) -> Any:
        if type(obj) is not exact:
            raise MismatchError(f"expected {label}, got {show(obj)}")
        try:
            data = obj.__event_encode__()
        except Exception as exc:
            raise MismatchError(f"{label}.__event_encode__() raised {exc!r}") from exc
        if type(data) is not dict:
            raise MismatchError(f"{label}.__event_encode__() returned {show(data)}, not a dict")
        return data

    def dec(data: Any) -> Any:
        if type(data) is not dict:
            raise MismatchError(f"expected {label} as a JSON object, got {show(data)}")
        try:
            obj = cls.__event_decode__(data)  # type: ignore[attr-defined]
        except Exception as exc:
            raise MismatchError(f"{label}.__event_decode__() raised {exc!r}") from exc
        if type(obj) is not cls:
            raise MismatchError(f"{label}.__event_decode__() returned {show(obj)}, not a {label}")
        return obj

    return Conv(label, pytypes=frozenset({cls}), kinds=frozenset({"object"}), enc=enc, dec=dec)


def _pydantic_path(exc: Exception) -> tuple[str, list[str]]:
    """The first error of a pydantic ValidationError and its path segments, innermost first."""
    first = exc.errors()[0]  # type: ignore[attr-defined]
    segments = [f"[{p}]" if isinstance(p, int) else key_segment(str(p)) for p in first["loc"]]
    return str(first["msg"]), segments[::-1]


def pydantic_conv(cls: type) -> Conv:
    validation_error = sys.modules["pydantic_core"].ValidationError
    label = cls.__qualname__
    exact: Any = cls

    def enc(obj: Any) -> Any:
        if type(obj) is not exact:
            raise MismatchError(f"expected {label}, got {show(obj)}")
        try:
            return obj.model_dump(mode="json")
        except Exception as exc:  # pydantic's serialization errors have no common base
            raise MismatchError(f"pydantic could not serialize {label}: {exc}") from exc

    def dec(data: Any) -> Any:
        try:
            return cls.model_validate(data)  # type: ignore[attr-defined]
        except validation_error as exc:
            message, segments = _pydantic_path(exc)
            invalid = MismatchError(message)
            invalid.segments.extend(segments)
            raise invalid from exc

    return Conv(label, pytypes=frozenset({cls}), kinds=frozenset({"object"}), enc=enc, dec=dec)


def msgspec_conv(cls: type) -> Conv:
    msgspec = sys.modules["msgspec"]
    label = cls.__qualname__
    exact: Any = cls

    def enc(obj: Any) -> Any:
        if type(obj) is not exact:
            raise MismatchError(f"expected {label}, got {show(obj)}")
        try:
            return msgspec.to_builtins(obj)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise MismatchError(f"msgspec could not encode {label}: {exc}") from exc

    def dec(data: Any) -> Any:
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise MismatchError(f"{exc}") from exc

    return Conv(label, pytypes=frozenset({cls}), kinds=frozenset({"object"}), enc=enc, dec=dec)


# ---------------------------------------------------------------- whole events


# As a whole event, a pydantic model or msgspec Struct is written and read as JSON text
# by its own library (no intermediate dict); nested, it goes through the converters above.
def pydantic_functions(cls: type[E], name: str) -> tuple[Callable[[E], str], Callable[[str], E]]:
    """The encode and decode functions of a pydantic model as a whole event: its own JSON."""
    validation_error = sys.modules["pydantic_core"].ValidationError
    validate_json = cls.model_validate_json  # type: ignore[attr-defined]

    def encode(event: E) -> str:
        if type(event) is not cls:
            raise encode_error(
                cls, name, MismatchError(f"expected {cls.__qualname__}, got {show(event)}")
            )
        try:
            return event.model_dump_json()  # type: ignore[attr-defined, no-any-return]
        except Exception as exc:  # pydantic's serialization errors have no common base
            raise EncodeError(
                f"Cannot encode {qualified(cls)} event (wire name {name!r}): pydantic could "
                f"not serialize it: {exc}."
            ) from exc

    def decode(data: str) -> E:
        try:
            return validate_json(data)  # type: ignore[no-any-return]
        except validation_error as exc:
            message, segments = _pydantic_path(exc)
            raise decode_error(cls, name, "$" + "".join(reversed(segments)), message) from exc

    return encode, decode


def msgspec_functions(
    cls: type[E], name: str, msgspec: Any
) -> tuple[Callable[[E], str], Callable[[str], E]]:
    """The encode and decode functions of a msgspec Struct as a whole event: its own JSON."""
    try:
        decoder = msgspec.json.Decoder(cls)
    except TypeError as exc:
        raise UnsupportedError(str(exc)) from exc
    encoder = msgspec.json.Encoder()
    decode_json = decoder.decode
    encode_json = encoder.encode

    def encode(event: E) -> str:
        if type(event) is not cls:
            raise encode_error(
                cls, name, MismatchError(f"expected {cls.__qualname__}, got {show(event)}")
            )
        try:
            return encode_json(event).decode("utf-8")  # type: ignore[no-any-return]
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise EncodeError(
                f"Cannot encode {qualified(cls)} event (wire name {name!r}): msgspec could "
                f"not encode it: {exc}."
            ) from exc

    def decode(data: str) -> E:
        try:
            return decode_json(data)  # type: ignore[no-any-return]
        except (TypeError, msgspec.DecodeError) as exc:  # ValidationError is a DecodeError
            raise DecodeError(
                f"Cannot decode stored {name!r} data as {qualified(cls)}: {exc}."
            ) from exc

    return encode, decode
