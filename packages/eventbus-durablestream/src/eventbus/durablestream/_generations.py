"""Finding the newest generation of a log kept as numbered append-only streams.

The lease logs and the snapshot streams both move a full stream to a next one (generation
``g + 1``) instead of rewriting it; generations exist from 0 up without gaps, so the newest
is found by doubling then bisecting, in O(log n) HEAD requests.
"""

from __future__ import annotations

from collections.abc import Callable

from ._client import DurableStreamClient
from ._errors import StreamNotFoundError

__all__ = ["newest_generation", "stream_exists"]


def stream_exists(client: DurableStreamClient, url: str) -> bool:
    """Whether a stream exists at ``url`` (one HEAD)."""
    try:
        client.head(url)
    except StreamNotFoundError:
        return False
    return True


def newest_generation(exists: Callable[[int], bool]) -> int:
    """The highest generation for which ``exists`` holds, given that 0 up to it all do
    (0 when none does: the first generation is where writing starts)."""
    low, high = 0, 1
    while exists(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if exists(middle):
            low = middle
        else:
            high = middle
    return low
