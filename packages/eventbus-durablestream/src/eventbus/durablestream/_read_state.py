"""Where a read stands: the state every read transport shares, and the request of each step.

Catch-up, long-poll and SSE reads all move one :class:`ReadState` forward (offset, cursor,
up-to-date, closed) and build each request with :func:`read_spec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

import httpx

from ._requests import HeaderValue, RequestSpec
from ._results import ReadChunk

__all__ = ["ReadState", "forward", "is_news", "read_spec"]

_SENTINEL_OFFSETS: Final = frozenset({"-1", "now"})


def forward(asked: str, answered: str, with_data: bool) -> str:
    """The offset to read on from: ``answered``, unless it would move backwards.

    The file-backed reference server can answer a read at an offset it just returned with
    an older tail (its file lags its long-poll wake-up); reading on from there would
    deliver data twice. Offsets sort as strings (§8), so an answer without data that sorts
    before the offset asked for keeps that offset.
    """
    if not with_data and asked not in _SENTINEL_OFFSETS and answered < asked:
        return asked
    return answered


@dataclasses.dataclass(slots=True)
class ReadState:
    """How far a read got: the offset to read from, the server's cursor, and the stream's state."""

    offset: str
    cursor: str | None = None
    up_to_date: bool = False
    closed: bool = False
    content_type: str | None = None


def read_spec(
    url: str,
    state: ReadState,
    live: str | None,
    headers: Mapping[str, HeaderValue] | None,
    params: Mapping[str, HeaderValue] | None,
    timeout: httpx.Timeout | None,
) -> RequestSpec:
    """Build the GET of one read step from ``state``: catch-up, or live in ``live`` mode."""
    query = {"offset": state.offset}
    if live is not None:
        query["live"] = live
        if state.cursor is not None:
            query["cursor"] = state.cursor
    return RequestSpec(
        "read", "GET", url, params=query, user_headers=headers, user_params=params, timeout=timeout
    )


def is_news(chunk: ReadChunk, last: ReadChunk | None) -> bool:
    """Whether a chunk tells the reader anything: data, or a changed position or state."""
    return (
        bool(chunk.data)
        or last is None
        or (chunk.next_offset, chunk.up_to_date, chunk.stream_closed)
        != (last.next_offset, last.up_to_date, last.stream_closed)
    )
