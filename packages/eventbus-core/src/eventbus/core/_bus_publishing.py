"""The publishing half of :class:`EventBus`'s public surface (a facade mixin).

Every method hands its work to the layers: :mod:`._dispatch` plans and runs the
handlers, :mod:`._journal` appends. Kept apart from ``_bus`` so each facade file stays
short; it holds no state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from ._dispatch import Dispatcher, Plan
from ._durables import DurableConsumers
from ._envelope import Envelope
from ._exceptions import BusClosedError, BusUsageError, PublishError
from ._handlers import Handler
from ._journal import Journal, over
from ._middleware import MiddlewareStack, Publication
from ._runner import AsyncRunner, running_loop
from ._store import Checkpoint, EventStore, Offset

__all__ = ["Publishing"]

# running_loop() without its own call: publish checks it once per stored event.
_running_loop: Final = asyncio.events._get_running_loop


class Publishing:
    """``publish``, ``publish_async``, ``publish_many`` and ``publish_many_async``."""

    _closed: bool
    _check_encoding: bool
    _store: EventStore | None
    _plain: dict[type[Any], tuple[Handler, tuple[Handler, ...]]]
    _dispatcher: Dispatcher
    _journal: Journal
    _runner: AsyncRunner
    _consumers: DurableConsumers
    _middleware: MiddlewareStack

    # -- publishing ------------------------------------------------------------------

    def publish(
        self,
        event: object,
        /,
        *,
        metadata: Mapping[str, str] | None = None,
        expected_offset: Checkpoint | None = None,
    ) -> Offset | None:
        """Publish an event from synchronous code.

        In order: before-publish hooks run; with a store, the event is appended
        (strict mode raises here and nothing else runs); sync handlers run in this
        thread in registration order; coroutine handlers are *scheduled* on the bus's
        handler loop and never waited for (called on that loop's thread they start
        after this returns; from another thread they may start before it returns —
        :meth:`publish_async` or :meth:`shutdown` waits for them); after-publish hooks
        run. From a coroutine on a bus with a store this raises :class:`BusUsageError`
        (the append would block the loop); without a store it schedules as above.

        Args:
            event: The event instance.
            metadata: String pairs to store and hand to handlers, merged over the
                context's :func:`publish_metadata`.
            expected_offset: Append only if the log still ends here: the offset of
                the last event the caller read, or OLDEST for an empty log
                (optimistic concurrency; the store must implement
                :class:`ConditionalAppendStore`). Its failures always raise, on a
                best-effort bus too.

        Returns:
            The event's offset when it was stored, else None.

        Raises:
            AppendConflictError: with ``expected_offset``, the log ends elsewhere:
                nothing was stored and no handler ran; its ``current`` is the new end.
            PublishError: ``event`` is None or a class.
            EncodeError: with a store or ``check_encoding=True``, the event cannot be
                serialised (nothing stored, no handler run).
            StoreError: strict mode, the append failed (no handler ran).
            BusClosedError: the bus is closed.
            BusUsageError: called from a coroutine on a bus with a store.
        """
        plain = self._plain.get(event.__class__)
        if plain is not None and metadata is None and expected_offset is None:
            # The common case, one handler, costs one call inside one ``try``.
            first, rest = plain
            try:
                first(event)
            except Exception as exc:
                self._dispatcher.report_handler(exc, event, first)
            if rest:
                for handler in rest:
                    try:
                        handler(event)
                    except Exception as exc:
                        self._dispatcher.report_handler(exc, event, handler)
            return None
        return self._publish(event, metadata, expected_offset)

    def _publish(
        self, event: object, metadata: Mapping[str, str] | None, expected: Checkpoint | None
    ) -> Offset | None:
        dispatcher = self._dispatcher
        if self._store is not None and _running_loop() is not None:
            self._refuse_store_io_on_a_loop("publish")
        plan = self._prepare(event)
        if dispatcher.before:
            dispatcher.run_hooks(dispatcher.before, event, "before_publish")
        if self._middleware.entries:
            offset, envelope = self._persist_wrapped(event, metadata, expected)
        elif self._store is None and expected is None:
            offset, envelope = (
                None,
                self._journal.envelope_for(plan.needs_envelope, event, metadata),
            )
        else:
            offset, envelope = self._journal.persist(plan.needs_envelope, event, metadata, expected)
        if plan.subscriptions:
            dispatcher.dispatch(plan, event, envelope, None)
        if dispatcher.after:
            dispatcher.run_hooks(dispatcher.after, event, "after_publish")
        return offset

    def _persist_wrapped(
        self, event: object, metadata: Mapping[str, str] | None, expected: Checkpoint | None
    ) -> tuple[Offset | None, Envelope | None]:
        journal = self._journal
        publication = Publication(event, journal.wire_name(event))
        with self._middleware.publishing(publication):
            pairs = over(metadata, publication.metadata)
            if self._store is None and expected is None:
                offset, envelope = None, journal.envelope_for(True, event, pairs)
            else:
                offset, envelope = journal.persist(True, event, pairs, expected)
            publication.envelope = envelope
        return offset, envelope

    async def _persist_async(
        self,
        needs_envelope: bool,
        event: object,
        metadata: Mapping[str, str] | None,
        expected: Checkpoint | None,
    ) -> tuple[Offset | None, Envelope | None]:
        journal = self._journal
        if expected is not None:
            # Conditional appends have no native coroutine: the check runs in a thread.
            return await asyncio.to_thread(
                journal.persist, needs_envelope, event, metadata, expected
            )
        if self._store is None:
            return None, journal.envelope_for(needs_envelope, event, metadata)
        if journal.native_append is not None:
            return await journal.persist_natively(needs_envelope, event, metadata)
        return await asyncio.to_thread(journal.persist, needs_envelope, event, metadata)

    async def publish_async(
        self,
        event: object,
        /,
        *,
        metadata: Mapping[str, str] | None = None,
        expected_offset: Checkpoint | None = None,
    ) -> Offset | None:
        """Publish an event from asyncio code and wait for its handlers.

        Like :meth:`publish`, but the store append never blocks the loop (a worker
        thread, or the store's own coroutine) and this returns only after every
        coroutine handler of this event has finished. Handler failures go to the error
        hook; they are not raised here. Returns and raises as :meth:`publish`.
        """
        # Every step is skipped when it has nothing to do: with many publishers on one
        # loop, this path's own cost is a large part of each event's (docs/benchmarks.md).
        self._runner.bind_running_loop()
        plan = self._prepare(event)
        dispatcher, journal = self._dispatcher, self._journal
        if dispatcher.before:
            dispatcher.run_hooks(dispatcher.before, event, "before_publish")
        if self._middleware.entries:
            publication = Publication(event, journal.wire_name(event))
            with self._middleware.publishing(publication):
                pairs = over(metadata, publication.metadata)
                offset, envelope = await self._persist_async(True, event, pairs, expected_offset)
                publication.envelope = envelope
        elif expected_offset is None and journal.native_append is not None:
            # The store's own coroutine, awaited without the dispatching frame between.
            offset, envelope = await journal.persist_natively(plan.needs_envelope, event, metadata)
        else:
            offset, envelope = await self._persist_async(
                plan.needs_envelope, event, metadata, expected_offset
            )
        if plan.subscriptions:
            pending: list[asyncio.Future[Any]] = []
            dispatcher.dispatch(plan, event, envelope, pending)
            if pending:
                await asyncio.wait(pending)
        if dispatcher.after:
            dispatcher.run_hooks(dispatcher.after, event, "after_publish")
        return offset

    def _refuse_store_io_on_a_loop(self, method: str) -> None:
        # A store call would block every coroutine on this loop until the I/O is done.
        if self._store is not None and running_loop() is not None:
            raise BusUsageError(
                f"bus.{method}() would block the running event loop on the store's I/O; "
                f"from asyncio code use 'await bus.{method}_async(...)'."
            )

    def _prepare(self, event: object) -> Plan:
        if self._closed:
            raise BusClosedError("Cannot publish: the bus is closed.")
        if event is None:
            raise PublishError(
                "Cannot publish None; pass an event instance, as in bus.publish(OrderPlaced(...))."
            )
        if isinstance(event, type):
            raise PublishError(
                f"Cannot publish the class {event.__qualname__} itself; publish an instance: "
                f"bus.publish({event.__qualname__}(...))."
            )
        if self._check_encoding:
            self._journal.check_encodes(event)
        return self._dispatcher.plan_for(event.__class__)

    def publish_many(
        self,
        events: Iterable[object],
        /,
        *,
        metadata: Mapping[str, str] | None = None,
        expected_offset: Checkpoint | None = None,
    ) -> list[Offset | None]:
        """Publish several events with one store call (``append_batch``).

        Every event is encoded before anything is stored, so one bad event stores none.
        Then handlers run for each event in order, as :meth:`publish` would. With
        ``expected_offset`` the batch is appended only if the log still ends there
        (see :meth:`publish`); an empty batch then only checks.

        Returns:
            The offsets, in order (None entries on a bus without a store).

        Raises:
            The same errors as :meth:`publish`.
        """
        self._refuse_store_io_on_a_loop("publish_many")
        batch, plans = self._prepare_batch(events)
        with self._publishing_batch(batch) as publications:
            envelopes = self._journal.envelopes_for(
                [p.needs_envelope for p in plans],
                batch,
                metadata,
                _extras(publications),
                expected_offset,
            )
            _delivered(publications, envelopes)
        after = self._dispatcher.after
        for plan, event, envelope in zip(plans, batch, envelopes, strict=True):
            self._dispatcher.dispatch(plan, event, envelope, None)
            self._dispatcher.run_hooks(after, event, "after_publish")
        return [None if e is None else e.offset for e in envelopes]

    async def publish_many_async(
        self,
        events: Iterable[object],
        /,
        *,
        metadata: Mapping[str, str] | None = None,
        expected_offset: Checkpoint | None = None,
    ) -> list[Offset | None]:
        """:meth:`publish_many` for asyncio code; waits for the coroutine handlers.

        Returns:
            The offsets, in order (None entries on a bus without a store).
        """
        self._runner.bind_running_loop()
        batch, plans = self._prepare_batch(events)
        with self._publishing_batch(batch) as publications:
            envelopes = await asyncio.to_thread(
                self._journal.envelopes_for,
                [p.needs_envelope for p in plans],
                batch,
                metadata,
                _extras(publications),
                expected_offset,
            )
            _delivered(publications, envelopes)
        pending: list[asyncio.Future[Any]] = []
        for plan, event, envelope in zip(plans, batch, envelopes, strict=True):
            self._dispatcher.dispatch(plan, event, envelope, pending)
        if pending:
            await asyncio.wait(pending)
        for event in batch:
            self._dispatcher.run_hooks(self._dispatcher.after, event, "after_publish")
        return [None if e is None else e.offset for e in envelopes]

    @contextlib.contextmanager
    def _publishing_batch(self, batch: list[object]) -> Iterator[list[Publication] | None]:
        """Every middleware around the batch: one publication per event, in order."""
        if not self._middleware.entries:
            yield None
            return
        publications = [Publication(e, self._journal.wire_name(e)) for e in batch]
        with contextlib.ExitStack() as stack:
            for publication in publications:
                stack.enter_context(self._middleware.publishing(publication))
            yield publications

    def _prepare_batch(self, events: Iterable[object]) -> tuple[list[object], list[Plan]]:
        batch = list(events)
        plans = [self._prepare(event) for event in batch]
        for event in batch:
            self._dispatcher.run_hooks(self._dispatcher.before, event, "before_publish")
        return batch, plans


def _extras(publications: list[Publication] | None) -> list[dict[str, str]] | None:
    return None if publications is None else [p.metadata for p in publications]


def _delivered(publications: list[Publication] | None, envelopes: list[Envelope | None]) -> None:
    for publication, envelope in zip(publications or (), envelopes, strict=False):
        publication.envelope = envelope
