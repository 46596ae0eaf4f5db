"""Requests before they are sent: their description, the protocol's headers, and building them.

A :class:`RequestSpec` describes one request with its dynamic values unresolved; the
:class:`RequestFactory` turns it into the ``httpx.Request`` of each attempt. The protocol's
header names and the small header parsers the response readers share live here too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Final, Literal, TypeAlias

import httpx

from ._errors import redact

__all__ = [
    "DEFAULT_TIMEOUT",
    "H_CLOSED",
    "H_CURSOR",
    "H_EXPECTED_SEQ",
    "H_EXPIRES_AT",
    "H_NEXT_OFFSET",
    "H_PRODUCER_EPOCH",
    "H_PRODUCER_ID",
    "H_PRODUCER_SEQ",
    "H_RECEIVED_SEQ",
    "H_SEQ",
    "H_SSE_ENCODING",
    "H_TTL",
    "H_UP_TO_DATE",
    "OCTET_STREAM",
    "HeaderValue",
    "LiveMode",
    "RequestFactory",
    "RequestSpec",
    "header_is_true",
    "int_header",
    "is_json_content_type",
    "producer_headers",
    "resolve_values",
]

HeaderValue: TypeAlias = str | Callable[[], str]
"""A header or query-parameter value: fixed, or a callable evaluated for every request."""

LiveMode: TypeAlias = Literal["long-poll", "sse", "auto"] | None
"""How a read follows the stream: ``None`` for catch-up only, else the live transport."""

DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, read=45.0)
"""Connect/write/pool 10 s; read 45 s, above the reference server's 30 s long-poll."""

# What httpx.Client would send, so servers and proxies see the same requests.
_DEFAULT_HEADERS: Final = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}

OCTET_STREAM: Final = "application/octet-stream"
H_NEXT_OFFSET: Final = "Stream-Next-Offset"
H_UP_TO_DATE: Final = "Stream-Up-To-Date"
H_CURSOR: Final = "Stream-Cursor"
H_CLOSED: Final = "Stream-Closed"
H_SEQ: Final = "Stream-Seq"
H_TTL: Final = "Stream-TTL"
H_EXPIRES_AT: Final = "Stream-Expires-At"
H_SSE_ENCODING: Final = "Stream-SSE-Data-Encoding"
H_PRODUCER_ID: Final = "Producer-Id"
H_PRODUCER_EPOCH: Final = "Producer-Epoch"
H_PRODUCER_SEQ: Final = "Producer-Seq"
H_EXPECTED_SEQ: Final = "Producer-Expected-Seq"
H_RECEIVED_SEQ: Final = "Producer-Received-Seq"


def is_json_content_type(content_type: str | None) -> bool:
    """Tell whether a content type puts a stream in JSON mode (``application/json``).

    Args:
        content_type: a Content-Type header value, parameters allowed, or ``None``.

    Returns:
        ``True`` for ``application/json`` in any letter case, whatever its parameters.
    """
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def producer_headers(producer_id: str, epoch: int, seq: int) -> dict[str, str]:
    """The idempotent-producer headers of one request: who sends it, in which epoch, as which
    sequence number of that epoch. The client's producers, the store's appends and the lease
    log's fenced records all send these (built here only).

    Args:
        producer_id: the producer id.
        epoch: the producer epoch.
        seq: the sequence number within the epoch.

    Returns:
        The three headers.
    """
    return {H_PRODUCER_ID: producer_id, H_PRODUCER_EPOCH: str(epoch), H_PRODUCER_SEQ: str(seq)}


def header_is_true(value: str | None) -> bool:
    """Tell whether a boolean protocol header (``Stream-Closed``, ...) says ``true``."""
    return value is not None and value.strip().lower() == "true"


def int_header(headers: httpx.Headers, name: str) -> int | None:
    """Return an integer header's value, or ``None`` when it is absent or not an integer."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def resolve_values(*layers: Mapping[str, HeaderValue] | None) -> dict[str, str]:
    """Merge header or parameter layers, later layers winning, calling dynamic values.

    Args:
        *layers: mappings of name to a string or a zero-argument callable; ``None`` is skipped.

    Returns:
        The merged mapping with every callable replaced by the string it returned now.
    """
    merged: dict[str, str] = {}
    for layer in layers:
        if layer:
            for name, value in layer.items():
                merged[name] = value() if callable(value) else value
    return merged


@dataclasses.dataclass(frozen=True, slots=True)
class RequestSpec:
    """One HTTP request before dynamic values are resolved.

    Attributes:
        op: the operation name used in error messages (``"create"``, ``"append"``, ...).
        method: the HTTP method.
        url: the stream URL, absolute or relative to the client's base URL.
        headers: protocol headers, which win over user headers.
        params: protocol query parameters.
        content: the request body, if any.
        user_headers: per-call headers, fixed or dynamic.
        user_params: per-call query parameters, fixed or dynamic.
        replay_safe: whether a request that may have reached the server can be resent.
        timeout: a per-request httpx timeout, or ``None`` for the client's.
    """

    op: str
    method: str
    url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    content: bytes | None = None
    user_headers: Mapping[str, HeaderValue] | None = None
    user_params: Mapping[str, HeaderValue] | None = None
    replay_safe: bool = True
    timeout: httpx.Timeout | None = None


_URL_CACHE_SIZE: Final = 1024


class RequestFactory:
    """Builds the ``httpx.Request`` of each attempt, for a face to send through its transport.

    The faces skip ``httpx.Client``: its ``build_request`` and ``send`` re-parse every URL
    two or three times and run cookie, auth, redirect and hook machinery this protocol
    never uses, which cost over a tenth of a millisecond a request here (about a third of
    an append to a local server). Stream URLs are resolved once and remembered.

    Args:
        base_url: the URL relative stream URLs are joined to (``""`` for none).
        headers: the client's headers; protocol and per-call headers win.
        params: the client's query parameters; protocol and per-call parameters win.
        timeout: the client's timeout.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, HeaderValue],
        params: Mapping[str, HeaderValue],
        timeout: float | httpx.Timeout,
    ) -> None:
        base = httpx.URL(base_url)
        if base_url and (base.scheme not in ("http", "https") or not base.host):
            raise ValueError(
                f"{base_url!r} is not an absolute http(s) URL: a base URL needs a scheme "
                "and a host, as in 'http://127.0.0.1:4437/v1/stream' (or pass '' and "
                "absolute stream URLs)."
            )
        if base_url and not base.raw_path.endswith(b"/"):
            base = base.copy_with(raw_path=base.raw_path + b"/")
        self.base_url = base
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._timeout_extension = self.timeout.as_dict()
        self._headers = {**_DEFAULT_HEADERS, **headers}
        self._params = dict(params)
        self._urls: dict[str, httpx.URL] = {}

    def url(self, url: str) -> httpx.URL:
        """Resolve a stream URL against the base URL, as ``httpx.Client`` does.

        A relative URL's path is appended to the base URL's path (``/s`` under
        ``http://h/v1/stream`` is ``http://h/v1/stream/s``).

        Args:
            url: an absolute URL, or one relative to the base URL.

        Returns:
            The absolute URL.
        """
        known = self._urls.get(url)
        if known is None:
            known = httpx.URL(url)
            if known.is_relative_url:
                known = self.base_url.copy_with(
                    raw_path=self.base_url.raw_path + known.raw_path.lstrip(b"/")
                )
            if len(self._urls) >= _URL_CACHE_SIZE:  # a client may touch streams without end
                self._urls.clear()
            self._urls[url] = known
        return known

    def shown(self, url: str) -> str:
        """The absolute URL of ``url``, its password hidden: what messages name."""
        return redact(str(self.url(url)))

    def build(self, spec: RequestSpec, deadline: float | None) -> httpx.Request:
        """Build one attempt of ``spec``; dynamic values are called now, for every attempt.

        Args:
            spec: the request.
            deadline: a ``time.monotonic()`` instant the read timeout must not pass, or ``None``.

        Returns:
            The request, its timeout in the ``timeout`` extension as httpx transports expect.
        """
        headers = resolve_values(self._headers, spec.user_headers)
        headers.update(spec.headers)
        url = self.url(spec.url)
        if self._params or spec.params or spec.user_params:
            params = resolve_values(self._params, spec.user_params)
            params.update(spec.params)
            url = url.copy_merge_params(params)
        timeout = self._timeout_extension
        if spec.timeout is not None or deadline is not None:
            timeout = (spec.timeout or self.timeout).as_dict()
            if deadline is not None:
                remaining = max(deadline - time.monotonic(), 0.001)
                for phase in ("connect", "read", "write", "pool"):
                    timeout[phase] = min(timeout[phase] or remaining, remaining)
        return httpx.Request(
            spec.method, url, headers=headers, content=spec.content, extensions={"timeout": timeout}
        )
