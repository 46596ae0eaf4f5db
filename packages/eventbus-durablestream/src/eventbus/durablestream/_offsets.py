"""Offset tokens of :class:`DurableStreamStore`: exact per-event resume points.

The protocol gives one offset per stored message (one POST), and a read returns every
message after the offset it starts at, with the offset after the last one
(``Stream-Next-Offset``). Tokens are built from those alone, never from what a message
holds (another writer may put anything there):

* ``"<o>"``, a plain server offset: the position after the message that ends at ``o``
  (the last message of a read, or of a POST, is named so);
* ``"<o>,<i>"``: the position after message ``i`` (from 0) of a read from ``o``; ``o``
  may be ``-1``, the beginning. Resuming reads from ``o`` and skips ``i + 1`` messages.

One position may have several tokens (reads that start at different offsets name it
differently); every one of them resumes exactly there. Two tokens with one server offset
compare as ``(o, i)``, a plain offset as ``(o, -1)``; tokens with different server offsets
are compared by the store, which asks the server (see ``EventReader.compare``).
"""

from __future__ import annotations

from typing import Final

from eventbus.core import OffsetError

__all__ = [
    "BEGINNING",
    "COMMON_SUFFIXES",
    "INDEX_WIDTH",
    "SEPARATOR",
    "Token",
    "compare_tokens",
    "is_server_offset",
    "parse_token",
]

SEPARATOR: Final = ","
"""Never part of a protocol offset (§8 forbids ``, & = ? /``) and below every URL-safe
character, so tokens also sort as strings when the server's offsets are URL-safe."""

INDEX_WIDTH: Final = 8
_FORBIDDEN: Final = frozenset(",&=?/")
_SENTINELS: Final = frozenset({"-1", "now"})
BEGINNING: Final = "-1"
"""The protocol's offset of the stream's beginning: a token's server offset, never a plain one."""

Token = tuple[str, int]
"""A parsed token: (server offset, index within a read from it, or -1 for "at it")."""

COMMON_SUFFIXES: Final = tuple(f"{SEPARATOR}{i:0{INDEX_WIDTH}d}" for i in range(1024))
"""The token suffixes of the first indexes within a read, formatted once (58 KB)."""


def is_server_offset(offset: str) -> bool:
    """Whether ``offset`` can be an offset a server sends (not a sentinel, no reserved or
    non-printable characters)."""
    return (
        bool(offset)
        and offset not in _SENTINELS
        and all(c not in _FORBIDDEN and "!" <= c <= "~" for c in offset)
    )


def _check_server_offset(offset: str, token: str, indexed: bool) -> None:
    if not (is_server_offset(offset) or (indexed and offset == BEGINNING)):
        raise OffsetError(
            f"{token!r} is not an offset of a DurableStreamStore: expected a server offset "
            "or '<offset>,<index>' as returned by append or read."
        )


def parse_token(token: str) -> Token:
    """Split a token into its server offset and index, validating both.

    Args:
        token: A token as returned by append or read.

    Returns:
        ``(server offset, index)``; the index is -1 for a plain server offset.

    Raises:
        OffsetError: The token is malformed or a protocol sentinel.
    """
    if not isinstance(token, str):
        raise OffsetError(f"An offset must be a string, got {token!r}.")
    offset, separator, index = token.partition(SEPARATOR)
    _check_server_offset(offset, token, bool(separator))
    if not separator:
        return offset, -1
    if len(index) != INDEX_WIDTH or not index.isdigit() or not index.isascii():
        raise OffsetError(
            f"{token!r} is not an offset of a DurableStreamStore: the part after "
            f"{SEPARATOR!r} must be {INDEX_WIDTH} digits."
        )
    return offset, int(index)


def compare_tokens(a: str, b: str) -> int:
    """Compare two tokens of one stream by log position, when they share a server offset.

    Tokens with different server offsets are compared by their server offsets, which is
    right only when each names a position the other's read passed (the store compares
    those by asking the server).

    Args:
        a: A token.
        b: Another token.

    Returns:
        Negative, zero or positive as ``a`` is before, at or after ``b``.

    Raises:
        OffsetError: Either token is malformed.
    """
    left, right = parse_token(a), parse_token(b)
    return (left > right) - (left < right)
