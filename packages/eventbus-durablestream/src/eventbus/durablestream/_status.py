"""Turning an unsuccessful response into the precise exception of the client's tree."""

from __future__ import annotations

from typing import Any

import httpx

from ._errors import (
    BadRequestError,
    ContentTypeMismatchError,
    DurableStreamError,
    ProducerSequenceGapError,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
    StreamGoneError,
    StreamNotFoundError,
    UnexpectedStatusError,
    redact,
)
from ._requests import (
    H_CLOSED,
    H_EXPECTED_SEQ,
    H_NEXT_OFFSET,
    H_PRODUCER_EPOCH,
    H_RECEIVED_SEQ,
    H_SEQ,
    RequestSpec,
    header_is_true,
    int_header,
)

__all__ = ["check_status", "error_for_response"]


def error_for_response(spec: RequestSpec, response: httpx.Response) -> DurableStreamError:
    """Build the precise exception for an unsuccessful response.

    The response body must have been read.

    Args:
        spec: the request that got the response.
        response: the response.

    Returns:
        The exception to raise.
    """
    status = response.status_code
    url = redact(str(response.request.url.copy_with(query=None)))
    server_message = response.text.strip()[:500]
    said = f" The server said {server_message!r}." if server_message else ""
    headers = response.headers
    kw: dict[str, Any] = {"status": status, "url": url, "server_message": server_message}
    if status == 404:
        return StreamNotFoundError(f"No stream exists at {url!r} ({spec.op}).{said}", **kw)
    if status == 410:
        return StreamGoneError(f"The stream at {url!r} is gone ({spec.op}).{said}", **kw)
    if status == 400:
        return BadRequestError(f"The server rejected the {spec.op} of {url!r}.{said}", **kw)
    if status == 403 and H_PRODUCER_EPOCH in headers:
        current = int_header(headers, H_PRODUCER_EPOCH)
        return StaleEpochError(
            f"Producer epoch {spec.headers.get(H_PRODUCER_EPOCH)!r} on {url!r} is stale: "
            f"the server holds epoch {current!r}.{said}",
            current_epoch=current,
            **kw,
        )
    if status == 409:
        if header_is_true(headers.get(H_CLOSED)):
            return StreamClosedError(
                f"The stream at {url!r} is closed; the {spec.op} was refused.{said}",
                final_offset=headers.get(H_NEXT_OFFSET),
                **kw,
            )
        expected = int_header(headers, H_EXPECTED_SEQ)
        if expected is not None:
            received = int_header(headers, H_RECEIVED_SEQ)
            received = received if received is not None else -1
            return ProducerSequenceGapError(
                f"Producer sequence gap on {url!r}: the server expected {expected!r}, "
                f"received {received!r}.{said}",
                expected=expected,
                received=received,
                **kw,
            )
        if spec.method == "PUT":
            return StreamExistsError(
                f"A stream already exists at {url!r} with another configuration.{said}", **kw
            )
        if H_SEQ in spec.headers and "content-type" not in server_message.lower():
            return SequenceConflictError(
                f"Stream-Seq {spec.headers[H_SEQ]!r} does not follow the last one on {url!r}."
                f"{said}",
                **kw,
            )
        return ContentTypeMismatchError(
            f"The {spec.op} to {url!r} was refused as a conflict, as for a content type "
            f"{spec.headers.get('Content-Type')!r} other than the stream's.{said}",
            **kw,
        )
    return UnexpectedStatusError(
        f"The server answered {status} to the {spec.op} of {url!r}.{said}", **kw
    )


def check_status(spec: RequestSpec, response: httpx.Response, *ok: int) -> None:
    """Raise the precise exception unless the response's status is one of ``ok``.

    Args:
        spec: the request.
        response: the response, body read.
        *ok: the statuses that mean success.

    Raises:
        DurableStreamError: a subclass, for any other status.
    """
    if response.status_code not in ok:
        raise error_for_response(spec, response)
