"""What the client's operations return: the result of each request, and the chunks of a read."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ._errors import MalformedResponseError

__all__ = ["AppendResult", "CloseResult", "CreateResult", "ReadChunk", "StreamInfo"]


@dataclasses.dataclass(frozen=True, slots=True)
class CreateResult:
    """The outcome of a create.

    Attributes:
        created: ``True`` when the stream is new (201), ``False`` when an identical one existed.
        next_offset: the stream's tail offset.
        status: the HTTP status.
    """

    created: bool
    next_offset: str | None
    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of an append.

    Attributes:
        next_offset: the tail after this append; ``None`` for a deduplicated producer retry.
        duplicate: whether the server recognised an already-stored producer batch (204).
        stream_closed: whether the stream is now closed.
        producer_epoch: the producer epoch the server echoed, if any.
        producer_seq: the highest producer sequence the server accepted, if any.
        status: the HTTP status.
    """

    next_offset: str | None
    duplicate: bool = False
    stream_closed: bool = False
    producer_epoch: int | None = None
    producer_seq: int | None = None
    status: int = 204


@dataclasses.dataclass(frozen=True, slots=True)
class CloseResult:
    """The outcome of closing a stream.

    Attributes:
        final_offset: the stream's final offset (``None`` for a deduplicated producer close).
        status: the HTTP status.
    """

    final_offset: str | None
    status: int = 204


@dataclasses.dataclass(frozen=True, slots=True)
class StreamInfo:
    """Stream metadata from a HEAD request.

    Attributes:
        content_type: the stream's content type.
        next_offset: the current tail offset.
        closed: whether the stream is closed.
        ttl_seconds: the sliding TTL, if the stream has one.
        expires_at: the absolute expiry (RFC 3339 text), if the stream has one.
        etag: the entity tag, if sent.
    """

    content_type: str | None
    next_offset: str | None
    closed: bool
    ttl_seconds: int | None
    expires_at: str | None
    etag: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ReadChunk:
    """Data read from a stream, with the stream position after it.

    A chunk can be empty (a long-poll timeout, or an SSE control event without data): it still
    moves ``next_offset``, ``up_to_date`` and ``stream_closed`` forward.

    Attributes:
        data: the bytes read; for JSON streams, the text of one JSON array of messages.
        next_offset: the offset to resume from after this chunk.
        up_to_date: whether the chunk reached the tail of the stream.
        stream_closed: whether the stream is closed and fully read: nothing more will come.
        cursor: the server's cursor, echoed on the next live request.
        content_type: the stream's content type, when known.
        status: the HTTP status of the response the chunk came from.
    """

    data: bytes
    next_offset: str
    up_to_date: bool
    stream_closed: bool
    cursor: str | None = None
    content_type: str | None = None
    status: int = 200

    def text(self) -> str:
        """Return the data decoded as UTF-8 (invalid bytes replaced).

        Returns:
            The decoded text.
        """
        return self.data.decode("utf-8", errors="replace")

    def json(self) -> list[Any]:
        """Parse the data of a JSON-stream chunk into its list of messages.

        Returns:
            The messages, in order; an empty list for an empty chunk.

        Raises:
            MalformedResponseError: the data is not a JSON array.
        """
        if not self.data:
            return []
        try:
            items = json.loads(self.data)
        except ValueError as exc:
            raise MalformedResponseError(
                f"The stream data is not valid JSON: {self.data[:80]!r}."
            ) from exc
        if not isinstance(items, list):
            raise MalformedResponseError(
                f"A JSON stream read returned {type(items).__name__}, not a JSON array: "
                f"{self.data[:80]!r}."
            )
        return items
