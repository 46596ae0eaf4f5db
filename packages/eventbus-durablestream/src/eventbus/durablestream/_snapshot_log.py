"""Snapshots in append-only companion streams on the server, in generations.

A save appends ``{"offset": ..., "data": ...}`` to the id's newest *generation*: the
first lives at ``<stream>.eventbus-snapshots/<id>`` (the id base64url-encoded),
generation ``g`` at ``<that>.<g>``. The latest snapshot is the last one saved in the
newest generation that holds one. Nothing is ever rewritten or deleted, so a save is one
append and a torn save cannot exist.

Once a generation holds :data:`SAVES_PER_GENERATION` saves, the next saver closes it with
a ``{"moved": g + 1}`` record (the protocol's stream closure, atomic with the append),
creates generation ``g + 1`` (empty: creating an existing stream again is a no-op that
would drop initial data) and appends its snapshot there. A new instance finds the newest
generation in O(log g) HEADs and reads only it, so a cold load reads a bounded number of
saves however many were ever made; the saves before stay on the server, unread.

A move left half done is finished by whoever comes next: a reader that follows a move to
a generation not created yet keeps the snapshot it read before the move, and a saver
creates the generation. A newest generation with no snapshot yet (created, not yet
appended to) is read past to the one before it.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from typing import Any, Final

from eventbus.core import OLDEST, Checkpoint, Snapshot, StoreCorruptError, StoreError

from ._client import DurableStreamClient
from ._errors import StreamClosedError, StreamExistsError, StreamNotFoundError
from ._generations import newest_generation, stream_exists
from ._offsets import parse_token

__all__ = ["SAVES_PER_GENERATION", "SnapshotLog"]

SAVES_PER_GENERATION: Final = 16
"""A generation holding this many saves is moved to a new one by its next saver."""

_JSON: Final = "application/json"
_OLDEST_TEXT: Final = "oldest"
_ATTEMPTS: Final = 8  # a save retried after the generation moved under it


class _Cursor:
    """One instance's place in one id's snapshots: which generation, where it stopped
    reading, how many saves that generation holds (as far as it knows), the last seen."""

    __slots__ = ("count", "generation", "last", "lock", "moved", "position")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = -1  # unknown until the first use finds the newest
        self.position = "-1"
        self.count = 0
        self.moved = False  # the generation read so far ends with a move
        self.last: Snapshot | None = None


class SnapshotLog:
    """Saves and loads the snapshots of one event stream.

    Args:
        client: The store's client.
        stream: The event stream's path; the snapshot streams sit beside it.
    """

    def __init__(self, client: DurableStreamClient, stream: str) -> None:
        self._client = client
        self._prefix = f"{stream}.eventbus-snapshots/"
        self._cursors: dict[str, _Cursor] = {}
        self._lock = threading.Lock()

    def _url(self, snapshot_id: str, generation: int) -> str:
        head = self._prefix + base64.urlsafe_b64encode(snapshot_id.encode()).decode().rstrip("=")
        return head if generation == 0 else f"{head}.{generation}"

    def _cursor(self, snapshot_id: str) -> _Cursor:
        with self._lock:
            return self._cursors.setdefault(snapshot_id, _Cursor())

    def save(self, snapshot_id: str, offset: Checkpoint, data: str) -> None:
        """Append a snapshot; see ``DurableStreamStore.save_snapshot``."""
        cursor = self._cursor(snapshot_id)
        record = {"offset": _OLDEST_TEXT if offset is OLDEST else offset, "data": data}
        with cursor.lock:
            if cursor.generation < 0:
                self._catch_up(snapshot_id, cursor)  # also learns how full the newest is
            for _ in range(_ATTEMPTS):
                if cursor.moved or cursor.count >= SAVES_PER_GENERATION:
                    self._move(snapshot_id, cursor)
                url = self._url(snapshot_id, cursor.generation)
                try:
                    self._client.append_json(url, record)
                except StreamNotFoundError:  # the first save, or a move left half done
                    self._client.create(url, content_type=_JSON)
                    continue
                except StreamClosedError:  # another saver moved it: follow, save there
                    self._catch_up(snapshot_id, cursor)
                    continue
                cursor.count += 1
                return
        raise StoreError(
            f"Could not save the snapshot {snapshot_id!r} in {_ATTEMPTS} attempts: its "
            "stream kept moving to new generations."
        )

    def load(self, snapshot_id: str) -> Snapshot | None:
        """The last snapshot saved; see ``DurableStreamStore.load_snapshot``."""
        cursor = self._cursor(snapshot_id)
        with cursor.lock:
            self._catch_up(snapshot_id, cursor)
            return cursor.last

    def _move(self, snapshot_id: str, cursor: _Cursor) -> None:
        """Close the cursor's generation with a move and step into the next (created)."""
        target = cursor.generation + 1
        if not cursor.moved:
            with contextlib.suppress(StreamClosedError):  # another saver moved it first
                self._client.close_stream(
                    self._url(snapshot_id, cursor.generation),
                    data=f'[{{"moved": {target}}}]',
                    content_type=_JSON,
                )
        # Already created and moved on by others: it exists, closed, with another config.
        with contextlib.suppress(StreamExistsError):
            self._client.create(self._url(snapshot_id, target), content_type=_JSON)
        cursor.generation, cursor.position, cursor.count, cursor.moved = target, "-1", 0, False

    def _catch_up(self, snapshot_id: str, cursor: _Cursor) -> None:
        """Read what follows the cursor, following moves; on first use, start at the
        newest generation (and read the one before if the newest holds no snapshot)."""
        if cursor.generation < 0:
            cursor.generation = newest_generation(
                lambda g: stream_exists(self._client, self._url(snapshot_id, g))
            )
            self._read(snapshot_id, cursor)
            if cursor.last is None and cursor.generation > 0:
                self._last_of(snapshot_id, cursor, cursor.generation - 1)
            return
        while self._read(snapshot_id, cursor):
            target = self._url(snapshot_id, cursor.generation + 1)
            if not stream_exists(self._client, target):
                return  # a move left half done: the next saver creates it
            cursor.generation, cursor.position, cursor.count, cursor.moved = (
                cursor.generation + 1,
                "-1",
                0,
                False,
            )

    def _read(self, snapshot_id: str, cursor: _Cursor) -> bool:
        """Read the cursor's generation to its end; whether it ends with a move."""
        url = self._url(snapshot_id, cursor.generation)
        while True:
            try:
                chunk = self._client.read(url, offset=cursor.position)
            except StreamNotFoundError:  # never saved
                return False
            items = chunk.json()
            for item in items:
                if _is_move(item, cursor.generation):
                    cursor.moved = True
                else:
                    cursor.last = _parse(snapshot_id, item, url)
                    cursor.count += 1
            cursor.position = chunk.next_offset
            if chunk.up_to_date or not items:
                return cursor.moved

    def _last_of(self, snapshot_id: str, cursor: _Cursor, generation: int) -> None:
        """Take the last snapshot of an earlier (closed) generation, leaving the cursor."""
        earlier = _Cursor()
        earlier.generation = generation
        self._read(snapshot_id, earlier)
        cursor.last = earlier.last


def _is_move(item: Any, generation: int) -> bool:
    return isinstance(item, dict) and item == {"moved": generation + 1}


def _parse(snapshot_id: str, item: Any, url: str) -> Snapshot:
    """A stored snapshot message back as a Snapshot; StoreCorruptError for anything else."""
    if isinstance(item, dict) and set(item) == {"offset", "data"}:
        offset, data = item["offset"], item["data"]
        if isinstance(data, str) and isinstance(offset, str):
            if offset == _OLDEST_TEXT:
                return Snapshot(snapshot_id, OLDEST, data)
            try:
                parse_token(offset)
            except ValueError:
                pass
            else:
                return Snapshot(snapshot_id, offset, data)
    raise StoreCorruptError(
        f"The snapshot stream {url!r} holds {item!r:.200}, which is not a snapshot record; "
        "something else wrote to it.",
        store=url,
        field="snapshot",
    )
