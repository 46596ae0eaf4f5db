"""The body framing and request writes of :mod:`._http1`, without sockets.

The transports' tests (test_transports.py) run the same rules over real connections; here
each framing is fed read by read, split at every byte, so that a wrong rule shows as a
wrong body, a wrong keep decision or a missing error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import httpx
import pytest

from eventbus.durablestream._http1 import (
    BODY_IN_HEAD_WRITE,
    MAX_LINE,
    BodyReader,
    RequestWrites,
    ResponseHead,
)


def reader_for(head: bytes, method: str = "GET") -> BodyReader:
    return BodyReader(ResponseHead(b"HTTP/1.1 200 OK\r\n" + head, method))


def pieces(reader: BodyReader, reads: Iterable[bytes]) -> list[bytes]:
    """Drive ``reader`` as a transport does: feed the next read whenever it asks."""
    supply = iter(reads)
    out: list[bytes] = []
    while not reader.done:
        # StopIteration from next(): it wanted a read after the server's close.
        out.extend(reader.feed(next(supply)))
    assert all(out)  # a piece is never empty
    return out


def bytewise(data: bytes) -> Iterator[bytes]:
    """``data`` one byte per read, then the server's close."""
    yield from (data[i : i + 1] for i in range(len(data)))
    yield b""


CHUNKED = b"Transfer-Encoding: chunked"
# Two chunks (one with an extension), then a trailer field.
CHUNKED_BODY = b"5;name=value\r\nhello\r\n1B\r\n, world of chunks and bytes\r\n0\r\nX-T: 1\r\n\r\n"


def test_a_content_length_body_ends_at_its_length_and_keeps_the_connection() -> None:
    reader = reader_for(b"Content-Length: 5")
    read = b"hello"
    got = pieces(reader, [read])
    assert got == [b"hello"]
    assert got[0] is read
    assert reader.reusable


def test_a_content_length_body_split_over_reads_or_byte_by_byte() -> None:
    assert pieces(reader_for(b"Content-Length: 11"), [b"hel", b"lo wo", b"rld"]) == [
        b"hel",
        b"lo wo",
        b"rld",
    ]
    reader = reader_for(b"Content-Length: 11")
    assert b"".join(pieces(reader, bytewise(b"hello world"))) == b"hello world"
    assert reader.reusable


def test_bytes_past_a_content_length_body_are_surplus_and_the_connection_is_not_kept() -> None:
    reader = reader_for(b"Content-Length: 5")
    assert pieces(reader, [b"hello!"]) == [b"hello"]
    assert not reader.reusable


def test_an_empty_body_is_done_before_any_read() -> None:
    for reader in (
        reader_for(b"Content-Length: 0"),
        reader_for(b"Content-Length: 9", method="HEAD"),
        BodyReader(ResponseHead(b"HTTP/1.1 204 No Content\r\nX: 1", "GET")),
    ):
        assert reader.done
        assert reader.reusable


def test_a_close_before_the_length_names_the_missing_bytes() -> None:
    reader = reader_for(b"Content-Length: 10")
    assert list(reader.feed(b"abc")) == [b"abc"]
    assert not reader.done
    with pytest.raises(httpx.RemoteProtocolError, match="7 bytes before the end of the body"):
        list(reader.feed(b""))
    assert not reader.done
    assert not reader.reusable


def test_a_body_without_framing_runs_to_the_close_and_the_connection_is_not_kept() -> None:
    reader = reader_for(b"X: 1")
    assert pieces(reader, [b"a", b"bc", b""]) == [b"a", b"bc"]
    assert not reader.reusable  # nothing can follow a body that ends with the close
    reader = reader_for(b"Transfer-Encoding: gzip")  # not chunked last: also to the close
    assert pieces(reader, [b"z", b""]) == [b"z"]


def test_a_kept_alive_body_on_a_connection_the_server_closes_is_not_reused() -> None:
    reader = reader_for(b"Content-Length: 2\r\nConnection: close")
    assert pieces(reader, [b"ok"]) == [b"ok"]
    assert reader.done
    assert not reader.reusable


def test_a_chunked_body_in_one_read_with_extensions_and_trailers() -> None:
    reader = reader_for(CHUNKED)
    got = pieces(reader, [CHUNKED_BODY])
    assert got == [b"hello", b", world of chunks and bytes"]
    assert reader.reusable


def test_a_chunked_body_byte_by_byte_gives_the_same_body() -> None:
    reader = reader_for(CHUNKED)
    assert b"".join(pieces(reader, bytewise(CHUNKED_BODY))) == b"hello, world of chunks and bytes"
    assert reader.reusable  # the reader stopped at the end: the close was never read


def test_a_chunked_body_split_at_every_point_gives_the_same_body() -> None:
    for cut in range(1, len(CHUNKED_BODY)):
        reader = reader_for(CHUNKED)
        got = pieces(reader, [CHUNKED_BODY[:cut], CHUNKED_BODY[cut:]])
        assert b"".join(got) == b"hello, world of chunks and bytes", cut
        assert reader.reusable, cut


def test_bytes_past_the_last_chunk_are_surplus() -> None:
    reader = reader_for(CHUNKED)
    assert pieces(reader, [b"2\r\nok\r\n0\r\n\r\nHTTP/1.1"]) == [b"ok"]
    assert reader.done
    assert not reader.reusable


@pytest.mark.parametrize(
    "size_line",
    [b"zz", b"", b"-1", b"0x5", b"1" * 17, b" ;ext"],
    ids=["not-hex", "empty", "negative", "prefixed", "too-long", "no-digits"],
)
def test_a_malformed_chunk_size_is_refused(size_line: bytes) -> None:
    reader = reader_for(CHUNKED)
    with pytest.raises(httpx.RemoteProtocolError, match="invalid chunk size line"):
        list(reader.feed(size_line + b"\r\nxx\r\n0\r\n\r\n"))


def test_a_chunk_longer_than_its_size_is_refused_after_the_size_it_gave() -> None:
    reader = reader_for(CHUNKED)
    got = reader.feed(b"2\r\nokay\r\n0\r\n\r\n")
    assert next(got) == b"ok"  # what the size covered goes out first
    with pytest.raises(httpx.RemoteProtocolError, match="chunk longer than its size"):
        next(got)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (b"5\r\nhel", "2 bytes before the end of the body"),
        (b"5\r\nhello", "in the middle of a response"),  # the line after the data
        (b"5", "in the middle of a response"),  # a size line cut short
        (b"5\r\nhello\r\n", "in the middle of a response"),  # no next size line
        (b"0\r\nX-T: 1\r\n", "in the middle of a response"),  # the trailer not ended
    ],
)
def test_a_close_inside_a_chunked_body_is_refused(sent: bytes, message: str) -> None:
    reader = reader_for(CHUNKED)
    with pytest.raises(httpx.RemoteProtocolError, match=message):
        pieces(reader, [sent, b""])
    assert not reader.done
    assert not reader.reusable


def test_a_chunk_size_or_trailer_line_over_max_line_is_refused() -> None:
    for sent in (b"1" * (MAX_LINE + 1), b"0\r\nX-T: " + b"t" * MAX_LINE):
        reader = reader_for(CHUNKED)
        with pytest.raises(httpx.RemoteProtocolError, match=f"over {MAX_LINE} bytes"):
            list(reader.feed(sent))


def request(
    content: bytes | Iterator[bytes], headers: dict[str, str] | None = None
) -> httpx.Request:
    return httpx.Request("POST", "http://h/p", content=content, headers=headers)


def test_a_small_body_goes_in_the_write_of_the_head() -> None:
    writes = RequestWrites(request(b"x" * BODY_IN_HEAD_WRITE))
    assert writes.first.startswith(b"POST /p HTTP/1.1\r\n")
    assert writes.first.endswith(b"\r\n\r\n" + b"x" * BODY_IN_HEAD_WRITE)
    assert (writes.then, writes.streamed, writes.end) == (b"", False, b"")


def test_a_large_body_follows_the_head_in_a_write_of_its_own() -> None:
    body = b"x" * (BODY_IN_HEAD_WRITE + 1)
    writes = RequestWrites(request(body))
    assert writes.first.endswith(b"\r\n\r\n")
    assert writes.then is body
    assert not writes.streamed


def test_a_streamed_body_is_chunked_unless_it_has_a_length() -> None:
    def stream() -> Iterator[bytes]:
        yield b"ab"  # pragma: no cover - RequestWrites never iterates the stream

    writes = RequestWrites(request(stream()))
    assert writes.streamed
    assert writes.then == b""
    assert writes.first.endswith(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in writes.first.lower()
    assert writes.piece(b"a" * 26) == b"1a\r\n" + b"a" * 26 + b"\r\n"
    assert writes.piece(b"") == b""  # an empty chunk would end the body
    assert writes.end == b"0\r\n\r\n"

    writes = RequestWrites(request(stream(), headers={"Content-Length": "2"}))
    assert writes.streamed
    assert writes.piece(b"ab") == b"ab"
    assert writes.piece(b"") == b""
    assert writes.end == b""


def test_a_header_with_a_line_break_is_refused_before_any_write() -> None:
    with pytest.raises(httpx.LocalProtocolError, match="line break"):
        RequestWrites(request(b"", headers={"X": "a\r\nInjected: yes"}))
