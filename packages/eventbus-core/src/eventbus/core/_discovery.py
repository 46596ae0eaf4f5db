"""Store discovery: ``open_store(url)`` through the ``eventbus.stores`` entry points.

Passing a store instance to the bus is the primary API; this is the optional lookup
by URL. A backend distribution declares, in its ``pyproject.toml``::

    [project.entry-points."eventbus.stores"]
    sqlite = "eventbus.sqlite._discovery:open_sqlite_store"

and ``open_store("sqlite:///events.db")`` imports that callable and calls it with the
whole URL. Entry points are read once, on the first call; nothing is imported earlier.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._exceptions import UnknownStoreError
from ._store import EventStore

__all__ = ["ENTRY_POINT_GROUP", "open_store", "redact_password"]

ENTRY_POINT_GROUP: Final = "eventbus.stores"


@functools.cache
def _installed_stores() -> dict[str, tuple[EntryPoint, ...]]:
    """Map each registered URL scheme to the entry points that claim it (read once)."""
    found: dict[str, tuple[EntryPoint, ...]] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        scheme = entry_point.name.lower()
        found[scheme] = (*found.get(scheme, ()), entry_point)
    return found


def redact_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part shown as ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


def open_store(url: str, /, **options: Any) -> EventStore:
    """Open the store a URL names, through the backend registered for its scheme.

    Args:
        url: A store URL such as ``"memory://"`` or ``"sqlite:///events.db"``. The
            scheme picks the backend; the backend interprets the rest.
        **options: Passed on to the backend's opener as keyword arguments, for what
            does not belong in a URL: a token, say (``open_store("durablestream+https://
            host/v1/stream/orders", headers={"Authorization": fresh_token})``), which
            then never appears in the URL, in messages or in logs. An opener that does
            not take an option raises TypeError.

    Returns:
        The store the backend opened for ``url``.

    Raises:
        ValueError: ``url`` has no scheme (or the backend rejected the URL).
        UnknownStoreError: No installed backend registers the scheme, or two do.
        TypeError: The backend returned something that is not an EventStore.
    """
    if not isinstance(url, str):
        raise TypeError(f"open_store() takes a URL string, got {url!r}.")
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ValueError(
            f"{redact_password(url)!r} has no scheme: a store URL starts with the backend's "
            "scheme, for example open_store('memory://')."
        )
    stores = _installed_stores()
    claims = stores.get(scheme, ())
    if not claims:
        installed = ", ".join(f"{name}://" for name in sorted(stores)) or "none"
        raise UnknownStoreError(
            f"No store backend handles {scheme!r} URLs such as {redact_password(url)!r}; the "
            f"scheme is misspelled or its backend is not installed. Installed schemes (entry-point "
            f"group {ENTRY_POINT_GROUP!r}): {installed}."
        )
    if len(claims) > 1:
        owners = ", ".join(sorted(f"{ep.value!r}" for ep in claims))
        raise UnknownStoreError(
            f"The {scheme!r} scheme is registered more than once in the entry-point "
            f"group {ENTRY_POINT_GROUP!r} ({owners}); uninstall all but one backend."
        )
    opener = claims[0].load()
    store = opener(url, **options)
    if not isinstance(store, EventStore):
        raise TypeError(
            f"The {scheme!r} backend {claims[0].value!r} returned {store!r}, which is not "
            "an EventStore (it needs append, append_batch and read)."
        )
    return store
