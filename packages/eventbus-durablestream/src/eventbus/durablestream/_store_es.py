"""The event-sourcing methods of :class:`DurableStreamStore` (a facade mixin).

Snapshots are kept by :mod:`._snapshot_log`; conditional appends and compaction are
refused with the errors of :mod:`._unsupported`. Kept apart from ``_store`` so the
facade stays short; it holds no state of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from eventbus.core import NEWEST, OLDEST, Checkpoint, EventRecord, Offset, Snapshot

from ._offsets import parse_token
from ._unsupported import cannot_append_conditionally, cannot_compact

if TYPE_CHECKING:
    from ._lifecycle import Lifecycle
    from ._snapshot_log import SnapshotLog

__all__ = ["EventSourcingMethods", "check_saved_offset"]


def check_saved_offset(offset: Checkpoint, what: str) -> None:
    """Refuse NEWEST and malformed offsets as a saved position (a checkpoint, a snapshot's)."""
    if offset is NEWEST:  # type: ignore[comparison-overlap]  # callers ignore types
        raise ValueError(
            f"Cannot save NEWEST as a {what}: it is not a position; resolve it with "
            "read(NEWEST).next first."
        )
    if offset is not OLDEST:
        parse_token(offset)


class EventSourcingMethods:
    """``append_expecting``, ``compact``, ``save_snapshot`` and ``load_snapshot``."""

    _url: str
    _lifecycle: Lifecycle
    _snapshots: SnapshotLog

    if TYPE_CHECKING:

        def _budget(self, extra: float = 0.0) -> contextlib.AbstractContextManager[None]: ...

        def _refuse_write(self, what: str) -> None: ...

    def append_expecting(
        self, records: Sequence[EventRecord], expected_end: Checkpoint
    ) -> list[Offset]:
        """Refuse: the server cannot check an expected offset atomically with an append.

        Raises:
            UnsupportedStoreFeatureError: Always (naming the missing server feature);
                nothing is stored.
            StoreClosedError: The store was closed.
        """
        with self._lifecycle.open():
            raise cannot_append_conditionally(self._url)

    def compact(self, through: Offset, *, snapshots: Sequence[str] = ()) -> int:
        """Refuse: a Durable Streams stream is append-only.

        Raises:
            UnsupportedStoreFeatureError: Always; nothing is removed.
            StoreClosedError: The store was closed.
        """
        with self._lifecycle.open():
            raise cannot_compact(self._url)

    def save_snapshot(self, snapshot_id: str, offset: Checkpoint, data: str) -> None:
        """Save ``data`` as the snapshot of ``snapshot_id``, covering events up to ``offset``.

        Appended to the id's snapshot stream beside the event stream; the last one wins.

        Args:
            snapshot_id: A non-empty name.
            offset: An event's offset, or OLDEST. NEWEST is refused.
            data: The state as text.

        Raises:
            ValueError: An empty id, or NEWEST.
            TypeError: ``data`` is not a str.
            OffsetError: A malformed offset.
            StoreReadOnlyError: The store was opened read-only.
            StoreClosedError: The store was closed.
            StoreError: The server failed.
        """
        self._check_snapshot_id(snapshot_id)
        check_saved_offset(offset, "snapshot offset")
        if not isinstance(data, str):
            raise TypeError(f"Snapshot data must be text (str), got {type(data).__name__}.")
        self._refuse_write("save snapshots")
        with self._lifecycle.open(), self._budget():
            self._snapshots.save(snapshot_id, offset, data)

    def load_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """Return the latest snapshot of ``snapshot_id``, or None when none was saved.

        Raises:
            ValueError: An empty id.
            StoreClosedError: The store was closed.
            StoreCorruptError: The snapshot stream holds something else.
            StoreError: The server failed.
        """
        self._check_snapshot_id(snapshot_id)
        with self._lifecycle.open(), self._budget():
            return self._snapshots.load(snapshot_id)

    @staticmethod
    def _check_snapshot_id(snapshot_id: str) -> None:
        if not isinstance(snapshot_id, str) or not snapshot_id:
            raise ValueError(f"A snapshot id must be a non-empty string, got {snapshot_id!r}.")
