"""Wire names and the per-bus type registry: one name ↔ one class, claims are atomic."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

import pytest

from eventbus.core import (
    EventBus,
    MemoryStore,
    RegistrationError,
    UnstableWireNameWarning,
    WireNameConflictError,
    _names,
    event_name,
    wire_name,
)
from eventbus.core._codec import EventCodec, build_codec
from eventbus.core._names import TypeRegistry

from ._support import PlainStore


@dataclass
class Plain:
    x: int


@dataclass
class Declared:
    __event_name__ = "orders.declared"
    x: int


@wire_name("orders.decorated")
@dataclass
class Decorated:
    x: int


@dataclass
class Inheriting(Declared):
    y: int = 0


@wire_name("movies.v1")
class Movie(TypedDict):
    title: str


@dataclass
class SameNameA:
    __event_name__ = "shared"
    a: int


@dataclass
class SameNameB:
    __event_name__ = "shared"
    b: str


@dataclass
class ByProperty:
    x: int

    @property
    def __event_name__(self) -> str:  # an instance-dependent name is refused
        return f"by-{self.x}"


@dataclass
class Blank:
    __event_name__ = " "


@dataclass
class Renamed:
    x: int


class Listener(Protocol):
    def hear(self) -> None: ...


class Abstract(abc.ABC):
    @abc.abstractmethod
    def kind(self) -> str: ...


class Outer:
    @dataclass
    class Inner:
        x: int


def test_default_name_is_module_and_qualname() -> None:
    assert event_name(Plain) == f"{Plain.__module__}.Plain"
    assert event_name(Outer.Inner) == f"{Plain.__module__}.Outer.Inner"


def test_explicit_names_from_attribute_and_decorator() -> None:
    assert event_name(Declared) == "orders.declared"
    assert event_name(Decorated) == "orders.decorated"
    assert event_name(Movie) == "movies.v1"


def test_subclass_does_not_inherit_an_explicit_name() -> None:
    assert event_name(Inheriting) == f"{Inheriting.__module__}.Inheriting"


@pytest.mark.parametrize("value", [Plain(1), "Plain", None, list[int]])
def test_event_name_rejects_non_classes(value: Any) -> None:
    with pytest.raises(RegistrationError, match=r"takes an event class, got .*type\(event\)"):
        event_name(value)


@pytest.mark.parametrize(("cls", "shown"), [(ByProperty, "<property object"), (Blank, "' '")])
def test_declared_name_must_be_a_plain_string(cls: type, shown: str) -> None:
    with pytest.raises(RegistrationError, match="__event_name__ must be a non-empty str") as info:
        event_name(cls)
    assert shown in str(info.value)


@pytest.mark.parametrize("name", ["", " x", "x\n", 5, None])
def test_wire_name_rejects_invalid_names(name: Any) -> None:
    with pytest.raises(RegistrationError, match="A wire name must be a non-empty str"):
        wire_name(name)


def test_wire_name_decorates_classes_only_and_never_renames() -> None:
    with pytest.raises(RegistrationError, match=r"decorates event classes, not"):
        wire_name("x")(Plain(1))  # type: ignore[type-var]
    with pytest.raises(
        RegistrationError, match=r"already declares __event_name__ = 'orders\.declared'"
    ):
        wire_name("other")(Declared)
    assert wire_name("orders.declared")(Declared) is Declared
    assert event_name(Declared) == "orders.declared"


def test_register_returns_one_codec_per_class_named_like_event_name() -> None:
    registry = TypeRegistry()
    codec = registry.register(Decorated)
    assert isinstance(codec, EventCodec)
    assert codec.name == event_name(Decorated) == "orders.decorated"
    assert codec.event_type is Decorated
    assert registry.register(Decorated) is codec
    assert registry.codec_for_name("orders.decorated") is codec
    assert registry.codec_for_type(Decorated) is codec
    assert registry.codec_for_name("nope") is None
    assert registry.codec_for_type(Plain) is None


def test_two_classes_with_one_name_conflict_and_nothing_half_registers() -> None:
    registry = TypeRegistry()
    first = registry.register(SameNameA)
    with pytest.raises(WireNameConflictError) as info:
        registry.register(SameNameB)
    message = str(info.value)
    assert "'shared'" in message
    assert f"{__name__}.SameNameA" in message
    assert f"{__name__}.SameNameB" in message
    assert registry.codec_for_name("shared") is first
    assert registry.codec_for_type(SameNameB) is None
    # Each registry is one bus: another bus may bind the name to the other class.
    assert TypeRegistry().register(SameNameB).event_type is SameNameB


def test_register_all_is_all_or_nothing() -> None:
    registry = TypeRegistry()
    plain, decorated, again = registry.register_all(Plain, Decorated, Plain)
    assert (plain.event_type, decorated.event_type) == (Plain, Decorated)
    assert again is plain
    assert registry.register(Plain) is plain
    with pytest.raises(WireNameConflictError, match=r"'shared' is already bound to .*SameNameA"):
        registry.register_all(Declared, SameNameA, SameNameB)
    with pytest.raises(RegistrationError, match="is a Protocol"):
        registry.register_all(Inheriting, Listener)
    for cls in (Declared, SameNameA, SameNameB, Inheriting):
        assert registry.codec_for_type(cls) is None
    assert registry.codec_for_name("shared") is None
    assert registry.codec_for_name("orders.declared") is None


def test_a_class_renamed_after_registration_conflicts() -> None:
    registry = TypeRegistry()
    codec = registry.register(Renamed)
    try:
        Renamed.__event_name__ = "renamed.later"  # type: ignore[attr-defined]
        with pytest.raises(WireNameConflictError, match="is registered under wire name"):
            registry.register(Renamed)
    finally:
        del Renamed.__event_name__  # type: ignore[attr-defined]
    assert registry.codec_for_type(Renamed) is codec
    assert registry.codec_for_name("renamed.later") is None


@pytest.mark.parametrize(
    ("cls", "message"),
    [(Listener, "is a Protocol"), (Abstract, "is abstract"), (object, "Cannot register")],
)
def test_abstract_protocol_and_unsupported_classes_are_rejected(cls: type, message: str) -> None:
    registry = TypeRegistry()
    with pytest.raises(RegistrationError, match=message):
        registry.register(cls)
    assert registry.codec_for_type(cls) is None
    assert registry.codec_for_name(event_name(cls)) is None


def test_registration_racing_itself_yields_the_winners_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = TypeRegistry()
    real_build: Callable[..., Any] = build_codec
    winners: list[EventCodec[Any]] = []
    calls: list[type] = []

    def build_while_another_registers(cls: type, name: str) -> EventCodec[Any]:
        # Another thread finishes registering the same class while this one compiles.
        calls.append(cls)
        if len(calls) == 1:
            winners.append(registry.register(cls))
        return real_build(cls, name)  # type: ignore[no-any-return]

    monkeypatch.setattr(_names, "build_codec", build_while_another_registers)
    assert registry.register(Plain) is winners[0]
    assert calls == [Plain, Plain]


def test_concurrent_registration_from_threads() -> None:
    registry = TypeRegistry()
    barrier = threading.Barrier(8)
    results: list[object] = []
    lock = threading.Lock()

    def claim(cls: type) -> None:
        barrier.wait()
        try:
            outcome: object = registry.register(cls)
        except WireNameConflictError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [
        threading.Thread(target=claim, args=(SameNameA if i % 2 else SameNameB,)) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codecs = {id(r) for r in results if isinstance(r, EventCodec)}
    conflicts = [r for r in results if isinstance(r, WireNameConflictError)]
    assert len(codecs) == 1
    assert len(conflicts) == 4
    winner = registry.codec_for_name("shared")
    assert winner is not None
    loser = SameNameB if winner.event_type is SameNameA else SameNameA
    assert registry.codec_for_type(loser) is None


# -- classes defined in __main__ ----------------------------------------------------------


def _main_class(*, named: bool = False) -> type[Any]:
    """An event class as a script defines it: its module is ``__main__``."""

    @dataclass(frozen=True)
    class Placed:
        order_id: str

    Placed.__module__ = "__main__"
    if named:
        Placed.__event_name__ = "orders.placed"  # type: ignore[attr-defined]
    return Placed


def test_a_main_class_used_with_a_store_warns_once_per_class() -> None:
    placed = _main_class()
    with EventBus(store=PlainStore()) as bus:
        with pytest.warns(UnstableWireNameWarning) as caught:
            bus.publish(placed("o-1"))
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "wire name '__main__._main_class.<locals>.Placed'" in message
        assert "__event_name__ = 'Placed' in the class body" in message
        assert "@wire_name('Placed')" in message
        assert caught[0].filename == __file__  # points at the caller, not into the bus
        bus.publish(placed("o-2"))  # no second warning (filterwarnings=error would raise)
        bus.subscribe(placed, lambda e: None)
    with EventBus(store=PlainStore()) as other:
        other.publish(placed("o-3"))  # once per class, not once per bus
    assert issubclass(UnstableWireNameWarning, UserWarning)


def test_a_second_main_class_warns_again() -> None:
    for _ in range(2):
        with EventBus(store=PlainStore()) as bus, pytest.warns(UnstableWireNameWarning):
            bus.register(_main_class())


def test_a_named_main_class_and_a_module_class_do_not_warn() -> None:
    with EventBus(store=PlainStore()) as bus:
        bus.publish(_main_class(named=True)("o-1"))
        bus.publish(Plain(1))


def test_a_main_class_on_a_memory_store_or_a_bare_bus_does_not_warn() -> None:
    # A MemoryStore's wire names never outlive the process, so they cannot go stale.
    placed = _main_class()
    with EventBus(store=MemoryStore()) as bus:
        bus.publish(placed("o-1"))
    with EventBus() as bare:
        bare.register(placed)
        bare.publish(placed("o-2"))
