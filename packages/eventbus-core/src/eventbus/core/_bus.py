"""The event bus: subscriptions, dispatch, hooks, persistence and lifecycle.

Dispatch is planned per concrete event class when subscriptions change, never per
publish. A handler registered for a class receives events of that class and of its
subclasses (matching follows the class's MRO), in registration order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TypeVar, overload

from ._envelope import Envelope, current_metadata
from ._exceptions import (
    BusClosedError,
    PublishError,
    RegistrationError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from ._handlers import Handler, Subscription, check_event_type, infer_event_type, inspect_handler
from ._ids import new_event_id
from ._runner import AsyncRunner
from ._store import ClosableStore, EventRecord, EventStore, Offset

__all__ = ["ErrorHook", "EventBus", "HandlerFailure", "log_failure"]

E = TypeVar("E")
logger: Final = logging.getLogger("eventbus")


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A failure the bus isolated instead of raising, as passed to the error hook.

    Attributes:
        exception: What was raised.
        stage: Where: ``"handler"``, ``"filter"``, ``"before_publish"``,
            ``"after_publish"``, ``"persistence"`` (best-effort mode) or ``"durable"``.
        event: The event being handled or published, when there is one.
        subscription: The subscription whose handler or filter failed, if any.
        detail: Extra context, such as the stored event of a durable failure.
    """

    exception: BaseException
    stage: str
    event: object = None
    subscription: object = None
    detail: object = None


ErrorHook = Callable[[HandlerFailure], None]


def log_failure(failure: HandlerFailure) -> None:
    """The default error hook: log the failure, with its traceback, on ``eventbus``."""
    logger.error(
        "eventbus: %s failed for %r (subscription %r)",
        failure.stage,
        failure.event,
        failure.subscription,
        exc_info=failure.exception,
    )


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class _Plan:
    """The subscriptions an event class reaches, in registration order."""

    subscriptions: tuple[Subscription[Any], ...]
    # Set when every handler is a plain one-argument sync function with no options:
    # then publish may call them straight from this tuple.
    plain_handlers: tuple[Handler, ...] | None
    needs_envelope: bool


class EventBus:
    """A typed, thread-safe, in-process event bus, optionally backed by a store.

    Args:
        store: Where events are persisted before any handler runs. None keeps the bus
            purely in-process.
        strict: With a store: when True (the default) a failed append makes
            ``publish`` raise and no handler runs; when False the failure goes to the
            error hook and handlers still run (best effort).
        append_timeout: Seconds to wait for an append before raising
            :class:`StoreTimeoutError`. The append may still complete later.
        on_error: Called with a :class:`HandlerFailure` for every isolated failure.
            Defaults to :func:`log_failure`.
        max_concurrent_handlers: At most this many coroutine handlers run at once.

    Raises:
        TypeError: ``store`` does not implement the store contract.
        ValueError: a bad ``append_timeout`` or ``max_concurrent_handlers``.
    """

    def __init__(
        self,
        *,
        store: EventStore | None = None,
        strict: bool = True,
        append_timeout: float | None = None,
        on_error: ErrorHook | None = None,
        max_concurrent_handlers: int | None = None,
    ) -> None:
        if store is not None and not isinstance(store, EventStore):
            raise TypeError(
                f"store must implement the EventStore contract (append, append_batch, read); "
                f"got {store!r}."
            )
        if append_timeout is not None and not append_timeout > 0:
            raise ValueError(f"append_timeout must be a positive number of seconds, got {append_timeout!r}.")
        if max_concurrent_handlers is not None and (
            isinstance(max_concurrent_handlers, bool)
            or not isinstance(max_concurrent_handlers, int)
            or max_concurrent_handlers < 1
        ):
            raise ValueError(
                "max_concurrent_handlers must be a positive integer or None, "
                f"got {max_concurrent_handlers!r}."
            )
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be callable, got {on_error!r}.")
        self._store = store
        self._strict = strict
        self._append_timeout = append_timeout
        self._on_error: ErrorHook = on_error or log_failure
        self._origin = new_event_id()
        self._lock = threading.RLock()
        self._state = _State.OPEN
        self._by_type: dict[type[Any], list[Subscription[Any]]] = {}
        self._sequence = 0
        self._plans: dict[type[Any], _Plan] = {}
        self._plain: dict[type[Any], tuple[Handler, ...]] = {}
        self._before: tuple[Callable[[Any], object], ...] = ()
        self._after: tuple[Callable[[Any], object], ...] = ()
        self._sync_locks: dict[int, threading.Lock] = {}
        self._append_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._runner = AsyncRunner(limit=max_concurrent_handlers, report=self._report_handler)

    # -- properties ------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """This bus's id, stamped on every event it persists."""
        return self._origin

    @property
    def store(self) -> EventStore | None:
        """The store events are persisted to, if any."""
        return self._store

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`shutdown` has run."""
        return self._state is _State.CLOSED

    # -- subscribing -----------------------------------------------------------------

    @overload
    def subscribe(
        self,
        event_type: type[E],
        handler: Handler,
        /,
        *,
        once: bool = ...,
        where: Callable[[E], bool] | None = ...,
        sequential: bool = ...,
    ) -> Subscription[E]: ...

    @overload
    def subscribe(
        self,
        event_type: type[E],
        /,
        *,
        once: bool = ...,
        where: Callable[[E], bool] | None = ...,
        sequential: bool = ...,
    ) -> Callable[[Handler], Subscription[E]]: ...

    @overload
    def subscribe(
        self,
        handler: Handler,
        /,
        *,
        once: bool = ...,
        where: Callable[[Any], bool] | None = ...,
        sequential: bool = ...,
    ) -> Subscription[Any]: ...

    @overload
    def subscribe(
        self,
        /,
        *,
        once: bool = ...,
        where: Callable[[Any], bool] | None = ...,
        sequential: bool = ...,
    ) -> Callable[[Handler], Subscription[Any]]: ...

    def subscribe(
        self,
        target: object = None,
        handler: object = None,
        /,
        *,
        once: bool = False,
        where: Callable[[Any], bool] | None = None,
        sequential: bool = False,
    ) -> Any:
        """Register a handler for an event class (and its subclasses).

        Four forms::

            @bus.subscribe                      # type from the annotation
            def audit(event: OrderPlaced) -> None: ...

            @bus.subscribe(OrderPlaced, once=True)
            async def first_order(event) -> None: ...

            bus.subscribe(OrderPlaced, handler)  # imperative, explicit type
            bus.subscribe(handler)               # imperative, type from the annotation

        A handler is a function or coroutine function taking the event and, if it
        declares a second parameter, the :class:`Envelope`.

        Args:
            target: The event class, or the handler when the type is inferred.
            handler: The handler, when ``target`` is the event class.
            once: Run the handler for one event only, then remove it.
            where: A predicate; the handler runs only for events it returns True for.
            sequential: The handler never runs concurrently with itself; coroutine
                handlers also see events in publish order.

        Returns:
            A :class:`Subscription` (or, in decorator form, a decorator returning one).

        Raises:
            RegistrationError: a non-callable handler or filter, a handler whose event
                type cannot be inferred, or a bad event type.
            BusClosedError: the bus is closed.
        """
        if where is not None and not callable(where):
            raise RegistrationError(
                f"where= must be a callable predicate taking the event, got {where!r}."
            )
        options = {"once": once, "where": where, "sequential": sequential}
        if target is None:
            return lambda fn: self._subscribe(None, fn, **options)
        if isinstance(target, type):
            event_type = check_event_type(target)
            if handler is None:
                return lambda fn: self._subscribe(event_type, fn, **options)
            return self._subscribe(event_type, handler, **options)
        if handler is not None:
            raise RegistrationError(
                f"bus.subscribe() takes the event class first, then the handler; got "
                f"{target!r} and {handler!r}. Call bus.subscribe(EventClass, handler)."
            )
        return self._subscribe(None, target, **options)

    def _subscribe(
        self,
        event_type: type[Any] | None,
        handler: object,
        *,
        once: bool,
        where: Callable[[Any], bool] | None,
        sequential: bool,
    ) -> Subscription[Any]:
        is_async, wants_envelope = inspect_handler(handler)
        assert callable(handler)  # checked by inspect_handler; narrows for mypy
        if event_type is None:
            event_type = infer_event_type(handler)
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

    def _replan(self) -> None:
        # Replace, don't mutate: a publish in another thread keeps using the
        # dictionaries it already read.
        self._plans = {}
        self._plain = {}

    def has_handlers(self, event_type: type[Any]) -> bool:
        """Whether publishing an instance of ``event_type`` would reach any handler."""
        return bool(self._plan_for(check_event_type(event_type)).subscriptions)

    def handler_count(self, event_type: type[Any]) -> int:
        """How many handlers an instance of ``event_type`` would reach (base classes too)."""
        return len(self._plan_for(check_event_type(event_type)).subscriptions)

    def clear(self, event_type: type[Any] | None = None) -> int:
        """Remove the subscriptions registered for ``event_type`` exactly, or all of them.

        Args:
            event_type: The class whose subscriptions to remove; None removes every one.

        Returns:
            How many subscriptions were removed.
        """
        with self._lock:
            if event_type is None:
                removed = [s for subs in self._by_type.values() for s in subs]
                self._by_type.clear()
            else:
                removed = self._by_type.pop(check_event_type(event_type), [])
            for subscription in removed:
                subscription.active = False
            self._replan()
        return len(removed)

    # -- hooks -----------------------------------------------------------------------

    def before_publish(self, hook: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``hook(event)`` at the start of every publish, before persistence.

        Usable as a decorator. A hook that raises is reported to the error hook and
        the publish goes on.
        """
        self._check_hook(hook)
        with self._lock:
            self._before = (*self._before, hook)
            self._replan()
        return hook

    def after_publish(self, hook: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``hook(event)`` after the handlers were run or scheduled.

        Usable as a decorator. A hook that raises is reported to the error hook.
        """
        self._check_hook(hook)
        with self._lock:
            self._after = (*self._after, hook)
            self._replan()
        return hook

    @staticmethod
    def _check_hook(hook: object) -> None:
        if not callable(hook):
            raise RegistrationError(f"A publish hook must be callable, got {hook!r}.")

    # -- publishing ------------------------------------------------------------------

    def publish(self, event: object, /, *, metadata: Mapping[str, str] | None = None) -> Offset | None:
        """Publish an event from synchronous code.

        In order: before-publish hooks run; with a store, the event is appended
        (strict mode raises here and nothing else runs); sync handlers run in this
        thread in registration order; coroutine handlers are *scheduled* on the bus's
        handler loop (they run after this returns — see :meth:`shutdown`); after-publish
        hooks run. Never blocks an event loop: when called from a coroutine, coroutine
        handlers are scheduled on that loop.

        Args:
            event: The event instance.
            metadata: String pairs to store and hand to handlers, merged over the
                context's :func:`publish_metadata`.

        Returns:
            The event's offset when it was stored, else None.

        Raises:
            PublishError: ``event`` is None or a class.
            EncodeError: with a store, the event cannot be serialised (nothing stored).
            StoreError: strict mode, the append failed (no handler ran).
            BusClosedError: the bus is closed.
        """
        plain = self._plain.get(event.__class__)
        if plain is not None and metadata is None:
            for handler in plain:
                try:
                    handler(event)
                except Exception as exc:
                    self._report_handler(exc, event, handler)
            return None
        return self._publish(event, metadata)

    def _publish(self, event: object, metadata: Mapping[str, str] | None) -> Offset | None:
        plan = self._prepare(event)
        self._run_hooks(self._before, event, "before_publish")
        envelope = self._envelope_for(plan, event, metadata)
        self._dispatch(plan, event, envelope, None)
        self._run_hooks(self._after, event, "after_publish")
        return None if envelope is None else envelope.offset

    async def publish_async(
        self, event: object, /, *, metadata: Mapping[str, str] | None = None
    ) -> Offset | None:
        """Publish an event from asyncio code and wait for its handlers.

        Like :meth:`publish`, but the store append runs in a worker thread (the loop
        never blocks on it) and this coroutine returns only after every coroutine
        handler of this event has finished. Handler failures go to the error hook;
        they are not raised here.

        Args:
            event: The event instance.
            metadata: String pairs, merged over the context's :func:`publish_metadata`.

        Returns:
            The event's offset when it was stored, else None.

        Raises:
            PublishError: ``event`` is None or a class.
            EncodeError: with a store, the event cannot be serialised (nothing stored).
            StoreError: strict mode, the append failed (no handler ran).
            BusClosedError: the bus is closed.
        """
        self._runner.bind_running_loop()
        plan = self._prepare(event)
        self._run_hooks(self._before, event, "before_publish")
        if self._store is None:
            envelope = self._envelope_for(plan, event, metadata)
        else:
            envelope = await asyncio.to_thread(self._envelope_for, plan, event, metadata)
        pending: list[asyncio.Future[Any]] = []
        self._dispatch(plan, event, envelope, pending)
        if pending:
            await asyncio.wait(pending)
        self._run_hooks(self._after, event, "after_publish")
        return None if envelope is None else envelope.offset

    def _prepare(self, event: object) -> _Plan:
        if self._state is _State.CLOSED:
            raise BusClosedError("Cannot publish: the bus is closed.")
        if event is None:
            raise PublishError("Cannot publish None; pass an event instance, as in bus.publish(OrderPlaced(...)).")
        if isinstance(event, type):
            raise PublishError(
                f"Cannot publish the class {event.__qualname__} itself; publish an instance: "
                f"bus.publish({event.__qualname__}(...))."
            )
        return self._plan_for(event.__class__)

    def _envelope_for(
        self, plan: _Plan, event: object, metadata: Mapping[str, str] | None
    ) -> Envelope | None:
        if self._store is None and not plan.needs_envelope:
            return None
        pairs = _merge_metadata(metadata)
        timestamp = datetime.now(UTC)
        type_name = _type_name(event.__class__)
        event_id = new_event_id()
        offset: Offset | None = None
        if self._store is not None:
            offset = self._append(EventRecord(event_id, type_name, _encode(event), timestamp, pairs, self._origin))
        return Envelope(event_id, offset, type_name, timestamp, pairs, self._origin)

    def _append(self, record: EventRecord) -> Offset | None:
        assert self._store is not None
        try:
            if self._append_timeout is None:
                return self._store.append(record)
            return self._append_with_timeout(record, self._append_timeout)
        except Exception as exc:
            error = exc if isinstance(exc, StoreError) else StoreUnavailableError(
                f"The store failed to append event {record.event_id} ({record.type_name}): {exc}"
            )
            if error is not exc:
                error.__cause__ = exc
            if self._strict:
                raise error from exc
            self._report(HandlerFailure(error, "persistence", record))
            return None

    def _append_with_timeout(self, record: EventRecord, timeout: float) -> Offset:
        assert self._store is not None
        with self._lock:
            if self._append_executor is None:
                self._append_executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="eventbus-append"
                )
        future = self._append_executor.submit(self._store.append, record)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise StoreTimeoutError(
                f"The store did not confirm event {record.event_id} ({record.type_name}) within "
                f"{timeout} s; it may still be stored."
            ) from None

    def _dispatch(
        self,
        plan: _Plan,
        event: object,
        envelope: Envelope | None,
        pending: list[asyncio.Future[Any]] | None,
    ) -> None:
        context: contextvars.Context | None = None
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
            if subscription.is_async:
                if context is None:
                    context = contextvars.copy_context()
                key = id(subscription) if subscription.sequential else None
                task = self._runner.schedule(subscription.handler, args, key, subscription, context)
                if pending is not None and task is not None:
                    pending.append(task)
            elif subscription.sequential:
                with self._sync_lock(subscription):
                    self._call(subscription, args)
            else:
                self._call(subscription, args)

    def _call(self, subscription: Subscription[Any], args: tuple[Any, ...]) -> None:
        try:
            subscription.handler(*args)
        except Exception as exc:
            self._report(HandlerFailure(exc, "handler", args[0], subscription))

    def _sync_lock(self, subscription: Subscription[Any]) -> threading.Lock:
        lock = self._sync_locks.get(id(subscription))
        if lock is None:
            with self._lock:
                lock = self._sync_locks.setdefault(id(subscription), threading.Lock())
        return lock

    def _run_hooks(self, hooks: tuple[Callable[[Any], object], ...], event: object, stage: str) -> None:
        for hook in hooks:
            try:
                hook(event)
            except Exception as exc:
                self._report(HandlerFailure(exc, stage, event))

    def _plan_for(self, event_type: type[Any]) -> _Plan:
        plan = self._plans.get(event_type)
        if plan is not None:
            return plan
        with self._lock:
            matched = [s for cls in event_type.__mro__ for s in self._by_type.get(cls, ())]
            matched.sort(key=lambda s: s.sequence)
            plain = all(
                not (s.is_async or s.once or s.sequential or s.wants_envelope or s.where)
                for s in matched
            )
            subscriptions = tuple(matched)
            plan = _Plan(
                subscriptions=subscriptions,
                plain_handlers=tuple(s.handler for s in matched) if plain else None,
                needs_envelope=any(s.wants_envelope for s in matched),
            )
            self._plans[event_type] = plan
            if plan.plain_handlers is not None and self._fast_path_allowed():
                self._plain[event_type] = plan.plain_handlers
        return plan

    def _fast_path_allowed(self) -> bool:
        return (
            self._store is None
            and not self._before
            and not self._after
            and self._state is _State.OPEN
        )

    # -- failures --------------------------------------------------------------------

    def _report(self, failure: HandlerFailure) -> None:
        try:
            self._on_error(failure)
        except Exception:
            # The error hook itself failed: log both rather than lose either.
            logger.exception("eventbus: the error hook raised while reporting %r", failure)
            log_failure(failure)

    def _report_handler(self, exc: BaseException, event: object, handler_or_subscription: object) -> None:
        subscription = handler_or_subscription
        if not isinstance(subscription, Subscription):
            plan = self._plans.get(event.__class__)
            subscription = next(
                (s for s in (plan.subscriptions if plan else ()) if s.handler is handler_or_subscription),
                None,
            )
        self._report(HandlerFailure(exc, "handler", event, subscription))

    # -- lifecycle -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise BusClosedError("The bus is closed; create a new EventBus to publish or subscribe again.")

    def shutdown(self, timeout: float | None = None) -> bool:
        """Close the bus after waiting up to ``timeout`` seconds for coroutine handlers.

        New publishes and subscriptions are refused from the start of the call.
        Handlers still running when the timeout passes are cancelled. The store is
        closed. Idempotent.

        Args:
            timeout: Seconds to wait; None waits as long as it takes.

        Returns:
            True if every in-flight handler finished in time.

        Raises:
            BusUsageError: called on the handler loop's thread with handlers pending
                (use :meth:`ashutdown` there).
        """
        with self._lock:
            if self._state is _State.CLOSED:
                return True
            self._state = _State.CLOSED
            self._replan()
        try:
            finished = self._runner.wait_idle(timeout)
        except BaseException:
            with self._lock:
                self._state = _State.OPEN
            raise
        if not finished:
            self._runner.cancel_pending()
        self._runner.stop()
        if self._append_executor is not None:
            self._append_executor.shutdown(wait=False)
        if isinstance(self._store, ClosableStore):
            self._store.close()
        return finished

    def close(self) -> None:
        """Wait for in-flight coroutine handlers, then close the bus and its store."""
        self.shutdown(None)

    async def ashutdown(self, timeout: float | None = None) -> bool:
        """:meth:`shutdown` for asyncio code: waits without blocking the loop."""
        return await asyncio.to_thread(self.shutdown, timeout)

    async def aclose(self) -> None:
        """:meth:`close` for asyncio code: waits without blocking the loop."""
        await self.ashutdown(None)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> EventBus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _merge_metadata(metadata: Mapping[str, str] | None) -> Mapping[str, str]:
    context = current_metadata()
    if not metadata:
        return context
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PublishError(
                f"Metadata keys and values must be strings; got {key!r}: {value!r}."
            )
    return MappingProxyType({**context, **metadata})


def _type_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(event: object) -> str:
    raise NotImplementedError
