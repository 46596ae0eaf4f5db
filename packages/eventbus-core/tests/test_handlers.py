"""Handler inspection, event-type inference and the Subscription handle (_handlers.py)."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from eventbus import core
from eventbus.core import Envelope, RegistrationError, Subscription
from eventbus.core._handlers import check_event_type, infer_event_type, inspect_handler


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str


class Shape(Protocol):
    def area(self) -> float: ...


class Meta(type):
    pass


def _subscription(**overrides: Any) -> tuple[Subscription[OrderPlaced], list[Subscription[Any]]]:
    removed: list[Subscription[Any]] = []

    def handler(event: OrderPlaced) -> str:
        return f"handled {event.order_id}"

    options: dict[str, Any] = {
        "event_type": OrderPlaced,
        "handler": handler,
        "is_async": False,
        "wants_envelope": False,
        "once": False,
        "where": None,
        "sequential": False,
        "sequence": 1,
        "unsubscribe": removed.append,
    }
    options.update(overrides)
    return Subscription(**options), removed


# -- check_event_type -------------------------------------------------------------------


def test_check_event_type_accepts_classes_and_object() -> None:
    assert check_event_type(OrderPlaced) is OrderPlaced
    assert check_event_type(object) is object
    assert check_event_type(int) is int


def test_check_event_type_rejects_an_instance_and_shows_it() -> None:
    with pytest.raises(
        RegistrationError, match=r"must be a class, got OrderPlaced\(order_id='x'\)"
    ):
        check_event_type(OrderPlaced("x"))


def test_check_event_type_rejects_a_protocol() -> None:
    with pytest.raises(RegistrationError, match=r"Shape is a typing\.Protocol"):
        check_event_type(Shape)


def test_a_concrete_subclass_of_a_protocol_is_an_ordinary_class() -> None:
    class Square(Shape):
        def area(self) -> float:
            return 1.0

    assert check_event_type(Square) is Square


@pytest.mark.parametrize("bad", [typing.Any, type(None), type, Meta])
def test_check_event_type_rejects_types_no_event_can_have(bad: Any) -> None:
    with pytest.raises(RegistrationError, match="cannot be an event type") as info:
        check_event_type(bad)
    assert repr(bad) in str(info.value)


# -- inspect_handler --------------------------------------------------------------------


def test_inspect_handler_sync_function_without_envelope() -> None:
    def handler(event: OrderPlaced) -> None:
        pass

    assert inspect_handler(handler) == (False, False)


def test_inspect_handler_coroutine_function_with_envelope() -> None:
    async def handler(event: OrderPlaced, envelope: object) -> None:
        pass

    assert inspect_handler(handler) == (True, True)


def test_inspect_handler_required_second_parameter_means_envelope() -> None:
    def handler(event: OrderPlaced, envelope):  # type: ignore[no-untyped-def]
        pass

    assert inspect_handler(handler) == (False, True)


def test_inspect_handler_defaulted_unannotated_second_parameter_is_not_the_envelope() -> None:
    handlers = [lambda e, name=name: name for name in ("a", "b")]
    assert [inspect_handler(h) for h in handlers] == [(False, False), (False, False)]

    def handler(event: OrderPlaced, label: object = None) -> None:
        pass

    assert inspect_handler(handler) == (False, False)


def test_inspect_handler_second_parameter_annotated_envelope_means_envelope() -> None:
    def required(event: OrderPlaced, envelope: Envelope) -> None:
        pass

    def defaulted(event: OrderPlaced, envelope: Envelope | None = None) -> None:
        pass

    def optional(event: OrderPlaced, envelope: typing.Optional[Envelope] = None) -> None:  # noqa: UP045
        pass

    def qualified(event: OrderPlaced, envelope: core.Envelope | None = None) -> None:
        pass

    for handler in (required, defaulted, optional, qualified):
        assert inspect_handler(handler) == (False, True), handler


def test_inspect_handler_reads_an_unresolvable_envelope_annotation_by_name() -> None:
    def handler(event: OrderPlaced, envelope: Envelope | Missing = None) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    def other(event: OrderPlaced, note: Missing = None) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    assert inspect_handler(handler) == (False, True)
    assert inspect_handler(other) == (False, False)


def test_inspect_handler_var_positional_wants_the_envelope() -> None:
    def only_args(*args: object) -> None:
        pass

    def event_and_args(event: object, *rest: object) -> None:
        pass

    assert inspect_handler(only_args) == (False, True)
    assert inspect_handler(event_and_args) == (False, True)


def test_inspect_handler_ignores_keyword_only_parameters() -> None:
    def handler(event: OrderPlaced, *, verbose: bool = False) -> None:
        pass

    assert inspect_handler(handler) == (False, False)


def test_inspect_handler_bound_methods() -> None:
    class Service:
        def on_order(self, event: OrderPlaced) -> None:
            pass

        async def on_order_async(self, event: OrderPlaced, envelope: object) -> None:
            pass

    service = Service()
    assert inspect_handler(service.on_order) == (False, False)
    assert inspect_handler(service.on_order_async) == (True, True)


def test_inspect_handler_callable_instances() -> None:
    class SyncHandler:
        def __call__(self, event: OrderPlaced) -> None:
            pass

    class AsyncHandler:
        async def __call__(self, event: OrderPlaced) -> None:
            pass

    assert inspect_handler(SyncHandler()) == (False, False)
    assert inspect_handler(AsyncHandler()) == (True, False)


def test_inspect_handler_rejects_non_callables() -> None:
    with pytest.raises(RegistrationError, match="A handler must be callable, got 42"):
        inspect_handler(42)


def test_inspect_handler_rejects_a_class() -> None:
    with pytest.raises(RegistrationError, match="got the class OrderPlaced"):
        inspect_handler(OrderPlaced)


def test_inspect_handler_rejects_a_handler_without_positional_parameters() -> None:
    def no_args() -> None:
        pass

    def keyword_only(*, event: OrderPlaced) -> None:
        pass

    with pytest.raises(RegistrationError, match="no_args takes no positional argument"):
        inspect_handler(no_args)
    with pytest.raises(RegistrationError, match="keyword_only takes no positional argument"):
        inspect_handler(keyword_only)


def test_inspect_handler_rejects_more_than_two_required_arguments() -> None:
    def three(event: OrderPlaced, envelope: object, extra: object) -> None:
        pass

    with pytest.raises(RegistrationError, match="requires 3 positional arguments"):
        inspect_handler(three)


def test_inspect_handler_reports_an_unreadable_signature() -> None:
    class Weird:
        __signature__ = "not a signature"

        def __call__(self, event: OrderPlaced) -> None:
            pass

    weird = Weird()
    with pytest.raises(RegistrationError, match="Cannot read the signature of handler") as info:
        inspect_handler(weird)
    # TypeError on 3.11, ValueError from 3.12: both are what inspect.signature raises.
    assert isinstance(info.value.__cause__, (TypeError, ValueError))


def test_inspect_handler_names_a_nameless_callable_by_repr() -> None:
    class NoArgs:
        def __call__(self) -> None:
            pass

        def __repr__(self) -> str:
            return "<NoArgs handler>"

    with pytest.raises(RegistrationError, match="<NoArgs handler> takes no positional argument"):
        inspect_handler(NoArgs())


# -- infer_event_type -------------------------------------------------------------------


def test_infer_event_type_from_a_function_annotation() -> None:
    def handler(event: OrderPlaced) -> None:
        pass

    assert infer_event_type(handler) is OrderPlaced


def test_infer_event_type_from_a_bound_method_skips_self() -> None:
    class Service:
        def on_order(self, event: OrderPlaced) -> None:
            pass

    assert infer_event_type(Service().on_order) is OrderPlaced


def test_infer_event_type_from_a_callable_instance() -> None:
    class Handler:
        def __call__(self, event: OrderPlaced, envelope: object = None) -> None:
            pass

    assert infer_event_type(Handler()) is OrderPlaced


def test_infer_event_type_without_annotation_says_how_to_fix_it() -> None:
    def handler(event):  # no annotation, on purpose
        pass

    with pytest.raises(
        RegistrationError, match="first parameter 'event' has no annotation"
    ) as info:
        infer_event_type(handler)
    assert "bus.subscribe(OrderPlaced, handler)" in str(info.value)


def test_infer_event_type_rejects_a_union() -> None:
    def handler(event: OrderPlaced | None) -> None:
        pass

    with pytest.raises(RegistrationError, match="is not a class"):
        infer_event_type(handler)


def test_infer_event_type_rejects_any() -> None:
    def handler(event: Any) -> None:
        pass

    with pytest.raises(RegistrationError, match="cannot be an event type"):
        infer_event_type(handler)


def test_infer_event_type_rejects_a_protocol_annotation() -> None:
    def handler(event: Shape) -> None:
        pass

    with pytest.raises(RegistrationError, match=r"typing\.Protocol"):
        infer_event_type(handler)


def test_infer_event_type_reports_an_unresolvable_annotation() -> None:
    def handler(event: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(RegistrationError, match="Cannot resolve the annotations") as info:
        infer_event_type(handler)
    assert isinstance(info.value.__cause__, NameError)


# -- Subscription -----------------------------------------------------------------------


def test_subscription_calls_the_handler_directly() -> None:
    subscription, _ = _subscription()
    assert subscription(OrderPlaced("o-1")) == "handled o-1"


def test_subscription_repr_shows_handler_type_and_state() -> None:
    subscription, _ = _subscription()
    assert repr(subscription) == (
        "<Subscription _subscription.<locals>.handler to OrderPlaced (active)>"
    )
    subscription.active = False
    assert repr(subscription).endswith("(inactive)>")


def test_unsubscribe_calls_back_once_and_is_idempotent() -> None:
    removed: list[Subscription[Any]] = []

    def remove(sub: Subscription[Any]) -> None:
        removed.append(sub)
        sub.active = False

    subscription, _ = _subscription(unsubscribe=remove)
    assert subscription.unsubscribe() is True
    assert subscription.unsubscribe() is False
    assert removed == [subscription]


def test_claim_is_granted_exactly_once_until_released() -> None:
    subscription, _ = _subscription(once=True)
    assert subscription.claim() is True
    assert subscription.claim() is False
    subscription.release_claim()
    assert subscription.claim() is True


def test_claim_is_refused_for_an_inactive_subscription() -> None:
    subscription, _ = _subscription(once=True)
    subscription.active = False
    assert subscription.claim() is False


def test_subscription_exposes_its_options() -> None:
    def where(event: OrderPlaced) -> bool:
        return True

    subscription, _ = _subscription(once=True, where=where, sequential=True, sequence=7)
    assert subscription.event_type is OrderPlaced
    assert (subscription.once, subscription.where, subscription.sequential) == (True, where, True)
    assert subscription.sequence == 7
    assert inspect.isfunction(subscription.handler)
