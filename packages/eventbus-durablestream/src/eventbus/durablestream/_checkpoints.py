"""Durable-subscription checkpoints kept on the Durable Streams server.

Each subscription has two small *slot* streams beside the event stream. Checkpoints are
numbered; checkpoint ``n`` belongs to generation ``n // GENERATION``, and generation ``g``
lives in slot ``g % 2``. A save appends to its slot (one request); the first save of a
generation replaces the slot instead (delete, then create it with the value as initial
data, itself one atomic request). A save uses up its number even when it fails (the server
may have stored it before the failure). Loading reads both slots and keeps the highest number,
so it costs two reads of at most ``GENERATION`` tiny messages each, however often
checkpoints were saved. A save interrupted between delete and create leaves the other
slot, holding the previous generation's checkpoints, intact.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any, Final

from eventbus.core import OLDEST, Checkpoint, StoreCorruptError

from ._client import DurableStreamClient
from ._errors import StreamNotFoundError

__all__ = ["GENERATION", "CheckpointSlots"]

GENERATION: Final = 64
_JSON: Final = "application/json"


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
        self._numbers: dict[str, int] = {}

    def _slot(self, subscription_id: str, slot: int) -> str:
        name = base64.urlsafe_b64encode(subscription_id.encode()).decode().rstrip("=")
        return f"{self._prefix}{name}/{slot}"

    def _read_slot(self, url: str) -> list[tuple[int, Checkpoint]]:
        try:
            items = self._client.read(url).json()
        except StreamNotFoundError:
            return []
        saved: list[tuple[int, Checkpoint]] = []
        for value in items:
            fields: dict[str, Any] = value if isinstance(value, dict) else {}
            number = fields.get("n")
            offset = OLDEST if fields.get("oldest") is True else fields.get("offset")
            if type(number) is not int or not (offset is OLDEST or isinstance(offset, str)):
                raise StoreCorruptError(
                    f"The checkpoint slot {url!r} holds {value!r}, not a checkpoint."
                )
            saved.append((number, offset))
        return saved

    def load(self, subscription_id: str) -> Checkpoint | None:
        """Return the newest saved checkpoint, or ``None`` when none was saved.

        Args:
            subscription_id: The subscription.

        Returns:
            The checkpoint, or ``None``.

        Raises:
            StoreCorruptError: A slot holds something that is not a checkpoint.
        """
        saved = [
            *self._read_slot(self._slot(subscription_id, 0)),
            *self._read_slot(self._slot(subscription_id, 1)),
        ]
        if not saved:
            self._numbers[subscription_id] = -1
            return None
        # Of equal numbers (saved by versions that reused the number of a failed save)
        # the later one counts: max() keeps the first of equals, so look from the end.
        number, offset = max(reversed(saved), key=lambda checkpoint: checkpoint[0])
        self._numbers[subscription_id] = number
        return offset

    def save(self, subscription_id: str, offset: Checkpoint) -> None:
        """Save ``offset`` as the subscription's next checkpoint.

        Args:
            subscription_id: The subscription.
            offset: A token or OLDEST (validated by the caller).
        """
        if subscription_id not in self._numbers:
            self.load(subscription_id)
        number = self._numbers[subscription_id] + 1
        # Used up before any request: a save that fails may still have been stored, and
        # the next save must not repeat its number (see load).
        self._numbers[subscription_id] = number
        url = self._slot(subscription_id, (number // GENERATION) % 2)
        body = json.dumps(
            [
                {
                    "n": number,
                    "oldest": offset is OLDEST,
                    "offset": None if offset is OLDEST else offset,
                }
            ]
        )
        replace = number % GENERATION == 0
        if not replace:
            try:
                self._client.append(url, body, content_type=_JSON)
            except StreamNotFoundError:
                replace = True  # the slot vanished (deleted by hand, or expired)
        if replace:
            # Missing on a first save, or after a save interrupted between its requests.
            with contextlib.suppress(StreamNotFoundError):
                self._client.delete(url)
            self._client.create(url, content_type=_JSON, data=body)
