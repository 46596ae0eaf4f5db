"""The I/O-free state machine of the idempotent producer, shared by both faces.

Messages are buffered into batches; every batch is one POST carrying ``(Producer-Id,
Producer-Epoch, Producer-Seq)``. Batches are numbered in creation order and a batch's sequence
number is its index minus the index of the first batch of the current epoch, computed when it is
sent. That keeps retries in order: a batch refused with a sequence gap (an earlier pipelined
batch has not landed yet) waits for its predecessor and resends the same numbers; a batch fenced
by a newer epoch (403) with auto-claim waits for its predecessor, claims the next epoch (once),
and is renumbered together with every later batch.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Final

from ._actions import Action
from ._errors import DurableStreamError, ProducerSequenceGapError, StaleEpochError
from ._operations import append_request, parse_append
from ._requests import HeaderValue, is_json_content_type
from ._results import AppendResult
from ._retry import RetryPolicy, send_with_retry
from ._status import error_for_response

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

__all__ = ["AwaitPrevious", "Batch", "ProducerCore"]

_MAX_CLAIMS: Final = 8
DEFAULT_MAX_BATCH_BYTES: Final = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitPrevious:
    """Action: wait until the batch before ``index`` settled; the face answers whether it
    succeeded (``True`` when there is none)."""

    index: int


@dataclasses.dataclass(slots=True)
class Batch:
    """One POST's worth of messages, in creation order."""

    index: int
    body: bytes
    count: int
    close: bool = False


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
        batch = Batch(self._next_index, body, len(self.items), close)
        self._next_index += 1
        self.items = []
        self.size = 0
        return batch

    def send_operation(self, batch: Batch) -> Generator[Action | AwaitPrevious, Any, AppendResult]:
        """Deliver one batch, retrying in order; a deduplicated retry counts as success.

        Args:
            batch: the batch.

        Returns:
            The server's answer to the delivering request.

        Raises:
            StaleEpochError: fenced by a newer epoch without auto-claim (or too many claims).
            ProducerSequenceGapError: a gap that waiting for earlier batches did not close.
            DurableStreamError: any other failure, or an earlier batch failed.
        """
        waited = False
        while True:
            epoch, seq = self.epoch, batch.index - self._base
            spec = append_request(
                self.url,
                batch.body,
                content_type=self.content_type,
                close=batch.close,
                producer=(self.producer_id, epoch, seq),
                headers=self.headers,
                op="producer append",
            )
            response = yield from send_with_retry(self.retry, spec)
            if response.status_code in (200, 204):
                self.epoch_known = True
                return parse_append(spec, response)
            error = error_for_response(spec, response)
            if isinstance(error, StaleEpochError) and self.auto_claim:
                yield from self._await_previous(batch, error)
                if self.epoch == epoch:  # nobody claimed since this batch was sent
                    self._claims += 1
                    if self._claims > _MAX_CLAIMS:
                        raise error
                    self.epoch = max(error.current_epoch or 0, epoch) + 1
                    self._base = batch.index
                continue
            if isinstance(error, ProducerSequenceGapError) and error.expected < seq and not waited:
                waited = True
                yield from self._await_previous(batch, error)
                continue
            raise error

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
