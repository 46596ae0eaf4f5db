"""Opening the store a URL names, read-only where the backend can, and closing it."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal, NoReturn
from urllib.parse import parse_qsl, urlsplit

from eventbus.core import ClosableStore, StoreError, open_store

from ._errors import CliError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventbus.core import EventStore

__all__ = ["Access", "lacks", "opened", "read_only_url"]

# The backends whose URLs take mode=ro (open without ever writing, or creating).
_READ_ONLY_SCHEMES = frozenset({"sqlite", "durablestream+http", "durablestream+https"})

Access = Literal["read", "write", "create"]
"""``read``: never write (``mode=ro`` where the backend has it); ``write``: change an
existing store (a missing file or stream is an error, not a new one); ``create``: open
or create it (a copy's destination)."""


def read_only_url(url: str) -> str:
    """``url`` with ``mode=ro`` added when its backend opens read-only and it names no mode.

    SQLite and Durable Streams do (no write, no new file or stream); other stores are
    opened as given.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in _READ_ONLY_SCHEMES or any(
        name == "mode" for name, _ in parse_qsl(parts.query, keep_blank_values=True)
    ):
        return url
    return f"{url}{'&' if parts.query else '?'}mode=ro"


@contextlib.contextmanager
def opened(url: str, access: Access) -> Iterator[EventStore]:
    """Open the store ``url`` names for ``access`` and close it afterwards.

    Raises:
        ValueError: The URL is malformed.
        UnknownStoreError: No installed backend handles its scheme.
        StoreError: The store could not be opened (a missing file, a server down).
    """
    if access == "write":
        # A read-only open first: it refuses a missing file or stream instead of creating it.
        with opened(url, "read"):
            pass
    try:
        store = open_store(read_only_url(url) if access == "read" else url)
    except StoreError as exc:  # a store's message may name only a path: add the URL
        raise CliError(f"cannot open {url}: {' '.join(str(exc).split())}") from exc
    try:
        yield store
    finally:
        if isinstance(store, ClosableStore):
            store.close()


def lacks(store: object, url: str, capability: str, what: str) -> NoReturn:
    """Raise the CliError saying that the store at ``url`` cannot ``what``."""
    raise CliError(
        f"the store {url} ({type(store).__name__}) cannot {what}: it does not implement "
        f"{capability}."
    )
