"""Snapshots in append-only companion streams on the server, one stream per snapshot id.

A save appends ``{"offset": ..., "data": ...}`` to ``<stream>.eventbus-snapshots/<id>``
(the id base64url-encoded), creating the stream on first use; the latest snapshot is the
stream's last message. Nothing is ever rewritten, so a save is one append and a torn
save cannot exist. Each instance remembers, per id, where it stopped reading and the
last snapshot it saw, so a load costs one catch-up request; a cold load reads every
save of the id (see ``docs/event-sourcing.md``).
"""

from __future__ import annotations

import base64
import threading
from typing import Any, Final

from eventbus.core import OLDEST, Checkpoint, Snapshot, StoreCorruptError

from ._client import DurableStreamClient
from ._errors import StreamNotFoundError
from ._offsets import parse_token

__all__ = ["SnapshotLog"]

_JSON: Final = "application/json"
_OLDEST_TEXT: Final = "oldest"


class _Cursor:
    """Where this instance stopped reading one id's stream, and what it found last."""

    __slots__ = ("created", "last", "lock", "position")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.position = "-1"
        self.last: Snapshot | None = None
        self.created = False


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

    def _url(self, snapshot_id: str) -> str:
        return self._prefix + base64.urlsafe_b64encode(snapshot_id.encode()).decode().rstrip("=")

    def _cursor(self, snapshot_id: str) -> _Cursor:
        with self._lock:
            return self._cursors.setdefault(snapshot_id, _Cursor())

    def save(self, snapshot_id: str, offset: Checkpoint, data: str) -> None:
        """Append a snapshot; see ``DurableStreamStore.save_snapshot``."""
        cursor = self._cursor(snapshot_id)
        url = self._url(snapshot_id)
        record = {"offset": _OLDEST_TEXT if offset is OLDEST else offset, "data": data}
        with cursor.lock:
            if not cursor.created:
                self._client.create(url, content_type=_JSON)
                cursor.created = True
            self._client.append_json(url, record)

    def load(self, snapshot_id: str) -> Snapshot | None:
        """The last snapshot saved; see ``DurableStreamStore.load_snapshot``."""
        cursor = self._cursor(snapshot_id)
        url = self._url(snapshot_id)
        with cursor.lock:
            while True:
                try:
                    chunk = self._client.read(url, offset=cursor.position)
                except StreamNotFoundError:  # never saved
                    return None
                cursor.created = True
                items = chunk.json()
                if items:
                    cursor.last = _parse(snapshot_id, items[-1], url)
                cursor.position = chunk.next_offset
                if chunk.up_to_date or not items:
                    return cursor.last


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
