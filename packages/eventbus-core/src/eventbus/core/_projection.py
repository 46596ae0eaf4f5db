"""Projection: state folded from a bus's events that starts from its latest snapshot.

A projection keeps its state and the offset of the last event folded into it, and
saves both together as one snapshot, so the snapshot's offset *is* its resume point:
restoring it and catching up applies exactly the events after that offset, none twice
and none skipped. It sits above the bus (it reads through ``replay_events``, so
upcasting and wire-name selection apply) and needs a store with snapshots.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._exceptions import BusUsageError
from ._store import OLDEST, Checkpoint, SnapshotStore

if TYPE_CHECKING:
    from ._bus import EventBus

__all__ = ["Projection"]

S = TypeVar("S")


class Projection(Generic[S]):
    """State derived from events, saved as snapshots and resumed from the latest one.

    Example::

        balances = Projection(bus, "balances", {}, apply_event)
        balances.restore()      # the latest snapshot, if any
        balances.catch_up()     # the events after it
        balances.save_snapshot()

    Args:
        bus: The bus whose store holds the events and the snapshots; the store must
            implement :class:`~eventbus.core.SnapshotStore`.
        snapshot_id: The id its snapshots are saved under.
        initial: The state before any event.
        apply: ``apply(state, event) -> state``, called with each decoded event in log
            order (events of every class the bus knows: ignore the ones you do not fold).
        event_types: The classes to fold, registered on the bus so that their stored
            events decode even in a process that never publishes or subscribes to them.
        state_type: The state's class, encoded like an event (dataclass, TypedDict,
            pydantic, ...) by the bus's codec; without it the state must be a JSON value.

    Attributes:
        state: The current state.
        offset: The last event folded into ``state``, or OLDEST before the first.

    Raises:
        BusUsageError: The bus has no store, or one without snapshots.
    """

    def __init__(
        self,
        bus: EventBus,
        snapshot_id: str,
        initial: S,
        apply: Callable[[S, Any], S],
        *,
        event_types: Iterable[type[Any]] = (),
        state_type: type[S] | None = None,
    ) -> None:
        store = bus.store
        if not isinstance(store, SnapshotStore):
            raise BusUsageError(
                f"Projection {snapshot_id!r} needs a store that implements SnapshotStore "
                f"(save_snapshot, load_snapshot); the bus has {store!r}."
            )
        bus.register(*event_types)
        self._bus: EventBus = bus
        self._store: SnapshotStore = store
        self._apply: Callable[[S, Any], S] = apply
        self.snapshot_id: str = snapshot_id
        self.state: S = initial
        self.offset: Checkpoint = OLDEST
        if state_type is None:
            self._encode: Callable[[S], str] = json.dumps
            self._decode: Callable[[str], S] = json.loads
        else:
            # The bus's codec, built once: the state round-trips like an event would.
            codec = bus._mapper.codec_for_event(state_type)
            self._encode, self._decode = codec.encode, codec.decode

    def __repr__(self) -> str:
        return f"<Projection {self.snapshot_id!r} at {self.offset!r}>"

    def restore(self) -> bool:
        """Replace the state and offset with the latest snapshot's, if one was saved.

        Returns:
            Whether a snapshot was found.

        Raises:
            DecodeError: The snapshot does not fit ``state_type`` (or is not JSON).
        """
        snapshot = self._store.load_snapshot(self.snapshot_id)
        if snapshot is None:
            return False
        self.state = self._decode(snapshot.data)
        self.offset = snapshot.offset
        return True

    def catch_up(self, *, batch_size: int = 500) -> int:
        """Fold every event after :attr:`offset` into the state.

        The offset advances after each event, so if ``apply`` raises, the projection
        stands after the last event it folded and a later call resumes at the failing one.

        Returns:
            How many events were applied.
        """
        applied = 0
        for event, stored in self._bus.replay_events(self.offset, batch_size=batch_size):
            self.state = self._apply(self.state, event)
            self.offset = stored.offset
            applied += 1
        return applied

    def save_snapshot(self) -> None:
        """Save the state with the offset it covers, as the latest snapshot of the id."""
        self._store.save_snapshot(self.snapshot_id, self.offset, self._encode(self.state))
