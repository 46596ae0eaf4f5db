"""Dispatch: plain subscriptions, publish hooks, and calling handlers sync or async.

Dispatch is planned per concrete event class when subscriptions change, never per
publish. A handler registered for a class receives events of that class and of its
subclasses (matching follows the class's MRO), in registration order — the one
matching rule, which durable subscriptions follow too (see :mod:`._mapper`).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._envelope import Envelope
from ._exceptions import BusClosedError, RegistrationError
from ._failures import HandlerFailure, Reporter
from ._handlers import Handler, Subscription, inspect_handler
from ._middleware import Delivery, MiddlewareStack
from ._runner import AsyncRunner

__all__ = ["Dispatcher", "Plan"]

Hook = Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class Plan:
    """The subscriptions an event class reaches, in registration order."""

    subscriptions: tuple[Subscription[Any], ...]
    # Set when every handler is a plain one-argument sync function with no options:
    # then publish may call them straight from this tuple.
    plain_handlers: tuple[Handler, ...] | None
    needs_envelope: bool


class Dispatcher:
    """The plain subscriptions and publish hooks of one bus, and their invocation.

    Args:
        runner: Runs coroutine handlers.
        report: Receives every isolated failure.
        fast_path: Whether plain sync handlers may be called straight from
            :attr:`plain` (only on a bus without a store).
        middleware: The bus's middleware; while it has any, every handler call goes
            through it (and the fast path is off).
    """

    def __init__(
        self,
        runner: AsyncRunner,
        report: Reporter,
        *,
        fast_path: bool,
        middleware: MiddlewareStack,
    ) -> None:
        self._runner = runner
        self._middleware = middleware
        middleware.on_change(self._replan_locked)
        self._report = report
        self._fast_path = fast_path
        self._lock = threading.RLock()
        self._closed = False
        self._by_type: dict[type[Any], list[Subscription[Any]]] = {}
        self._sequence = 0
        self._plans: dict[type[Any], Plan] = {}
        # Fast path: event class -> (first handler, the others), for classes whose
        # handlers are all plain sync functions on a bus without store or hooks. The
        # bus reads this dict on every publish, so it is cleared, never replaced.
        self.plain: dict[type[Any], tuple[Handler, tuple[Handler, ...]]] = {}
        self.before: tuple[Hook, ...] = ()
        self.after: tuple[Hook, ...] = ()
        # Keyed by the subscription itself, weakly: a lock goes with its subscription.
        self._sync_locks: weakref.WeakKeyDictionary[Subscription[Any], threading.RLock] = (
            weakref.WeakKeyDictionary()
        )

    # -- the table ---------------------------------------------------------------------

    def add(
        self,
        event_type: type[Any],
        handler: Handler,
        *,
        once: bool,
        where: Callable[[Any], bool] | None,
        sequential: bool,
    ) -> Subscription[Any]:
        """Register ``handler`` for ``event_type``; see :meth:`EventBus.subscribe`."""
        is_async, wants_envelope = inspect_handler(handler)
        if is_async:
            self._runner.bind_running_loop()
        with self._lock:
            self._check_open()
            self._sequence += 1
            subscription: Subscription[Any] = Subscription(
                event_type=event_type,
                handler=handler,
                is_async=is_async,
                wants_envelope=wants_envelope,
                once=once,
                where=where,
                sequential=sequential,
                sequence=self._sequence,
                unsubscribe=self._remove,
            )
            self._by_type.setdefault(event_type, []).append(subscription)
            self._replan()
        return subscription

    def _remove(self, subscription: Subscription[Any]) -> None:
        with self._lock:
            if not subscription.active:
                return
            subscription.active = False
            registered = self._by_type.get(subscription.event_type, [])
            registered.remove(subscription)
            if not registered:
                del self._by_type[subscription.event_type]
            self._replan()

    def clear(self, event_type: type[Any] | None) -> int:
        """Remove the subscriptions of ``event_type`` exactly, or all; return how many."""
        with self._lock:
            if event_type is None:
                removed = [s for subs in self._by_type.values() for s in subs]
                self._by_type.clear()
            else:
                removed = self._by_type.pop(event_type, [])
            for subscription in removed:
                subscription.active = False
            self._replan()
        return len(removed)

    def add_hook(self, stage: str, hook: Hook) -> None:
        """Add a ``before`` or ``after`` publish hook."""
        if not callable(hook):
            raise RegistrationError(f"A publish hook must be callable, got {hook!r}.")
        with self._lock:
            if stage == "before":
                self.before = (*self.before, hook)
            else:
                self.after = (*self.after, hook)
            self._replan()

    def close(self) -> None:
        """Refuse new subscriptions and leave the fast path (publish checks for closed)."""
        with self._lock:
            self._closed = True
            self._replan()

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError(
                "The bus is closed; create a new EventBus to publish or subscribe again."
            )

    def _replan_locked(self) -> None:
        with self._lock:
            self._replan()

    def _replan(self) -> None:
        # Replace the plans, don't mutate them: a publish in another thread keeps using
        # the plan it already read. The fast-path dict is cleared in place (see plain).
        self._plans = {}
        self.plain.clear()

    # -- planning ------------------------------------------------------------------------

    def plan_for(self, event_type: type[Any]) -> Plan:
        """The subscriptions an event of ``event_type`` reaches, planned once per change."""
        plan = self._plans.get(event_type)
        if plan is not None:
            return plan
        with self._lock:
            matched = [s for cls in event_type.__mro__ for s in self._by_type.get(cls, ())]
            matched.sort(key=lambda s: s.sequence)
            # A function subscribed twice keeps to the general path: the fast one reports
            # a failure by its handler, which must name exactly one subscription.
            plain = len({id(s.handler) for s in matched}) == len(matched) and all(
                not (s.is_async or s.once or s.sequential or s.wants_envelope or s.where)
                for s in matched
            )
            wrapped = bool(self._middleware.entries)
            plan = Plan(
                subscriptions=tuple(matched),
                plain_handlers=tuple(s.handler for s in matched) if plain else None,
                # Middleware sees every envelope, and the publish path its wrapping.
                needs_envelope=wrapped or any(s.wants_envelope for s in matched),
            )
            self._plans[event_type] = plan
            if (
                plan.plain_handlers is not None
                and self._fast_path
                and not self.before
                and not self.after
                and not self._closed
                and not wrapped
            ):
                handlers = plan.plain_handlers or (_no_handler,)
                self.plain[event_type] = (handlers[0], handlers[1:])
        return plan

    # -- invoking ------------------------------------------------------------------------

    def dispatch(
        self,
        plan: Plan,
        event: object,
        envelope: Envelope | None,
        pending: list[asyncio.Future[Any]] | None,
    ) -> None:
        """Run the plan's handlers for ``event``: sync ones now, coroutines scheduled.

        Args:
            pending: Collects the scheduled coroutine handlers, for a caller that waits.
        """
        context: contextvars.Context | None = None
        wrapped = bool(self._middleware.entries)
        for subscription in plan.subscriptions:
            if not subscription.active:
                continue
            where = subscription.where
            if where is not None:
                try:
                    if not where(event):
                        continue
                except Exception as exc:
                    self._report(HandlerFailure(exc, "filter", event, subscription))
                    continue
            if subscription.once:
                if not subscription.claim():
                    continue
                subscription.unsubscribe()
            args = (event, envelope) if subscription.wants_envelope else (event,)
            delivery = None
            if wrapped:
                assert envelope is not None  # planned: needs_envelope while wrapped
                delivery = Delivery(event, envelope, subscription.handler)
            if subscription.is_async:
                if context is None:
                    context = contextvars.copy_context()
                key = subscription if subscription.sequential else None
                handler = subscription.handler if delivery is None else self._wrap(delivery)
                task = self._runner.schedule(handler, args, key, subscription, context)
                if pending is not None and task is not None:
                    pending.append(task)
            elif subscription.sequential:
                with self._sync_lock(subscription):
                    self._call(subscription, args, delivery)
            else:
                self._call(subscription, args, delivery)

    def _call(
        self, subscription: Subscription[Any], args: tuple[Any, ...], delivery: Delivery | None
    ) -> None:
        try:
            if delivery is None:
                subscription.handler(*args)
            else:
                with self._middleware.handling(delivery):
                    subscription.handler(*args)
        except Exception as exc:
            self._report(HandlerFailure(exc, "handler", args[0], subscription))

    def _wrap(self, delivery: Delivery) -> Handler:
        """A coroutine handler that enters the middleware inside its own task."""
        handling = self._middleware.handling
        handler = delivery.handler

        async def call_async(*args: Any) -> None:
            with handling(delivery):
                await handler(*args)

        return call_async

    def _sync_lock(self, subscription: Subscription[Any]) -> threading.RLock:
        # Reentrant: a sequential handler that publishes an event reaching itself
        # recurses (like a plain call) instead of deadlocking on its own lock.
        lock = self._sync_locks.get(subscription)
        if lock is None:
            with self._lock:
                lock = self._sync_locks.setdefault(subscription, threading.RLock())
        return lock

    def run_hooks(self, hooks: tuple[Hook, ...], event: object, stage: str) -> None:
        """Call each hook with ``event``, reporting (not raising) a failure."""
        for hook in hooks:
            try:
                hook(event)
            except Exception as exc:
                self._report(HandlerFailure(exc, stage, event))

    def report_handler(
        self, exc: BaseException, event: object, handler_or_subscription: object
    ) -> None:
        """Report a handler failure, naming the subscription of a fast-path handler."""
        subscription = handler_or_subscription
        if not isinstance(subscription, Subscription):
            plan = self._plans.get(event.__class__)
            subscription = next(
                (
                    s
                    for s in (plan.subscriptions if plan else ())
                    if s.handler is handler_or_subscription
                ),
                None,
            )
        self._report(HandlerFailure(exc, "handler", event, subscription))


def _no_handler(event: object) -> None:
    """Stands in for the first handler of a class nobody subscribed to."""
