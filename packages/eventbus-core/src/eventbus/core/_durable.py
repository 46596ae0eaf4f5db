"""Durable subscriptions: ordered, checkpointed consumers of the store's log.

One worker thread per subscription reads the log in order from its checkpoint,
first the history, then live (through the store's tail capability when it has one,
so events appended by other processes arrive too; else by polling, woken at once by
publishes on the same bus). An event's checkpoint is saved only after its handler
completed, so a checkpoint never passes an unfinished event.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._envelope import Envelope
from ._exceptions import (
    DecodeError,
    PoisonEventError,
    RegistrationError,
    StoreUnavailableError,
    UpcastFailedError,
)
from ._store import (
    NEWEST,
    OLDEST,
    Boundary,
    Checkpoint,
    CheckpointStore,
    EventStore,
    OffsetOrdering,
    Position,
    StoredEvent,
    TailingStore,
)
from ._validate import check_batch_size, check_count, check_positive

if TYPE_CHECKING:
    from ._bus import HandlerFailure

__all__ = ["DeadLetterHandler", "DurableOptions", "DurableSubscription", "PoisonPolicy"]

DeadLetterHandler = Callable[[StoredEvent, BaseException], object]

_TAIL_SLICE = 1.0


class PoisonPolicy(enum.Enum):
    """What a durable subscription does with an event it cannot process.

    An event is poison when it cannot be decoded or upcast, or when its handler still
    fails after every retry.
    """

    ABORT = "abort"
    """Stop the subscription; the checkpoint stays before the event (the default)."""

    SKIP = "skip"
    """Report the event to the error hook, checkpoint past it and go on."""


@dataclass(frozen=True, slots=True)
class DurableOptions:
    """The options of one durable subscription, validated when built.

    Raises:
        ValueError: a bad start position, count, delay or interval.
        RegistrationError: ``where`` or ``on_poison`` is not callable.
    """

    start: Position
    where: Callable[[Any], bool] | None
    on_poison: PoisonPolicy | DeadLetterHandler
    max_attempts: int
    retry_backoff: float
    max_backoff: float
    checkpoint_every: int
    checkpoint_interval: float | None
    poll_interval: float
    batch_size: int

    def __post_init__(self) -> None:
        if not isinstance(self.start, (str, Boundary)) or self.start == "":
            raise ValueError(
                f"start must be OLDEST, NEWEST or an offset string, got {self.start!r}."
            )
        if self.where is not None and not callable(self.where):
            raise RegistrationError(
                f"where= must be a callable predicate taking the event, got {self.where!r}."
            )
        if not isinstance(self.on_poison, PoisonPolicy) and not callable(self.on_poison):
            raise RegistrationError(
                f"on_poison must be a PoisonPolicy or a dead-letter callable, "
                f"got {self.on_poison!r}."
            )
        check_count("max_attempts", self.max_attempts)
        check_count("checkpoint_every", self.checkpoint_every)
        check_batch_size(self.batch_size)
        check_positive("retry_backoff", self.retry_backoff)
        check_positive("max_backoff", self.max_backoff)
        check_positive("poll_interval", self.poll_interval)
        if self.checkpoint_interval is not None:
            check_positive("checkpoint_interval", self.checkpoint_interval)


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
        type_name: str,
        handler: Callable[..., Any],
        is_async: bool,
        wants_envelope: bool,
        decode: Callable[[str, str], tuple[str, Any]],
        store: EventStore,
        checkpoints: CheckpointStore,
        options: DurableOptions,
        run_coroutine: Callable[[Any], Any],
        report: Callable[[HandlerFailure], None],
        failure: Callable[..., HandlerFailure],
        release: Callable[[DurableSubscription], None],
        wake: threading.Condition,
    ) -> None:
        self._id = subscription_id
        self._type_name = type_name
        self._handler = handler
        self._is_async = is_async
        self._wants_envelope = wants_envelope
        self._decode = decode
        self._store = store
        self._checkpoints = checkpoints
        self._options = options
        self._run_coroutine = run_coroutine
        self._report = report
        self._failure = failure
        self._release = release
        self._wake = wake
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        # The log's tail when the subscription started: reaching it means "caught up"
        # even while a busy publisher keeps the log from ever reading empty.
        self._barrier: Checkpoint | None = None
        self._phase = _Phase.RUNNING
        self._error: BaseException | None = None
        self._saved: Checkpoint | None = None
        self._unsaved: Checkpoint | None = None
        self._unsaved_count = 0
        self._last_save = time.monotonic()
        self._thread: threading.Thread | None = None

    # -- public ----------------------------------------------------------------------

    @property
    def subscription_id(self) -> str:
        """The id its checkpoint is saved under."""
        return self._id

    @property
    def running(self) -> bool:
        """Whether the worker is still consuming the log."""
        return self._phase is _Phase.RUNNING

    @property
    def error(self) -> BaseException | None:
        """Why the subscription stopped by itself (abort policy), if it did."""
        return self._error

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The last checkpoint saved by this subscription, or the one it started from."""
        return self._saved

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Block until the history present at start was processed; False on timeout."""
        return self._caught_up.wait(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the event being handled, save the checkpoint and release the id.

        Args:
            timeout: Seconds to wait for the worker; None waits as long as it takes.

        Returns:
            True if the worker finished within ``timeout``.
        """
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __repr__(self) -> str:
        return f"<DurableSubscription {self._id!r} on {self._type_name} ({self._phase.value})>"

    # -- setup -----------------------------------------------------------------------

    def start(self, saved: Checkpoint | None) -> None:
        """Resolve the starting position (saving it on a first run) and start the worker."""
        if saved is None:
            start = self._options.start
            if start is NEWEST:
                # Resolve NEWEST once and save it before reading, so a restart after a
                # crash does not re-resolve it and skip what was appended meanwhile.
                start = self._store.read(NEWEST, limit=1).next
            elif start is not OLDEST:
                # Validate a concrete offset now, before anything runs.
                self._store.read(start, limit=1)
            self._checkpoints.save_checkpoint(self._id, start)
            saved = start
        self._saved = saved
        if isinstance(self._store, OffsetOrdering):
            barrier = self._store.read(NEWEST, limit=1).next
            if barrier is OLDEST or (saved is not OLDEST and self._reached(saved, barrier)):
                self._caught_up.set()
            else:
                self._barrier = barrier
        self._thread = threading.Thread(
            target=self._run, args=(saved,), name=f"eventbus-durable-{self._id}", daemon=True
        )
        self._thread.start()

    # -- the worker ------------------------------------------------------------------

    def _run(self, cursor: Checkpoint) -> None:
        try:
            self._consume(cursor)
        except BaseException as exc:  # reported, never lost: the thread has no caller
            self._fail(exc)
        finally:
            if self._phase is _Phase.RUNNING:
                self._phase = _Phase.STOPPED
            self._flush()
            self._caught_up.set()
            self._release(self)

    def _consume(self, cursor: Checkpoint) -> None:
        live = False
        delay = self._options.retry_backoff
        while not self._stopping.is_set():
            try:
                if live:
                    result = self._wait_for_events(cursor)
                else:
                    result = self._store.read(cursor, limit=self._options.batch_size)
            except StoreUnavailableError as exc:
                # Transient (a server restart, a busy file): report, back off, read again.
                self._report(self._failure(exc, "durable", None, self._id, None))
                self._stopping.wait(delay)
                delay = min(delay * 2, self._options.max_backoff)
                continue
            delay = self._options.retry_backoff
            for stored in result.events:
                if self._stopping.is_set() or not self._process(stored):
                    return
                cursor = stored.offset
                if self._barrier is not None and self._reached(stored.offset, self._barrier):
                    self._barrier = None
                    self._caught_up.set()
            if not result.events:
                cursor = result.next
                if not live:
                    live = True
                    self._flush()
                    self._caught_up.set()
            self._maybe_flush_by_time()

    def _reached(self, offset: str, barrier: Checkpoint) -> bool:
        assert isinstance(self._store, OffsetOrdering)
        return barrier is OLDEST or self._store.compare_offsets(offset, barrier) >= 0

    def _wait_for_events(self, cursor: Checkpoint) -> Any:
        if isinstance(self._store, TailingStore):
            # A blocked tail cannot be interrupted: wait in slices of at most
            # _TAIL_SLICE so stop() is honoured promptly whatever poll_interval is.
            timeout = min(self._options.poll_interval, _TAIL_SLICE)
            return self._store.tail(cursor, timeout=timeout, limit=self._options.batch_size)
        with self._wake:
            if not self._stopping.is_set():
                self._wake.wait(self._options.poll_interval)
        return self._store.read(cursor, limit=self._options.batch_size)

    def _process(self, stored: StoredEvent) -> bool:
        """Handle one stored event; False means stop (abort policy)."""
        try:
            type_name, event = self._decode(stored.type_name, stored.data)
        except (DecodeError, UpcastFailedError) as exc:
            return self._poison(stored, exc)
        if type_name != self._type_name:
            self._advance(stored.offset)
            return True
        where = self._options.where
        if where is not None:
            try:
                selected = where(event)
            except Exception as exc:
                return self._poison(stored, exc)
            if not selected:
                self._advance(stored.offset)
                return True
        error = self._call_with_retries(stored, event)
        if error is None:
            self._advance(stored.offset)
            return True
        if self._stopping.is_set():
            return False
        return self._poison(stored, error)

    def _call_with_retries(self, stored: StoredEvent, event: Any) -> BaseException | None:
        args: tuple[Any, ...] = (event,)
        if self._wants_envelope:
            args = (
                event,
                Envelope(
                    stored.event_id,
                    stored.offset,
                    stored.type_name,
                    stored.timestamp,
                    stored.metadata,
                    stored.origin,
                ),
            )
        options = self._options
        delay = options.retry_backoff
        for attempt in range(1, options.max_attempts + 1):
            try:
                if self._is_async:
                    self._run_coroutine(self._handler(*args))
                else:
                    self._handler(*args)
                return None
            except Exception as exc:
                self._report(self._failure(exc, "durable", event, self._id, stored))
                if attempt == options.max_attempts:
                    return exc
            # Capped exponential back-off, cut short by stop().
            if self._stopping.wait(delay):
                return _StoppedError()
            delay = min(delay * 2, options.max_backoff)
        raise AssertionError(
            "unreachable: the loop returns on its last attempt"
        )  # pragma: no cover - max_attempts >= 1 is validated

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
            self._report(self._failure(poison, "durable", None, self._id, stored))
        else:
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
        self._advance(stored.offset)
        return True

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._phase = _Phase.FAILED
        self._report(self._failure(exc, "durable", None, self._id, None))

    # -- checkpoints -----------------------------------------------------------------

    def _advance(self, offset: Checkpoint) -> None:
        self._unsaved = offset
        self._unsaved_count += 1
        if self._unsaved_count >= self._options.checkpoint_every:
            self._flush()
        else:
            self._maybe_flush_by_time()

    def _maybe_flush_by_time(self) -> None:
        interval = self._options.checkpoint_interval
        if interval is not None and time.monotonic() - self._last_save >= interval:
            self._flush()

    def _flush(self) -> None:
        offset = self._unsaved
        if offset is None:
            return
        try:
            self._checkpoints.save_checkpoint(self._id, offset)
        except Exception as exc:
            # Not fatal: the next flush saves a later offset; until then a restart
            # redelivers from the older checkpoint (at-least-once).
            self._report(self._failure(exc, "durable", None, self._id, None))
            return
        self._saved = offset
        self._unsaved = None
        self._unsaved_count = 0
        self._last_save = time.monotonic()
