"""``sqlite://`` URLs: how ``eventbus.core.open_store`` finds SQLiteStore."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._connection import MEMORY
from ._store import SQLiteStore

__all__ = ["open_sqlite_store"]

_OPTIONS = ("durability", "busy_timeout", "read_batch_size")


def open_sqlite_store(url: str) -> SQLiteStore:
    """Open the SQLiteStore a ``sqlite://`` URL names (the ``eventbus.stores`` hook).

    The path follows the SQLAlchemy convention: ``sqlite:///events.db`` is relative to
    the working directory, ``sqlite:////var/lib/app/events.db`` is absolute, and
    ``sqlite://`` or ``sqlite:///:memory:`` is a private in-memory database. Options go
    in the query string: ``sqlite:///events.db?durability=full&busy_timeout=10``.
    Characters such as ``?`` and ``#`` in a path must be percent-encoded, and are then
    refused by :class:`SQLiteStore`.

    Args:
        url: The store URL.

    Returns:
        The opened store.

    Raises:
        ValueError: The scheme is not ``sqlite``, the URL has a host or a fragment,
            or an option is unknown or malformed.
        StoreError: :class:`SQLiteStore` could not open the database.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc or parts.fragment:
        raise ValueError(
            f"{url!r} is not a SQLite store URL: use 'sqlite:///relative/path.db', "
            "'sqlite:////absolute/path.db' or 'sqlite://' for an in-memory database."
        )
    path = unquote(parts.path[1:]) or MEMORY
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name not in _OPTIONS or name in options:
            raise ValueError(
                f"{url!r} has an unknown or repeated option {name!r}; SQLite store URLs "
                f"accept each of {', '.join(_OPTIONS)} once."
            )
        try:
            options[name] = (
                value
                if name == "durability"
                else float(value)
                if name == "busy_timeout"
                else int(value)
            )
        except ValueError:
            raise ValueError(
                f"{url!r} gives option {name!r} the value {value!r}, which is not a number."
            ) from None
    return SQLiteStore(path, **options)
