"""Middleware: a bus's own code around every publish and every handler call.

A middleware is an object with two methods, each returning a context manager:
:meth:`Middleware.publishing` wraps the hand-over of one event (its append to the
store, or on a bus without a store the making of its envelope) and
:meth:`Middleware.handling` wraps one handler call, plain or durable, sync or
coroutine. Context managers, not ``call_next`` functions, so one method serves sync
and coroutine code alike, and an exception of the wrapped work reaches ``__exit__``.

The bus holds its middleware in a :class:`MiddlewareStack` that the dispatch and
durable layers share; with the stack empty neither layer calls into this module.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._exceptions import RegistrationError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ._envelope import Envelope

__all__ = ["Delivery", "Middleware", "MiddlewareStack", "Publication"]


@dataclass(slots=True)
class Publication:
    """One event being published, as a middleware's :meth:`~Middleware.publishing` sees it.

    Attributes:
        event: The event instance.
        type_name: Its wire name.
        metadata: Pairs to store with the event, over the publish's own metadata; a
            middleware adds to it on entry (e.g. trace context). Strings only.
        envelope: Set once the event was stored (or, without a store, its envelope
            made): id, offset, timestamp, metadata. None while the middleware is
            entered, and when the append failed.
    """

    event: object
    type_name: str
    metadata: dict[str, str] = field(default_factory=dict)
    envelope: Envelope | None = None


# Not frozen: a frozen dataclass pays an object.__setattr__ per field, on every call.
@dataclass(slots=True)
class Delivery:
    """One handler call, as a middleware's :meth:`~Middleware.handling` sees it.

    Attributes:
        event: The event (decoded, for a durable subscription).
        envelope: Its envelope: id, wire name, metadata, and the offset when stored.
        handler: The handler about to run.
        subscription_id: The durable subscription's id, or None for a plain subscription.
        attempt: Which attempt this is (durable retries count from 1; always 1 when plain).
    """

    event: object
    envelope: Envelope
    handler: Callable[..., Any]
    subscription_id: str | None = None
    attempt: int = 1


class Middleware:
    """Base class of bus middleware: override one method or both.

    Install with ``EventBus(middleware=[...])`` or :meth:`EventBus.add_middleware`.
    The first installed is the outermost: its context is entered first and exited
    last. Each method returns a context manager (``contextlib.contextmanager``
    generators fit); the default ones do nothing.

    An exception of the wrapped work passes through ``__exit__``: a middleware may
    record it. One that suppresses a handler's exception makes the call count as
    succeeded (a durable subscription then moves past the event). An exception raised
    by a middleware itself is treated as the wrapped work's.
    """

    def publishing(self, publication: Publication) -> AbstractContextManager[object]:
        """Wrap the hand-over of one event: entered before it is stored, exited after.

        Hooks run outside it (``before_publish`` earlier), handlers after it exits.
        """
        return contextlib.nullcontext()

    def handling(self, delivery: Delivery) -> AbstractContextManager[object]:
        """Wrap one handler call; for a coroutine handler, inside its task on the loop."""
        return contextlib.nullcontext()


class MiddlewareStack:
    """The middleware of one bus, shared by its dispatch and durable layers.

    ``entries`` is replaced, never mutated, so a call in another thread keeps the
    tuple it read; the layers test it for emptiness before doing anything else.
    """

    def __init__(self) -> None:
        self.entries: tuple[Middleware, ...] = ()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def add(self, middleware: Middleware) -> None:
        """Install ``middleware`` innermost (after those already installed)."""
        if not (
            callable(getattr(middleware, "publishing", None))
            and callable(getattr(middleware, "handling", None))
        ):
            raise RegistrationError(
                f"Middleware must have publishing() and handling() methods, got {middleware!r}; "
                "subclass eventbus.core.Middleware and override what you need."
            )
        with self._lock:
            self.entries = (*self.entries, middleware)
        self._changed()

    def remove(self, middleware: Middleware) -> bool:
        """Uninstall ``middleware``; False if it was not installed."""
        with self._lock:
            if middleware not in self.entries:
                return False
            self.entries = tuple(m for m in self.entries if m is not middleware)
        self._changed()
        return True

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever middleware is added or removed (dispatch replans)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def publishing(self, publication: Publication) -> AbstractContextManager[object]:
        """Every middleware's :meth:`~Middleware.publishing`, first = outermost."""
        entries = self.entries
        if len(entries) == 1:  # the common case: no ExitStack to pay for
            return entries[0].publishing(publication)
        return _nested([m.publishing for m in entries], publication)

    def handling(self, delivery: Delivery) -> AbstractContextManager[object]:
        """Every middleware's :meth:`~Middleware.handling`, first = outermost."""
        entries = self.entries
        if len(entries) == 1:
            return entries[0].handling(delivery)
        return _nested([m.handling for m in entries], delivery)


@contextlib.contextmanager
def _nested(
    factories: list[Callable[[Any], AbstractContextManager[object]]], argument: object
) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for factory in factories:
            stack.enter_context(factory(argument))
        yield
