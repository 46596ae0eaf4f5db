"""SQLite-specific exceptions and the one place sqlite3 errors become eventbus errors."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING

from eventbus.core import (
    StoreCorruptError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DatabasePathError",
    "SchemaVersionError",
    "translate_sqlite_error",
]


class SchemaVersionError(StoreCorruptError):
    """The database was written by a newer eventbus-sqlite schema than this one reads."""


class DatabasePathError(StoreUnavailableError, ValueError):
    """The database path cannot be used: malformed, missing its folder, or not writable."""


# Substrings of sqlite3 messages, checked in order; the first match picks the class.
_CORRUPT_MARKERS = ("not a database", "malformed", "corrupt")
_BUSY_MARKERS = ("locked", "busy")
# How the sqlite3 module reports a TEXT value that does not decode.
_NOT_UTF8 = "Could not decode to UTF-8"


def translate_sqlite_error(exc: sqlite3.Error, path: str) -> StoreError:
    """Turn a sqlite3 exception into the eventbus exception that describes it.

    Args:
        exc: The exception sqlite3 raised.
        path: The database path, named in the message.

    Returns:
        The eventbus exception to raise ``from exc``.
    """
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, sqlite3.OperationalError) and text.startswith(_NOT_UTF8):
        # Raised by the sqlite3 module itself, with the text in the message: check it
        # before the markers, which the text could contain.
        return StoreCorruptError(
            f"The SQLite database {path!r} holds text that is not UTF-8, so it was not "
            f"written by eventbus: {text}."
        )
    if any(marker in lowered for marker in _CORRUPT_MARKERS):
        return StoreCorruptError(
            f"The SQLite database {path!r} is corrupt or not a database: {text}."
        )
    if isinstance(exc, sqlite3.OperationalError) and any(
        marker in lowered for marker in _BUSY_MARKERS
    ):
        return StoreTimeoutError(
            f"The SQLite database {path!r} stayed locked by another connection for longer "
            f"than the busy timeout: {text}."
        )
    if isinstance(exc, sqlite3.IntegrityError):
        why = " (an event with the same event_id is already stored)" if "event_id" in text else ""
        return StoreError(f"The SQLite database {path!r} rejected the write: {text}{why}.")
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return StoreError(f"The SQLite store {path!r} was misused: {text}.")
    return StoreUnavailableError(f"The SQLite database {path!r} failed: {text}.")


@contextmanager
def _map_sqlite_errors(path: str) -> Iterator[None]:
    """Re-raise any sqlite3 error inside the block as an eventbus StoreError.

    Args:
        path: The database path, named in messages.

    Raises:
        StoreError: A subclass chosen by :func:`translate_sqlite_error`.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, path) from exc
