"""The asyncio idempotent producer: batched, pipelined, exactly-once appends over ProducerCore."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol

from ._errors import DurableStreamError
from ._producer_core import Batch, ProducerCore
from ._results import AppendResult, CloseResult

__all__ = ["AsyncIdempotentProducer", "AsyncRunner"]


class AsyncRunner(Protocol):
    """How the asyncio client drives an operation: ``await run(operation, url, waiter)``.

    ``waiter`` answers the operation's ``AwaitPrevious`` actions.
    """

    def __call__(
        self,
        operation: Generator[Any, Any, Any],
        url: str,
        waiter: Callable[[int], Awaitable[bool]] | None = None,
        /,
    ) -> Awaitable[Any]: ...


class AsyncIdempotentProducer:
    """Exactly-once appends with batching and pipelining, for one producer id on one stream.

    :meth:`append` never blocks: it buffers, and the producer sends a batch when it is full or
    after ``linger`` seconds, keeping up to ``max_in_flight`` batches in flight. Batches land in
    order: one refused because an earlier one has not landed yet is retried after it. The
    producer owns its sending tasks; :meth:`flush`, :meth:`close_stream` or :meth:`detach` waits
    for them and raises the first delivery error. Make one with
    :meth:`AsyncDurableStreamClient.producer`.
    """

    def __init__(self, run: AsyncRunner, core: ProducerCore, linger: float) -> None:
        self._run = run
        self._core = core
        self._linger = linger
        self._queue: collections.deque[Batch] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._settled: dict[int, asyncio.Future[bool]] = {}
        self._timer: asyncio.Handle | None = None
        self._error: BaseException | None = None
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
        """Buffer one message (for a JSON stream: one JSON value's text); never blocks.

        Args:
            data: the message.

        Raises:
            DurableStreamError: the producer was detached or closed.
        """
        self._check_open()
        self._added(self._core.add(data))

    def append_json(self, value: Any) -> None:
        """Buffer one JSON value as one message of a JSON stream; never blocks.

        Args:
            value: any JSON-serializable value.

        Raises:
            ValueError: the stream is not a JSON stream.
            TypeError: the value is not JSON-serializable.
            DurableStreamError: the producer was detached or closed.
        """
        self._check_open()
        self._added(self._core.add_json(value))

    def _added(self, full: bool) -> None:
        if full:
            self._seal()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._linger, self._seal)

    def _seal(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._core.seal()
        if batch is not None:
            self._queue.append(batch)
            self._pump()

    def _pump(self) -> None:
        limit = self._core.max_in_flight if self._core.epoch_known else 1
        while self._queue and len(self._tasks) < limit:
            batch = self._queue.popleft()
            self._settled[batch.index] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._deliver(batch))
            self._tasks.add(task)

    async def _wait_previous(self, index: int) -> bool:
        previous = self._settled.get(index - 1)
        return True if previous is None else await asyncio.shield(previous)

    async def _deliver(self, batch: Batch) -> None:
        settled = self._settled[batch.index]
        try:
            result = await self._run(
                self._core.send_operation(batch), self._core.url, self._wait_previous
            )
        except Exception as exc:
            self._error = self._error or exc
            settled.set_result(False)
        else:
            self.last_result = result
            settled.set_result(True)
        finally:
            self._settled.pop(batch.index - 1, None)
            self._tasks.discard(asyncio.current_task())
            self._pump()

    async def flush(self) -> AppendResult | None:
        """Send everything buffered and wait until every batch is delivered.

        Returns:
            The server's answer to the last request delivered, or ``None`` if none was.

        Raises:
            StaleEpochError: fenced by a newer epoch (without auto-claim).
            DurableStreamError: a batch could not be delivered.
        """
        self._seal()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self.last_result

    async def close_stream(self, data: bytes | str | None = None) -> CloseResult:
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
        await self.flush()
        if data is not None:
            self._core.add(data)
        batch = self._core.seal(close=True)
        assert batch is not None  # seal(close=True) always makes a batch
        result: AppendResult = await self._run(self._core.send_operation(batch), self._core.url)
        self._detached = True
        self.last_result = result
        self._closed = CloseResult(final_offset=result.next_offset, status=result.status)
        return self._closed

    async def detach(self) -> None:
        """Flush and stop: the stream stays open for other writers; idempotent.

        Raises:
            DurableStreamError: delivering the buffered messages failed.
        """
        if not self._detached:
            self._detached = True
            await self.flush()
