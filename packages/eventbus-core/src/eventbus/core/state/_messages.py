"""The Durable Streams State Protocol's messages, as events a bus can publish and store.

A change message says that the entity ``key`` of type ``type`` was inserted, updated or
deleted; a control message marks a snapshot's start or end, or asks readers to reset.
Both keep the protocol's JSON shape as their stored data (``headers`` included), under
the wire names ``state.ChangeMessage`` and ``state.ControlMessage``, so what a bus stores
reads as protocol messages, and the parsers here accept a protocol message written by
anything else.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final, Literal, TypeAlias, cast, get_args

__all__ = [
    "CONTROLS",
    "OPERATIONS",
    "ChangeMessage",
    "Control",
    "ControlMessage",
    "Operation",
    "parse_message",
]

# "upsert" is not in the protocol document, but the protocol's TypeScript package writes
# it (insert or replace); accepting it is what lets its streams materialize here.
Operation: TypeAlias = Literal["insert", "update", "upsert", "delete"]
Control: TypeAlias = Literal["snapshot-start", "snapshot-end", "reset"]
OPERATIONS: Final[frozenset[str]] = frozenset(get_args(Operation))
CONTROLS: Final[frozenset[str]] = frozenset(get_args(Control))


def _text(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    return value


@dataclasses.dataclass(frozen=True)
class ChangeMessage:
    """An insert, update, upsert or delete of one entity.

    Build one with :meth:`insert`, :meth:`update` or :meth:`delete` (an ``upsert``, as
    the protocol's TypeScript package writes, with the constructor).

    Attributes:
        type: The entity type (the collection it belongs to).
        key: The entity's key within its type.
        operation: ``"insert"``, ``"update"``, ``"upsert"`` or ``"delete"``.
        value: The new value (any JSON value); None for a delete.
        old_value: The previous value, when the writer sent it.
        txid: A transaction id grouping changes, when given.
        timestamp: An RFC 3339 time of the change, when given.
    """

    __event_name__: ClassVar[str] = "state.ChangeMessage"
    type: str
    key: str
    operation: Operation
    value: Any = None
    old_value: Any = None
    txid: str | None = None
    timestamp: str | None = None

    def __post_init__(self) -> None:
        _text("type", self.type)
        _text("key", self.key)
        if self.operation not in OPERATIONS:
            raise ValueError(
                f"operation must be one of {sorted(OPERATIONS)!r}, got {self.operation!r}."
            )
        _text("txid", self.txid, optional=True)
        _text("timestamp", self.timestamp, optional=True)

    @classmethod
    def insert(
        cls,
        type: str,  # the protocol's name
        key: str,
        value: Any,
        *,
        txid: str | None = None,
        timestamp: str | None = None,
    ) -> ChangeMessage:
        """A new entity ``key`` of ``type`` with ``value``."""
        return cls(type, key, "insert", value, None, txid, timestamp)

    @classmethod
    def update(
        cls,
        type: str,  # the protocol's name
        key: str,
        value: Any,
        *,
        old_value: Any = None,
        txid: str | None = None,
        timestamp: str | None = None,
    ) -> ChangeMessage:
        """Entity ``key`` of ``type`` now has ``value``."""
        return cls(type, key, "update", value, old_value, txid, timestamp)

    @classmethod
    def delete(
        cls,
        type: str,  # the protocol's name
        key: str,
        *,
        old_value: Any = None,
        txid: str | None = None,
        timestamp: str | None = None,
    ) -> ChangeMessage:
        """Entity ``key`` of ``type`` is gone."""
        return cls(type, key, "delete", None, old_value, txid, timestamp)

    def __event_encode__(self) -> dict[str, Any]:
        """The protocol's JSON shape; absent optional fields are left out."""
        headers: dict[str, Any] = {"operation": self.operation}
        if self.txid is not None:
            headers["txid"] = self.txid
        if self.timestamp is not None:
            headers["timestamp"] = self.timestamp
        message: dict[str, Any] = {"type": self.type, "key": self.key}
        if self.operation != "delete" or self.value is not None:
            message["value"] = self.value
        if self.old_value is not None:
            message["old_value"] = self.old_value
        message["headers"] = headers
        return message

    @classmethod
    def __event_decode__(cls, data: dict[str, Any]) -> ChangeMessage:
        """Read a protocol change message; ValueError when it is not one."""
        headers = data.get("headers")
        if not isinstance(headers, dict):
            raise ValueError(f"a change message needs a headers object, got {headers!r}.")
        operation = headers.get("operation")
        if operation in ("insert", "update", "upsert") and "value" not in data:
            raise ValueError(f"an {operation} needs a value.")
        return cls(
            data.get("type"),  # type: ignore[arg-type]  # checked in __post_init__
            data.get("key"),  # type: ignore[arg-type]
            operation,  # type: ignore[arg-type]
            data.get("value"),
            data.get("old_value"),
            headers.get("txid"),
            headers.get("timestamp"),
        )


@dataclasses.dataclass(frozen=True)
class ControlMessage:
    """A stream-management signal: a snapshot's start or end, or a reset.

    Attributes:
        control: ``"snapshot-start"``, ``"snapshot-end"`` or ``"reset"``.
        offset: A stream offset the signal refers to, when given.
    """

    __event_name__: ClassVar[str] = "state.ControlMessage"
    control: Control
    offset: str | None = None

    def __post_init__(self) -> None:
        if self.control not in CONTROLS:
            raise ValueError(f"control must be one of {sorted(CONTROLS)!r}, got {self.control!r}.")
        _text("offset", self.offset, optional=True)

    def __event_encode__(self) -> dict[str, Any]:
        """The protocol's JSON shape."""
        headers: dict[str, Any] = {"control": self.control}
        if self.offset is not None:
            headers["offset"] = self.offset
        return {"headers": headers}

    @classmethod
    def __event_decode__(cls, data: dict[str, Any]) -> ControlMessage:
        """Read a protocol control message; ValueError when it is not one."""
        headers = data.get("headers")
        if not isinstance(headers, dict):
            raise ValueError(f"a control message needs a headers object, got {headers!r}.")
        return cls(headers.get("control"), headers.get("offset"))  # type: ignore[arg-type]


def parse_message(data: object) -> ChangeMessage | ControlMessage | None:
    """Recognise a protocol message in parsed JSON written by anything.

    Returns:
        The message, or None when ``data`` does not identify itself as one: a control
        message names a known control, a change message has a type, a key and an
        operation. Anything else is someone else's event.

    Raises:
        ValueError: It identifies itself as a message but breaks the protocol.
    """
    if not isinstance(data, dict):
        return None
    headers = data.get("headers")
    if not isinstance(headers, dict):
        return None
    if headers.get("control") in CONTROLS and "type" not in data:
        return ControlMessage.__event_decode__(data)
    if "type" in data and "key" in data and "operation" in headers:
        return ChangeMessage.__event_decode__(cast("dict[str, Any]", data))
    return None
