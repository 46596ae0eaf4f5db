"""Checkpoints written by the earlier layout, read once so an upgrade resumes where it was.

Before lease logs (see :mod:`._lease_log`), each subscription kept numbered checkpoints in
two *slot* streams, ``<stream>.eventbus-checkpoints/<base64url(id)>/0`` and ``…/1``, each
message ``{"n": number, "oldest": bool, "offset": text or null}``; the highest number was
the checkpoint. Those slots were replaced by deleting and re-creating them, which the
protocol says a server should not allow, so nothing writes them any more. They are only
read, while a subscription's lease log holds no checkpoint yet.
"""

from __future__ import annotations

import base64
from typing import Any

from eventbus.core import OLDEST, Checkpoint, StoreCorruptError

from ._client import DurableStreamClient
from ._errors import StreamNotFoundError

__all__ = ["load_legacy_checkpoint"]


def _read_slot(client: DurableStreamClient, url: str) -> list[tuple[int, Checkpoint]]:
    try:
        items = client.read(url).json()
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


def load_legacy_checkpoint(
    client: DurableStreamClient, stream: str, subscription_id: str
) -> Checkpoint | None:
    """Return the newest checkpoint the old layout saved, or ``None``.

    Args:
        client: The store's client.
        stream: The event stream's path.
        subscription_id: The subscription.

    Raises:
        StoreCorruptError: A slot holds something that is not a checkpoint.
    """
    name = base64.urlsafe_b64encode(subscription_id.encode()).decode().rstrip("=")
    prefix = f"{stream}.eventbus-checkpoints/{name}/"
    saved = [*_read_slot(client, prefix + "0"), *_read_slot(client, prefix + "1")]
    if not saved:
        return None
    return max(saved, key=lambda checkpoint: checkpoint[0])[1]
