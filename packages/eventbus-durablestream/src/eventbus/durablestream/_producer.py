"""The synchronous idempotent producer: batched, exactly-once appends over ProducerCore."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeAlias

from ._errors import DurableStreamError
from ._producer_core import Batch, ProducerCore
from ._results import AppendResult, CloseResult

__all__ = ["IdempotentProducer", "Runner"]

Runner: TypeAlias = Callable[[Generator[Any, Any, Any], str], Any]
"""How the client drives an operation to its result: ``run(operation, url)``."""


class IdempotentProducer:
    """Exactly-once appends with batching, for one producer id on one stream (synchronous).

    :meth:`append` buffers; a batch is sent when it reaches the size or count limit, and on
    :meth:`flush`, :meth:`close_stream` and :meth:`detach`. Each batch is one request carrying
    the producer id, epoch and sequence number, so a retried batch is never stored twice. Make
    one with :meth:`DurableStreamClient.producer`.
    """

    def __init__(self, run: Runner, core: ProducerCore) -> None:
        self._run = run
        self._core = core
        self._detached = False
        self._closed: CloseResult | None = None
        self.last_result: AppendResult | None = None

    @property
    def epoch(self) -> int:
        """The producer's current epoch (it grows when auto-claim fences an older writer)."""
        return self._core.epoch

    def _check_open(self) -> None:
        if self._detached:
            raise DurableStreamError(
                f"Producer {self._core.producer_id!r} on {self._core.url!r} was detached or "
                "closed; make a new producer to write again."
            )

    def append(self, data: bytes | str) -> None:
        """Buffer one message (for a JSON stream: one JSON value's text).

        Args:
            data: the message.

        Raises:
            DurableStreamError: the producer was detached, or sending a full batch failed.
        """
        self._check_open()
        if self._core.add(data):
            self._send(self._core.seal())

    def append_json(self, value: Any) -> None:
        """Buffer one JSON value as one message of a JSON stream.

        Args:
            value: any JSON-serializable value.

        Raises:
            ValueError: the stream is not a JSON stream.
            TypeError: the value is not JSON-serializable.
            DurableStreamError: the producer was detached, or sending a full batch failed.
        """
        self._check_open()
        if self._core.add_json(value):
            self._send(self._core.seal())

    def _send(self, batch: Batch | None) -> None:
        if batch is not None:
            self.last_result = self._run(self._core.send_operation(batch), self._core.url)

    def flush(self) -> AppendResult | None:
        """Send everything buffered and wait for it.

        Returns:
            The server's answer to the last request sent, or ``None`` if none was ever sent.

        Raises:
            StaleEpochError: fenced by a newer epoch (without auto-claim).
            DurableStreamError: delivery failed.
        """
        self._send(self._core.seal())
        return self.last_result

    def close_stream(self, data: bytes | str | None = None) -> CloseResult:
        """Flush, then close the stream (with an optional final message); idempotent.

        Args:
            data: a final message, or ``None``.

        Returns:
            The stream's final offset.

        Raises:
            DurableStreamError: delivery failed.
        """
        if self._closed is not None:
            return self._closed
        self._check_open()
        self.flush()
        if data is not None:
            self._core.add(data)
        batch = self._core.seal(close=True)
        assert batch is not None  # seal(close=True) always makes a batch
        result: AppendResult = self._run(self._core.send_operation(batch), self._core.url)
        self._detached = True
        self.last_result = result
        self._closed = CloseResult(final_offset=result.next_offset, status=result.status)
        return self._closed

    def detach(self) -> None:
        """Flush and stop: the stream stays open for other writers; idempotent.

        Raises:
            DurableStreamError: delivering the buffered messages failed.
        """
        if not self._detached:
            self.flush()
            self._detached = True
