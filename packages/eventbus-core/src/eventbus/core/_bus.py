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
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast, overload

from ._codec import EventCodec
from ._durable import DeadLetterHandler, DurableOptions, DurableSubscription, PoisonPolicy
from ._envelope import Envelope, current_metadata
from ._exceptions import (
    BusClosedError,
    BusUsageError,
    DecodeError,
    PublishError,
    RegistrationError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    SubscriptionInUseError,
)
from ._handlers import Handler, Subscription, check_event_type, infer_event_type, inspect_handler
from ._ids import new_event_id
from ._names import TypeRegistry, event_name
from ._runner import AsyncRunner, running_loop
from ._store import (
    OLDEST,
    AsyncAppendingStore,
    CheckpointStore,
    ClosableStore,
    EventRecord,
    EventStore,
    Offset,
    Position,
    StoredEvent,
    StreamingReader,
)
from ._upcast import UpcasterRegistry
from ._validate import check_batch_size

__all__ = ["ErrorHook", "EventBus", "HandlerFailure", "log_failure"]

E = TypeVar("E")
logger: Final = logging.getLogger("eventbus")

# EventRecord is a frozen slotted dataclass: its __init__ pays an object.__setattr__
# per field. Every stored publish builds one, so _record_for fills the slots directly
# through their descriptors (test_persistence checks these are exactly its fields).
RECORD_FIELDS: Final = ("event_id", "type_name", "data", "timestamp", "metadata", "origin")
_new_record = object.__new__
(_set_event_id, _set_type_name, _set_data, _set_timestamp, _set_metadata, _set_origin) = (
    getattr(EventRecord, name).__set__ for name in RECORD_FIELDS
)
_now = datetime.now
# running_loop() without its own call: publish checks it once per stored event.
_running_loop: Final = asyncio.events._get_running_loop


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
        "%s failed for %r (subscription %r)",
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
        checkpoints: Where durable subscriptions keep their checkpoints, when not in
            ``store`` itself (every bundled store keeps them).

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
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        if store is not None and not isinstance(store, EventStore):
            raise TypeError(
                f"store must implement the EventStore contract (append, append_batch, read); "
                f"got {store!r}."
            )
        if append_timeout is not None and not append_timeout > 0:
            raise ValueError(
                f"append_timeout must be a positive number of seconds, got {append_timeout!r}."
            )
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
        if checkpoints is not None and not isinstance(checkpoints, CheckpointStore):
            raise TypeError(
                "checkpoints must implement CheckpointStore (save_checkpoint, load_checkpoint); "
                f"got {checkpoints!r}."
            )
        if checkpoints is None and isinstance(store, CheckpointStore):
            checkpoints = store
        self._checkpoints = checkpoints
        # A store's own coroutine append, preferred by publish_async (DESIGN §4).
        self._native_append = store.append_async if isinstance(store, AsyncAppendingStore) else None
        self._types = TypeRegistry()
        # Per-class codec cache for the publish path; the registry stays the authority.
        self._codecs: dict[type[Any], EventCodec[Any]] = {}
        self._upcasters = UpcasterRegistry(self._types)
        self._durables: dict[str, DurableSubscription] = {}
        self._log_changed = threading.Condition()
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
        # Fast path: event class -> (first handler, the others), for classes whose
        # handlers are all plain sync functions on a bus without store or hooks.
        self._plain: dict[type[Any], tuple[Handler, tuple[Handler, ...]]] = {}
        self._before: tuple[Callable[[Any], object], ...] = ()
        self._after: tuple[Callable[[Any], object], ...] = ()
        # Keyed by the subscription itself, weakly: a lock goes with its subscription.
        self._sync_locks: weakref.WeakKeyDictionary[Subscription[Any], threading.RLock] = (
            weakref.WeakKeyDictionary()
        )
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
    def subscribe(  # type: ignore[overload-overlap]  # a class is callable too; classes match first
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
        if target is None:
            if handler is not None:
                # bus.subscribe(None, h) would otherwise return an unused decorator.
                raise RegistrationError(
                    f"bus.subscribe() got None as the event type for handler {handler!r}; "
                    "pass the event class, as in bus.subscribe(OrderPlaced, handler)."
                )
            return lambda fn: self._subscribe(
                None, fn, once=once, where=where, sequential=sequential
            )
        if isinstance(target, type):
            event_type = check_event_type(target)
            if handler is None:
                return lambda fn: self._subscribe(
                    event_type, fn, once=once, where=where, sequential=sequential
                )
            return self._subscribe(
                event_type, handler, once=once, where=where, sequential=sequential
            )
        if handler is not None:
            raise RegistrationError(
                f"bus.subscribe() takes the event class first, then the handler; got "
                f"{target!r} and {handler!r}. Call bus.subscribe(EventClass, handler)."
            )
        return self._subscribe(None, target, once=once, where=where, sequential=sequential)

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
            if self._store is not None and event_type is not object:
                # A persistent bus maps one wire name to one class: claim it now so a
                # collision fails at subscribe time, not at the first publish.
                self._types.register(event_type)
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

    def publish(
        self, event: object, /, *, metadata: Mapping[str, str] | None = None
    ) -> Offset | None:
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
            # The common case, one handler, costs one call inside one ``try``.
            first, rest = plain
            try:
                first(event)
            except Exception as exc:
                self._report_handler(exc, event, first)
            if rest:
                for handler in rest:
                    try:
                        handler(event)
                    except Exception as exc:
                        self._report_handler(exc, event, handler)
            return None
        return self._publish(event, metadata)

    def _publish(self, event: object, metadata: Mapping[str, str] | None) -> Offset | None:
        # The hook and loop checks are inlined: this runs once per stored event.
        if self._store is None:
            plan = self._prepare(event)
            if self._before:
                self._run_hooks(self._before, event, "before_publish")
            offset, envelope = None, self._envelope_for(plan, event, metadata)
        else:
            if _running_loop() is not None:
                self._refuse_store_io_on_a_loop("publish")
            plan = self._prepare(event)
            if self._before:
                self._run_hooks(self._before, event, "before_publish")
            offset, envelope = self._persist(plan, event, metadata)
        if plan.subscriptions:
            self._dispatch(plan, event, envelope, None)
        if self._after:
            self._run_hooks(self._after, event, "after_publish")
        return offset

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
        offset: Offset | None = None
        if self._store is None:
            envelope = self._envelope_for(plan, event, metadata)
        elif self._native_append is not None:
            offset, envelope = await self._persist_natively(plan, event, metadata)
        else:
            offset, envelope = await asyncio.to_thread(self._persist, plan, event, metadata)
        pending: list[asyncio.Future[Any]] = []
        self._dispatch(plan, event, envelope, pending)
        if pending:
            await asyncio.wait(pending)
        self._run_hooks(self._after, event, "after_publish")
        return offset

    def _refuse_store_io_on_a_loop(self, method: str) -> None:
        # A store call would block every coroutine on this loop until the I/O is done.
        if self._store is not None and running_loop() is not None:
            raise BusUsageError(
                f"bus.{method}() would block the running event loop on the store's I/O; "
                f"from asyncio code use 'await bus.{method}_async(...)'."
            )

    def _prepare(self, event: object) -> _Plan:
        if self._state is _State.CLOSED:
            raise BusClosedError("Cannot publish: the bus is closed.")
        if event is None:
            raise PublishError(
                "Cannot publish None; pass an event instance, as in bus.publish(OrderPlaced(...))."
            )
        if isinstance(event, type):
            raise PublishError(
                f"Cannot publish the class {event.__qualname__} itself; publish an instance: "
                f"bus.publish({event.__qualname__}(...))."
            )
        return self._plans.get(event.__class__) or self._plan_for(event.__class__)

    def _envelope_for(
        self, plan: _Plan, event: object, metadata: Mapping[str, str] | None
    ) -> Envelope | None:
        """The envelope of an event on a bus without a store, if a handler wants one."""
        if not plan.needs_envelope:
            if metadata:
                _merge_metadata(metadata)  # validate: bad metadata fails on every bus
            return None
        pairs = _merge_metadata(metadata)
        type_name = event_name(event.__class__)
        return Envelope(new_event_id(), None, type_name, datetime.now(UTC), pairs, self._origin)

    def _persist(
        self, plan: _Plan, event: object, metadata: Mapping[str, str] | None
    ) -> tuple[Offset | None, Envelope | None]:
        """Append the event; return its offset and, if a handler wants it, its envelope."""
        record = self._record_for(
            event, current_metadata() if metadata is None else _merge_metadata(metadata)
        )
        store = self._store
        assert store is not None
        offset: Offset | None
        try:
            if self._append_timeout is None:
                offset = store.append(record)
            else:
                offset = self._append_with_timeout(record, self._append_timeout)
        except Exception as exc:
            self._append_failed(exc, record)
            offset = None
        if offset is not None and self._durables:
            self._log_grew()
        if not plan.needs_envelope:
            return offset, None
        return offset, self._stored_envelope(plan, record, offset)

    def _stored_envelope(
        self, plan: _Plan, record: EventRecord, offset: Offset | None
    ) -> Envelope | None:
        if not plan.needs_envelope:
            return None
        return Envelope(
            record.event_id,
            offset,
            record.type_name,
            record.timestamp,
            record.metadata,
            self._origin,
        )

    def _record_for(self, event: object, pairs: Mapping[str, str]) -> EventRecord:
        codec = self._codecs.get(event.__class__)
        if codec is None:
            codec = self._codecs[event.__class__] = self._types.register(event.__class__)
        data = codec.encode(event)  # EncodeError here: nothing is stored
        record = _new_record(EventRecord)
        _set_event_id(record, new_event_id())
        _set_type_name(record, codec.name)
        _set_data(record, data)
        _set_timestamp(record, _now(UTC))
        _set_metadata(record, pairs)
        _set_origin(record, self._origin)
        return record

    def _log_grew(self) -> None:
        if self._durables:
            with self._log_changed:
                self._log_changed.notify_all()

    async def _persist_natively(
        self, plan: _Plan, event: object, metadata: Mapping[str, str] | None
    ) -> tuple[Offset | None, Envelope | None]:
        """Append through the store's own coroutine: no worker thread, no thread hop."""
        assert self._native_append is not None
        record = self._record_for(event, _merge_metadata(metadata))
        offset: Offset | None
        try:
            if self._append_timeout is None:
                offset = await self._native_append(record)
            else:
                try:
                    offset = await asyncio.wait_for(
                        self._native_append(record), self._append_timeout
                    )
                except TimeoutError:
                    raise self._timeout_error(record, self._append_timeout) from None
        except Exception as exc:
            self._append_failed(exc, record)
            offset = None
        if offset is not None:
            self._log_grew()
        return offset, self._stored_envelope(plan, record, offset)

    def _append_failed(self, exc: Exception, record: EventRecord) -> None:
        """Strict: raise the failure as a StoreError. Best effort: report it."""
        error = _as_store_error(
            exc, f"The store failed to append event {record.event_id} ({record.type_name})"
        )
        if self._strict:
            raise error from exc
        self._report(HandlerFailure(error, "persistence", record))

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
            raise self._timeout_error(record, timeout) from None

    @staticmethod
    def _timeout_error(record: EventRecord, timeout: float) -> StoreTimeoutError:
        return StoreTimeoutError(
            f"The store did not confirm event {record.event_id} ({record.type_name}) within "
            f"{timeout} s; it may still be stored."
        )

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
                key = subscription if subscription.sequential else None
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

    def _sync_lock(self, subscription: Subscription[Any]) -> threading.RLock:
        # Reentrant: a sequential handler that publishes an event reaching itself
        # recurses (like a plain call) instead of deadlocking on its own lock.
        lock = self._sync_locks.get(subscription)
        if lock is None:
            with self._lock:
                lock = self._sync_locks.setdefault(subscription, threading.RLock())
        return lock

    def _run_hooks(
        self, hooks: tuple[Callable[[Any], object], ...], event: object, stage: str
    ) -> None:
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
            # A function subscribed twice keeps to the general path: the fast one reports
            # a failure by its handler, which must name exactly one subscription.
            plain = len({id(s.handler) for s in matched}) == len(matched) and all(
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
                handlers = plan.plain_handlers or (_no_handler,)
                self._plain[event_type] = (handlers[0], handlers[1:])
        return plan

    def _fast_path_allowed(self) -> bool:
        return (
            self._store is None
            and not self._before
            and not self._after
            and self._state is _State.OPEN
        )

    # -- persistence: batches, replay, upcasting, durable subscriptions ------------------

    def register(self, *event_types: type[Any]) -> None:
        """Register event classes so stored events of their wire names can be decoded.

        Subscribing and publishing register a class too; call this for classes that a
        replay must decode but this process never subscribes to or publishes.

        Raises:
            WireNameConflictError: a wire name already belongs to another class.
            RegistrationError: a class that cannot be an event.
        """
        # All or nothing: one bad class leaves none of them registered.
        self._types.register_all(*(check_event_type(t) for t in event_types))

    def publish_many(
        self, events: Iterable[object], /, *, metadata: Mapping[str, str] | None = None
    ) -> list[Offset | None]:
        """Publish several events with one store call (``append_batch``).

        Every event is encoded before anything is stored, so one bad event stores none.
        Then handlers run for each event in order, as :meth:`publish` would.

        Returns:
            The offsets, in order (None entries on a bus without a store).

        Raises:
            The same errors as :meth:`publish`.
        """
        self._refuse_store_io_on_a_loop("publish_many")
        batch = list(events)
        plans = [self._prepare(event) for event in batch]
        for event in batch:
            self._run_hooks(self._before, event, "before_publish")
        envelopes = self._envelopes_for(plans, batch, metadata)
        for plan, event, envelope in zip(plans, batch, envelopes, strict=True):
            self._dispatch(plan, event, envelope, None)
            self._run_hooks(self._after, event, "after_publish")
        return [None if e is None else e.offset for e in envelopes]

    async def publish_many_async(
        self, events: Iterable[object], /, *, metadata: Mapping[str, str] | None = None
    ) -> list[Offset | None]:
        """:meth:`publish_many` for asyncio code; waits for the coroutine handlers.

        Returns:
            The offsets, in order (None entries on a bus without a store).
        """
        self._runner.bind_running_loop()
        batch = list(events)
        plans = [self._prepare(event) for event in batch]
        for event in batch:
            self._run_hooks(self._before, event, "before_publish")
        envelopes = await asyncio.to_thread(self._envelopes_for, plans, batch, metadata)
        pending: list[asyncio.Future[Any]] = []
        for plan, event, envelope in zip(plans, batch, envelopes, strict=True):
            self._dispatch(plan, event, envelope, pending)
        if pending:
            await asyncio.wait(pending)
        for event in batch:
            self._run_hooks(self._after, event, "after_publish")
        return [None if e is None else e.offset for e in envelopes]

    def _envelopes_for(
        self, plans: Sequence[_Plan], events: Sequence[object], metadata: Mapping[str, str] | None
    ) -> list[Envelope | None]:
        if self._store is None:
            return [self._envelope_for(p, e, metadata) for p, e in zip(plans, events, strict=True)]
        pairs = _merge_metadata(metadata)
        records = [self._record_for(event, pairs) for event in events]
        if not records:
            return []
        try:
            offsets: Sequence[Offset | None] = self._store.append_batch(records)
        except Exception as exc:
            error = _as_store_error(
                exc, f"The store failed to append a batch of {len(records)} events"
            )
            if self._strict:
                raise error from exc
            self._report(HandlerFailure(error, "persistence", records))
            offsets = [None] * len(records)
        else:
            self._log_grew()
        return [
            Envelope(r.event_id, o, r.type_name, r.timestamp, pairs, self._origin)
            for r, o in zip(records, offsets, strict=True)
        ]

    def _require_store(self, action: str) -> EventStore:
        if self._store is None:
            raise BusUsageError(
                f"Cannot {action}: this bus has no store; create it as EventBus(store=...)."
            )
        return self._store

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
        """
        store = self._require_store("replay")
        check_batch_size(batch_size)
        if isinstance(store, StreamingReader):
            yield from store.iter_events(after, batch_size=batch_size)
            return
        cursor: Position = after
        while True:
            result = store.read(cursor, limit=batch_size)
            yield from result.events
            if not result.events and result.next == cursor:
                return
            cursor = result.next

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
        # _decode_stored, inlined: this loop is the hot path of typed replay.
        store = self._require_store("replay")
        check_batch_size(batch_size)
        stored_events = (
            store.iter_events(after, batch_size=batch_size)
            if isinstance(store, StreamingReader)
            else self.replay(after, batch_size=batch_size)
        )
        registry = self._types
        upcasters = self._upcasters
        upcast = upcasters.apply
        codec_for_name = registry.codec_for_name
        # Each wire name's decoder is looked up once, until either registry changes
        # (a class or an upcaster registered mid-replay applies from the next event).
        # _UPCAST marks a name that has upcasters: it takes the full path.
        types_version: object = None
        upcasters_version: object = None
        decoders: dict[str, Callable[[str], Any] | None] = {}
        for stored in stored_events:
            if registry.version is not types_version or upcasters.version is not upcasters_version:
                types_version, upcasters_version = registry.version, upcasters.version
                decoders = {}
            try:
                decode = decoders[stored.type_name]
            except KeyError:
                decode = decoders[stored.type_name] = self._decoder_for(stored.type_name)
            if decode is _UPCAST:
                type_name, data = upcast(stored.type_name, stored.data)
                codec = codec_for_name(type_name)
                if codec is not None:
                    yield codec.decode(data), stored
            elif decode is not None:
                yield decode(stored.data), stored

    def _decoder_for(self, type_name: str) -> Callable[[str], Any] | None:
        """How replay_events decodes events of ``type_name``.

        Returns:
            Its codec's decode; ``None`` to skip them (no class claims the name); or
            ``_UPCAST`` when an upcaster applies.
        """
        if self._upcasters.final_name(type_name) != type_name:
            return _UPCAST
        codec = self._types.codec_for_name(type_name)
        return None if codec is None else codec.decode

    def decode(self, stored: StoredEvent) -> Any:
        """Decode one stored event into its registered class, upcasting it first.

        Raises:
            DecodeError: no registered class claims its wire name, or it does not fit.
            UpcastFailedError: an upcaster failed.
        """
        type_name, event = self._decode_stored(stored.type_name, stored.data)
        if event is _UNKNOWN:
            raise DecodeError(
                f"No registered class has the wire name {type_name!r} (event {stored.event_id}); "
                "register it with bus.register(EventClass)."
            )
        return event

    def _decode_stored(self, type_name: str, data: str) -> tuple[str, Any]:
        type_name, data = self._upcasters.apply(type_name, data)
        codec = self._types.codec_for_name(type_name)
        if codec is None:
            return type_name, _UNKNOWN
        return type_name, codec.decode(data)

    def register_upcaster(
        self, from_name: str, to_name: str, upcast: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Register a raw JSON upcaster from one wire name to the next.

        Args:
            from_name: The old wire name (e.g. ``"orders.placed.v1"``).
            to_name: The wire name the returned JSON object has.
            upcast: Takes the old JSON object, returns the new one.

        Raises:
            UpcastRegistrationError: a cycle, a second upcaster for ``from_name``, or bad names.
        """
        self._upcasters.register_raw(from_name, to_name, upcast)

    def upcaster(self, upcast: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register a typed upcaster ``def v1_to_v2(old: V1) -> V2``; usable as a decorator.

        Both classes are registered; the types come from the annotations.

        Raises:
            UpcastRegistrationError: missing annotations, a cycle or a duplicate.
        """
        self._upcasters.register_typed(upcast)
        return upcast

    def subscribe_durable(
        self,
        subscription_id: str,
        handler: Handler,
        /,
        *,
        event_type: type[Any] | None = None,
        start: Position = OLDEST,
        where: Callable[[Any], bool] | None = None,
        on_poison: PoisonPolicy | DeadLetterHandler = PoisonPolicy.ABORT,
        max_attempts: int = 5,
        retry_backoff: float = 0.01,
        max_backoff: float = 1.0,
        checkpoint_every: int = 1,
        checkpoint_interval: float | None = None,
        poll_interval: float = 0.25,
        batch_size: int = 100,
    ) -> DurableSubscription:
        """Consume the stored log in order from this subscription's checkpoint.

        The history is delivered first, then new events as they are stored (including
        those appended by other processes, through the store's tail). Each event's
        checkpoint is saved after its handler completed. See docs/guarantees.md.

        Args:
            subscription_id: The name the checkpoint is saved under; one owner per bus.
            handler: A sync or coroutine function taking the event (and optionally the
                :class:`Envelope`).
            event_type: The event class; inferred from the handler's annotation if None.
            start: Where a first run (no checkpoint yet) starts: OLDEST, NEWEST (resolved
                once and saved) or an offset. Ignored once a checkpoint exists.
            where: Only events for which this returns True reach the handler.
            on_poison: :class:`PoisonPolicy` or a dead-letter callable
                ``(stored, exception)``; applied to an event that cannot be decoded or
                whose handler failed ``max_attempts`` times.
            max_attempts: Calls per event before it is poison.
            retry_backoff: First retry delay in seconds; doubles per attempt.
            max_backoff: Cap of the retry delay.
            checkpoint_every: Save the checkpoint every N handled events. After a crash
                up to N - 1 handled events are delivered again.
            checkpoint_interval: Also save when this many seconds passed since the last save.
            poll_interval: Live phase: longest wait for new events before re-checking.
            batch_size: Events read per store call.

        Returns:
            The running :class:`DurableSubscription`.

        Raises:
            BusUsageError: the bus has no store, or no checkpoint store.
            SubscriptionInUseError: ``subscription_id`` already has an owner on this bus.
            RegistrationError: bad handler, event type or options.
            StoreError: loading the checkpoint failed (nothing was delivered).
        """
        store = self._require_store("subscribe a durable handler")
        checkpoints = self._checkpoints
        if checkpoints is None:
            raise BusUsageError(
                "Durable subscriptions need checkpoints: the store does not keep them; pass "
                "EventBus(store=..., checkpoints=<a CheckpointStore>)."
            )
        if not isinstance(subscription_id, str) or not subscription_id:
            raise RegistrationError(
                f"subscription_id must be a non-empty string, got {subscription_id!r}."
            )
        is_async, wants_envelope = inspect_handler(handler)
        if event_type is None:
            event_type = infer_event_type(handler)
        codec = self._types.register(check_event_type(event_type))
        options = DurableOptions(
            start=start,
            where=where,
            on_poison=on_poison,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
            poll_interval=poll_interval,
            batch_size=batch_size,
        )
        durable = DurableSubscription(
            subscription_id=subscription_id,
            type_name=codec.name,
            handler=handler,
            is_async=is_async,
            wants_envelope=wants_envelope,
            decode=self._decode_stored,
            store=store,
            checkpoints=checkpoints,
            options=options,
            run_coroutine=self._runner.run_blocking,
            report=self._report,
            failure=HandlerFailure,
            release=self._release_durable,
            wake=self._log_changed,
        )
        with self._lock:
            self._check_open()
            if subscription_id in self._durables:
                raise SubscriptionInUseError(
                    f"Durable subscription {subscription_id!r} already has an owner on this bus; "
                    "stop it first or choose another id."
                )
            self._durables[subscription_id] = durable
        try:
            saved = checkpoints.load_checkpoint(subscription_id)
            durable.start(saved)
        except BaseException:
            self._release_durable(durable)
            raise
        return durable

    def _release_durable(self, durable: DurableSubscription) -> None:
        # Only the owner releases its id (its worker, or a failed setup), exactly once.
        with self._lock:
            self._durables.pop(durable.subscription_id, None)

    # -- failures --------------------------------------------------------------------

    def _report(self, failure: HandlerFailure) -> None:
        try:
            self._on_error(failure)
        except Exception:
            # The error hook itself failed: log both rather than lose either.
            logger.exception("eventbus: the error hook raised while reporting %r", failure)
            log_failure(failure)

    def _report_handler(
        self, exc: BaseException, event: object, handler_or_subscription: object
    ) -> None:
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

    # -- lifecycle -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise BusClosedError(
                "The bus is closed; create a new EventBus to publish or subscribe again."
            )

    def shutdown(self, timeout: float | None = None) -> bool:
        """Close the bus after waiting up to ``timeout`` seconds for coroutine handlers.

        New publishes and subscriptions are refused from the start of the call.
        Handlers still running when the timeout passes are cancelled. Handlers left on
        a loop that is no longer running (a ``run_until_complete`` that returned with
        them pending) cannot finish: they are not waited for, and are cancelled when
        that loop runs again. The store is closed. Idempotent.

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
        for durable in list(self._durables.values()):
            durable.stop()
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


_UNKNOWN: Final = object()
# A marker among replay_events' decoders, never called.
_UPCAST: Final = cast("Callable[[str], Any]", object())


def _no_handler(event: object) -> None:
    """Stands in for the first handler of a class nobody subscribed to."""


def _as_store_error(exc: Exception, what: str) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    error = StoreUnavailableError(f"{what}: {exc!r}")
    error.__cause__ = exc
    return error


def _merge_metadata(metadata: Mapping[str, str] | None) -> Mapping[str, str]:
    context = current_metadata()
    if not metadata:
        return context
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PublishError(f"Metadata keys and values must be strings; got {key!r}: {value!r}.")
    return MappingProxyType({**context, **metadata})
