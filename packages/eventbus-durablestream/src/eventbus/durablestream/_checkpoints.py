"""Durable-subscription checkpoints kept on the Durable Streams server.

Each subscription has two tiny *slot* streams beside the event stream. Saving version
``n`` replaces slot ``n % 2`` (delete, then create it with the value as its initial
data, which is one atomic request); loading reads both slots and keeps the higher
version. Loading therefore costs two small reads however often a checkpoint was saved,
and a save interrupted between its two requests leaves the other slot, holding the
previous checkpoint, intact.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from eventbus.core import OLDEST, Checkpoint, StoreCorruptError

from ._client import DurableStreamClient
from ._errors import StreamNotFoundError

__all__ = ["CheckpointSlots"]

_JSON = "application/json"


class CheckpointSlots:
    """Reads and writes the two checkpoint slots of each subscription.

    Args:
        client: The client to talk through.
        stream: The event stream's URL path; the slots live under
            ``<stream>.eventbus-checkpoints/<base64url(id)>/<0|1>``.
    """

    def __init__(self, client: DurableStreamClient, stream: str) -> None:
        self._client = client
        self._prefix = f"{stream}.eventbus-checkpoints/"
        self._versions: dict[str, int] = {}

    def _slot(self, subscription_id: str, slot: int) -> str:
        name = base64.urlsafe_b64encode(subscription_id.encode()).decode().rstrip("=")
        return f"{self._prefix}{name}/{slot}"

    def _read_slot(self, url: str) -> tuple[int, Checkpoint] | None:
        try:
            items = self._client.read(url).json()
        except StreamNotFoundError:
            return None
        if not items:
            return None
        value: Any = items[-1]
        fields = value if isinstance(value, dict) else {}
        version = fields.get("version")
        offset = OLDEST if fields.get("oldest") is True else fields.get("offset")
        if not isinstance(version, int) or not (offset is OLDEST or isinstance(offset, str)):
            raise StoreCorruptError(
                f"The checkpoint slot {url!r} holds {value!r}, not a checkpoint."
            )
        return version, offset

    def load(self, subscription_id: str) -> Checkpoint | None:
        """Return the newest saved checkpoint, or ``None`` when none was saved.

        Args:
            subscription_id: The subscription.

        Returns:
            The checkpoint, or ``None``.
        """
        found = [
            slot
            for slot in (self._read_slot(self._slot(subscription_id, n)) for n in (0, 1))
            if slot is not None
        ]
        if not found:
            self._versions[subscription_id] = -1
            return None
        version, offset = max(found, key=lambda slot: slot[0])
        self._versions[subscription_id] = version
        return offset

    def save(self, subscription_id: str, offset: Checkpoint) -> None:
        """Save ``offset`` as the next version, in the slot not holding the current one.

        Args:
            subscription_id: The subscription.
            offset: A token or OLDEST (validated by the caller).
        """
        if subscription_id not in self._versions:
            self.load(subscription_id)
        version = self._versions[subscription_id] + 1
        url = self._slot(subscription_id, version % 2)
        value = {
            "version": version,
            "oldest": offset is OLDEST,
            "offset": None if offset is OLDEST else offset,
        }
        # Missing on a first save, or after a save interrupted between its requests.
        with contextlib.suppress(StreamNotFoundError):
            self._client.delete(url)
        self._client.create(url, content_type=_JSON, data=json.dumps([value]))
        self._versions[subscription_id] = version
