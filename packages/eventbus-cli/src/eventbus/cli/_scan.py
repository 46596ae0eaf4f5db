"""Reading a log past records the store cannot read (each reported, none fatal)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from eventbus.core import OLDEST, StoreCorruptError, TailingStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventbus.core import Checkpoint, EventStore, StoredEvent

__all__ = ["Unreadable", "next_page", "scan"]

_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record the store could not read: where, which field, and why."""

    offset: str | None
    field: str | None
    reason: str


def next_page(
    store: EventStore, after: Checkpoint, *, wait: float = 0.0
) -> tuple[Sequence[StoredEvent | Unreadable], Checkpoint | None]:
    """The records after ``after`` and the position after them (None: cannot go on).

    With ``wait``, waits up to that many seconds for new records (the store's ``tail``,
    else a sleep and a read). A record the store raised StoreCorruptError at comes back
    as an :class:`Unreadable`, and the position after it is its offset; a corrupt record
    whose offset the store cannot name leaves nothing after it reachable.
    """
    try:
        if wait and isinstance(store, TailingStore):
            page = store.tail(after, timeout=wait, limit=_PAGE)
        else:
            if wait:
                time.sleep(wait)
            page = store.read(after, _PAGE)
    except StoreCorruptError as exc:
        return [Unreadable(exc.offset, exc.field, " ".join(str(exc).split()))], exc.offset
    return page.events, page.next


def scan(store: EventStore, after: Checkpoint = OLDEST) -> Iterator[StoredEvent | Unreadable]:
    """Every record after ``after`` in log order, as :func:`next_page` returns them."""
    cursor: Checkpoint | None = after
    while cursor is not None:
        items, cursor = next_page(store, cursor)
        if not items:
            return
        yield from items
