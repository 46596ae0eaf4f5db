"""The durable subscriptions of one bus: creating them, one owner per id, stopping them all.

Stopping honours one deadline for the whole bus: each subscription first drains (it
handles what was stored before the close), then stops, and whatever is still running
when the deadline passes is cancelled where it can be and named to the caller.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ._durable import DurableSubscription
from ._durable_options import DurableOptions
from ._exceptions import BusUsageError, RegistrationError, SubscriptionInUseError
from ._failures import HandlerFailure, Reporter
from ._handlers import Handler, check_event_type, infer_event_type, inspect_handler
from ._mapper import EventMapper
from ._middleware import MiddlewareStack
from ._runner import AsyncRunner
from ._store import CheckpointStore, EventStore, LeaseStore

__all__ = ["DurableConsumers"]


class DurableConsumers:
    """Creates and owns the durable subscriptions of one bus.

    Args:
        store: The bus's store, or None (durable subscriptions are then refused).
        checkpoints: Where checkpoints are kept, or None (refused too).
        mapper: Selects and decodes stored records.
        runner: Runs coroutine handlers.
        report: Receives isolated failures.
        middleware: Wraps every handler call of every subscription.
    """

    def __init__(
        self,
        store: EventStore | None,
        checkpoints: CheckpointStore | None,
        mapper: EventMapper,
        runner: AsyncRunner,
        report: Reporter,
        middleware: MiddlewareStack,
    ) -> None:
        self._middleware = middleware
        self._store = store
        self._checkpoints = checkpoints
        self._mapper = mapper
        self._runner = runner
        self._report = report
        self._lock = threading.Lock()
        self._running: dict[str, DurableSubscription] = {}
        self._closed = False
        # Publishes on this bus wake idle subscriptions of stores that cannot tail.
        self.wake = threading.Condition()

    def snapshot(self) -> dict[str, DurableSubscription]:
        """The running subscriptions by id."""
        with self._lock:
            return dict(self._running)

    def log_grew(self) -> None:
        """Wake idle subscriptions: this bus appended."""
        if self._running:
            with self.wake:
                self.wake.notify_all()

    def subscribe(
        self,
        subscription_id: str,
        handler: Handler,
        event_type: type[Any] | None,
        options: DurableOptions,
    ) -> DurableSubscription:
        """Start a durable subscription; see :meth:`EventBus.subscribe_durable`."""
        store, checkpoints = self._store, self._checkpoints
        if store is None:
            raise BusUsageError(
                "Cannot subscribe a durable handler: this bus has no store; create it as "
                "EventBus(store=...)."
            )
        if checkpoints is None:
            raise BusUsageError(
                "Durable subscriptions need checkpoints: the store does not keep them; pass "
                "EventBus(store=..., checkpoints=<a CheckpointStore>)."
            )
        if not isinstance(subscription_id, str) or not subscription_id:
            raise RegistrationError(
                f"subscription_id must be a non-empty string, got {subscription_id!r}."
            )
        inspect_handler(handler)
        if event_type is None:
            event_type = infer_event_type(handler)
        event_type = check_event_type(event_type)
        self._mapper.check_selectable(event_type, self._mapper.register_if_event(event_type))
        selection = self._mapper.selection(event_type, subscription_id)
        durable = DurableSubscription(
            subscription_id=subscription_id,
            handler=handler,
            selection=selection,
            store=store,
            checkpoints=checkpoints,
            options=options,
            runner=self._runner,
            report=self._report,
            middleware=self._middleware,
            on_stop=self._release,
            wake=self.wake,
        )
        with self._lock:
            if self._closed:
                selection.release()
                raise BusUsageError("Cannot subscribe a durable handler: the bus is closing.")
            if subscription_id in self._running:
                selection.release()
                raise SubscriptionInUseError(
                    f"Durable subscription {subscription_id!r} already has an owner on this bus; "
                    "stop it first or choose another id."
                )
            if not isinstance(checkpoints, LeaseStore):
                _claim_sole(checkpoints, durable)
            self._running[subscription_id] = durable
        try:
            durable.start(checkpoints.load_checkpoint(subscription_id))
        except BaseException:
            selection.release()
            self._release(durable)
            raise
        return durable

    def _release(self, durable: DurableSubscription) -> None:
        # Only the owner releases its id (its worker, or a failed setup), exactly once.
        with self._lock:
            self._running.pop(durable.subscription_id, None)
            if not isinstance(self._checkpoints, LeaseStore):
                with _SOLE_LOCK:
                    del _SOLE_OWNERS[id(self._checkpoints), durable.subscription_id]

    def stop_all(self, deadline: float | None, *, drain: bool) -> list[str]:
        """Drain (if asked) and stop every subscription by ``deadline`` (monotonic).

        Returns:
            The ids of the subscriptions still running at the deadline, sorted.
        """
        with self._lock:
            self._closed = True
        durables = list(self.snapshot().values())
        if drain:
            for durable in durables:
                if durable.is_worker_thread():
                    continue  # shutdown from its own handler: it cannot wait for itself
                try:
                    durable.drain(timeout=_remaining(deadline))
                except Exception as exc:  # the store failed: report, and stop anyway
                    self._report(HandlerFailure(exc, "durable", None, durable.subscription_id))
        for durable in durables:
            durable.request_stop()
        # One still waiting for events, not in a handler, ends when the bus closes the
        # store (closing wakes every tail); only a handler can outlive the deadline.
        late = [d for d in durables if not d.join(_remaining(deadline)) and d.in_handler]
        for durable in late:
            durable.cancel()  # a coroutine handler: cancelled; a sync one cannot be
        return sorted(d.subscription_id for d in late)


# The durable subscriptions of this process on stores that cannot keep leases, by
# (id(checkpoint store), subscription id): two buses sharing such a store would both
# handle every event, so the second is refused. Other processes cannot be seen.
_SOLE_OWNERS: dict[tuple[int, str], DurableSubscription] = {}
_SOLE_LOCK = threading.Lock()


def _claim_sole(checkpoints: CheckpointStore, durable: DurableSubscription) -> None:
    key = (id(checkpoints), durable.subscription_id)
    with _SOLE_LOCK:
        if key in _SOLE_OWNERS:  # removed by its worker's last act, or a failed setup
            raise SubscriptionInUseError(
                f"Durable subscription {durable.subscription_id!r} already runs on this "
                f"store, on another bus of this process. {type(checkpoints).__name__} "
                "cannot keep leases (it lacks the LeaseStore capability), so two owners "
                "would both handle every event; stop the other one, or use a store with "
                "leases (MemoryStore, SQLiteStore, DurableStreamStore), where the second "
                "subscription stands by."
            )
        _SOLE_OWNERS[key] = durable


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
