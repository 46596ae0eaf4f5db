"""The I/O-free state machine of the idempotent producer: the one implementation of the
protocol, used by both client faces and by the store's group commit.

Messages are buffered into batches; every batch is one POST carrying ``(Producer-Id,
Producer-Epoch, Producer-Seq)``. Batches are numbered in creation order and a batch's sequence
number is its index minus the index of the first batch of the current epoch, computed when it is
sent. That keeps retries in order: a batch refused with a sequence gap (an earlier pipelined
batch has not landed yet) waits for its predecessor and resends the same numbers; a batch fenced
by a newer epoch (403) with auto-claim waits for its predecessor, claims the next epoch (once),
and is renumbered together with every later batch.

What the store adds, as options and hooks rather than a second loop: a batch may carry a
``Stream-Seq`` (re-anchored through :class:`Reanchor` when another writer got in first); a
producer sending one batch at a time may start a new epoch when the server lost track of it
(``restart_on_gap``); after a failure that may have stored the batch, it may look for that
first copy (:class:`LookForCopy`) before resending; and a batch given up on
(:meth:`ProducerCore.give_up`) keeps its numbers, so an explicit retry is the same request.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Final

import httpx

from ._actions import Action, Send, Sleep
from ._errors import (
    DurableStreamError,
    ProducerSequenceGapError,
    SequenceConflictError,
    StaleEpochError,
)
from ._operations import append_request, parse_append
from ._requests import HeaderValue, RequestSpec, is_json_content_type
from ._results import AppendResult
from ._retry import RetryPolicy, never_sent, retry_delay
from ._status import error_for_response

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

__all__ = ["AwaitPrevious", "Batch", "LookForCopy", "ProducerCore", "Reanchor"]

_MAX_CLAIMS: Final = 8
DEFAULT_MAX_BATCH_BYTES: Final = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitPrevious:
    """Action: wait until the batch before ``index`` settled; the face answers whether it
    succeeded (``True`` when there is none)."""

    index: int


@dataclasses.dataclass(frozen=True, slots=True)
class LookForCopy:
    """Action: a request for ``batch`` failed after it may have reached the server; before
    resending, look whether its first copy is stored (a server that crashed may have lost
    its producer state with it). The face answers ``True`` (found: the send ends), ``False``,
    or the transient error that kept it from looking (waited out like a failed request)."""

    batch: Batch


@dataclasses.dataclass(frozen=True, slots=True)
class Reanchor:
    """Action: another writer appended first, so ``batch``'s ``Stream-Seq`` no longer
    follows the last one (409) and nothing was stored. The face sets ``batch.stream_seq``
    (and the body, if it depends on it) to the new tail and answers ``None``, or the
    transient error that kept it from doing so."""

    batch: Batch


@dataclasses.dataclass(slots=True)
class Batch:
    """One POST's worth of messages, in creation order.

    Attributes:
        index: its place in creation order (its sequence number within the first epoch).
        body: the request body.
        count: how many messages it holds.
        close: whether it closes the stream.
        stream_seq: the ``Stream-Seq`` it is sent with, or ``None``.
        pinned: the ``(epoch, seq)`` it is resent with once given up on, else ``None``.
    """

    index: int
    body: bytes
    count: int
    close: bool = False
    stream_seq: str | None = None
    pinned: tuple[int, int] | None = None


class ProducerCore:
    """Buffers messages into batches and runs the per-batch protocol.

    Args:
        url: the stream URL.
        producer_id: the producer id, non-empty.
        epoch: the starting epoch, 0 or more.
        auto_claim: on a 403, claim the epoch after the server's and retry.
        content_type: the stream's content type; ``application/json`` batches as JSON arrays.
        max_batch_bytes: a batch is sealed once its messages reach this many bytes.
        max_batch_items: a batch is sealed once it holds this many messages, or ``None``.
        max_in_flight: how many batches may be in flight at once (the asyncio face pipelines).
        headers: per-request headers added to every POST.
        retry: the retry policy for transient failures.
        restart_on_gap: on a sequence gap no earlier batch can close (the server forgot this
            producer, e.g. its state expired), start a new epoch at this batch and resend it;
            for a producer that sends one batch at a time.
        look_before_resend: before resending after a failure that may have stored the batch,
            ask the face to look for that copy (:class:`LookForCopy`).

    Raises:
        ValueError: an empty producer id, a negative epoch, or a limit below 1.
    """

    def __init__(
        self,
        url: str,
        producer_id: str,
        *,
        epoch: int,
        auto_claim: bool,
        content_type: str,
        max_batch_bytes: int,
        max_batch_items: int | None,
        max_in_flight: int,
        headers: Mapping[str, HeaderValue] | None,
        retry: RetryPolicy,
        restart_on_gap: bool = False,
        look_before_resend: bool = False,
    ) -> None:
        if not producer_id:
            raise ValueError(f"producer_id must be a non-empty string, got {producer_id!r}.")
        if epoch < 0:
            raise ValueError(f"epoch must be 0 or more, got {epoch!r}.")
        if max_batch_bytes < 1:
            raise ValueError(f"max_batch_bytes must be 1 or more, got {max_batch_bytes!r}.")
        if max_batch_items is not None and max_batch_items < 1:
            raise ValueError(
                f"max_batch_items must be 1 or more (or None), got {max_batch_items!r}."
            )
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be 1 or more, got {max_in_flight!r}.")
        self.url = url
        self.producer_id = producer_id
        self.epoch = epoch
        self.auto_claim = auto_claim
        self.content_type = content_type
        self.json_mode = is_json_content_type(content_type)
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_items = max_batch_items if max_batch_items is not None else 1 << 62
        self.max_in_flight = max_in_flight
        self.headers = headers
        self.retry = retry
        self.restart_on_gap = restart_on_gap
        self.look_before_resend = look_before_resend
        # Until a batch succeeded an auto-claiming producer does not know its epoch: one at a time.
        self.epoch_known = not auto_claim
        self.items: list[bytes] = []
        self.size = 0
        self._next_index = 0
        self._base = 0
        self._claims = 0

    def set_content_type(self, content_type: str) -> None:
        """Set the stream's content type once it is known (before anything is buffered).

        Args:
            content_type: the stream's content type.
        """
        self.content_type = content_type
        self.json_mode = is_json_content_type(content_type)

    def add(self, data: bytes | str) -> bool:
        """Buffer one message; for JSON streams ``data`` is one JSON value's text.

        Args:
            data: the message.

        Returns:
            Whether the current batch is full and should be sealed.
        """
        body = data.encode("utf-8") if isinstance(data, str) else data
        self.items.append(body)
        self.size += len(body)
        return self.size >= self.max_batch_bytes or len(self.items) >= self.max_batch_items

    def add_json(self, value: Any) -> bool:
        """Buffer one JSON value as one message of a JSON stream.

        Args:
            value: any JSON-serializable value.

        Returns:
            Whether the current batch is full and should be sealed.

        Raises:
            TypeError: ``value`` is not JSON-serializable.
            ValueError: the stream is not a JSON stream.
        """
        if not self.json_mode:
            raise ValueError(
                f"append_json needs an application/json stream; this producer writes "
                f"{self.content_type!r}. Use append(bytes) instead."
            )
        return self.add(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def seal(self, *, close: bool = False) -> Batch | None:
        """Turn the buffered messages into the next batch.

        Args:
            close: mark the batch as the one that closes the stream (it may be empty).

        Returns:
            The batch, or ``None`` when nothing is buffered and ``close`` is false.
        """
        if not self.items and not close:
            return None
        if self.json_mode:
            body = b"[" + b",".join(self.items) + b"]" if self.items else b""
        else:
            body = b"".join(self.items)
        batch = self.number(body, len(self.items), close=close)
        self.items = []
        self.size = 0
        return batch

    def number(
        self, body: bytes, count: int, *, close: bool = False, stream_seq: str | None = None
    ) -> Batch:
        """Make the next batch from a body the caller built (the store encodes its own).

        Args:
            body: the request body.
            count: how many messages it holds.
            close: whether it closes the stream.
            stream_seq: its ``Stream-Seq``, or ``None``.

        Returns:
            The batch, next in creation order.
        """
        batch = Batch(self._next_index, body, count, close, stream_seq)
        self._next_index += 1
        return batch

    def give_up(self, batch: Batch) -> None:
        """Stop delivering ``batch``, whose outcome may be unknown: it keeps the numbers it
        was sent with, so an explicit retry is the same request (stored at most once), and
        every later batch starts a new epoch, so none is taken for its retry (and a late
        copy of an earlier request is fenced).

        Args:
            batch: the batch, the last one made (one batch at a time).
        """
        batch.pinned = (self.epoch, batch.index - self._base)
        self.epoch += 1
        self._base = self._next_index

    def _request(self, batch: Batch, epoch: int, seq: int) -> RequestSpec:
        spec = append_request(
            self.url,
            batch.body,
            content_type=self.content_type,
            seq=batch.stream_seq,
            close=batch.close,
            producer=(self.producer_id, epoch, seq),
            headers=self.headers,
            op="producer append",
        )
        # A pinned batch is a caller's explicit retry: sent once, never resent on its own.
        return dataclasses.replace(spec, replay_safe=False) if batch.pinned else spec

    def send_operation(
        self, batch: Batch
    ) -> Generator[Action | AwaitPrevious | LookForCopy | Reanchor, Any, AppendResult | None]:
        """Deliver one batch, retrying in order; a deduplicated retry counts as success.

        Args:
            batch: the batch.

        Returns:
            The server's answer to the delivering request, or ``None`` when a
            :class:`LookForCopy` found the batch already stored.

        Raises:
            StaleEpochError: fenced by a newer epoch without auto-claim (or too many claims).
            ProducerSequenceGapError: a gap that waiting for earlier batches did not close.
            DurableStreamError: any other failure, or an earlier batch failed.
            httpx.TransportError: the last transport error once retries are used up.
        """
        waited = False
        attempt = restarts = 0
        hook: LookForCopy | Reanchor | None = None
        while True:
            if hook is not None:
                answer = yield hook
                if isinstance(answer, BaseException):  # could not tell now: wait, ask again
                    attempt = yield from self._wait(attempt, answer)
                    continue
                if answer is True:
                    return None
                hook = None
            epoch, seq = batch.pinned or (self.epoch, batch.index - self._base)
            spec = self._request(batch, epoch, seq)
            outcome = yield Send(spec)
            delay = retry_delay(self.retry, attempt, spec, outcome)
            if delay is not None:
                attempt += 1
                yield Sleep(delay)
                if (
                    self.look_before_resend
                    and isinstance(outcome, httpx.TransportError)
                    and not never_sent(outcome)
                ):
                    hook = LookForCopy(batch)
                continue
            if isinstance(outcome, httpx.TransportError):
                raise outcome
            response: httpx.Response = outcome
            if response.status_code in (200, 204):
                self.epoch_known = True
                return parse_append(spec, response)
            attempt = 0  # the server answered: a later failure starts a new backoff
            error = error_for_response(spec, response)
            if isinstance(error, SequenceConflictError) and not isinstance(
                error, ProducerSequenceGapError
            ):
                # Only a batch with a Stream-Seq gets this 409 (see error_for_response):
                # another writer got in first and nothing was stored. Same producer
                # numbers, a new anchor.
                hook = Reanchor(batch)
                continue
            if batch.pinned is not None:  # resent with exactly its numbers: refusals are final
                raise error
            if isinstance(error, StaleEpochError) and self.auto_claim:
                yield from self._await_previous(batch, error)
                if self.epoch == epoch:  # nobody claimed since this batch was sent
                    self._claims += 1
                    if self._claims > _MAX_CLAIMS:
                        raise error
                    self.epoch = max(error.current_epoch or 0, epoch) + 1
                    self._base = batch.index
                continue
            if isinstance(error, ProducerSequenceGapError):
                if self.restart_on_gap:
                    # The server lost track of this producer (e.g. its state expired):
                    # nothing was stored; a new epoch, starting with this batch.
                    restarts += 1
                    if restarts > _MAX_CLAIMS:  # it keeps forgetting: do not loop
                        raise error
                    self.epoch += 1
                    self._base = batch.index
                    continue
                if error.expected < seq and not waited:
                    waited = True
                    yield from self._await_previous(batch, error)
                    continue
            raise error

    def _wait(self, attempt: int, error: BaseException) -> Generator[Action, Any, int]:
        """Wait out a transient failure of a hook as a failed attempt; return the count."""
        delay = self.retry.delay(attempt)
        if delay is None:
            raise error
        yield Sleep(delay)
        return attempt + 1

    def _await_previous(
        self, batch: Batch, error: DurableStreamError
    ) -> Generator[AwaitPrevious, Any, None]:
        ok = yield AwaitPrevious(batch.index)
        if not ok:
            raise DurableStreamError(
                f"Batch {batch.index} of producer {self.producer_id!r} on {self.url!r} was not "
                f"delivered because an earlier batch failed.",
                status=error.status,
                url=error.url,
                server_message=error.server_message,
            ) from error
