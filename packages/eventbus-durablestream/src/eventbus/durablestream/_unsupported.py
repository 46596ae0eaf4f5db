"""What a Durable Streams log cannot do, said as errors that name the missing feature."""

from __future__ import annotations

from eventbus.core import UnsupportedStoreFeatureError

__all__ = ["cannot_append_conditionally", "cannot_compact"]


def cannot_append_conditionally(url: str) -> UnsupportedStoreFeatureError:
    """The error for ``append_expecting``: the server does not enforce an expected offset.

    Checking the tail and then appending would be a race (another writer may append
    in between), so the store refuses rather than pretend.
    """
    return UnsupportedStoreFeatureError(
        f"DurableStreamStore({url!r}) cannot append conditionally: that needs the server "
        "to enforce the Stream-Expected-Offset request header atomically with the append, "
        "and the reference server this store is tested against (@durable-streams/server "
        "0.3.7) ignores it, appending anyway; reading the tail first and then appending "
        "would race with other writers. Use SQLiteStore or MemoryStore for optimistic "
        "concurrency, or publish without expected_offset."
    )


def cannot_compact(url: str) -> UnsupportedStoreFeatureError:
    """The error for ``compact``: a Durable Streams stream is append-only."""
    return UnsupportedStoreFeatureError(
        f"DurableStreamStore({url!r}) cannot compact: a Durable Streams stream is "
        "append-only and the protocol has no way to remove a prefix. Keep snapshots so "
        "readers start late, or expire whole streams with a TTL."
    )
