"""Durable subscriptions: ordered, checkpointed consumers of the store's log.

One worker thread per subscription runs read → select → decode → handle →
checkpoint, first over the history, then live (through the store's tail capability
when it has one, so events appended by other processes arrive too; else by polling,
woken at once by publishes on the same bus).

- *Select* happens on the wire name before anything is decoded (see :mod:`._mapper`):
  a record this subscription does not want can neither stop it nor be its poison.
- An event's position is handed to the checkpointer only after its handler completed,
  so a saved checkpoint never passes an unfinished event.
- Every wait is bounded: stop() is seen between events and during retry back-off, and
  a coroutine handler can be cancelled by the bus's shutdown deadline.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ._checkpointer import Checkpointer
from ._durable_options import DurableOptions
from ._envelope import Envelope
from ._exceptions import (
    BusUsageError,
    DecodeError,
    LeaseLostError,
    PoisonEventError,
    StoreClosedError,
    StoreCorruptError,
    StoreUnavailableError,
    UnknownEventError,
    UpcastFailedError,
)
from ._failures import HandlerFailure, PoisonPolicy, Reporter
from ._handlers import Handler, inspect_handler
from ._mapper import UNCLAIMED, Selection
from ._middleware import Delivery, MiddlewareStack
from ._ownership import LeaseOwnership, Ownership, SoleOwnership, SubscriptionState
from ._runner import AsyncRunner
from ._store import (
    NEWEST,
    OLDEST,
    Checkpoint,
    CheckpointStore,
    EventStore,
    LeaseStore,
    OffsetOrdering,
    Position,
    ReadResult,
    StoredEvent,
    TailingStore,
)

if TYPE_CHECKING:
    from ._store import Owner

__all__ = ["DurableSubscription"]

logger: Final = logging.getLogger("eventbus")

# A blocked tail cannot be interrupted: the worker waits in slices of this many seconds
# so stop() is honoured within one slice (closing the store wakes it at once). A stopping
# owner releases its lease only after that, so the slice bounds how long a standby waits
# for a clean handover (bench_failover: well under a second). A store that keeps its
# long-poll open across calls (DurableStreamStore) sends no request per slice, and
# SQLite runs one indexed page query per slice.
_TAIL_SLICE: Final = 0.25


class _StoppedError(Exception):
    """stop() interrupted the retries of an event; it is neither done nor poison."""


class _Phase(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class DurableSubscription:
    """A running durable subscription, as returned by ``EventBus.subscribe_durable``."""

    def __init__(
        self,
        *,
        subscription_id: str,
        handler: Handler,
        selection: Selection,
        store: EventStore,
        checkpoints: CheckpointStore,
        options: DurableOptions,
        runner: AsyncRunner,
        report: Reporter,
        middleware: MiddlewareStack,
        on_stop: Callable[[DurableSubscription], None],
        wake: threading.Condition,
    ) -> None:
        self._id = subscription_id
        self._handler = handler
        self._is_async, self._wants_envelope = inspect_handler(handler)
        self._selection = selection
        self._store = store
        self._options = options
        self._runner = runner
        self._report = report
        self._middleware = middleware
        self._on_stop = on_stop
        self._wake = wake
        self._ownership: Ownership = (
            LeaseOwnership(
                subscription_id,
                checkpoints,
                ttl=options.lease_ttl,
                on_lost=self._lost,
                note_lost=self._note_lost,
                on_error=self._report_failure,
            )
            if isinstance(checkpoints, LeaseStore)
            else SoleOwnership(subscription_id, checkpoints)
        )
        self._checkpointer = Checkpointer(
            self._ownership.save,
            every=options.checkpoint_every,
            interval=options.checkpoint_interval,
            on_error=self._checkpoint_failed,
        )
        self._checkpoints = checkpoints
        # Where a first run starts, resolved when subscribing; saved by the first owner.
        self._initial: Checkpoint = OLDEST
        self._stopping = threading.Event()
        self._phase = _Phase.RUNNING
        # Set by the worker's last act, after it let go of the id: until then a new
        # subscription under the same id would be refused, so it still counts as running.
        self._finished = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._future: concurrent.futures.Future[Any] | None = None
        self._unknown: dict[str, int] = {}
        # True while a handler runs: what a shutdown deadline can leave behind.
        self.in_handler = False
        # Progress, for drain(): the position handled up to, how many reads started,
        # and the number of the last read that found nothing new (caught up).
        self._progress = threading.Condition(threading.Lock())
        self._position: Checkpoint = OLDEST
        self._reads = 0
        self._idle_read = 0
        # The log's tail when the subscription started, for wait_caught_up().
        self._barrier: Position = NEWEST

    # -- public ----------------------------------------------------------------------

    @property
    def subscription_id(self) -> str:
        """The id its checkpoint is saved under."""
        return self._id

    @property
    def running(self) -> bool:
        """Whether the subscription runs: consuming the log, or standing by to take over.

        False only once its worker has ended and released the id, so the id can be
        subscribed again as soon as this reads False.
        """
        return not self._finished

    @property
    def state(self) -> SubscriptionState:
        """ACTIVE (it owns the id), STANDBY (another process does) or STOPPED."""
        if self._finished:
            return SubscriptionState.STOPPED
        return self._ownership.state

    @property
    def owner(self) -> Owner:
        """This subscription's identity among the owners of its id: host, pid, instance."""
        return self._ownership.owner

    @property
    def error(self) -> BaseException | None:
        """Why the subscription stopped by itself (abort policy), or the
        :class:`LeaseLostError` of its last lost lease while it runs on."""
        return self._error

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The last checkpoint saved by this subscription, or the one it started from."""
        return self._checkpointer.saved

    @property
    def position(self) -> Checkpoint:
        """The offset this subscription has handled (or passed over) up to."""
        return self._position

    @property
    def unknown_names(self) -> Mapping[str, int]:
        """How many stored events of each wire name no registered class claims it passed."""
        return MappingProxyType(dict(self._unknown))

    def wait_active(self, timeout: float | None = None) -> bool:
        """Block until this subscription owns its id (see :attr:`state`).

        Returns:
            True once it is ACTIVE; False on timeout or when it stopped.
        """
        return self._ownership.wait_active(self._stopping, timeout) and self.running

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Block until the history present at start was handled.

        Returns:
            True once it was, while the subscription runs; False on timeout, or when the
            subscription stopped (it never reports success for a stopped subscription).
        """
        return self._wait_for(self._barrier, 0, timeout) and self.running

    def drain(self, until: Position | None = None, timeout: float | None = None) -> bool:
        """Block until this subscription has handled everything stored up to ``until``.

        Args:
            until: An offset, or None for the end of the log at the time of the call.
            timeout: Seconds to wait; None waits as long as it takes.

        Returns:
            True when it has; False on timeout, if it stopped before getting there, or
            at once when it stands by (another process owns the id and does the work).

        Raises:
            BusUsageError: called from this subscription's own handler, which would wait
                for itself.
        """
        if self.is_worker_thread():
            raise BusUsageError(
                f"drain() of durable subscription {self._id!r} was called from its own "
                "handler, which would wait for itself forever; call it from other code."
            )
        if self.state is SubscriptionState.STANDBY:
            return False
        with self._progress:
            ticket = self._reads
        target: Position = self._store.read(NEWEST, limit=1).next if until is None else until
        return self._wait_for(target, ticket, timeout)

    async def adrain(self, until: Position | None = None, timeout: float | None = None) -> bool:
        """:meth:`drain` for asyncio code: waits in a worker thread, never on the loop."""
        import asyncio  # the sync path never needs asyncio

        return await asyncio.to_thread(self.drain, until, timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the event being handled, save the checkpoint and release the id.

        Args:
            timeout: Seconds to wait for the worker; None waits as long as it takes.

        Returns:
            True if the worker finished within ``timeout``.
        """
        self.request_stop()
        return self.join(timeout)

    def __repr__(self) -> str:
        return (
            f"<DurableSubscription {self._id!r} on {self._selection.event_type.__qualname__} "
            f"({self._phase.value})>"
        )

    # -- used by the bus ---------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the worker to stop after the event being handled; returns at once."""
        self._stopping.set()
        self._ownership.interrupt()
        with self._wake:
            self._wake.notify_all()

    def join(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the worker to end; True if it did."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def is_worker_thread(self) -> bool:
        """Whether the calling thread is this subscription's worker (inside its handler)."""
        return threading.current_thread() is self._thread

    def cancel(self) -> None:
        """Cancel the coroutine handler running now, if any (the shutdown deadline passed)."""
        future = self._future
        if future is not None:
            future.cancel()

    def start(self, saved: Checkpoint | None) -> None:
        """Resolve where a first run starts, claim the id if free, and start the worker.

        Args:
            saved: The checkpoint loaded when subscribing (None: a first run).
        """
        if saved is None:
            start = self._options.start
            if start is NEWEST:
                # Resolve NEWEST once, now, and have the first owner save it before
                # reading, so a restart after a crash does not re-resolve it and skip
                # what was appended meanwhile.
                start = self._store.read(NEWEST, limit=1).next
            elif start is not OLDEST:
                # Validate a concrete offset now, before anything runs.
                self._store.read(start, limit=1)
            self._initial = start
        self._ownership.start()
        try:
            cursor = self._activate() if self._ownership.holds() else None
        except BaseException:
            self._ownership.stop(None)
            raise
        if isinstance(self._store, OffsetOrdering):
            # Comparable offsets: "caught up" is reaching today's tail, even while a busy
            # publisher keeps every read full. Otherwise: the first read that finds nothing.
            self._barrier = self._store.read(NEWEST, limit=1).next
        self._thread = threading.Thread(
            target=self._run, args=(cursor,), name=f"eventbus-durable-{self._id}", daemon=True
        )
        self._thread.start()

    def _activate(self) -> Checkpoint:
        """Become the owner's worker: resume from the checkpoint saved now (another
        owner may have moved it), or save the first run's start."""
        saved = self._checkpoints.load_checkpoint(self._id)
        if saved is None:
            saved = self._initial
            self._ownership.save(saved)
        self._checkpointer.reset(saved)
        self._moved(saved)
        return saved

    # -- progress ----------------------------------------------------------------------

    def _wait_for(self, target: Position, ticket: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while not self._reached(target, ticket):
                if self._finished:  # a stop seen earlier waits for the id to be free
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining)
        return True

    def _reached(self, target: Position, ticket: int) -> bool:
        # A read that started after the wait began and found nothing new proves that
        # everything stored before the wait was handled, on any store.
        if self._idle_read > ticket or target is OLDEST:
            return True
        position = self._position
        if position is OLDEST or target is NEWEST:
            return False
        if position == target:
            return True
        store = self._store
        return isinstance(store, OffsetOrdering) and store.compare_offsets(position, target) >= 0

    def _moved(self, position: Checkpoint, idle_read: int = 0) -> None:
        with self._progress:
            self._position = position
            if idle_read:
                self._idle_read = idle_read
            self._progress.notify_all()

    # -- the worker --------------------------------------------------------------------

    def _run(self, cursor: Checkpoint | None) -> None:
        try:
            while not self._stopping.is_set():
                if cursor is None:
                    if not self._ownership.wait_active(self._stopping):
                        break
                    cursor = self._activate()
                self._consume(cursor)
                if self._phase is not _Phase.RUNNING:
                    break
                # The lease was lost or ran out: save what this owner handled, if its
                # token still counts (the store checks), then stand by again.
                self._checkpointer.flush()
                cursor = None
        except BaseException as exc:  # reported, never lost: the thread has no caller
            self._fail(exc)
        finally:
            if self._phase is _Phase.RUNNING:
                self._phase = _Phase.STOPPED
            if self._ownership.holds():
                self._checkpointer.flush()
            self._ownership.stop(None)
            self._selection.release()
            self._on_stop(self)
            with self._progress:
                self._finished = True
                self._progress.notify_all()

    def _consume(self, cursor: Checkpoint) -> None:
        live = False
        delay = self._options.retry_backoff
        while not self._stopping.is_set() and self._ownership.holds():
            with self._progress:
                self._reads += 1
                read_number = self._reads
            try:
                page = self._wait_for_events(cursor) if live else self._read(cursor)
            except StoreCorruptError as exc:
                passed = self._pass_corrupt(exc)
                if passed is None:
                    return
                cursor = passed
                self._moved(cursor)
                continue
            except StoreUnavailableError as exc:
                # Transient (a server restart, a busy file): report, back off, read again.
                self._report_failure(exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._options.max_backoff)
                continue
            delay = self._options.retry_backoff
            for stored in page.events:
                if self._interrupted() or not self._process(stored):
                    return
                cursor = stored.offset
                self._moved(cursor)
            if not page.events:
                cursor = page.next
                live = True
                self._checkpointer.flush()
                self._moved(cursor, read_number)
            self._checkpointer.flush_if_due()

    def _read(self, cursor: Checkpoint) -> ReadResult:
        return self._store.read(cursor, limit=self._options.batch_size)

    def _wait_for_events(self, cursor: Checkpoint) -> ReadResult:
        if isinstance(self._store, TailingStore):
            # The store wakes the tail when events arrive: poll_interval does not apply.
            return self._store.tail(cursor, timeout=_TAIL_SLICE, limit=self._options.batch_size)
        with self._wake:
            if not self._stopping.is_set():
                self._wake.wait(self._options.poll_interval)
        return self._read(cursor)

    def _process(self, stored: StoredEvent) -> bool:
        """Handle one stored event; False means stop."""
        decode = self._selection.decoder(stored.type_name)
        if decode is None:
            self._checkpointer.advance(stored.offset)
            return True
        if decode is UNCLAIMED:
            return self._pass_unknown(stored)
        try:
            event = decode(stored.data)
        except (DecodeError, UpcastFailedError) as exc:
            return self._poison(stored, exc)
        where = self._options.where
        if where is not None:
            try:
                selected = where(event)
            except Exception as exc:
                return self._poison(stored, exc)
            if not selected:
                self._checkpointer.advance(stored.offset)
                return True
        error = self._call_with_retries(stored, event)
        if error is None:
            self._checkpointer.advance(stored.offset)
            return True
        if isinstance(error, _StoppedError):
            return False
        return self._poison(stored, error)

    def _call_with_retries(self, stored: StoredEvent, event: Any) -> BaseException | None:
        args: tuple[Any, ...] = (event,)
        wrapped = bool(self._middleware.entries)
        envelope: Envelope | None = None
        if self._wants_envelope or wrapped:
            envelope = Envelope(
                stored.event_id,
                stored.offset,
                stored.type_name,
                stored.timestamp,
                stored.metadata,
                stored.origin,
            )
            if self._wants_envelope:
                args = (event, envelope)
        options = self._options
        delay = options.retry_backoff
        for attempt in range(1, options.max_attempts + 1):
            delivery = (
                Delivery(event, envelope, self._handler, self._id, attempt)
                if wrapped and envelope is not None
                else None
            )
            try:
                self._call(args, delivery)
                return None
            except concurrent.futures.CancelledError:
                if self._stopping.is_set():
                    return _StoppedError()
                raise
            except Exception as exc:
                self._report(HandlerFailure(exc, "durable", event, self._id, stored))
                if attempt == options.max_attempts:
                    return exc
            # Capped exponential back-off, cut short by stop(); the next owner retries
            # an event this one lost its lease on.
            if self._stopping.wait(delay) or not self._ownership.holds():
                return _StoppedError()
            delay = min(delay * 2, options.max_backoff)
        raise AssertionError(
            "unreachable: the loop returns on its last attempt"
        )  # pragma: no cover - max_attempts >= 1 is validated

    def _call(self, args: tuple[Any, ...], delivery: Delivery | None) -> None:
        self.in_handler = True
        try:
            if not self._is_async:
                if delivery is None:
                    self._handler(*args)
                else:
                    with self._middleware.handling(delivery):
                        self._handler(*args)
                return
            coroutine = (
                self._handler(*args) if delivery is None else self._handle_async(delivery, args)
            )
            future = self._runner.submit(coroutine)
            self._future = future
            try:
                future.result()
            finally:
                self._future = None
        finally:
            self.in_handler = False

    async def _handle_async(self, delivery: Delivery, args: tuple[Any, ...]) -> None:
        # Entered inside the handler's task, as on a plain subscription.
        with self._middleware.handling(delivery):
            await self._handler(*args)

    # -- what cannot be handled ----------------------------------------------------------

    def _pass_unknown(self, stored: StoredEvent) -> bool:
        name = stored.type_name
        count = self._unknown.get(name, 0) + 1
        self._unknown[name] = count
        if self._options.on_unknown is PoisonPolicy.ABORT:
            self._fail(
                UnknownEventError(
                    f"Durable subscription {self._id!r} stopped at event {stored.event_id} "
                    f"(offset {stored.offset}): no registered class claims its wire name "
                    f"{name!r}. Register the class with bus.register() before subscribing, "
                    "or pass on_unknown=PoisonPolicy.SKIP."
                )
            )
            return False
        if count == 1:
            logger.warning(
                "Durable subscription %r passes over stored events named %r (first at "
                "offset %s): no registered class claims that wire name. Register the class "
                "with bus.register() before subscribing if it should handle them.",
                self._id,
                name,
                stored.offset,
            )
        self._checkpointer.advance(stored.offset)
        return True

    def _pass_corrupt(self, exc: StoreCorruptError) -> str | None:
        """Apply the poison policy to a record the store cannot read.

        Returns:
            The offset to go on after, or None to stop.
        """
        record, offset = exc.record, exc.offset
        if offset is None:
            self._fail(exc)
            return None
        # A record without a readable name (a foreign message, say) cannot be routed by
        # its name: the poison policy decides about it.
        if record is not None and record.type_name:
            wanted = self._selection.decoder(record.type_name)
            if wanted is None:
                self._checkpointer.advance(offset)  # another class's record: not ours
                return offset
            if wanted is UNCLAIMED:
                return offset if self._pass_unknown(record) else None
        policy = self._options.on_poison
        if policy is PoisonPolicy.ABORT or (record is None and policy is not PoisonPolicy.SKIP):
            self._fail(exc)
            return None
        if record is None or policy is PoisonPolicy.SKIP:
            self._report(HandlerFailure(exc, "durable", None, self._id, record))
        elif not self._dead_letter(record, exc):
            return None
        self._checkpointer.advance(offset)
        return offset

    def _poison(self, stored: StoredEvent, exc: BaseException) -> bool:
        policy = self._options.on_poison
        poison = PoisonEventError(
            f"Durable subscription {self._id!r} could not process event {stored.event_id} "
            f"({stored.type_name}) at offset {stored.offset}: {exc}"
        )
        poison.__cause__ = exc
        if policy is PoisonPolicy.ABORT:
            self._fail(poison)
            return False
        if policy is PoisonPolicy.SKIP:
            self._report(HandlerFailure(poison, "durable", None, self._id, stored))
        elif not self._dead_letter(stored, exc):
            return False
        self._checkpointer.advance(stored.offset)
        return True

    def _dead_letter(self, stored: StoredEvent, exc: BaseException) -> bool:
        policy = self._options.on_poison
        assert not isinstance(policy, PoisonPolicy)
        try:
            policy(stored, exc)
        except Exception as dead_letter_error:
            failed = PoisonEventError(
                f"The dead-letter handler of durable subscription {self._id!r} failed for "
                f"event {stored.event_id} at offset {stored.offset}: {dead_letter_error}"
            )
            failed.__cause__ = dead_letter_error
            self._fail(failed)
            return False
        return True

    def _interrupted(self) -> bool:
        """Whether to handle no further event: stop() was called, or the lease is gone."""
        return self._stopping.is_set() or not self._ownership.holds()

    def _note_lost(self, exc: LeaseLostError) -> None:
        """Told under the lease lock, before the state reads STANDBY: keep the loss."""
        self._error = exc

    def _lost(self, exc: LeaseLostError) -> None:
        """Told by the lease thread: another owner took over; this one stands by."""
        self._report(HandlerFailure(exc, "durable", None, self._id, None))

    def _checkpoint_failed(self, exc: Exception) -> None:
        if not isinstance(exc, LeaseLostError):  # reported by _lost
            self._report_failure(exc)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._phase = _Phase.FAILED
        self._report_failure(exc)

    def _report_failure(self, exc: BaseException) -> None:
        if isinstance(exc, StoreClosedError) and self._stopping.is_set():
            return  # the bus closed the store under a stopping subscription: expected
        self._report(HandlerFailure(exc, "durable", None, self._id, None))
