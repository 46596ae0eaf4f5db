"""The stored-log half of :class:`EventBus`'s public surface (a facade mixin).

Registering classes and upcasters goes to :mod:`._mapper`; replay to :mod:`._journal`.
Kept apart from ``_bus`` so each facade file stays short; it holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ._handlers import check_event_type
from ._journal import Journal
from ._mapper import EventMapper
from ._store import OLDEST, Position, StoredEvent

__all__ = ["StoredLog"]


class StoredLog:
    """``register``, ``replay``, ``replay_events``, ``decode`` and the upcasters."""

    _mapper: EventMapper
    _journal: Journal

    def register(self, *event_types: type[Any]) -> None:
        """Register event classes so stored events of their wire names can be decoded.

        Subscribing and publishing register a class too; call this for classes that a
        replay must decode but this process never subscribes to or publishes.

        Raises:
            WireNameConflictError: a wire name already belongs to another class.
            RegistrationError: a class that cannot be an event, or one a running durable
                subscription needed for stored events it already passed over.
        """
        # All or nothing: one bad class leaves none of them registered.
        self._mapper.register_all(
            *(check_event_type(t, call="bus.register({name})") for t in event_types)
        )

    def replay(self, after: Position = OLDEST, *, batch_size: int = 500) -> Iterator[StoredEvent]:
        """Iterate the stored events after ``after``, in log order, as they are stored.

        Unknown wire names are included (nothing is decoded). The iteration sees events
        appended while it runs, up to the moment it reaches the end.

        Args:
            after: OLDEST (the whole log), NEWEST (nothing), or an event's offset.
            batch_size: Events fetched per store call.

        Raises:
            BusUsageError: the bus has no store.
            OffsetError: ``after`` is not an offset of this store.
            StoreCorruptError: a stored record cannot be read (its offset is named).
        """
        return self._journal.replay(after, batch_size=batch_size)

    def replay_events(
        self, after: Position = OLDEST, *, batch_size: int = 500
    ) -> Iterator[tuple[Any, StoredEvent]]:
        """Iterate decoded (and upcast) events after ``after`` with their stored form.

        Events whose wire name (after upcasting) no registered class claims are skipped.

        Yields:
            ``(event, stored)`` pairs in log order.

        Raises:
            BusUsageError: the bus has no store.
            DecodeError: a stored event no longer fits its class.
            UpcastFailedError: an upcaster failed; the old schema is never delivered.
        """
        return self._journal.replay_events(after, batch_size=batch_size)

    def decode(self, stored: StoredEvent) -> Any:
        """Decode one stored event into its registered class, upcasting it first.

        Raises:
            DecodeError: no registered class claims its wire name, or it does not fit.
            UpcastFailedError: an upcaster failed.
        """
        return self._mapper.decode(stored)

    def register_upcaster(
        self, from_name: str, to_name: str, upcast: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Register a raw JSON upcaster from one wire name to the next.

        Args:
            from_name: The old wire name (e.g. ``"orders.placed.v1"``).
            to_name: The wire name the returned JSON object has.
            upcast: Takes the old JSON object, returns the new one.

        Raises:
            UpcastRegistrationError: a cycle, a second upcaster for ``from_name``, bad
                names, or a running durable subscription already passed over stored
                events this upcaster would make it handle.
        """
        self._mapper.register_upcaster(from_name, to_name, upcast)

    def upcaster(self, upcast: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register a typed upcaster ``def v1_to_v2(old: V1) -> V2``; usable as a decorator.

        Both classes are registered; the types come from the annotations.

        Raises:
            UpcastRegistrationError: missing annotations, a cycle, a duplicate, or as for
                :meth:`register_upcaster`.
        """
        self._mapper.register_typed_upcaster(upcast)
        return upcast
