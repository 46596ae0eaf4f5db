"""Offset tokens of :class:`DurableStreamStore`: exact per-event resume points.

The protocol gives one offset per stored message, and one POST of a JSON array is one
message: there are no offsets inside a POST, nor between the POSTs of one read. Tokens
are made of server offsets and message counts only, so what a message holds can never
move a position:

* ``"<o>"``, a plain server offset: the position at ``o`` (``NEWEST``'s tail).
* ``"<a>,<i>"``: message ``i`` (from 0), counted from the first event of the POST that
  carries ``Stream-Seq: a``. Every POST the store writes carries ``Stream-Seq`` set to
  the tail it last saw (its *anchor*, also in each envelope as ``s``). The server takes a
  ``Stream-Seq`` once and in rising order, and the POST lands at ``a`` or after it (after
  it when a writer without ``Stream-Seq`` got in first). So the writer names its events
  from ``a`` and the count it sent, with no further request, and a reader resolves the
  token by reading from ``a`` and counting from the first event of that POST.
* ``"<o>&<i>"``: message ``i`` of a read from server offset ``o`` (``-1``: the
  beginning). A reader names so what precedes the first POST it can name by anchor, a
  message of another writer at the start of a read, say.

A reader names a POST by its anchor only where the server's offsets bear it out (the
anchor lies within the read, after the anchors before it); otherwise messages are
counted from the last name it could give. Order: ``"<o>"`` < ``"<o>&<i>"`` <
``"<o>,<i>"`` for one ``o``, indexes in order, server offsets compared as strings (the
protocol's offsets sort lexicographically); tokens sort as strings too.
"""

from __future__ import annotations

from typing import Final

from eventbus.core import OffsetError

__all__ = [
    "BEGINNING",
    "COMMON_SUFFIXES",
    "INDEX_WIDTH",
    "POSITIONAL",
    "SEPARATOR",
    "Token",
    "anchored",
    "anchored_tokens",
    "compare_tokens",
    "is_server_offset",
    "parse_token",
]

SEPARATOR: Final = ","
"""Never part of a protocol offset (§8 forbids ``, & = ? /``) and below every URL-safe
character, so tokens also sort as strings when the server's offsets are URL-safe."""

POSITIONAL: Final = "&"
"""Separates a read's start from a message count (below ``SEPARATOR``, so it sorts first)."""

INDEX_WIDTH: Final = 8
BEGINNING: Final = "-1"
"""The protocol's offset of the stream's beginning: only ever the start of a read."""
_FORBIDDEN: Final = frozenset(",&=?/")
_SENTINELS: Final = frozenset({BEGINNING, "now"})
_RANKS: Final = {"": 0, POSITIONAL: 1, SEPARATOR: 2}

Token = tuple[str, int, int]
"""A parsed token: (server offset, form, index); the form is 0 for a plain offset (index
-1), 1 for ``"<o>&<i>"`` and 2 for ``"<a>,<i>"``, so tuples compare in log order."""


def anchored(anchor: str, index: int) -> str:
    """Return the token of message ``index`` counted from the POST anchored at ``anchor``.

    Args:
        anchor: The POST's ``Stream-Seq`` (the tail its writer saw).
        index: The message's position from the POST's first event, from 0.

    Returns:
        The token.
    """
    return f"{anchor}{SEPARATOR}{index:0{INDEX_WIDTH}d}"


COMMON_SUFFIXES: Final = tuple(f"{SEPARATOR}{i:0{INDEX_WIDTH}d}" for i in range(1024))
"""The token suffixes of the first indexes after an anchor, formatted once (58 KB)."""


def anchored_tokens(anchor: str, count: int) -> list[str]:
    """Return the tokens of events ``0 .. count - 1`` of the POST after ``anchor``.

    As ``[anchored(anchor, i) for i in range(count)]``, at an eighth of the cost for
    the POSTs of a group commit.
    """
    tokens = [anchor + suffix for suffix in COMMON_SUFFIXES[:count]]
    tokens.extend(anchored(anchor, i) for i in range(len(tokens), count))
    return tokens


def is_server_offset(offset: str) -> bool:
    """Whether ``offset`` can be an offset a server sends: no sentinel, no reserved or
    non-printable character."""
    return (
        bool(offset)
        and offset not in _SENTINELS
        and all(c not in _FORBIDDEN and "!" <= c <= "~" for c in offset)
    )


def _check_server_offset(offset: str, token: str, form: str) -> None:
    if not (is_server_offset(offset) or (form == POSITIONAL and offset == BEGINNING)):
        raise OffsetError(
            f"{token!r} is not an offset of a DurableStreamStore: expected a server offset "
            "or '<offset>,<index>' as returned by append or read."
        )


def parse_token(token: str) -> Token:
    """Split a token into its server offset and index, validating both.

    Args:
        token: A token as returned by append or read.

    Returns:
        ``(server offset, form, index)`` (see :data:`Token`).

    Raises:
        OffsetError: The token is malformed or a protocol sentinel.
    """
    if not isinstance(token, str):
        raise OffsetError(f"An offset must be a string, got {token!r}.")
    # The first separator splits: neither can be part of a server offset.
    cut = min((i for i in (token.find(SEPARATOR), token.find(POSITIONAL)) if i >= 0), default=-1)
    offset, form, index = (
        (token, "", "") if cut < 0 else (token[:cut], token[cut], token[cut + 1 :])
    )
    _check_server_offset(offset, token, form)
    if not form:
        return offset, 0, -1
    if len(index) != INDEX_WIDTH or not index.isdigit() or not index.isascii():
        raise OffsetError(
            f"{token!r} is not an offset of a DurableStreamStore: the part after "
            f"{form!r} must be {INDEX_WIDTH} digits."
        )
    return offset, _RANKS[form], int(index)


def compare_tokens(a: str, b: str) -> int:
    """Compare two tokens of one stream by log position.

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
