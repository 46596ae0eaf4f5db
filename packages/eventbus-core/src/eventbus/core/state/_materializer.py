"""The materializer: state messages from any store, applied in order, into collections.

It reads records (``StoredEvent``), never event classes: records of the two state wire
names are parsed strictly (a malformed one stops it with ``DecodeError``), records of
other names count only if their data positively identifies itself as a protocol
message (as one written by the protocol's TypeScript package would), and everything else
is skipped as foreign. The offset of the last record applied advances only after the
record was applied, so a failure leaves the state and the offset where they were.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, overload

from eventbus.core._exceptions import DecodeError
from eventbus.core._store import (
    OLDEST,
    Checkpoint,
    EventStore,
    SnapshotStore,
    StoredEvent,
    StreamingReader,
)

from ._messages import ChangeMessage, ControlMessage, parse_message

if TYPE_CHECKING:
    from eventbus.core._store import Position

__all__ = ["Collection", "Materializer"]

T = TypeVar("T")

_NAMES: Final = {ChangeMessage.__event_name__, ControlMessage.__event_name__}
_SNAPSHOT_VERSION: Final = 1


class Collection(Generic[T]):
    """A read-only, typed view of one entity type's current values.

    Args:
        entities: The materializer's live mapping of this type (key → JSON value).
        decode: Turns a stored JSON value into a ``T`` (called on every read).
    """

    def __init__(self, entities: Mapping[str, Any], decode: Callable[[Any], T]) -> None:
        self._entities = entities
        self._decode = decode

    def get(self, key: str) -> T | None:
        """The entity's value, or None when it does not exist."""
        if key not in self._entities:
            return None
        return self._decode(self._entities[key])

    def __contains__(self, key: object) -> bool:
        return key in self._entities

    def __len__(self) -> int:
        return len(self._entities)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entities))

    def items(self) -> list[tuple[str, T]]:
        """Every key with its decoded value, in insertion order."""
        return [(key, self._decode(value)) for key, value in list(self._entities.items())]


class Materializer:
    """Applies Durable Streams State Protocol messages to in-memory collections.

    Args:
        on_reset: Called after a ``reset`` control message cleared every collection.
        on_snapshot: Called with True at ``snapshot-start`` and False at ``snapshot-end``.

    Attributes:
        offset: The offset of the last record applied (or skipped as foreign), OLDEST
            before the first: :meth:`catch_up` continues after it.
    """

    def __init__(
        self,
        *,
        on_reset: Callable[[], None] | None = None,
        on_snapshot: Callable[[bool], None] | None = None,
    ) -> None:
        self._entities: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._on_reset = on_reset
        self._on_snapshot = on_snapshot
        self.offset: Checkpoint = OLDEST

    def __repr__(self) -> str:
        return f"<Materializer {len(self._entities)} types at {self.offset!r}>"

    # -- reading the state -----------------------------------------------------------------

    @overload
    def collection(self, entity_type: str) -> Collection[Any]: ...

    @overload
    def collection(self, entity_type: str, decode: Callable[[Any], T]) -> Collection[T]: ...

    def collection(
        self, entity_type: str, decode: Callable[[Any], Any] | None = None
    ) -> Collection[Any]:
        """A live, read-only view of ``entity_type``'s entities, decoded by ``decode``
        (the stored JSON values as they are, without one)."""
        with self._lock:
            entities = self._entities.setdefault(entity_type, {})
        return Collection(MappingProxyType(entities), decode or _as_is)

    def types(self) -> list[str]:
        """The entity types that hold at least one entity."""
        with self._lock:
            return sorted(name for name, entities in self._entities.items() if entities)

    # -- applying ----------------------------------------------------------------------------

    def apply(self, stored: StoredEvent) -> bool:
        """Apply one stored record; return whether it was a state message.

        Raises:
            DecodeError: A record of a state wire name, or one that identifies itself as
                a protocol message, breaks the protocol; nothing changed.
        """
        message = _message_of(stored)
        with self._lock:
            if message is not None:
                self.apply_message(message)
            self.offset = stored.offset
        return message is not None

    def apply_message(self, message: ChangeMessage | ControlMessage) -> None:
        """Apply one message (also usable without a store)."""
        with self._lock:
            if isinstance(message, ChangeMessage):
                entities = self._entities.setdefault(message.type, {})
                if message.operation == "delete":
                    entities.pop(message.key, None)
                else:
                    entities[message.key] = message.value
            elif message.control == "reset":
                for entities in self._entities.values():
                    entities.clear()
                if self._on_reset is not None:
                    self._on_reset()
            elif self._on_snapshot is not None:
                self._on_snapshot(message.control == "snapshot-start")

    def catch_up(self, store: EventStore, *, batch_size: int = 500) -> int:
        """Apply every record of ``store`` after :attr:`offset`, in log order.

        Returns:
            How many state messages were applied (foreign records are skipped).
        """
        applied = 0
        for stored in _records(store, self.offset, batch_size):
            applied += self.apply(stored)
        return applied

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, store: SnapshotStore, snapshot_id: str) -> None:
        """Save every collection with :attr:`offset` as the snapshot ``snapshot_id``.

        The state is captured under the lock; the write happens outside it.
        """
        with self._lock:
            blob = json.dumps(
                {"version": _SNAPSHOT_VERSION, "collections": self._entities},
                ensure_ascii=False,
            )
            offset = self.offset
        store.save_snapshot(snapshot_id, offset, blob)

    def load_snapshot(self, store: SnapshotStore, snapshot_id: str) -> bool:
        """Replace the state and offset with the snapshot ``snapshot_id``, if there is one.

        Returns:
            Whether a snapshot was found.

        Raises:
            DecodeError: The snapshot is not a materializer's; nothing changed.
        """
        snapshot = store.load_snapshot(snapshot_id)
        if snapshot is None:
            return False
        collections = _parse_snapshot(snapshot_id, snapshot.data)
        with self._lock:
            for entities in self._entities.values():
                entities.clear()  # in place: views handed out stay live
            for name, entities in collections.items():
                self._entities.setdefault(name, {}).update(entities)
            self.offset = snapshot.offset
        return True


def _as_is(value: Any) -> Any:
    return value


def _message_of(stored: StoredEvent) -> ChangeMessage | ControlMessage | None:
    """The state message a record holds, or None for a foreign record."""
    strict = stored.type_name in _NAMES
    if not strict and '"headers"' not in stored.data:
        return None  # cheap test first: most foreign records are never parsed
    try:
        data = json.loads(stored.data)
        message = parse_message(data)
        if strict:
            if message is None:
                raise ValueError("it is not a protocol message")
            if message.__event_name__ != stored.type_name:
                raise ValueError(f"it is a {type(message).__name__}")
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise DecodeError(
            f"The record at {stored.offset!r} ({stored.type_name}) claims to be a state "
            f"message but is not: {exc}"
        ) from exc
    return message


def _records(store: EventStore, after: Position, batch_size: int) -> Iterator[StoredEvent]:
    if isinstance(store, StreamingReader):
        yield from store.iter_events(after, batch_size=batch_size)
        return
    while True:
        page = store.read(after, batch_size)
        if not page.events:
            return
        yield from page.events
        after = page.next


def _parse_snapshot(snapshot_id: str, data: str) -> dict[str, dict[str, Any]]:
    try:
        blob = json.loads(data)
        if not (isinstance(blob, dict) and blob.get("version") == _SNAPSHOT_VERSION):
            raise ValueError(f"version {blob.get('version') if isinstance(blob, dict) else None!r}")
        collections = blob.get("collections")
        if not isinstance(collections, dict) or not all(
            isinstance(entities, dict) for entities in collections.values()
        ):
            raise ValueError("collections must map entity types to objects")
    except ValueError as exc:
        raise DecodeError(
            f"Snapshot {snapshot_id!r} is not a materializer snapshot "
            f"(version {_SNAPSHOT_VERSION}): {exc}."
        ) from exc
    return collections
