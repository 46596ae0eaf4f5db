"""``durablestream+http://`` and ``durablestream+https://`` URLs for ``open_store``."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from ._errors import redact
from ._requests import HeaderValue
from ._store import DurableStreamStore

__all__ = ["open_durablestream_store"]

_SCHEMES = {"durablestream+http": "http", "durablestream+https": "https"}


def open_durablestream_store(
    url: str,
    *,
    headers: Mapping[str, HeaderValue] | None = None,
    verify: bool | str = True,
) -> DurableStreamStore:
    """Open the store a ``durablestream+http(s)://host:port/path/of/stream`` URL names.

    ``durablestream+http://127.0.0.1:4437/v1/stream/orders`` is the stream
    ``/v1/stream/orders`` on the server ``http://127.0.0.1:4437``. ``?mode=ro`` opens it
    read-only (the stream must exist; nothing is written), ``?mode=rw`` as usual.

    Args:
        url: The store URL.
        headers: Headers for every request, callables called per request (see
            ``DurableStreamStore``); keep tokens here, never in the URL.
        verify: TLS verification: ``True``, a CA bundle path, or ``False``.

    Returns:
        The store, with default options otherwise.

    Raises:
        ValueError: The URL has another scheme, no host, no stream path, a fragment, or a
            query other than ``mode=ro`` / ``mode=rw``.
        StoreError: The server could not be reached or refused the stream.
    """
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc or parts.path in ("", "/"):
        raise ValueError(
            f"{redact(url)!r} is not a Durable Streams store URL; expected "
            "'durablestream+http://host:port/path/of/stream' (or durablestream+https)."
        )
    options = parse_qsl(parts.query, keep_blank_values=True)
    if parts.fragment or any(name != "mode" for name, _ in options) or len(options) > 1:
        raise ValueError(
            f"{redact(url)!r} has a fragment or a query other than mode=ro or mode=rw; a "
            "Durable Streams store URL takes only that option."
        )
    modes = {"ro": True, "rw": False}
    if options and options[0][1] not in modes:
        raise ValueError(
            f"{redact(url)!r} gives option 'mode' the value {options[0][1]!r}; use mode=ro "
            "(read-only) or mode=rw (read-write)."
        )
    read_only = bool(options) and modes[options[0][1]]
    return DurableStreamStore(
        f"{scheme}://{parts.netloc}",
        parts.path,
        headers=headers,
        verify=verify,
        read_only=read_only,
    )
