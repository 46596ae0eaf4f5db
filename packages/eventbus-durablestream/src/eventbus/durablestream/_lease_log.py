"""Leases and checkpoints of durable subscriptions, in append-only streams on the server.

Each subscription id has a *lease log*: JSON streams that are only ever appended to (the
records are described in :mod:`._lease_records`). The first generation lives at
``<stream>.eventbus-leases/<base64url(id)>``, generation ``g`` at ``<that>.<g>``.

Fencing rests on the server's idempotent-producer rules, never on what this process has
cached. Every fenced record is appended with ``Producer-Id`` fixed for the log,
``Producer-Epoch`` = the lease token and ``Producer-Seq`` counting within the token:

* a claim is sequence 0 of token ``max + 1``: the server stores it (200) only if that
  epoch is new; a racing claimer with the same token gets 204 (a duplicate, not stored);
* a renewal or checkpoint of token ``t`` is refused with 403 once any later token exists,
  and with 400/409 if ``t`` was never claimed here (a new epoch must start at 0);
* a release spends token ``t + 1``, so everything still carrying ``t`` is refused.

Claims, beats and releases (the records that change the lease) also carry ``Stream-Seq`` =
their index among such records in the generation. The server stores an append only if its
``Stream-Seq`` sorts after the last one, so a claim based on a record that has since been
renewed conflicts (409) and stores nothing: a claim is a compare-and-set on the record.

A generation is compacted by closing it with a ``moved`` record (the protocol's stream
closure, atomic with the append) and creating the next generation with a snapshot of the
closed one as its initial data. The snapshot follows from the closed stream alone, so any
reader that finds the move finishes it identically. Nothing is deleted or created twice.

Each instance keeps, per id, the folded state and its read position, so a read costs one
catch-up request from where the last one ended.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import httpx

from eventbus.core import Checkpoint, Lease, LeaseLostError, Owner, StoreError

from ._client import CALL_DEADLINE, DurableStreamClient
from ._errors import (
    BadRequestError,
    DurableStreamConnectionError,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
)
from ._generations import newest_generation, stream_exists
from ._lease_records import (
    LeaseState,
    apply_record,
    beat_record,
    change_seq,
    checkpoint_record,
    claim_record,
    moved_record,
    release_record,
    snapshot_record,
)
from ._legacy_checkpoints import load_legacy_checkpoint
from ._lifecycle import Lifecycle
from ._long_poll import LongPoller
from ._requests import producer_headers
from ._results import AppendResult, ReadChunk
from ._retry import RetryPolicy, never_sent

__all__ = ["COMPACT_AFTER", "PRODUCER_ID", "LeaseLog"]

COMPACT_AFTER: Final = 1000
"""A generation holding this many records is moved to a new one by its next writer."""

PRODUCER_ID: Final = "eventbus-lease"
_JSON: Final = "application/json"
_ATTEMPTS: Final = 8  # a write retried after catching up (a stale sequence or a move)


class _LostError(Exception):
    """The server refused a fenced write: the token is no longer current."""


def _kept_moving(what: str, subscription_id: str) -> StoreError:
    return StoreError(
        f"Could not {what} {subscription_id!r}: its lease log moved to a new generation "
        f"{_ATTEMPTS} times in a row."
    )


class _View:
    """One instance's view of one subscription's log: where it reads, what it folded."""

    __slots__ = (
        "exists",
        "generation",
        "lock",
        "mine",
        "own_change",
        "position",
        "state",
        "unread",
        "url",
    )

    def __init__(self, subscription_id: str) -> None:
        self.lock = threading.Lock()
        self.generation = -1  # unknown until the first read finds the newest generation
        self.url = ""
        self.position = "-1"
        self.exists = False
        self.state = LeaseState(subscription_id)
        self.mine: dict[int, int] = {}  # token -> last sequence this instance stored here
        self.own_change = -1  # index of the last lease-changing record it stored here
        self.unread = 0  # records this instance appended since it last read

    def next_change(self) -> int:
        """The index the next lease-changing record takes (its ``Stream-Seq``)."""
        return max(self.state.changes, self.own_change + 1)


class LeaseLog:
    """The lease logs of one store's subscriptions.

    Args:
        client: The store's client.
        stream: The event stream's path; the logs live beside it.
        lifecycle: The store's open/closed state (long-polls end when it closes).
        request_timeout: The longest one long-poll request may wait.
        retry: How an append whose answer was lost is resent (see :meth:`_send`).
    """

    def __init__(
        self,
        client: DurableStreamClient,
        stream: str,
        *,
        lifecycle: Lifecycle,
        request_timeout: float,
        retry: RetryPolicy,
    ) -> None:
        self._client = client
        self._retry = retry
        self._stream = stream
        self._prefix = f"{stream}.eventbus-leases/"
        self._lifecycle = lifecycle
        self._request_timeout = request_timeout
        self._views: dict[str, _View] = {}
        self._pollers: dict[str, LongPoller] = {}
        self._lock = threading.Lock()

    # -- locating and reading -----------------------------------------------------------

    def _url(self, subscription_id: str, generation: int) -> str:
        name = base64.urlsafe_b64encode(subscription_id.encode()).decode().rstrip("=")
        head = self._prefix + name
        return head if generation == 0 else f"{head}.{generation}"

    def _view(self, subscription_id: str) -> _View:
        with self._lock:
            view = self._views.get(subscription_id)
            if view is None:
                view = self._views[subscription_id] = _View(subscription_id)
            return view

    def _locate(self, view: _View) -> None:
        """On a view's first use, start it at the newest generation."""
        if view.generation < 0:
            subscription_id = view.state.subscription_id
            view.generation = newest_generation(
                lambda g: stream_exists(self._client, self._url(subscription_id, g))
            )
            view.url = self._url(view.state.subscription_id, view.generation)

    def _catch_up(self, view: _View) -> list[Any]:
        """Read and fold what follows the view's position, following moves; return it."""
        self._locate(view)
        items: list[Any] = []
        while True:
            try:
                chunk = self._client.read(view.url, offset=view.position)
            except StreamNotFoundError:  # never written to
                view.exists = False
                return items
            view.exists = True
            new = self._absorb(view, chunk)
            items += new
            if view.position != "-1" and (chunk.up_to_date or not new):
                return items  # else: more to read, or moved to a new generation

    def _absorb(self, view: _View, chunk: ReadChunk) -> list[Any]:
        """Fold a chunk read at the view's position; follow a move it ends with."""
        new = chunk.json()
        for item in new:
            apply_record(view.state, item, view.url)
        view.position = chunk.next_offset
        view.unread = 0
        if view.state.moved_to is not None:
            self._follow(view)
        return new

    def _follow(self, view: _View) -> None:
        """Move the view to the next generation, creating it if the mover has not yet."""
        target = view.state.moved_to
        assert target is not None
        snapshot = json.dumps([snapshot_record(view.state)])
        # Created and already closed (moved on) by others: it exists with another config.
        with contextlib.suppress(StreamExistsError):
            self._client.create(target, content_type=_JSON, data=snapshot)
        view.generation += 1
        view.url, view.position = target, "-1"
        view.state = LeaseState(view.state.subscription_id)
        view.mine, view.own_change = {}, -1

    def _caught_up(self, subscription_id: str) -> _View:
        view = self._view(subscription_id)
        with view.lock:
            self._catch_up(view)
        return view

    # -- writing ------------------------------------------------------------------------

    def _post(
        self,
        view: _View,
        record: dict[str, Any],
        fence: tuple[int, int] | None,
        *,
        change: int | None = None,
        start: bool = False,
    ) -> AppendResult:
        """Append one record: fenced by ``(token, seq)``, and for a record that changes the
        lease, with ``Stream-Seq`` = its index ``change``; with ``start`` (a claim, an
        unfenced save), create the first generation if nothing was written yet."""
        self._locate(view)
        seq = None if change is None else change_seq(change)
        headers = {} if fence is None else producer_headers(PRODUCER_ID, *fence)
        body = json.dumps([record])
        try:
            return self._send(view.url, body, seq, headers)
        except StreamNotFoundError:
            if not start or view.generation != 0:
                raise
            self._client.create(view.url, content_type=_JSON)
            view.exists = True
            return self._send(view.url, body, seq, headers)

    def _send(self, url: str, body: str, seq: str | None, headers: dict[str, str]) -> AppendResult:
        """POST one record; resend it, within the retry policy and the call's deadline,
        when the connection broke after the request may have reached the server.

        Resending is safe for every record: a fenced one carries its producer numbers, so
        a copy that landed makes the server answer 204 (and :meth:`_stored` finds it by
        its nonce); an unfenced checkpoint stored twice is the same checkpoint twice, and
        the last in log order counts. Without this, a save whose answer was lost raised
        though the server had stored it.
        """
        attempt = 0
        while True:
            try:
                return self._client.append(url, body, content_type=_JSON, seq=seq, headers=headers)
            except DurableStreamConnectionError as exc:
                cause = exc.__cause__
                if isinstance(cause, httpx.TransportError) and never_sent(cause):
                    raise  # the client has already retried it
                delay = self._retry.delay(attempt)
                deadline = CALL_DEADLINE.get()
                if delay is None or (deadline is not None and time.monotonic() + delay >= deadline):
                    raise
            attempt += 1
            time.sleep(delay)

    def _stored(self, view: _View, result: AppendResult, record: dict[str, Any]) -> bool:
        """Whether the fenced ``record`` is in the log: stored now (200), or found there after
        a duplicate answer (204: an earlier attempt of this very request may have landed)."""
        if result.status == 200:
            view.unread += 1
            return True
        nonce = record["nonce"]
        return any(
            isinstance(item, dict) and item.get("nonce") == nonce for item in self._catch_up(view)
        )

    def _fenced(
        self,
        view: _View,
        token: int,
        make: Callable[[int], dict[str, Any]],
        *,
        changes_lease: bool,
    ) -> None:
        """Append the record ``make(seq)`` under ``token`` (for a record that changes the
        lease, also as the next lease-changing record).

        Raises:
            _LostError: The server refused the token.
        """
        for _ in range(_ATTEMPTS):
            seq = max(view.state.next_seq(token), view.mine.get(token, -1) + 1)
            change = view.next_change() if changes_lease else None
            record = make(seq)
            try:
                result = self._post(view, record, (token, seq), change=change)
            except (StaleEpochError, StreamNotFoundError):
                raise _LostError from None
            except StreamClosedError:  # moved to a new generation: write there
                self._catch_up(view)
                continue
            except (SequenceConflictError, BadRequestError):
                # An epoch the server never saw (never claimed, or not here), or a sequence
                # or lease change this instance did not know of: only a current token is
                # worth another try, with the numbers the log tells.
                view.mine.pop(token, None)
                view.own_change = -1
                self._catch_up(view)
                if not view.state.is_current(token):
                    raise _LostError from None
                continue
            if self._stored(view, result, record):
                view.mine[token] = seq
                if change is not None:
                    view.own_change = change
                self._compact_if_due(view)
                return
        raise StoreError(
            f"Could not append to the lease log {view.url!r} in {_ATTEMPTS} attempts: "
            "its sequence kept changing."
        )

    def _compact_if_due(self, view: _View) -> None:
        if view.state.records + view.unread < COMPACT_AFTER:
            return
        self._catch_up(view)
        if view.state.records < COMPACT_AFTER:  # moved meanwhile
            return
        target = self._url(view.state.subscription_id, view.generation + 1)
        with contextlib.suppress(StreamClosedError):  # another writer moved it first
            self._client.close_stream(
                view.url, data=json.dumps([moved_record(target)]), content_type=_JSON
            )
        self._catch_up(view)

    def _lost(self, view: _View, lease: Lease) -> LeaseLostError:
        self._catch_up(view)
        return LeaseLostError.superseded(lease, view.state.lease)

    # -- the operations -----------------------------------------------------------------

    def read_lease(self, subscription_id: str) -> Lease | None:
        """The current lease record (one catch-up read)."""
        return self._caught_up(subscription_id).state.lease

    def wait_lease(self, subscription_id: str, seen: Lease | None, timeout: float) -> Lease | None:
        """Wait until the record differs from ``seen``: long-polls from the known position.

        A long-poll answers at once when anything follows that position, so a view whose
        record is ``seen`` waits without reading first (a standby waiting in a loop costs
        one request per change); the chunk a long-poll brings is folded directly. Only a
        record that differs, or this instance's own unread writes, are read on first, so
        what is returned is current.
        """
        deadline = time.monotonic() + timeout
        view = self._view(subscription_id)
        while True:
            with view.lock:
                if not view.exists or view.unread or view.state.lease != seen:
                    self._catch_up(view)
                    if view.state.lease != seen:
                        return view.state.lease
                    if not view.exists:  # a long-poll needs a stream to wait on
                        self._client.create(view.url, content_type=_JSON)
                        view.exists = True
                url, position = view.url, view.position
            chunk = self._poll(url, position, deadline)
            if chunk is None:
                return seen
            with view.lock:
                if (view.url, view.position) != (url, position):
                    continue  # another call of this instance read on meanwhile
                if not chunk.data:  # closed by hand: nothing will come
                    self._lifecycle.closing.wait(deadline - time.monotonic())
                    continue
                self._absorb(view, chunk)
                if view.url != url:
                    self._catch_up(view)  # moved: read the new generation's snapshot
                if view.state.lease != seen:  # as current as that read: return it
                    return view.state.lease

    def _poll(self, url: str, position: str, deadline: float) -> ReadChunk | None:
        """The chunk of a long-poll at ``position`` that brought data or found the stream
        closed, or ``None`` at the deadline."""
        while (remaining := deadline - time.monotonic()) > 0:
            chunk = self._poller(url).wait(position, remaining)
            if chunk is not None:
                return chunk
        return None

    def _poller(self, url: str) -> LongPoller:
        with self._lock:
            poller = self._pollers.get(url)
            if poller is None:
                poller = self._pollers[url] = LongPoller(
                    self._client,
                    url,
                    request_timeout=self._request_timeout,
                    lifecycle=self._lifecycle,
                )
            return poller

    def wake(self) -> None:
        """Wake every waiting ``wait_lease`` (the store is closing)."""
        with self._lock:
            pollers = list(self._pollers.values())
        for poller in pollers:
            poller.wake()

    def claim_lease(self, subscription_id: str, owner: Owner, seen: Lease | None) -> Lease | None:
        """Claim with token ``epoch + 1`` at sequence 0, if the record still equals ``seen``."""
        view = self._view(subscription_id)
        with view.lock:
            for _ in range(_ATTEMPTS):
                self._catch_up(view)
                if view.state.lease != seen:
                    return None
                token, change = view.state.epoch + 1, view.next_change()
                record = claim_record(token, owner)
                try:
                    result = self._post(view, record, (token, 0), change=change, start=True)
                except StaleEpochError:  # a later claim got there first
                    return None
                except SequenceConflictError:  # the lease changed since read (a renewal)
                    return None
                except StreamClosedError:  # moved: claim in the new generation
                    continue
                if not self._stored(view, result, record):
                    return None  # a racing claimer stored this token first
                view.mine[token], view.own_change = 0, change
                self._compact_if_due(view)
                return Lease(subscription_id, owner, token)
        raise _kept_moving("claim", subscription_id)

    def renew_lease(self, lease: Lease) -> Lease:
        """Append a beat under the lease's token; the server's 403 is the fence."""
        view = self._view(lease.subscription_id)
        with view.lock:
            # The next beat: past the lease's and past any later one this instance read.
            current = view.state.lease
            known = current.beat if current is not None and current.token == lease.token else 0
            beat = max(lease.beat, known) + 1
            try:
                self._fenced(
                    view,
                    lease.token,
                    lambda seq: beat_record(lease.token, seq, beat),
                    changes_lease=True,
                )
            except _LostError:
                raise self._lost(view, lease) from None
            return Lease(lease.subscription_id, lease.owner, lease.token, beat)

    def release_lease(self, lease: Lease) -> None:
        """Spend token ``lease.token + 1`` on a release record; nothing if it is taken."""
        view = self._view(lease.subscription_id)
        token = lease.token + 1
        with view.lock:
            # Release only a lease this instance has seen current: a release spends a token,
            # which a lease never claimed here must not do. (The server still decides.)
            if not view.state.is_current(lease.token):
                self._catch_up(view)
                if not view.state.is_current(lease.token):
                    return
            for _ in range(_ATTEMPTS):
                record, change = release_record(token, lease.owner), view.next_change()
                try:
                    result = self._post(view, record, (token, 0), change=change)
                except StaleEpochError:
                    return  # lost already
                except (StreamClosedError, SequenceConflictError):
                    # Moved, or the lease changed since read: try again with what the log
                    # says; if the change was a takeover, the server answers 204 or 403.
                    view.own_change = -1
                    self._catch_up(view)
                    continue
                if self._stored(view, result, record):
                    view.mine[token], view.own_change = 0, change
                    self._compact_if_due(view)
                return
        raise _kept_moving("release", lease.subscription_id)

    def save_checkpoint_fenced(self, lease: Lease, offset: Checkpoint) -> None:
        """Append a checkpoint under the lease's token; refused once it is not current."""
        view = self._view(lease.subscription_id)
        with view.lock:
            try:
                self._fenced(
                    view,
                    lease.token,
                    lambda seq: checkpoint_record(offset, lease.token, seq),
                    changes_lease=False,
                )
            except _LostError:
                raise self._lost(view, lease) from None

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        """Append an unfenced checkpoint (no producer headers: no lease involved)."""
        view = self._view(subscription_id)
        with view.lock:
            for _ in range(_ATTEMPTS):
                try:
                    self._post(view, checkpoint_record(offset, None, None), None, start=True)
                except StreamClosedError:
                    self._catch_up(view)
                    continue
                view.unread += 1
                self._compact_if_due(view)
                return
        raise _kept_moving("save the checkpoint of", subscription_id)

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        """The last checkpoint in log order; before any, one written by the old layout."""
        view = self._caught_up(subscription_id)
        checkpoint = view.state.checkpoint
        if checkpoint is None and view.generation == 0:
            return load_legacy_checkpoint(self._client, self._stream, subscription_id)
        return checkpoint
