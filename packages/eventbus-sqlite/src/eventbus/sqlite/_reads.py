"""Reading the events table: offsets, pages, streaming reads and offset ordering.

Every query is its own short read transaction on the calling thread's reader
connection, so no read waits for writers or holds the database between calls. A page
stops before a row that cannot be read; the read that starts at such a row raises
:class:`~eventbus.core.StoreCorruptError` (see :mod:`._rows`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from eventbus.core import NEWEST, OLDEST, OffsetError, ReadResult, StoreCorruptError, check_limit

from ._rows import SELECT, SELECT_BYTES, WIDTH, decode, decode_checked

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventbus.core import Offset, Position, StoredEvent

    from ._connection import Connections

__all__ = ["END", "Reads", "past_the_tail", "position"]

# The last position ever issued: AUTOINCREMENT keeps it in sqlite_sequence, also after
# compaction removed the events up to it (no row until the first append).
END: Final = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"


def position(offset: object) -> int:
    """Turn an offset this store issued into its position; anything else is an OffsetError."""
    if not (
        isinstance(offset, str) and len(offset) == WIDTH and offset.isascii() and offset.isdigit()
    ):
        raise OffsetError(
            f"{offset!r} is not a SQLiteStore offset: expected {WIDTH} decimal digits "
            "as returned by append or read, or OLDEST / NEWEST."
        )
    number = int(offset)
    if number == 0:
        raise OffsetError(
            f"{offset!r} is not a SQLiteStore offset: offsets start at 1; use OLDEST "
            "to read from the beginning."
        )
    return number


class Reads:
    """The read side of the store.

    Args:
        db: The store's connections.
        batch_size: Events per query of :meth:`iter_events` when it is given none.
    """

    def __init__(self, db: Connections, *, batch_size: int) -> None:
        self._db = db
        self._path = db.path
        self.batch_size = batch_size

    def read(self, after: Position, limit: int) -> ReadResult:
        """One page; see ``SQLiteStore.read``."""
        check_limit("limit", limit)
        self._db.check_open()
        start = self.start(after)
        if after is NEWEST:
            return ReadResult([], f"{start:020d}" if start else OLDEST)
        return self.page(start, limit, after)

    def iter_events(self, after: Position, batch_size: int | None) -> Iterator[StoredEvent]:
        """Stream events; see ``SQLiteStore.iter_events``."""
        size = self.batch_size if batch_size is None else batch_size
        check_limit("batch_size", size)
        self._db.check_open()
        start = self.start(after)
        if start and after is not NEWEST:
            self.check_known(start, after)
        return self._iterate(start, size)

    def _iterate(self, start: int, batch_size: int) -> Iterator[StoredEvent]:
        while True:
            events = self.fetch(start, batch_size)
            if not events:
                return
            # After a page cut short by an unreadable row, the next fetch starts at
            # that row and raises.
            start = int(events[-1].offset)
            yield from events

    def compare_offsets(self, a: Offset, b: Offset) -> int:
        """Compare by log position; see ``SQLiteStore.compare_offsets``."""
        self._db.check_open()
        left, right = position(a), position(b)
        self.check_known(max(left, right), a if left >= right else b)
        return (left > right) - (left < right)

    def fetch(self, start: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after position ``start``, stopping before an unreadable row.

        Raises:
            StoreCorruptError: The first row after ``start`` cannot be read.
        """
        try:
            rows = self._db.query(SELECT, (start, limit))
        except StoreCorruptError:
            # Text that is not UTF-8 fails the whole fetch: read the page as bytes to
            # find the row. (A damaged file fails this query as well, and raises.)
            rows = self._db.query(SELECT_BYTES, (start, limit))
            return decode_checked(rows, self._path, as_bytes=True)
        return decode(rows, self._path) if rows else []

    def page(self, start: int, limit: int, after: Position | None) -> ReadResult:
        """Read a page; on an empty one, check that ``after`` (if given) is ours."""
        events = self.fetch(start, limit)
        if events:
            return ReadResult(events, events[-1].offset)
        if start:
            # An empty page after a concrete offset: make sure the offset is ours, so a
            # checkpoint from another database fails loudly instead of waiting forever.
            if after is not None:
                self.check_known(start, after)
            return ReadResult([], f"{start:020d}")
        return ReadResult([], OLDEST)

    def start(self, after: Position) -> int:
        """The position to read after: 0 for OLDEST, the last event's for NEWEST."""
        if after is OLDEST:
            return 0
        if after is NEWEST:
            return self.tail_position()
        return position(after)

    def tail_position(self) -> int:
        """The position of the last event ever stored, 0 when there was none."""
        rows = self._db.query(END, ())
        return int(rows[0][0]) if rows else 0

    def check_known(self, number: int, offset: object) -> None:
        """Refuse ``offset`` (at position ``number``) when it lies past the log's tail."""
        tail = self.tail_position()
        if number > tail:
            raise past_the_tail(offset, self._path, tail)


def past_the_tail(offset: object, path: str, tail: int) -> OffsetError:
    """The error for an offset beyond the last position ``tail`` this file issued."""
    return OffsetError(
        f"Offset {offset!r} is past the tail of {path!r} (last offset "
        f"{tail:0{WIDTH}d}): it was issued by another store."
    )
