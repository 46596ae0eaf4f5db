"""Who may run a durable subscription: one owner per id, across processes and hosts.

A store with the :class:`~eventbus.core.LeaseStore` capability keeps a lease per
subscription id. :class:`LeaseOwnership` claims it, renews it from its own thread while
handlers run, gives it up on stop, and otherwise stands by, watching the record:

- A released record (the owner stopped) is claimed at once.
- A record that has not changed for a whole ``ttl``, timed with this process's
  monotonic clock from when it was first seen, belongs to an owner that stopped
  renewing (killed or frozen): it is claimed. No wall clock is compared, so hosts'
  clocks need not agree; only their rates must (within the safety margin below).
- The owner renews every ``ttl / 3`` and counts its lease valid for
  ``_VALID_SHARE * ttl`` after the start of its last successful claim or renewal. A
  standby cannot see that renewal before it was made, so it cannot claim before the
  owner stopped trusting its lease, which is when the owner stops handling events.
- Fencing makes the rest safe: a checkpoint is written only with the current token,
  checked by the store in the write itself, so a late owner can never move it.

A store without the capability gets :class:`SoleOwnership`: active at once, as in one
process; the bus refuses a second subscription of the same id on it in this process.
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Final

from ._exceptions import LeaseLostError, StoreClosedError
from ._store import Checkpoint, CheckpointStore, Lease, LeaseStore, Owner

__all__ = ["LeaseOwnership", "Ownership", "SoleOwnership", "SubscriptionState", "new_owner"]

# The owner trusts its lease for this share of the ttl after a renewal started: the rest
# is a margin for clocks that run at slightly different rates and for the renewal's time.
_VALID_SHARE: Final = 0.8
# Standby waits and renewal sleeps are cut into slices this long, so stop is seen soon.
_SLICE: Final = 0.5


class SubscriptionState(enum.Enum):
    """Where a durable subscription stands among the processes sharing its id."""

    STANDBY = "standby"
    """Another owner holds the id; this one waits to take over."""

    ACTIVE = "active"
    """This subscription owns the id and handles its events."""

    STOPPED = "stopped"
    """Stopped (or failed); see ``DurableSubscription.error``."""

    def __repr__(self) -> str:
        return f"SubscriptionState.{self.name}"


def new_owner() -> Owner:
    """This process's identity, with a new random instance id."""
    return Owner(socket.gethostname(), os.getpid(), secrets.token_hex(6))


class Ownership:
    """The interface the durable worker uses; see the two implementations."""

    owner: Owner

    def start(self) -> None:
        """Begin: claim now if the id is free, and keep ownership from now on."""

    def wait_active(self, stopping: threading.Event, timeout: float | None = None) -> bool:
        """Block until this subscription owns its id; False when ``stopping`` was set or
        ``timeout`` seconds passed first."""
        raise NotImplementedError  # pragma: no cover - both subclasses override it

    def holds(self) -> bool:
        """Whether the worker may handle an event now."""
        raise NotImplementedError  # pragma: no cover - both subclasses override it

    def save(self, offset: Checkpoint) -> None:
        """Save the checkpoint as the owner; LeaseLostError when no longer the owner."""
        raise NotImplementedError  # pragma: no cover - both subclasses override it

    def stop(self, timeout: float | None) -> None:
        """Give ownership up (after the last checkpoint was saved) and end its thread."""

    def interrupt(self) -> None:
        """Wake a :meth:`wait_active` caller to see that the subscription stops."""

    @property
    def state(self) -> SubscriptionState:
        """STANDBY or ACTIVE while running."""
        return SubscriptionState.ACTIVE if self.holds() else SubscriptionState.STANDBY


class SoleOwnership(Ownership):
    """For a store that cannot keep leases: the only owner, from the start.

    Args:
        subscription_id: Whose checkpoint is saved.
        checkpoints: Where.
    """

    def __init__(self, subscription_id: str, checkpoints: CheckpointStore) -> None:
        self.owner = new_owner()
        self._id = subscription_id
        self._checkpoints = checkpoints

    def wait_active(self, stopping: threading.Event, timeout: float | None = None) -> bool:
        return not stopping.is_set()

    def holds(self) -> bool:
        return True

    def save(self, offset: Checkpoint) -> None:
        self._checkpoints.save_checkpoint(self._id, offset)


class LeaseOwnership(Ownership):
    """Holds, renews and watches the lease of one subscription id, from its own thread.

    Args:
        subscription_id: The id.
        leases: The store keeping the lease (and the checkpoint it fences).
        ttl: Seconds without a renewal after which a standby takes over.
        on_lost: Told, from the lease thread, when the lease was lost to another owner.
        note_lost: Told of that loss first, under the lock, before the state reads
            STANDBY: it must only record it (no calls out).
        on_error: Told of a failed store call (the lease thread retries).
    """

    def __init__(
        self,
        subscription_id: str,
        leases: LeaseStore,
        *,
        ttl: float,
        on_lost: Callable[[LeaseLostError], None],
        note_lost: Callable[[LeaseLostError], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        self.owner = new_owner()
        self._id = subscription_id
        self._leases = leases
        self._ttl = ttl
        self._on_lost = on_lost
        self._note_lost = note_lost
        self._on_error = on_error
        self._changed = threading.Condition(threading.Lock())
        self._lease: Lease | None = None
        self._renewed_at = 0.0
        self._valid_until = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"eventbus-lease-{subscription_id}", daemon=True
        )

    # -- the worker's side -----------------------------------------------------------------

    def start(self) -> None:
        # One claim attempt in the caller's thread: a free id is owned when subscribe
        # returns, as it is in a single process.
        seen = self._leases.read_lease(self._id)
        if seen is None or seen.released:
            self._claim(seen)
        self._thread.start()

    def wait_active(self, stopping: threading.Event, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._holds_locked():
                left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
                if stopping.is_set() or left <= 0:
                    return False
                self._changed.wait(left)
        return not stopping.is_set()

    def holds(self) -> bool:
        with self._changed:
            return self._holds_locked()

    def interrupt(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def save(self, offset: Checkpoint) -> None:
        lease = self._lease
        if lease is None:
            raise LeaseLostError(
                f"Durable subscription {self._id!r} ({self.owner}) no longer holds its lease."
            )
        try:
            self._leases.save_checkpoint_fenced(lease, offset)
        except LeaseLostError as exc:
            self._lose(lease, exc)
            raise

    def stop(self, timeout: float | None) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout)  # it may be claiming: release only what it ends up with
        with self._changed:
            lease, self._lease = self._lease, None
            self._changed.notify_all()
        if lease is not None:
            try:
                self._leases.release_lease(lease)
            except StoreClosedError:
                pass  # the bus closed the store first: the lease expires after its ttl
            except Exception as exc:
                self._on_error(exc)

    # -- the lease thread ------------------------------------------------------------------

    def _holds_locked(self) -> bool:
        return self._lease is not None and time.monotonic() < self._valid_until

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._lease is None:
                    self._stand_by()
                else:
                    self._keep()
            except StoreClosedError:
                return  # the bus is closing the store: there is nothing left to own
            except Exception as exc:
                # A transient store failure: report, back off, try again. While it lasts
                # the owner's lease runs out and its worker pauses; standbys keep waiting.
                self._on_error(exc)
                self._stopping.wait(min(_SLICE, self._ttl / 10))

    def _stand_by(self) -> None:
        """Watch the record until it is released or unchanged for a ttl, then claim it."""
        seen = self._leases.read_lease(self._id)
        seen_at = time.monotonic()
        while not self._stopping.is_set():
            quiet = time.monotonic() - seen_at
            if seen is None or seen.released or quiet >= self._ttl:
                if self._claim(seen):
                    return
                seen, seen_at = self._leases.read_lease(self._id), time.monotonic()
                continue
            current = self._leases.wait_lease(self._id, seen, min(_SLICE, self._ttl - quiet))
            if current != seen:
                seen, seen_at = current, time.monotonic()

    def _keep(self) -> None:
        """Renew when due; on a refusal, give the lease up and stand by again."""
        lease = self._lease
        due = self._renewed_at + self._ttl / 3
        with self._changed:
            # Sleep until due: stop() and a loss (a refused checkpoint write) notify, so
            # an idle owner's thread wakes once per renewal and for nothing else.
            self._changed.wait_for(
                lambda: self._stopping.is_set() or self._lease is not lease,
                max(0.0, due - time.monotonic()),
            )
        if self._stopping.is_set() or lease is None or lease is not self._lease:
            return
        started = time.monotonic()
        try:
            renewed = self._leases.renew_lease(lease)
        except LeaseLostError as exc:
            self._lose(lease, exc)
            return
        self._hold(renewed, started)

    def _claim(self, seen: Lease | None) -> bool:
        started = time.monotonic()
        lease = self._leases.claim_lease(self._id, self.owner, seen)
        if lease is not None:
            self._hold(lease, started)
        return lease is not None

    def _hold(self, lease: Lease, started: float) -> None:
        # Nobody else changes _lease meanwhile: a renewal that succeeded proves the token
        # current, so no fenced write of the worker was refused.
        with self._changed:
            self._lease = lease
            self._renewed_at = started
            self._valid_until = started + _VALID_SHARE * self._ttl
            self._changed.notify_all()

    def _lose(self, lease: Lease, exc: LeaseLostError) -> None:
        with self._changed:
            current = self._lease
            if current is None or current.token != lease.token:
                return  # already lost, or this is about an older claim
            # Recorded before the flip: whoever reads STANDBY also reads why.
            self._note_lost(exc)
            self._lease = None
            self._valid_until = 0.0
            self._changed.notify_all()
        self._on_lost(exc)
