"""Subscriptions: what a handler is, what it wants, and how it is matched to events.

Everything here is I/O-free and runs at subscribe time, never per publish: the
event type is read from the annotation once, the handler's arity (does it want
the envelope?) and kind (coroutine function or not) are decided once.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._envelope import Envelope
from ._exceptions import RegistrationError

__all__ = [
    "Handler",
    "Subscription",
    "check_event_type",
    "infer_event_type",
    "inspect_handler",
    "is_event_instance",
]

E = TypeVar("E")
Handler = Callable[..., Any]
"""A sync function or coroutine function taking the event, and optionally the envelope."""


def is_event_instance(value: object) -> bool:
    """Whether ``value`` looks like an event passed where its class was expected.

    Instances of builtins (``42``, ``"OrderPlaced"``) and of typing constructs
    (``list[int]``) are not: only an object of a user-defined class is.
    """
    return not isinstance(value, type) and type(value).__module__ not in _NOT_EVENT_MODULES


_NOT_EVENT_MODULES = frozenset({"builtins", "types", "typing", "typing_extensions"})


def check_event_type(
    event_type: object, *, call: str = "bus.subscribe({name}, handler)"
) -> type[Any]:
    """Return ``event_type`` if it can be subscribed to, else raise RegistrationError.

    Args:
        event_type: What the caller passed as the event class.
        call: The correct call, shown in the error, with ``{name}`` standing for the
            class (so an event instance is answered with its own class's name).
    """
    if is_event_instance(event_type):
        name = type(event_type).__qualname__
        raise RegistrationError(
            f"An event type must be a class, got {event_type!r}, an instance of {name}; "
            f"pass the class itself, as in {call.replace('{name}', name)}."
        )
    if not isinstance(event_type, type):
        raise RegistrationError(
            f"An event type must be a class, got {event_type!r}; "
            f"pass the class itself, as in {call.replace('{name}', 'OrderPlaced')}."
        )
    if event_type is typing.Any or event_type is type(None) or issubclass(event_type, type):
        # None and classes are refused by publish, and Any is in no event's MRO: a
        # handler for any of them could never run (or would bypass those checks).
        raise RegistrationError(
            f"{event_type!r} cannot be an event type; events are instances of ordinary "
            "classes. Subscribe to the event class, or to object to receive every event."
        )
    if getattr(event_type, "_is_protocol", False):
        # Events are routed by their class's MRO; a Protocol is never in it, so the
        # subscription could never fire.
        raise RegistrationError(
            f"{event_type.__qualname__} is a typing.Protocol; events are matched by class "
            "inheritance, so a handler for a Protocol would never run. Subscribe to a class."
        )
    return event_type


def _positional_parameters(handler: Handler) -> list[inspect.Parameter]:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise RegistrationError(
            f"Cannot read the signature of handler {handler!r}; pass a plain function, "
            "method or coroutine function."
        ) from exc
    return [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]


def inspect_handler(handler: object) -> tuple[bool, bool]:
    """Validate a handler and return ``(is_coroutine_function, wants_envelope)``.

    Raises:
        RegistrationError: ``handler`` is not callable, or takes no event argument.
    """
    if not callable(handler):
        raise RegistrationError(
            f"A handler must be callable, got {handler!r}; "
            "pass a function such as def on_order(event: OrderPlaced) -> None."
        )
    if isinstance(handler, type):
        raise RegistrationError(
            f"A handler must be a function, got the class {handler.__qualname__}; "
            "to subscribe to events of that class use bus.subscribe(EventClass, handler)."
        )
    params = _positional_parameters(handler)
    if not params:
        raise RegistrationError(
            f"Handler {_name(handler)} takes no positional argument; "
            "a handler receives the event as its first argument."
        )
    required = [p for p in params if p.default is p.empty and p.kind != p.VAR_POSITIONAL]
    if len(required) > 2:
        raise RegistrationError(
            f"Handler {_name(handler)} requires {len(required)} positional arguments; "
            "a handler takes the event and, optionally, the envelope."
        )
    wants_envelope = _wants_envelope(handler, params)
    is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an instance with async __call__
    )
    return is_async, wants_envelope


def _wants_envelope(handler: Handler, params: list[inspect.Parameter]) -> bool:
    """A second parameter wants the envelope if it is required, ``*args``, or annotated so.

    A defaulted, unannotated one does not: ``lambda e, name=name: ...`` (a loop's
    closure) keeps its default.
    """
    if params[0].kind == params[0].VAR_POSITIONAL:
        return True
    if len(params) < 2:
        return False
    second = params[1]
    if second.kind == second.VAR_POSITIONAL or second.default is second.empty:
        return True
    if second.annotation is second.empty:
        return False
    annotation: object = second.annotation
    # Unresolvable annotations (a name missing at runtime): the written name is read.
    with contextlib.suppress(Exception):
        annotation = typing.get_type_hints(_annotated(handler)).get(second.name, annotation)
    return _names_envelope(annotation)


def _names_envelope(annotation: object) -> bool:
    """Whether an annotation is ``Envelope``, or a union or string that names it."""
    if annotation is Envelope:
        return True
    if isinstance(annotation, str):
        return re.search(r"\bEnvelope\b", annotation) is not None
    return any(_names_envelope(arg) for arg in typing.get_args(annotation))


def _annotated(handler: Handler) -> object:
    """The object carrying a handler's annotations: a callable instance's ``__call__``."""
    if inspect.isfunction(handler) or inspect.ismethod(handler):
        return handler
    return getattr(handler, "__call__")  # noqa: B004, B009 - mypy rejects handler.__call__


def infer_event_type(handler: Handler) -> type[Any]:
    """Read the event type from the annotation of the handler's first parameter.

    Raises:
        RegistrationError: the first parameter has no usable class annotation.
    """
    params = _positional_parameters(handler)
    first = params[0]
    try:
        hints = typing.get_type_hints(_annotated(handler))
    except Exception as exc:
        raise RegistrationError(
            f"Cannot resolve the annotations of handler {_name(handler)} ({exc}); "
            "pass the event type explicitly: bus.subscribe(EventType, handler)."
        ) from exc
    annotation = hints.get(first.name)
    if annotation is None:
        raise RegistrationError(
            f"Cannot infer the event type of handler {_name(handler)}: its first parameter "
            f"{first.name!r} has no annotation. Annotate it (def h(event: OrderPlaced)) or "
            "pass the type: bus.subscribe(OrderPlaced, handler)."
        )
    if not isinstance(annotation, type):
        raise RegistrationError(
            f"Cannot infer the event type of handler {_name(handler)}: the annotation "
            f"{annotation!r} of {first.name!r} is not a class. Subscribe once per class, "
            "or pass a common base class explicitly."
        )
    return check_event_type(annotation)


def _name(handler: object) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


class Subscription(Generic[E]):
    """One registration of a handler; :meth:`unsubscribe` removes exactly this one.

    A subscription is returned by :meth:`EventBus.subscribe`. When ``subscribe`` is used
    as a decorator, the decorated name is bound to the subscription; calling it calls
    the handler, so the function stays usable directly.
    """

    __slots__ = (
        "__weakref__",
        "_claim_lock",
        "_fired",
        "_unsubscribe",
        "active",
        "event_type",
        "handler",
        "is_async",
        "once",
        "sequence",
        "sequential",
        "wants_envelope",
        "where",
    )

    def __init__(
        self,
        *,
        event_type: type[E],
        handler: Handler,
        is_async: bool,
        wants_envelope: bool,
        once: bool,
        where: Callable[[E], bool] | None,
        sequential: bool,
        sequence: int,
        unsubscribe: Callable[[Subscription[Any]], None],
    ) -> None:
        self.event_type = event_type
        self.handler = handler
        self.is_async = is_async
        self.wants_envelope = wants_envelope
        self.once = once
        self.where = where
        self.sequential = sequential
        self.sequence = sequence
        self.active = True
        self._fired = False
        self._claim_lock = threading.Lock()
        self._unsubscribe = unsubscribe

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the handler directly, bypassing the bus."""
        return self.handler(*args, **kwargs)

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"<Subscription {_name(self.handler)} to {self.event_type.__qualname__} ({state})>"

    def unsubscribe(self) -> bool:
        """Remove this registration. Idempotent.

        Returns:
            True if this call removed it, False if it was already gone.
        """
        if not self.active:
            return False
        self._unsubscribe(self)
        return True

    def claim(self) -> bool:
        """For a ``once`` subscription: take the single execution. True exactly once."""
        with self._claim_lock:
            if self._fired or not self.active:
                return False
            self._fired = True
            return True

    def release_claim(self) -> None:
        """Give back a claimed ``once`` execution that did not run (e.g. a failed attempt)."""
        with self._claim_lock:
            self._fired = False
