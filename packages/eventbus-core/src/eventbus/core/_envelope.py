"""The envelope a handler can ask for, and publish metadata carried in a context variable."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime

    from ._store import Offset

__all__ = ["Envelope", "current_metadata", "publish_metadata"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_metadata: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "eventbus_publish_metadata", default=_EMPTY
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the bus knows about one published event, for handlers that ask for it.

    A handler receives it by declaring a second parameter without a default,
    ``def h(event, envelope)``, or one annotated ``Envelope``.

    Attributes:
        event_id: A ULID minted once per publish (the idempotency key).
        offset: The event's offset in the store, or None on a bus without a store
            (or when a best-effort append failed).
        type_name: The event's wire name.
        timestamp: When it was published, timezone-aware UTC.
        metadata: The publish metadata (see :func:`publish_metadata`).
        origin: The id of the bus that published it.
    """

    event_id: str
    offset: Offset | None
    type_name: str
    timestamp: datetime
    metadata: Mapping[str, str]
    origin: str


@contextlib.contextmanager
def publish_metadata(**pairs: str) -> Iterator[Mapping[str, str]]:
    """Attach string metadata to every event published inside the ``with`` block.

    Nested blocks add to (and may override) the outer block's pairs. The metadata is
    carried by a context variable, so it follows ``await`` and tasks created inside.

    Args:
        **pairs: Metadata keys and string values, e.g. ``tenant="acme"``.

    Yields:
        The metadata now in force.

    Raises:
        TypeError: a value is not a string.
    """
    for key, value in pairs.items():
        if not isinstance(value, str):
            raise TypeError(
                f"Metadata values must be strings; {key}={value!r} is a "
                f"{type(value).__name__}. Convert it first, e.g. {key}=str(value)."
            )
    merged = MappingProxyType({**_metadata.get(), **pairs})
    token = _metadata.set(merged)
    try:
        yield merged
    finally:
        _metadata.reset(token)


def current_metadata() -> Mapping[str, str]:
    """Return the publish metadata in force in the current context (read-only)."""
    return _metadata.get()
