"""The mapper: event class ↔ wire name ↔ codec ↔ upcasters, and selection by wire name.

It turns events into stored JSON and stored records back into typed events, and
decides from a record's wire name alone, *before decoding*, whether a durable
subscription wants it: a record is wanted when its wire name, followed through the
upcaster chains, ends at the wire name of a registered class that is the
subscription's class or a subclass of it (the same rule plain dispatch follows through
the class's MRO).

A :class:`Selection` remembers the wire names its subscription passed over. A later
registration that would have made one of them wanted is refused with an error naming
the subscription, so no stored event is ever skipped silently.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar, cast

from ._codec import EventCodec
from ._exceptions import (
    DecodeError,
    RegistrationError,
    UpcastRegistrationError,
    WireNameConflictError,
)
from ._names import TypeRegistry
from ._store import StoredEvent
from ._upcast import UpcasterRegistry

__all__ = ["UNCLAIMED", "EventMapper", "Selection"]

E = TypeVar("E")
Decoder = Callable[[str], Any]
# Marks a wire name that no registered class claims, even through an upcaster.
UNCLAIMED: Final = cast("Decoder", object())
# Marks, among replay's decoders, a wire name with upcasters: it takes the full path.
_UPCAST: Final = cast("Decoder", object())


class Selection:
    """Which stored records one durable subscription wants, decided by wire name.

    Only the subscription's worker thread calls :meth:`decoder`; registrations on other
    threads are checked against :attr:`passed` under the mapper's lock.
    """

    def __init__(self, mapper: EventMapper, event_type: type[Any], owner: str) -> None:
        self._mapper = mapper
        self.event_type = event_type
        self.owner = owner
        # Wire names this subscription has passed over without decoding (a registration
        # may not make them wanted: see EventMapper._check).
        self.passed: set[str] = set()
        self._versions: tuple[object, object] = (None, None)
        self._decoders: dict[str, Decoder | None] = {}

    def decoder(self, type_name: str) -> Decoder | None:
        """How to decode records of ``type_name``: a function of the JSON text when this
        subscription wants them, None when another class claims them, or UNCLAIMED."""
        mapper = self._mapper
        versions = (mapper.types.version, mapper.upcasters.version)
        if versions != self._versions:
            self._versions, self._decoders = versions, {}
        try:
            return self._decoders[type_name]
        except KeyError:
            pass
        with mapper.lock:
            decoder = mapper.decoder_for(type_name, self.event_type)
            if decoder is None or decoder is UNCLAIMED:
                self.passed.add(type_name)
        self._decoders[type_name] = decoder
        return decoder

    def release(self) -> None:
        """Stop checking registrations against this selection (its subscription stopped)."""
        self._mapper.release(self)

    def wanted_names(self) -> frozenset[str]:
        """The wire names of the registered classes this subscription wants."""
        return frozenset(
            codec.name
            for cls, codec in self._mapper.types.classes.items()
            if issubclass(cls, self.event_type)
        )


class EventMapper:
    """The class, wire name, codec and upcaster tables of one bus.

    Args:
        warn_unstable_names: Warn (:class:`UnstableWireNameWarning`, once per class) when
            a class from ``__main__`` is registered under its default wire name; set by
            a bus whose store keeps events beyond the process.
    """

    def __init__(self, *, warn_unstable_names: bool = False) -> None:
        # One lock for both tables and every selection, so a registration is checked
        # against what running subscriptions passed over and committed in one step.
        self.lock = threading.RLock()
        self.types = TypeRegistry(
            lock=self.lock,
            guard=self._check_classes,
            warn_unstable_names=warn_unstable_names,
        )
        self.upcasters = UpcasterRegistry(self.types, lock=self.lock, guard=self._check)
        # Per-class codec cache for the publish path; the registry stays the authority.
        self._codecs: dict[type[Any], EventCodec[Any]] = {}
        self._selections: weakref.WeakSet[Selection] = weakref.WeakSet()

    # -- registering ------------------------------------------------------------------

    def register(self, cls: type[E]) -> EventCodec[E]:
        """Claim ``cls``'s wire name; see :meth:`TypeRegistry.register`."""
        return self.types.register(cls)

    def register_all(self, *classes: type) -> list[EventCodec[Any]]:
        """Register several classes, all or none; see :meth:`TypeRegistry.register_all`."""
        return self.types.register_all(*classes)

    def register_if_event(self, cls: type[Any]) -> EventCodec[Any] | None:
        """Register a class subscribed to, if it can be stored itself; return its codec.

        A base class that is never stored (a marker, an abstract base) only matches its
        subclasses, so it need not be encodable: then None.

        Raises:
            WireNameConflictError: its wire name is bound to another class.
        """
        try:
            return self.types.register(cls)
        except WireNameConflictError:
            raise
        except RegistrationError:
            return None

    def check_selectable(self, cls: type[Any], codec: EventCodec[Any] | None) -> None:
        """Refuse a durable subscription to a class whose stored events are upcast away.

        Raises:
            RegistrationError: the class's wire name is the source of an upcaster.
        """
        if codec is None:
            return
        target = self.upcasters.final_name(codec.name)
        if target != codec.name:
            raise RegistrationError(
                f"Stored events named {codec.name!r} ({cls.__qualname__}) are upcast to "
                f"{target!r} when read, so a durable subscription to {cls.__qualname__} "
                f"would never receive one; subscribe to the class named {target!r}."
            )

    def codec_for_event(self, cls: type[E]) -> EventCodec[E]:
        """The codec that encodes instances of ``cls``, registering it the first time."""
        codec = self._codecs.get(cls)
        if codec is None:
            codec = self._codecs[cls] = self.types.register(cls)
        return codec

    def register_upcaster(
        self, from_name: str, to_name: str, upcast: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Register a raw JSON upcaster; see :meth:`UpcasterRegistry.register_raw`."""
        self.upcasters.register_raw(from_name, to_name, upcast)

    def register_typed_upcaster(self, upcast: Callable[[Any], Any]) -> None:
        """Register a typed upcaster; see :meth:`UpcasterRegistry.register_typed`."""
        self.upcasters.register_typed(upcast)

    def _check_classes(self, added: Sequence[tuple[type, str]]) -> None:
        self._check(added, None)

    def _check(self, added: Sequence[tuple[type, str]], edge: tuple[str, str] | None) -> None:
        """Refuse a registration that would change what a running subscription selects.

        It would start handling records it already passed over (so out of order), or
        stop handling records it was handling (so skip them silently).
        """
        what = (
            f"the upcaster {edge[0]!r} -> {edge[1]!r}"
            if edge is not None
            else ", ".join(cls.__qualname__ for cls, _ in added)
        )
        error = RegistrationError if edge is None else UpcastRegistrationError
        for selection in list(self._selections):
            wanted = set(selection.wanted_names())
            wanted.update(name for cls, name in added if issubclass(cls, selection.event_type))
            final = self.upcasters.final_name
            for name in sorted(selection.passed):
                if final(name, extra=edge) in wanted:
                    raise error(
                        f"Cannot register {what}: durable subscription {selection.owner!r} "
                        f"already passed over stored events named {name!r}, which this "
                        "registration would make it handle, out of order. Register classes "
                        "and upcasters before subscribe_durable() (docs/schema-evolution.md)."
                    )
            # An upcaster can only start where a chain ends, so guarding the names it
            # wants guards every name it decodes through a chain too.
            for name in sorted(selection.wanted_names()):
                if final(name, extra=edge) not in wanted:
                    raise error(
                        f"Cannot register {what}: durable subscription {selection.owner!r} "
                        f"handles stored events named {name!r}, which this registration "
                        "would make it skip. Stop the subscription first, or subscribe it to "
                        "the class the upcaster produces (docs/schema-evolution.md)."
                    )

    # -- selecting and decoding -------------------------------------------------------

    def selection(self, event_type: type[Any], owner: str) -> Selection:
        """A new selection for a durable subscription to ``event_type`` named ``owner``."""
        selection = Selection(self, event_type, owner)
        with self.lock:
            self._selections.add(selection)
        return selection

    def release(self, selection: Selection) -> None:
        """Stop checking registrations against a subscription that stopped."""
        with self.lock:
            self._selections.discard(selection)

    def decoder_for(self, type_name: str, event_type: type[Any] = object) -> Decoder | None:
        """How records of ``type_name`` decode into ``event_type`` (or a subclass).

        Returns:
            A function of the JSON text; None when the name ends at a class that is not
            ``event_type`` or a subclass; UNCLAIMED when no class claims it.
        """
        final = self.upcasters.final_name(type_name)
        codec = self.types.codec_for_name(final)
        if codec is None:
            return UNCLAIMED
        if not issubclass(codec.event_type, event_type):
            return None
        if final == type_name:
            return codec.decode
        apply = self.upcasters.apply

        def upcast_and_decode(data: str) -> Any:
            name, upcast = apply(type_name, data)
            target = self.types.codec_for_name(name) or codec
            return target.decode(upcast)

        return upcast_and_decode

    def decode(self, stored: StoredEvent) -> Any:
        """Decode one stored record into its registered class, upcasting it first.

        Raises:
            DecodeError: no registered class claims its wire name, or it does not fit.
            UpcastFailedError: an upcaster failed.
        """
        decoder = self.decoder_for(stored.type_name)
        if decoder is UNCLAIMED or decoder is None:
            raise DecodeError(
                f"No registered class has the wire name "
                f"{self.upcasters.final_name(stored.type_name)!r} (event {stored.event_id}); "
                "register it with bus.register(EventClass)."
            )
        return decoder(stored.data)

    def decode_all(self, stored_events: Iterable[StoredEvent]) -> Iterator[tuple[Any, StoredEvent]]:
        """Decode records in order, skipping those whose wire name no class claims."""
        types = self.types
        upcasters = self.upcasters
        upcast = upcasters.apply
        codec_for_name = types.codec_for_name
        # Each wire name's decoder is looked up once, until either table changes
        # (a class or an upcaster registered mid-replay applies from the next event).
        types_version: object = None
        upcasters_version: object = None
        decoders: dict[str, Decoder | None] = {}
        for stored in stored_events:
            if types.version is not types_version or upcasters.version is not upcasters_version:
                types_version, upcasters_version = types.version, upcasters.version
                decoders = {}
            try:
                decode = decoders[stored.type_name]
            except KeyError:
                decode = decoders[stored.type_name] = self._replay_decoder(stored.type_name)
            if decode is _UPCAST:
                type_name, data = upcast(stored.type_name, stored.data)
                codec = codec_for_name(type_name)
                if codec is not None:
                    yield codec.decode(data), stored
            elif decode is not None:
                yield decode(stored.data), stored

    def _replay_decoder(self, type_name: str) -> Decoder | None:
        if self.upcasters.final_name(type_name) != type_name:
            return _UPCAST
        codec = self.types.codec_for_name(type_name)
        return None if codec is None else codec.decode
