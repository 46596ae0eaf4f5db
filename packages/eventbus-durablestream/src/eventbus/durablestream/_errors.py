"""The exceptions of the Durable Streams client, and the one place httpx errors are translated.

::

    eventbus.core.StoreError
    └── DurableStreamError                  any failure talking to a Durable Streams server
        ├── StreamNotFoundError             404: no stream at that URL (or it expired)
        ├── StreamGoneError                 410: the stream was deleted or the offset retired
        ├── StreamExistsError               409 on create: it exists with another configuration
        ├── StreamClosedError               409 + Stream-Closed: the stream accepts no more data
        ├── ContentTypeMismatchError        409 on append: the body's type is not the stream's
        ├── SequenceConflictError           409: a Stream-Seq that does not increase
        │   └── ProducerSequenceGapError    409: an idempotent producer skipped a sequence
        ├── StaleEpochError                 403: a newer producer epoch fenced this one
        ├── BadRequestError (ValueError)    400: the server rejected the request as malformed
        ├── UnexpectedStatusError           any other status the protocol does not expect
        ├── MalformedResponseError          a response body or event the client cannot parse
        ├── DurableStreamConnectionError    the server could not be reached (StoreUnavailableError)
        ├── DurableStreamTimeoutError       no answer in time (StoreTimeoutError)
        │   └── AppendTimeoutError          ... for an append whose POST may have landed
        ├── AppendOutcomeUnknownError       an append gave up after its POST may have landed
        │   └── AppendTimeoutError          (StoreUnavailableError)
        └── ClientClosedError               the client was closed by its owner (StoreClosedError)
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import httpx

from eventbus.core import (
    StoreClosedError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventbus.core import EventRecord

__all__ = [
    "AppendOutcomeUnknownError",
    "AppendTimeoutError",
    "BadRequestError",
    "ClientClosedError",
    "ContentTypeMismatchError",
    "DurableStreamConnectionError",
    "DurableStreamError",
    "DurableStreamTimeoutError",
    "MalformedResponseError",
    "ProducerSequenceGapError",
    "SequenceConflictError",
    "StaleEpochError",
    "StreamClosedError",
    "StreamExistsError",
    "StreamGoneError",
    "StreamNotFoundError",
    "UnexpectedStatusError",
]


class DurableStreamError(StoreError):
    """Root of every failure of the Durable Streams client.

    Attributes:
        status: the HTTP status of the response, or ``None`` when there was none.
        url: the stream URL the request went to, or ``None`` when unknown.
        server_message: the (short, plain-text) body the server sent, or ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        server_message: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.server_message = server_message


class StreamNotFoundError(DurableStreamError, LookupError):
    """No stream exists at the URL (404): never created, deleted, or expired."""


class StreamGoneError(DurableStreamError):
    """The stream or the requested range is permanently gone (410)."""


class StreamExistsError(DurableStreamError):
    """A create found the stream already existing with another configuration (409)."""


class StreamClosedError(DurableStreamError):
    """The stream is closed and accepts no more data (409 with ``Stream-Closed: true``).

    Attributes:
        final_offset: the stream's final offset when the server reported it, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        server_message: str = "",
        final_offset: str | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url, server_message=server_message)
        self.final_offset = final_offset


class ContentTypeMismatchError(DurableStreamError):
    """An append carried a content type other than the stream's (409)."""


class SequenceConflictError(DurableStreamError):
    """A writer sequence number did not increase (409)."""


class ProducerSequenceGapError(SequenceConflictError):
    """An idempotent producer sent a sequence number past the next expected one (409).

    Attributes:
        expected: the sequence number the server expected next.
        received: the sequence number the request carried.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: int,
        received: int,
        status: int | None = None,
        url: str | None = None,
        server_message: str = "",
    ) -> None:
        super().__init__(message, status=status, url=url, server_message=server_message)
        self.expected = expected
        self.received = received


class ClientClosedError(DurableStreamError, StoreClosedError):
    """A request was made on a client after :meth:`close`; open a new client instead."""

    def __init__(self, client: object) -> None:
        name = type(client).__name__
        super().__init__(
            f"The {name} was closed, so it sends no more requests; create a new "
            f"{name}(base_url) (or use one as a context manager) to talk to the server again."
        )


class StaleEpochError(DurableStreamError):
    """A producer with a newer epoch has fenced this one (403).

    Attributes:
        current_epoch: the epoch the server holds for the producer id, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        current_epoch: int | None,
        status: int | None = None,
        url: str | None = None,
        server_message: str = "",
    ) -> None:
        super().__init__(message, status=status, url=url, server_message=server_message)
        self.current_epoch = current_epoch


class BadRequestError(DurableStreamError, ValueError):
    """The server rejected the request as malformed (400): bad offset, TTL, JSON, headers."""


class UnexpectedStatusError(DurableStreamError):
    """The server answered with a status the protocol does not expect for the operation."""


class MalformedResponseError(DurableStreamError):
    """A response body or server-sent event could not be parsed."""


class DurableStreamConnectionError(DurableStreamError, StoreUnavailableError):
    """The server could not be reached, or the connection broke mid-request."""


class DurableStreamTimeoutError(DurableStreamError, StoreTimeoutError):
    """The server did not answer within the configured timeout."""


class AppendOutcomeUnknownError(DurableStreamError, StoreUnavailableError):
    """An append gave up after its POST may have reached the server: its events may be stored.

    ``store.append_batch(error.records)`` (or ``append`` of the one record) retries it and
    stores the events at most once: it resends them as the same producer sequence, which
    the server deduplicates, and looks for them if that sequence can no longer be sent.

    Attributes:
        records: The events of the append (of the whole POST it went in), in order.
    """

    def __init__(
        self,
        message: str,
        *,
        records: Sequence[EventRecord],
        url: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.records = tuple(records)


class AppendTimeoutError(AppendOutcomeUnknownError, DurableStreamTimeoutError):
    """An append ran out of its time budget after its POST may have reached the server."""


def redact(url: str) -> str:
    """Return ``url`` with its password, if any, replaced by ``***``: safe to print or log.

    Args:
        url: An absolute or relative URL.

    Returns:
        The URL, otherwise unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


@contextlib.contextmanager
def _map_httpx_errors(url: str | None) -> Iterator[None]:
    """Translate any httpx exception raised inside the block into the client's tree.

    Args:
        url: the stream URL the block talks to, recorded on the raised error.

    Raises:
        DurableStreamError: a subclass matching the httpx failure, chained to it.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DurableStreamTimeoutError(
            f"The request to {url!r} timed out: {exc!r}.", url=url
        ) from exc
    except (httpx.NetworkError, httpx.ProtocolError, httpx.ProxyError) as exc:
        raise DurableStreamConnectionError(
            f"The connection to {url!r} failed: {exc!r}.", url=url
        ) from exc
    except httpx.DecodingError as exc:
        raise MalformedResponseError(
            f"The response from {url!r} could not be decoded: {exc!r}.", url=url
        ) from exc
    except httpx.TooManyRedirects as exc:
        raise UnexpectedStatusError(
            f"The server at {url!r} redirected too many times: {exc!r}.", url=url
        ) from exc
    except httpx.HTTPStatusError as exc:
        raise UnexpectedStatusError(
            f"The server answered {exc.response.status_code} for {url!r}.",
            status=exc.response.status_code,
            url=url,
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict) as exc:
        # UnsupportedProtocol, InvalidURL and misuse of a response: not transient, not a status.
        raise DurableStreamError(f"The request to {url!r} failed: {exc!r}.", url=url) from exc
