"""``sqlite:`` URLs: how ``eventbus.core.open_store`` finds SQLiteStore."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._connection import MEMORY
from ._store import SQLiteStore

__all__ = ["open_sqlite_store", "parse_sqlite_url"]

_OPTIONS = ("durability", "busy_timeout", "read_batch_size", "mode")
# mode=ro opens read-only, mode=rw (the default) read-write: the words of SQLite's own URIs.
_MODES = {"ro": True, "rw": False}
# "/C:/x.db" or "/C:\\x.db": a Windows drive path behind the slash that starts a URL path.
_SLASHED_DRIVE = re.compile(r"/[A-Za-z]:[/\\]")
_FORMS = (
    "'sqlite:events.db' or 'sqlite:///events.db' (relative), 'sqlite:/abs/events.db' or "
    "'sqlite:////abs/events.db' (absolute), 'sqlite:///C:/events.db' (a Windows drive) "
    "or 'sqlite://' (in memory)"
)


def open_sqlite_store(url: str) -> SQLiteStore:
    """Open the SQLiteStore a ``sqlite:`` URL names (the ``eventbus.stores`` hook).

    The accepted forms are listed in :func:`parse_sqlite_url` and docs/stores/sqlite.md.

    Args:
        url: The store URL.

    Returns:
        The opened store.

    Raises:
        ValueError: The URL is not one of the accepted forms, or an option is unknown
            or malformed.
        StoreError: :class:`SQLiteStore` could not open the database.
    """
    path, options = parse_sqlite_url(url)
    return SQLiteStore(path, **options)


def parse_sqlite_url(url: str) -> tuple[str, dict[str, Any]]:
    """The database path and the options a ``sqlite:`` URL names.

    Without ``//`` the rest of the URL is the path as written: ``sqlite:events.db`` is
    relative, ``sqlite:/var/lib/app/events.db`` absolute. With ``//`` the SQLAlchemy
    convention applies (the authority is empty, and the one slash after it is
    dropped): ``sqlite:///events.db`` is relative, ``sqlite:////var/lib/events.db``
    absolute. A Windows drive letter may follow a slash in either form
    (``sqlite:///C:/app/events.db``). An empty path (``sqlite://``, ``sqlite:``) or
    ``:memory:`` is a private in-memory database. Options go in the query string:
    ``sqlite:events.db?durability=full&busy_timeout=10``; ``mode=ro`` opens the
    database read-only (``read_only=True``), ``mode=rw`` read-write. Percent-encoded characters
    are decoded; ``?`` and ``#`` in a path must be encoded, and are then refused by
    :class:`SQLiteStore`.

    Args:
        url: The store URL.

    Returns:
        The path (``":memory:"`` for an in-memory database) and the keyword options
        for :class:`SQLiteStore`.

    Raises:
        ValueError: The scheme is not ``sqlite``, the URL has a host or a fragment,
            or an option is unknown or malformed.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc or parts.fragment:
        raise ValueError(f"{url!r} is not a SQLite store URL: use {_FORMS}.")
    path = parts.path
    if url[len(parts.scheme) + 1 :].startswith("//"):
        path = path[1:]  # sqlite:///x: the slash after the empty authority
    path = unquote(path)
    if _SLASHED_DRIVE.match(path):
        path = path[1:]
    return path or MEMORY, _options(url, parts.query)


def _options(url: str, query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    seen: set[str] = set()
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in _OPTIONS or name in seen:
            raise ValueError(
                f"{url!r} has an unknown or repeated option {name!r}; SQLite store URLs "
                f"accept each of {', '.join(_OPTIONS)} once."
            )
        seen.add(name)
        if name == "mode":
            if value not in _MODES:
                raise ValueError(
                    f"{url!r} gives option 'mode' the value {value!r}; use mode=ro "
                    "(read-only) or mode=rw (read-write)."
                )
            options["read_only"] = _MODES[value]
            continue
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
    return options
