"""When a durable subscription saves its checkpoint: every N events, every T seconds.

A position is handed over only after its event was handled (or deliberately passed
over), so a saved checkpoint never passes an event whose handler has not completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._store import Checkpoint

__all__ = ["Checkpointer"]


class Checkpointer:
    """Batches checkpoint writes of one subscription.

    Args:
        save: Saves a checkpoint (as the subscription's owner, fenced when leased).
        every: Save after this many positions.
        interval: Also save when this many seconds passed since the last save.
        on_error: Told of a failed save; the next save writes a later position.
    """

    def __init__(
        self,
        save: Callable[[Checkpoint], None],
        *,
        every: int,
        interval: float | None,
        on_error: Callable[[Exception], None],
    ) -> None:
        self._save = save
        self._every = every
        self._interval = interval
        self._on_error = on_error
        self.saved: Checkpoint | None = None
        self._unsaved: Checkpoint | None = None
        self._unsaved_count = 0
        self._last_save = time.monotonic()

    def reset(self, saved: Checkpoint) -> None:
        """Start over from ``saved``, forgetting positions not saved yet (another owner
        may have handled them since)."""
        self.saved = saved
        self._unsaved = None
        self._unsaved_count = 0
        self._last_save = time.monotonic()

    def advance(self, offset: Checkpoint) -> None:
        """Record that everything up to ``offset`` is done; save when due."""
        self._unsaved = offset
        self._unsaved_count += 1
        if self._unsaved_count >= self._every:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> None:
        """Save if the interval has passed since the last save."""
        interval = self._interval
        if interval is not None and time.monotonic() - self._last_save >= interval:
            self.flush()

    def flush(self) -> None:
        """Save the latest position now, if one is unsaved."""
        offset = self._unsaved
        if offset is None:
            return
        try:
            self._save(offset)
        except Exception as exc:
            # Not fatal: the next flush saves a later offset; until then a restart
            # redelivers from the older checkpoint (at-least-once).
            self._on_error(exc)
            return
        self.reset(offset)
