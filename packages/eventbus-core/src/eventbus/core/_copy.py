"""copy_events: copy one store's events into another, resumably, never storing one twice.

Each copied event keeps its id, wire name, JSON, timestamp, metadata and origin: only
its offset is the destination's. The copy's progress is a checkpoint *in the
destination* (so it survives whatever killed the copy), under ``checkpoint_id``.

A checkpoint can only hold an offset of its own store, so the checkpoint is a
destination offset: the end of a batch *before* the last one appended, saved at most
every :data:`CHECKPOINT_EVERY` seconds and when the copy is caught up. A rerun reads
the destination after it, which yields the batches copied since (including any
appended just before a crash), finds the last of those event ids in the source, and
resumes after it; an event whose id it already saw there is never appended again.
Finding it reads the source from its start, without writing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Final

from ._store import (
    NEWEST,
    OLDEST,
    Checkpoint,
    CheckpointStore,
    EventRecord,
    EventStore,
    Position,
    ReadResult,
    StoredEvent,
    StreamingReader,
    TailingStore,
)
from ._validate import check_limit, check_positive

__all__ = ["CHECKPOINT_EVERY", "DEFAULT_COPY_CHECKPOINT", "CopyProgress", "copy_events"]

CHECKPOINT_EVERY: Final = 1.0
"""Seconds between two checkpoint saves of a copy: a save per batch would cost as much
as the batch on a remote store, and a rerun re-reads only what was copied since."""

DEFAULT_COPY_CHECKPOINT: Final = "eventbus.copy"
"""The checkpoint id :func:`copy_events` keeps its progress under by default."""


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """How far a copy got; handed to ``on_progress`` after each batch, and returned.

    Attributes:
        copied: Events this call appended to the destination.
        skipped: Events this call passed over: of another type, or already copied.
        position: The source position the copy has read up to.
        caught_up: True once a read of the source found nothing more.
    """

    copied: int
    skipped: int
    position: Checkpoint
    caught_up: bool


def copy_events(
    src: EventStore,
    dst: EventStore,
    *,
    types: Collection[str] | None = None,
    checkpoint_id: str | None = DEFAULT_COPY_CHECKPOINT,
    follow: bool = False,
    batch_size: int = 500,
    poll_interval: float = 1.0,
    on_progress: Callable[[CopyProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> CopyProgress:
    """Copy every event of ``src`` into ``dst``, resuming where an earlier copy stopped.

    Events are read ``batch_size`` at a time and each batch is appended with one
    ``append_batch``. With ``follow``, the copy keeps mirroring new events (through the
    source's ``tail`` when it has one, else by polling) until ``stop`` is set.

    Args:
        src: The store to read.
        dst: The store to append to.
        types: Copy only events with these wire names; every event when None.
        checkpoint_id: Where the copy keeps its progress in ``dst`` (which must then
            be a :class:`~eventbus.core.CheckpointStore`); None copies from the
            start without keeping progress (nothing is resumed, nothing deduplicated).
        follow: Keep copying new events until ``stop`` is set.
        batch_size: Events per read and per append, at least 1.
        poll_interval: Seconds of each wait for new events with ``follow``; ``stop`` is
            looked at between waits.
        on_progress: Called after every batch, and when the copy is caught up.
        stop: Set it (from another thread) to end a ``follow`` copy; a copy without
            ``follow`` also stops at the batch boundary after it is set.

    Returns:
        What this call copied and skipped, and the source position it reached.

    Raises:
        TypeError: ``dst`` keeps no checkpoints but ``checkpoint_id`` is given,
            ``batch_size`` is not an int, or ``types`` is a string.
        ValueError: ``batch_size`` is below 1, ``poll_interval`` not positive, or
            ``checkpoint_id`` empty.
        StoreCorruptError: The source holds a record that cannot be read; the events
            before it were copied.
        StoreError: Either store failed; a rerun resumes.
    """
    check_limit("batch_size", batch_size)
    check_positive("poll_interval", poll_interval)
    if isinstance(types, str):  # a str is a Collection[str] of its letters
        raise TypeError(f"types must be a collection of wire names, got the string {types!r}.")
    checkpoints = dst if isinstance(dst, CheckpointStore) else None
    if checkpoint_id is not None:
        if checkpoints is None:
            raise TypeError(
                f"The destination {dst!r} keeps no checkpoints, so the copy cannot resume: "
                "pass checkpoint_id=None to copy without resuming."
            )
        if not checkpoint_id:
            raise ValueError("checkpoint_id must be a non-empty string or None.")
    wanted = None if types is None else frozenset(types)
    done = stop if stop is not None else threading.Event()
    if checkpoint_id is None or checkpoints is None:
        start = _Start(OLDEST, frozenset(), None)
        checkpoints = None
    else:
        start = _resume(src, dst, checkpoints, checkpoint_id, batch_size)
    copier = _Copier(dst, wanted, checkpoints, checkpoint_id or "", start, on_progress)
    while not done.is_set():
        page = src.read(copier.position, batch_size)
        if page.events:
            copier.copy(page)
            continue
        copier.caught_up()
        if not follow:
            break
        copier.copy(_wait(src, copier.position, batch_size, poll_interval, done))
    return copier.progress(caught_up=copier.is_caught_up)


def _wait(
    src: EventStore, after: Checkpoint, batch_size: int, interval: float, stop: threading.Event
) -> ReadResult:
    """New events after ``after``, waiting up to ``interval`` for them."""
    if isinstance(src, TailingStore):
        return src.tail(after, timeout=interval, limit=batch_size)
    stop.wait(interval)
    return src.read(after, batch_size)


@dataclass(frozen=True, slots=True)
class _Start:
    """Where a copy starts: the source position, ids already in the destination, and
    the destination offset to save as the checkpoint after the next batch."""

    after: Checkpoint
    copied_ids: frozenset[str]
    mark: Checkpoint | None


def _resume(
    src: EventStore, dst: EventStore, checkpoints: CheckpointStore, checkpoint_id: str, batch: int
) -> _Start:
    """Where to start, from the checkpoint in ``dst`` (see the module docstring)."""
    mark = checkpoints.load_checkpoint(checkpoint_id)
    if mark is None:
        # A first run: the destination's current end marks where this copy begins.
        mark = dst.read(NEWEST).next
        checkpoints.save_checkpoint(checkpoint_id, mark)
        return _Start(OLDEST, frozenset(), mark)
    boundary = {event.event_id for event in _events(dst, mark, batch)}
    if not boundary:
        return _Start(OLDEST, frozenset(), mark)
    found = 0
    after: Checkpoint = OLDEST
    for event in _events(src, OLDEST, batch):
        if event.event_id in boundary:
            after = event.offset
            found += 1
            if found == len(boundary):
                break  # nothing after the last copied event can be a copy
    return _Start(after, frozenset(boundary), mark)


def _events(store: EventStore, after: Position, batch: int) -> Iterator[StoredEvent]:
    """Every event of ``store`` after ``after``, streamed when the store can."""
    if isinstance(store, StreamingReader):
        yield from store.iter_events(after, batch_size=batch)
        return
    while page := store.read(after, batch).events:
        yield from page
        after = page[-1].offset


class _Copier:
    """Appends pages to the destination and keeps the count and the checkpoint."""

    def __init__(
        self,
        dst: EventStore,
        wanted: frozenset[str] | None,
        checkpoints: CheckpointStore | None,
        checkpoint_id: str,
        start: _Start,
        on_progress: Callable[[CopyProgress], None] | None,
    ) -> None:
        self._dst = dst
        self._wanted = wanted
        self._checkpoints = checkpoints
        self._checkpoint_id = checkpoint_id
        self._copied_ids = start.copied_ids
        self._saved = start.mark  # the checkpoint in the destination
        self._mark = start.mark  # the end of the batch before the last one appended
        self._latest = start.mark  # the end of the last batch appended
        self._saved_at = time.monotonic()
        self._on_progress = on_progress
        self.position: Checkpoint = start.after
        self.copied = 0
        self.skipped = 0
        self.is_caught_up = False

    def copy(self, page: ReadResult) -> None:
        """Append the wanted, not yet copied events of ``page``; save the checkpoint."""
        if not page.events:
            return
        self.is_caught_up = False
        records = [
            EventRecord(
                event_id=event.event_id,
                type_name=event.type_name,
                data=event.data,
                timestamp=event.timestamp,
                metadata=event.metadata,
                origin=event.origin,
            )
            for event in page.events
            if (self._wanted is None or event.type_name in self._wanted)
            and event.event_id not in self._copied_ids
        ]
        if records:
            offsets = self._dst.append_batch(records)
            self._mark, self._latest = self._latest, offsets[-1]
            if time.monotonic() - self._saved_at >= CHECKPOINT_EVERY:
                self._save()
        self.copied += len(records)
        self.skipped += len(page.events) - len(records)
        self.position = page.next
        self._report()

    def caught_up(self) -> None:
        """The source had nothing more: save the checkpoint and say so, once."""
        if not self.is_caught_up:
            self.is_caught_up = True
            self._save()
            self._report()

    def _save(self) -> None:
        """Save the end of the batch before the last: a rerun reads the last one back
        from there (it must find a copied event after its checkpoint to resume)."""
        if self._checkpoints is not None and self._mark is not None and self._mark != self._saved:
            self._checkpoints.save_checkpoint(self._checkpoint_id, self._mark)
            self._saved = self._mark
        self._saved_at = time.monotonic()

    def progress(self, *, caught_up: bool) -> CopyProgress:
        """The counts so far."""
        return CopyProgress(self.copied, self.skipped, self.position, caught_up)

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress(caught_up=self.is_caught_up))
