"""Event ids: ULID format, monotonic order, thread safety, clock edge cases."""

from __future__ import annotations

import os
import threading
import warnings
from datetime import UTC, datetime

import pytest

from eventbus.core import new_event_id
from eventbus.core._ids import _GENERATOR, _Generator, event_id_timestamp

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _decode(event_id: str) -> int:
    value = 0
    for char in event_id:
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    return value


class _FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_format_is_26_crockford_characters() -> None:
    for _ in range(1000):
        event_id = new_event_id()
        assert len(event_id) == 26
        assert set(event_id) <= CROCKFORD
        assert event_id[0] in "01234567"


def test_timestamp_decodes_to_the_minting_millisecond() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    event_id = new_event_id()
    after = datetime.now(UTC)
    decoded = event_id_timestamp(event_id)
    assert decoded.tzinfo is UTC
    assert before <= decoded <= after


def test_encoding_places_time_and_random_bits_exactly() -> None:
    generator = _Generator(
        clock=_FakeClock(0x0123456789AB), random_bits=lambda: 0xFEDCBA9876543210ABCD
    )
    event_id = generator.next_id()
    assert _decode(event_id) == 0x0123456789AB << 80 | 0xFEDCBA9876543210ABCD
    seconds, ms = divmod(0x0123456789AB, 1000)
    expected = datetime.fromtimestamp(seconds, UTC).replace(microsecond=ms * 1000)
    assert event_id_timestamp(event_id) == expected


def test_ids_increase_within_one_millisecond() -> None:
    generator = _Generator(clock=_FakeClock(1_700_000_000_000), random_bits=lambda: 5)
    ids = [generator.next_id() for _ in range(3000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3000
    assert [_decode(i) & (1 << 80) - 1 for i in ids[:3]] == [5, 6, 7]
    assert {event_id_timestamp(i) for i in ids} == {datetime.fromtimestamp(1_700_000_000, UTC)}


def test_new_millisecond_draws_fresh_random_bits() -> None:
    clock = _FakeClock(1000)
    draws = iter([100, 7])
    generator = _Generator(clock=clock, random_bits=lambda: next(draws))
    first = generator.next_id()
    clock.ms = 1001
    second = generator.next_id()
    assert first < second
    assert _decode(second) == 1001 << 80 | 7


def test_clock_going_backwards_keeps_ids_increasing() -> None:
    clock = _FakeClock(5000)
    generator = _Generator(clock=clock, random_bits=lambda: 1 << 40)
    first = generator.next_id()
    clock.ms = 4000  # an NTP step back
    second = generator.next_id()
    clock.ms = 5000
    third = generator.next_id()
    assert first < second < third
    assert {_decode(i) >> 80 for i in (first, second, third)} == {5000}


def test_random_overflow_moves_to_the_next_millisecond() -> None:
    generator = _Generator(clock=_FakeClock(7), random_bits=lambda: (1 << 80) - 1)
    first = generator.next_id()
    second = generator.next_id()
    assert first < second
    assert _decode(second) == 8 << 80 | (1 << 80) - 1


def test_a_clock_beyond_48_bits_is_an_error() -> None:
    generator = _Generator(clock=_FakeClock(1 << 48), random_bits=lambda: 0)
    with pytest.raises(OverflowError, match=str(1 << 48)):
        generator.next_id()


def test_ids_from_many_threads_are_unique_and_each_thread_increasing() -> None:
    generator = _Generator(clock=_FakeClock(42), random_bits=lambda: 0)
    results: list[list[str]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def mint(mine: list[str]) -> None:
        barrier.wait()
        mine.extend(generator.next_id() for _ in range(2000))

    threads = [threading.Thread(target=mint, args=(r,)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for mine in results for i in mine]
    assert len(set(everything)) == 16000
    assert sorted(_decode(i) & 0xFFFF for i in everything) == list(range(16000))
    for mine in results:
        assert mine == sorted(mine)


def test_real_clock_ids_from_threads_are_unique() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def mint(mine: list[str]) -> None:
        mine.extend(new_event_id() for _ in range(5000))

    threads = [threading.Thread(target=mint, args=(r,)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for mine in results for i in mine]
    assert len(set(everything)) == len(everything)
    for mine in results:
        assert mine == sorted(mine)


def test_reset_forgets_the_sequence() -> None:
    draws = iter([10, 99])
    generator = _Generator(clock=_FakeClock(3), random_bits=lambda: next(draws))
    generator.next_id()
    generator.reset()
    assert _decode(generator.next_id()) == 3 << 80 | 99


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_continue_the_parents_sequence() -> None:
    new_event_id()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process that has threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child exits without reporting coverage
        os.write(write_end, b"reset" if _GENERATOR._last_ms == -1 else b"kept")
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"reset"
    os.waitpid(pid, 0)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
        "81ARZ3NDEKTSV4RRFFQ69G5FAV",
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",
        "01arz3ndektsv4rrffq69g5fav",
    ],
)
def test_timestamp_of_a_malformed_id_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        event_id_timestamp(bad)
