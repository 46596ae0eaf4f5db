"""The event bus: a thin facade over the layers that do the work.

``EventBus`` holds the configuration and the lifecycle and wires the layers together
(docs/architecture.md draws them): :mod:`._dispatch` runs plain subscriptions,
:mod:`._journal` appends and replays, :mod:`._mapper` maps classes to wire names and
back, :mod:`._durable` runs durable subscriptions, :mod:`._failures` reports what was
isolated. Each layer imports only those below it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, overload

from ._bus_log import StoredLog
from ._bus_publishing import Publishing
from ._dispatch import Dispatcher
from ._durable import DurableSubscription
from ._durable_options import DurableOptions
from ._durables import DurableConsumers
from ._exceptions import BusClosedError, RegistrationError
from ._failures import DeadLetterHandler, ErrorHook, PoisonPolicy, Reporter
from ._handlers import (
    Handler,
    Subscription,
    check_event_type,
    infer_event_type,
    inspect_handler,
    is_event_instance,
)
from ._ids import new_event_id
from ._journal import Journal
from ._mapper import EventMapper
from ._memory import MemoryStore
from ._middleware import Middleware, MiddlewareStack
from ._runner import CANCEL_GRACE, AsyncRunner
from ._store import OLDEST, CheckpointStore, ClosableStore, EventStore, Position

__all__ = ["EventBus"]

E = TypeVar("E")
logger: Final = logging.getLogger("eventbus")


class EventBus(Publishing, StoredLog):
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
        check_encoding: Without a store: encode every published event as a store
            would and discard the bytes, so an event that production would refuse
            raises :class:`EncodeError` here too, before any hook or handler runs. For
            tests on a bare bus; with a store every event is encoded anyway.
        middleware: :class:`Middleware` wrapping every publish and handler call, the
            first the outermost (see :meth:`add_middleware`).

    Raises:
        TypeError: ``store`` does not implement the store contract, or
            ``check_encoding`` is not a bool.
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
        check_encoding: bool = False,
        middleware: Iterable[Middleware] = (),
    ) -> None:
        if not isinstance(check_encoding, bool):
            raise TypeError(
                f"check_encoding must be True or False, got {check_encoding!r}; use "
                "EventBus(check_encoding=True) to encode events on a bus without a store."
            )
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
        if checkpoints is not None and not isinstance(checkpoints, CheckpointStore):
            raise TypeError(
                "checkpoints must implement CheckpointStore (save_checkpoint, load_checkpoint); "
                f"got {checkpoints!r}."
            )
        if checkpoints is None and isinstance(store, CheckpointStore):
            checkpoints = store
        self._report = Reporter(on_error)
        self._checkpoints = checkpoints
        self._store = store
        # With a store, persisting encodes every event already.
        self._check_encoding = check_encoding and store is None
        self._origin = new_event_id()
        self._lock = threading.RLock()
        self._closed = False
        # A class from __main__ stored under its default name breaks once the class is
        # imported from its module; a MemoryStore's names never outlive the process.
        self._mapper = EventMapper(
            warn_unstable_names=store is not None and not isinstance(store, MemoryStore)
        )
        self._runner = AsyncRunner(
            limit=max_concurrent_handlers,
            report=lambda exc, event, sub: self._dispatcher.report_handler(exc, event, sub),
        )
        self._middleware = MiddlewareStack()
        for entry in middleware:
            self._middleware.add(entry)
        self._dispatcher = Dispatcher(
            self._runner, self._report, fast_path=store is None, middleware=self._middleware
        )
        self._plain = self._dispatcher.plain
        self._consumers = DurableConsumers(
            store, checkpoints, self._mapper, self._runner, self._report, self._middleware
        )
        self._journal = Journal(
            store,
            self._mapper,
            strict=strict,
            append_timeout=append_timeout,
            report=self._report,
            origin=self._origin,
            on_append=self._consumers.log_grew,
        )

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
        return self._closed

    @property
    def durable_subscriptions(self) -> Mapping[str, DurableSubscription]:
        """The running durable subscriptions of this bus, by id (a snapshot)."""
        return self._consumers.snapshot()

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
        asks for it, the :class:`Envelope`: a second parameter without a default, or
        one annotated ``Envelope`` (a defaulted, unannotated one keeps its default).

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
        if not callable(target) and (handler is not None or is_event_instance(target)):
            check_event_type(target)  # raises, showing the call with the event's class
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
        inspect_handler(handler)
        assert callable(handler)  # checked by inspect_handler; narrows for mypy
        if event_type is None:
            event_type = infer_event_type(handler)
        if self._store is not None and event_type is not object:
            # A persistent bus maps one wire name to one class: claim it now so a
            # collision fails at subscribe time, not at the first publish. A base class
            # that is never stored itself (a marker) needs no codec to match by.
            self._mapper.register_if_event(event_type)
        return self._dispatcher.add(
            event_type, handler, once=once, where=where, sequential=sequential
        )

    def has_handlers(self, event_type: type[Any]) -> bool:
        """Whether publishing an instance of ``event_type`` would reach any handler."""
        return bool(self._dispatcher.plan_for(check_event_type(event_type)).subscriptions)

    def handler_count(self, event_type: type[Any]) -> int:
        """How many handlers an instance of ``event_type`` would reach (base classes too)."""
        return len(self._dispatcher.plan_for(check_event_type(event_type)).subscriptions)

    def clear(self, event_type: type[Any] | None = None) -> int:
        """Remove the subscriptions registered for ``event_type`` exactly, or all of them.

        Returns:
            How many subscriptions were removed.
        """
        return self._dispatcher.clear(None if event_type is None else check_event_type(event_type))

    def before_publish(self, hook: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``hook(event)`` at the start of every publish, before persistence.

        Usable as a decorator. A hook that raises is reported to the error hook and
        the publish goes on.
        """
        self._dispatcher.add_hook("before", hook)
        return hook

    def after_publish(self, hook: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``hook(event)`` after the handlers were run or scheduled.

        Usable as a decorator. A hook that raises is reported to the error hook.
        """
        self._dispatcher.add_hook("after", hook)
        return hook

    def add_middleware(self, middleware: Middleware) -> None:
        """Install ``middleware`` around every publish and handler call from now on.

        Middleware installed earlier is outermost: its contexts are entered first and
        exited last. It applies to plain and durable subscriptions alike, including
        durable ones already running (from their next handler call).

        Raises:
            RegistrationError: ``middleware`` lacks ``publishing``/``handling`` methods.
        """
        self._middleware.add(middleware)

    def remove_middleware(self, middleware: Middleware) -> bool:
        """Uninstall ``middleware``; return False if it was not installed on this bus."""
        return self._middleware.remove(middleware)

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The installed middleware, outermost first."""
        return self._middleware.entries

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
        on_unknown: PoisonPolicy = PoisonPolicy.SKIP,
        max_attempts: int = 5,
        retry_backoff: float = 0.01,
        max_backoff: float = 1.0,
        checkpoint_every: int = 1,
        checkpoint_interval: float | None = None,
        poll_interval: float = 0.25,
        batch_size: int = 100,
        lease_ttl: float = 10.0,
    ) -> DurableSubscription:
        """Consume the stored log in order from this subscription's checkpoint.

        The history is delivered first, then new events as they are stored (including
        those appended by other processes, through the store's tail). Records are
        selected by wire name before decoding: the handler's class and its registered
        subclasses. Each event's checkpoint is saved after its handler completed. See
        docs/guarantees.md.

        Args:
            subscription_id: The name the checkpoint is saved under. One owner at a
                time: on a store with leases, subscriptions of the same id in other
                processes (or on other buses) stand by and take over when it stops.
            handler: A sync or coroutine function taking the event (and optionally the
                :class:`Envelope`).
            event_type: The event class; inferred from the handler's annotation if None.
            start: Where a first run (no checkpoint yet) starts: OLDEST, NEWEST (resolved
                once and saved) or an offset. Ignored once a checkpoint exists.
            where: Only events for which this returns True reach the handler.
            on_poison: :class:`PoisonPolicy` or a dead-letter callable
                ``(stored, exception)``; applied to a wanted event that cannot be read,
                decoded or upcast, or whose handler failed ``max_attempts`` times.
            on_unknown: For a stored wire name no registered class claims: SKIP (the
                default) logs a warning once per name and counts it in
                :attr:`DurableSubscription.unknown_names`; ABORT stops the subscription.
            max_attempts: Calls per event before it is poison.
            retry_backoff: First retry delay in seconds; doubles per attempt.
            max_backoff: Cap of the retry delay.
            checkpoint_every: Save the checkpoint every N handled events. After a crash
                or a failover up to N handled events are delivered again (the N-th may
                have been handled when the process died before saving).
            checkpoint_interval: Also save when this many seconds passed since the last save.
            poll_interval: Live phase: longest wait for new events before re-checking.
            batch_size: Events read per store call.
            lease_ttl: On a store with leases (every bundled store), seconds after which
                a standby takes over from an owner that stopped renewing (killed or
                frozen). An owner that stops cleanly hands over at once.

        Returns:
            The running :class:`DurableSubscription`: ACTIVE when it owns the id, or
            STANDBY while another subscription (any process, any host) does.

        Raises:
            BusUsageError: the bus has no store, or no checkpoint store.
            SubscriptionInUseError: ``subscription_id`` already has an owner on this bus,
                or on this store in this process when the store cannot keep leases.
            RegistrationError: bad handler, event type or options.
            StoreError: loading the checkpoint failed (nothing was delivered).
        """
        self._check_open()
        if event_type is not None:
            check_event_type(
                event_type,
                call=f"bus.subscribe_durable({subscription_id!r}, handler, event_type={{name}})",
            )
        options = DurableOptions(
            start=start,
            where=where,
            on_poison=on_poison,
            on_unknown=on_unknown,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
            poll_interval=poll_interval,
            batch_size=batch_size,
            lease_ttl=lease_ttl,
        )
        return self._consumers.subscribe(subscription_id, handler, event_type, options)

    # -- lifecycle -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError(
                "The bus is closed; create a new EventBus to publish or subscribe again."
            )

    def shutdown(self, timeout: float | None = None, *, drain: bool = True) -> bool:
        """Close the bus, waiting up to ``timeout`` seconds in all for its work to end.

        New publishes and subscriptions are refused from the start of the call. Then,
        within the one deadline: durable subscriptions handle what was stored before
        the call (with ``drain``) and stop; coroutine handlers finish. What is still
        running at the deadline is cancelled where it can be (coroutines) and logged by
        name (a sync handler that blocks cannot be interrupted; its thread is left to
        end alone). Handlers left on a loop that is no longer running cannot finish and
        are not waited for. The store is closed. Idempotent.

        Args:
            timeout: Seconds to wait in all; None waits as long as it takes.
            drain: Let durable subscriptions catch up with the log before stopping.

        Returns:
            True if everything finished in time.

        Raises:
            BusUsageError: called on the handler loop's thread with handlers pending
                (use :meth:`ashutdown` there).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return True
            self._closed = True
            self._dispatcher.close()
        unstopped = self._consumers.stop_all(deadline, drain=drain)
        try:
            finished = self._runner.wait_idle(_remaining(deadline))
        except BaseException:
            with self._lock:
                self._closed = False
            raise
        # Cancelled coroutines get one small grace period past the deadline to unwind.
        grace_deadline = (
            None if deadline is None else max(deadline, time.monotonic()) + CANCEL_GRACE
        )
        if not finished:
            grace = _remaining(grace_deadline)
            self._runner.cancel_pending(CANCEL_GRACE if grace is None else grace)
        if unstopped:
            logger.warning(
                "eventbus: shutdown deadline passed with durable subscriptions still in a "
                "handler: %s",
                ", ".join(repr(s) for s in unstopped),
            )
        if not self._runner.stop(_remaining(grace_deadline)):
            logger.warning("eventbus: the handler loop is blocked by a handler; left running.")
            finished = False
        self._journal.close()
        if isinstance(self._store, ClosableStore):
            self._store.close()
        return finished and not unstopped

    def close(self, timeout: float | None = None) -> None:
        """:meth:`shutdown` with drain: durable subscriptions catch up, then all stops."""
        self.shutdown(timeout)

    async def ashutdown(self, timeout: float | None = None, *, drain: bool = True) -> bool:
        """:meth:`shutdown` for asyncio code: waits without blocking the loop."""
        return await asyncio.to_thread(self.shutdown, timeout, drain=drain)

    async def aclose(self, timeout: float | None = None) -> None:
        """:meth:`close` for asyncio code: waits without blocking the loop."""
        await self.ashutdown(timeout)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> EventBus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
