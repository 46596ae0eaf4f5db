"""The long-polls of a store's live tail: at most one outstanding request per server offset.

An idle subscriber calls ``tail`` in a loop with a short timeout. Each call waits for the
long-poll of its server offset: a long-poll still pending when a call times out is kept,
and the next call for the same offset joins it, as does any other caller waiting there. A
request (and the helper thread that makes it) is started only when none is pending for that
offset: at first, after data arrived, or after the server ended its long-poll. The waiting
is done on an event that :meth:`LongPoller.wake` sets, so ``close()`` wakes waiters at once.
"""

from __future__ import annotations

import threading

from ._client import DurableStreamClient
from ._lifecycle import Lifecycle
from ._reads import long_poll_operation
from ._results import ReadChunk

__all__ = ["LongPoller"]


class _Poll:
    """One long-poll request and, once it ended, what it brought.

    ``outcome`` is the chunk that brought data or found the stream closed, the error, or
    ``None`` when the long-poll ended without either. ``done`` is set when it ended, or
    when the store closed.
    """

    __slots__ = ("done", "ended", "offset", "outcome")

    def __init__(self, offset: str) -> None:
        self.offset = offset
        self.done = threading.Event()
        self.ended = False
        self.outcome: ReadChunk | BaseException | None = None


class LongPoller:
    """Shares one long-poll per server offset among the ``tail`` calls of one store.

    Args:
        client: The store's client.
        stream: The stream's path.
        request_timeout: The longest one long-poll request may wait (the store's timeout;
            a server whose long-poll period is longer is asked again after this).
        lifecycle: The store's open/closed state.
    """

    def __init__(
        self,
        client: DurableStreamClient,
        stream: str,
        *,
        request_timeout: float,
        lifecycle: Lifecycle,
    ) -> None:
        self._client = client
        self._stream = stream
        self._request_timeout = request_timeout
        self._lifecycle = lifecycle
        # Pending polls, and ended ones nobody has taken the outcome of yet.
        self._polls: dict[str, _Poll] = {}
        self._cursor: str | None = None

    def wait(self, server_offset: str, remaining: float) -> ReadChunk | None:
        """Wait up to ``remaining`` seconds for what follows ``server_offset``.

        Args:
            server_offset: The server offset to wait at.
            remaining: Seconds to wait.

        Returns:
            The chunk of the long-poll that brought data or found the stream closed, or
            ``None`` when the time ran out (the long-poll goes on, for the next call) or the
            server ended the long-poll without data (the next call starts another).

        Raises:
            StoreClosedError: The store was closed, also while waiting.
            StoreError: The long-poll failed.
        """
        lifecycle = self._lifecycle
        with lifecycle.lock:
            if lifecycle.closed:
                raise lifecycle.error()
            poll = self._polls.get(server_offset)
            if poll is None or (poll.ended and poll.outcome is None):
                poll = self._start(server_offset)
        poll.done.wait(remaining)
        with lifecycle.lock:
            if lifecycle.closed:
                raise lifecycle.error()
            if not poll.ended:
                return None
            outcome = poll.outcome
            if outcome is not None and self._polls.get(server_offset) is poll:
                del self._polls[server_offset]  # taken: the next caller asks anew
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def wake(self) -> None:
        """Wake every waiter (the store is closing)."""
        with self._lifecycle.lock:
            polls = list(self._polls.values())
        for poll in polls:
            poll.done.set()

    def _start(self, server_offset: str) -> _Poll:
        """Start the long-poll of ``server_offset``; forget ended ones of other offsets."""
        for offset in [offset for offset, poll in self._polls.items() if poll.ended]:
            del self._polls[offset]
        poll = self._polls[server_offset] = _Poll(server_offset)
        threading.Thread(
            target=self._run, args=(poll,), name="eventbus-ds-long-poll", daemon=True
        ).start()
        return poll

    def _run(self, poll: _Poll) -> None:
        """Make the request (on the helper thread) and hand its outcome to the waiters."""
        outcome: ReadChunk | BaseException | None = None
        try:
            operation = long_poll_operation(
                self._client.retry, self._stream, offset=poll.offset, cursor=self._cursor
            )
            # The client's iteration ends quietly when the request reaches its deadline.
            for chunk in self._client._iterate(operation, self._stream, self._request_timeout):
                self._cursor = chunk.cursor
                if chunk.data or chunk.stream_closed:
                    outcome = chunk
        except BaseException as exc:  # handed to the waiting callers
            outcome = exc
        with self._lifecycle.lock:
            poll.outcome = outcome
            poll.ended = True
        poll.done.set()
