"""Upcasters: chains, validation at registration, failures never deliver the old schema."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from eventbus.core import (
    DecodeError,
    EncodeError,
    RegistrationError,
    UpcastFailedError,
    UpcastRegistrationError,
    WireNameConflictError,
    event_name,
    wire_name,
)
from eventbus.core._names import TypeRegistry
from eventbus.core._upcast import UpcasterRegistry


@wire_name("order.v1")
@dataclass
class V1:
    amount: int


@wire_name("order.v2")
@dataclass
class V2:
    amount: int
    currency: str


@wire_name("order.v3")
@dataclass
class V3:
    cents: int
    currency: str


@wire_name("order.v4")
@dataclass
class V4:
    total: str


@wire_name("order.v1")
@dataclass
class Impostor:
    other: int


class Shape(Protocol):
    def area(self) -> float: ...


def v1_to_v2(old: V1) -> V2:
    return V2(old.amount, "EUR")


def v2_to_v3(old: V2) -> V3:
    return V3(old.amount * 100, old.currency)


def registries() -> tuple[TypeRegistry, UpcasterRegistry]:
    types = TypeRegistry()
    return types, UpcasterRegistry(types)


def add_field(name: str, value: Any) -> Any:
    def upcast(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, name: value}

    return upcast


# ---------------------------------------------------------------- raw upcasters


def test_no_upcaster_returns_the_input_unchanged() -> None:
    _, upcasters = registries()
    assert not upcasters
    data = '{"a":1}'
    name, out = upcasters.apply("x", data)
    assert name == "x"
    assert out is data
    assert upcasters.final_name("x") == "x"


def test_raw_chain_applies_in_order_whatever_the_registration_order() -> None:
    _, upcasters = registries()
    calls: list[str] = []

    def second(data: dict[str, Any]) -> dict[str, Any]:
        calls.append("v2->v3")
        return {"cents": data["amount"] * 100, "currency": data["currency"]}

    def first(data: dict[str, Any]) -> dict[str, Any]:
        calls.append("v1->v2")
        return {**data, "currency": "EUR"}

    upcasters.register_raw("v2", "v3", second)
    upcasters.register_raw("v1", "v2", first)
    assert upcasters
    name, data = upcasters.apply("v1", '{"amount":5}')
    assert (name, json.loads(data)) == ("v3", {"cents": 500, "currency": "EUR"})
    assert calls == ["v1->v2", "v2->v3"]
    assert upcasters.apply("v2", '{"amount":1,"currency":"é"}') == (
        "v3",
        '{"cents":100,"currency":"é"}',
    )
    assert upcasters.final_name("v1") == "v3"
    assert upcasters.final_name("v3") == "v3"


@pytest.mark.parametrize(
    ("from_name", "to_name", "fn", "message"),
    [
        ("", "b", add_field("x", 1), "from_name must be a non-empty wire name, got ''"),
        ("a", "", add_field("x", 1), "to_name must be a non-empty wire name, got ''"),
        (None, "b", add_field("x", 1), "from_name must be a non-empty wire name, got None"),
        ("a", 5, add_field("x", 1), "to_name must be a non-empty wire name, got 5"),
        ("a", "b", "not callable", "must be callable, got 'not callable'"),
        ("a", "a", add_field("x", 1), "from 'a' to itself"),
    ],
)
def test_raw_registration_rejects_bad_arguments(
    from_name: Any, to_name: Any, fn: Any, message: str
) -> None:
    _, upcasters = registries()
    with pytest.raises(UpcastRegistrationError) as info:
        upcasters.register_raw(from_name, to_name, fn)
    assert message in str(info.value)
    assert not upcasters


def test_second_upcaster_for_one_source_is_rejected() -> None:
    _, upcasters = registries()
    upcasters.register_raw("a", "b", add_field("x", 1))
    with pytest.raises(UpcastRegistrationError, match="'a' already has an upcaster \\(to 'b'"):
        upcasters.register_raw("a", "c", add_field("y", 2))
    assert upcasters.apply("a", "{}") == ("b", '{"x":1}')


@pytest.mark.parametrize(
    ("edges", "closing", "cycle"),
    [
        ([("a", "b")], ("b", "a"), "b -> a -> b"),
        ([("a", "b"), ("b", "c")], ("c", "a"), "c -> a -> b -> c"),
    ],
)
def test_cycles_are_rejected_at_registration(
    edges: list[tuple[str, str]], closing: tuple[str, str], cycle: str
) -> None:
    _, upcasters = registries()
    for source, target in edges:
        upcasters.register_raw(source, target, add_field(source, 1))
    with pytest.raises(UpcastRegistrationError, match="would close the cycle") as info:
        upcasters.register_raw(*closing, add_field("z", 1))
    assert cycle in str(info.value)
    assert upcasters.final_name(closing[0]) == closing[0]


def test_a_chain_into_an_existing_chain_is_not_a_cycle() -> None:
    _, upcasters = registries()
    upcasters.register_raw("b", "c", add_field("c", 1))
    upcasters.register_raw("a", "b", add_field("b", 1))
    upcasters.register_raw("z", "b", add_field("z", 1))
    assert upcasters.apply("z", "{}") == ("c", '{"z":1,"c":1}')


def _raises(exc: Exception) -> Any:
    def upcast(data: dict[str, Any]) -> dict[str, Any]:
        raise exc

    return upcast


@pytest.mark.parametrize(
    ("fn", "data", "message", "cause"),
    [
        (_raises(KeyError("amount")), "{}", "raised KeyError('amount')", KeyError),
        (lambda data: [data], "{}", "returned [{}], not a dict", None),
        (lambda data: None, "{}", "returned None, not a dict", None),
        (lambda data: {"x": object()}, "{}", "returned a dict that is not JSON", TypeError),
        (lambda data: {"x": float("nan")}, "{}", "returned a dict that is not JSON", ValueError),
        (add_field("x", 1), "{corrupt", "the stored data is not valid JSON", ValueError),
        (add_field("x", 1), "[1]", "the stored data is list, not a JSON object", None),
    ],
)
def test_failed_raw_upcast_raises_and_never_returns_the_old_schema(
    fn: Any, data: str, message: str, cause: type[BaseException] | None
) -> None:
    _, upcasters = registries()
    upcasters.register_raw("v1", "v2", fn)
    with pytest.raises(UpcastFailedError, match="Upcasting 'v1' to 'v2' failed") as info:
        upcasters.apply("v1", data)
    assert message in str(info.value)
    if cause is None:
        assert info.value.__cause__ is None
    else:
        assert isinstance(info.value.__cause__, cause)


def test_upcaster_may_register_upcasters_while_running() -> None:
    _, upcasters = registries()
    done = threading.Event()

    def reentrant(data: dict[str, Any]) -> dict[str, Any]:
        upcasters.register_raw("late", "later", add_field("late", 1))
        return data

    upcasters.register_raw("v1", "v2", reentrant)

    def run() -> None:
        upcasters.apply("v1", "{}")
        done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done.is_set(), "apply() deadlocked when the upcaster registered another"
    assert upcasters.apply("late", "{}") == ("later", '{"late":1}')


def test_concurrent_registrations_keep_one_upcaster_per_source() -> None:
    _, upcasters = registries()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def register(index: int) -> None:
        barrier.wait()
        try:
            upcasters.register_raw("src", f"dst{index}", add_field("by", index))
            outcome = "ok"
        except UpcastRegistrationError:
            outcome = "rejected"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] + ["rejected"] * 7
    name, data = upcasters.apply("src", "{}")
    assert name == f"dst{json.loads(data)['by']}"


# ---------------------------------------------------------------- typed upcasters


def test_typed_chain_from_annotations_registers_both_classes() -> None:
    types, upcasters = registries()
    upcasters.register_typed(v2_to_v3)
    upcasters.register_typed(v1_to_v2)
    v1_codec = types.codec_for_type(V1)
    v3_codec = types.codec_for_type(V3)
    assert v1_codec is not None
    assert v3_codec is not None
    name, data = upcasters.apply("order.v1", v1_codec.encode(V1(7)))
    assert name == "order.v3"
    assert v3_codec.decode(data) == V3(700, "EUR")


def test_typed_with_explicit_types_and_mixed_with_raw() -> None:
    types, upcasters = registries()
    upcasters.register_typed(lambda old: V2(old.amount, "USD"), from_type=V1, to_type=V2)
    upcasters.register_raw(
        "order.v2", "order.v3", lambda d: {"cents": d["amount"], "currency": d["currency"]}
    )
    assert upcasters.apply("order.v1", '{"amount":3}') == (
        "order.v3",
        '{"cents":3,"currency":"USD"}',
    )
    assert types.codec_for_name("order.v2") is not None


def _no_return(old: V1):  # type: ignore[no-untyped-def]
    return old


def _dict_source(old: dict[str, Any]) -> V2:
    return V2(1, "x")


def _two_params(old: V1, extra: int) -> V2:
    return V2(old.amount, "x")


def _unresolvable(old: Missing) -> V2:  # type: ignore[name-defined]  # noqa: F821
    return V2(1, "x")


class _OddSignature:
    __signature__ = "not a signature"

    def __call__(self, old: V1) -> V2:
        return V2(old.amount, "x")


def _to_shape(old: V1) -> Shape:
    raise AssertionError


def _to_impostor(old: V4) -> Impostor:
    raise AssertionError


def _to_self(old: V1) -> V1:
    return old


@pytest.mark.parametrize(
    ("fn", "message", "cause"),
    [
        (lambda old: old, "The source of typed upcaster .* must be an event class, got None", None),
        (_no_return, "The target of typed upcaster .* must be an event class, got None", None),
        (_dict_source, r"The source .* got dict\[str, typing.Any\]", None),
        (_two_params, "takes exactly one parameter, the old event; .* takes 2", None),
        (_unresolvable, "could not be read .*NameError", NameError),
        (_OddSignature(), "could not be read", (TypeError, ValueError)),
        ("nope", "must be callable, got 'nope'", None),
        (_to_shape, "not a usable event class: .*is a Protocol", RegistrationError),
        (_to_self, "from 'order.v1' to itself", None),
    ],
)
def test_typed_registration_rejects_bad_upcasters(
    fn: Any, message: str, cause: type[BaseException] | tuple[type[BaseException], ...] | None
) -> None:
    types, upcasters = registries()
    with pytest.raises(UpcastRegistrationError, match=message) as info:
        upcasters.register_typed(fn)
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)
    assert not upcasters
    # A rejected upcaster claims no wire name, not even for its valid source class.
    assert types.codec_for_type(V1) is None


def test_typed_endpoint_with_a_conflicting_wire_name_is_rejected() -> None:
    types, upcasters = registries()
    types.register(V1)
    with pytest.raises(UpcastRegistrationError, match="not a usable event class") as info:
        upcasters.register_typed(_to_impostor)
    assert isinstance(info.value.__cause__, WireNameConflictError)
    assert not upcasters


def test_rejected_typed_upcaster_claims_no_names() -> None:
    types, upcasters = registries()
    upcasters.register_raw("order.v1", "order.v2", add_field("currency", "EUR"))

    def v1_to_v4(old: V1) -> V4:
        return V4(str(old.amount))

    with pytest.raises(UpcastRegistrationError, match="already has an upcaster"):
        upcasters.register_typed(v1_to_v4)
    assert types.codec_for_type(V4) is None
    assert types.codec_for_type(V1) is None


def _returns_old(old: V1) -> V2:
    return old  # type: ignore[return-value]


def _returns_dict(old: V1) -> V2:
    return {"amount": 1, "currency": "x"}  # type: ignore[return-value]


def _typed_raises(old: V1) -> V2:
    raise ValueError("no currency")


@pytest.mark.parametrize(
    ("fn", "data", "message", "cause"),
    [
        (
            _returns_old,
            '{"amount":1}',
            "returned V1(amount=1), which is not a valid target",
            EncodeError,
        ),
        (_returns_dict, '{"amount":1}', "which is not a valid target", EncodeError),
        (_typed_raises, '{"amount":1}', "raised ValueError('no currency')", ValueError),
        (v1_to_v2, '{"amount":"1"}', "the stored data did not decode", DecodeError),
        (v1_to_v2, "{corrupt", "the stored data did not decode", DecodeError),
    ],
)
def test_failed_typed_upcast_raises_with_cause(
    fn: Any, data: str, message: str, cause: type[BaseException]
) -> None:
    _, upcasters = registries()
    upcasters.register_typed(fn)
    with pytest.raises(
        UpcastFailedError, match=r"Upcasting 'order\.v1' to 'order\.v2' failed"
    ) as info:
        upcasters.apply(event_name(V1), data)
    assert message in str(info.value)
    assert isinstance(info.value.__cause__, cause)
