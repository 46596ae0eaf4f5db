"""The mapper (_mapper.py): selection by wire name, and registrations checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from eventbus.core import RegistrationError, UpcastRegistrationError
from eventbus.core._mapper import UNCLAIMED, EventMapper

from ._support import V1, V2, OrderPlaced


@dataclass(frozen=True)
class Base:
    __event_name__: ClassVar[str] = "mapper.Base"
    n: int


@dataclass(frozen=True)
class Child(Base):
    __event_name__: ClassVar[str] = "mapper.Child"


def test_a_selection_wants_its_class_and_registered_subclasses_only() -> None:
    mapper = EventMapper()
    mapper.register_all(Base, Child, OrderPlaced)
    selection = mapper.selection(Base, "s")
    assert selection.decoder("mapper.Child") is not None
    assert selection.decoder("mapper.Base") is not None
    assert selection.decoder(OrderPlaced.__module__ + ".OrderPlaced") is None
    assert selection.decoder("nobody") is UNCLAIMED
    assert selection.passed == {"nobody", OrderPlaced.__module__ + ".OrderPlaced"}


def test_registrations_that_change_nothing_passed_are_allowed() -> None:
    mapper = EventMapper()
    mapper.register(V2)
    idle = mapper.selection(V2, "idle")  # has passed nothing: never in the way
    busy = mapper.selection(V2, "busy")
    assert busy.decoder("other.name") is UNCLAIMED
    mapper.register(OrderPlaced)  # not a V2, and not named "other.name"
    mapper.register_upcaster("older.name", "thing.v2", lambda old: old)
    assert idle.passed == set()


def test_a_class_registration_that_would_claim_a_passed_name_is_refused() -> None:
    mapper = EventMapper()
    mapper.register(Base)
    selection = mapper.selection(Base, "ledger")
    assert selection.decoder("mapper.Child") is UNCLAIMED
    with pytest.raises(RegistrationError, match=r"'ledger'.*'mapper\.Child'"):
        mapper.register(Child)
    selection.release()
    mapper.register(Child)  # the subscription stopped: nothing to protect


def test_a_typed_upcaster_that_would_reach_a_passed_name_is_refused() -> None:
    mapper = EventMapper()
    mapper.register(V2)
    selection = mapper.selection(V2, "ledger")
    assert selection.decoder("thing.v1") is UNCLAIMED

    def upcast(old: V1) -> V2:
        return V2(old.n, 0)  # pragma: no cover - refused before it could run

    with pytest.raises(UpcastRegistrationError, match=r"upcaster 'thing\.v1' -> 'thing\.v2'"):
        mapper.register_typed_upcaster(upcast)
    assert mapper.types.codec_for_name("thing.v1") is None  # claimed nothing


def test_an_upcaster_away_from_what_a_subscription_handles_is_refused() -> None:
    mapper = EventMapper()
    mapper.register_all(V1, V2)
    selection = mapper.selection(V1, "v1-ledger")
    # Its own class's name is protected, before any record was seen too.
    with pytest.raises(UpcastRegistrationError, match="would make it skip"):
        mapper.register_upcaster("thing.v1", "thing.v2", lambda old: old)
    # An older name upcast to its class changes nothing it handles.
    mapper.register_upcaster("thing.v0", "thing.v1", lambda old: old)
    assert callable(selection.decoder("thing.v0"))


def test_a_durable_selection_refuses_a_class_whose_events_are_upcast_away() -> None:
    mapper = EventMapper()
    mapper.register_all(V1, V2)
    mapper.register_upcaster("thing.v1", "thing.v2", lambda old: old)
    with pytest.raises(RegistrationError, match=r"subscribe to the class named .thing\.v2."):
        mapper.check_selectable(V1, mapper.register_if_event(V1))
    mapper.check_selectable(V2, mapper.register_if_event(V2))


class Marker:
    """A base class that is never stored: no fields the codec can see."""

    def __init__(self, *args: object) -> None:
        raise NotImplementedError


def test_a_marker_base_class_needs_no_codec_to_select_by() -> None:
    mapper = EventMapper()
    assert mapper.register_if_event(Marker) is None
    mapper.check_selectable(Marker, None)
