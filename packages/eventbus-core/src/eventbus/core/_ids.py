"""Event ids: monotonic ULIDs.

A ULID is 128 bits written as 26 Crockford base32 characters: a 48-bit Unix time in
milliseconds followed by 80 random bits. Ids from one process are strictly increasing,
also within one millisecond (the random part is incremented) and when the wall clock
steps backwards (the last timestamp is kept until the clock catches up), so sorting
ids as strings sorts them by creation.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["event_id_timestamp", "new_event_id"]

_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters per 10 bits: encoding a ULID takes 13 table lookups, not 26 shifts.
_PAIRS: Final = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_TIME_SHIFTS: Final = (40, 30, 20, 10, 0)  # 50 bits: two zero bits and the 48-bit time
_HIGH_SHIFTS: Final = (60, 50, 40, 30, 20, 10, 0)  # the top 70 of the 80 random bits
_RANDOM_LIMIT: Final = 1 << 80
_TIME_LIMIT: Final = 1 << 48
_DECODE: Final = {c: i for i, c in enumerate(_ALPHABET)}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _random_bits() -> int:
    return int.from_bytes(os.urandom(10), "big")


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _Generator:
    """The monotonic state behind :func:`new_event_id`; one per process."""

    __slots__ = ("_clock", "_head", "_high", "_last_ms", "_lock", "_rand", "_random")

    def __init__(
        self,
        clock: Callable[[], int] = _clock_ms,
        random_bits: Callable[[], int] = _random_bits,
    ) -> None:
        self._clock = clock
        self._random = random_bits
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the last id; a forked child must not continue its parent's sequence."""
        self._last_ms = -1
        self._rand = 0
        self._high = -1
        # The first 24 characters (time and the top 70 random bits) of the last id:
        # within a millisecond only the last two characters usually change.
        self._head = ""

    def next_id(self) -> str:
        now = self._clock()
        # acquire/release rather than ``with``: cheaper, and this runs once per event.
        lock = self._lock
        lock.acquire()
        try:
            last_ms = self._last_ms
            if now > last_ms:
                rand = self._random()
                ms = now
            else:
                # Same millisecond, or the clock stepped back: stay on the last
                # timestamp and count up so ids keep increasing.
                ms = last_ms
                rand = self._rand + 1
                if rand == _RANDOM_LIMIT:
                    ms += 1
                    rand = self._random()
            high = rand >> 10
            if ms != last_ms or high != self._high:
                if ms >= _TIME_LIMIT:
                    raise OverflowError(
                        f"The clock reads {ms!r} ms since the epoch, beyond the 48 bits a "
                        "ULID can hold; check the system clock."
                    )
                self._head = "".join(
                    [_PAIRS[(ms >> s) & 0x3FF] for s in _TIME_SHIFTS]
                    + [_PAIRS[(high >> s) & 0x3FF] for s in _HIGH_SHIFTS]
                )
                self._last_ms = ms
                self._high = high
            self._rand = rand
            return self._head + _PAIRS[rand & 0x3FF]
        finally:
            lock.release()


_GENERATOR: Final = _Generator()
# Without a reset, parent and child would mint the same ids in the same millisecond.
# getattr: os.register_at_fork does not exist where fork does not (Windows).
getattr(os, "register_at_fork", lambda **_: None)(after_in_child=_GENERATOR.reset)


def new_event_id() -> str:
    """Mint a new event id: a ULID, unique and increasing within this process.

    Returns:
        26 Crockford base32 characters (``0-9`` and ``A-Z`` without ``I L O U``).
        Ids sort as strings in the order they were minted, and by millisecond
        across processes.

    Raises:
        OverflowError: The system clock is past the year 10889.
    """
    return _GENERATOR.next_id()


def event_id_timestamp(event_id: str) -> datetime:
    """Return the moment an event id was minted, to the millisecond.

    Args:
        event_id: An id returned by :func:`new_event_id` (or any ULID).

    Returns:
        The id's timestamp as a timezone-aware UTC datetime.

    Raises:
        ValueError: ``event_id`` is not 26 Crockford base32 characters.
    """
    if len(event_id) != 26 or event_id[0] not in "01234567" or not _DECODE.keys() >= set(event_id):
        raise ValueError(
            f"{event_id!r} is not a ULID: expected 26 Crockford base32 characters "
            "(0-9 and upper-case A-Z without I, L, O and U), the first one 0-7."
        )
    ms = 0
    for char in event_id[:10]:
        ms = ms << 5 | _DECODE[char]
    return _EPOCH + timedelta(milliseconds=ms)
