"""_scan.py: reading past unreadable records, and waiting on a store without ``tail``."""

from __future__ import annotations

import time

import pytest

from eventbus.cli._errors import CliError
from eventbus.cli._scan import Unreadable, next_page, scan
from eventbus.cli._tail import _follow, _Printer
from eventbus.core import OLDEST, MemoryStore, ReadResult, StoreCorruptError
from eventbus.core.testing import make_record


class _Lost(MemoryStore):
    """A store whose second record is unreadable, at an offset it cannot name."""

    def read(self, after: object = OLDEST, limit: int = 100) -> ReadResult:
        if after != OLDEST:
            raise StoreCorruptError("the record after it is lost", field="data")
        return ReadResult(super().read(OLDEST, 1).events, "00000000000000000001")

    def tail(self, after: object, *, timeout: float, limit: int = 100) -> ReadResult:
        return self.read(after, limit)


def test_a_corrupt_record_without_an_offset_ends_the_scan() -> None:
    store = _Lost()
    store.append_batch([make_record(), make_record()])
    items = list(scan(store))
    assert [type(item) for item in items] == [type(items[0]), Unreadable]
    assert items[1] == Unreadable(None, "data", "the record after it is lost")


class _NoTail:
    """A store with only ``read``: a wait is a sleep, then a read."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def read(self, after: object = OLDEST, limit: int = 100) -> ReadResult:
        return self.inner.read(after, limit)  # type: ignore[arg-type]


def test_waiting_on_a_store_without_tail_sleeps_then_reads() -> None:
    store = _NoTail()
    store.inner.append(make_record())
    started = time.monotonic()
    items, cursor = next_page(store, OLDEST, wait=0.05)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.05
    assert len(items) == 1
    assert cursor == "00000000000000000001"


def test_tail_f_stops_with_an_error_at_a_record_it_cannot_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = _Lost()
    store.append_batch([make_record(), make_record()])
    printer = _Printer("00000000000000000001", (), as_json=False)
    with pytest.raises(CliError, match="cannot read past an unreadable record"):
        _follow(store, printer)
    assert capsys.readouterr().err == (
        "unreadable record at offset None: the record after it is lost\n"
    )
    assert printer.cursor == "00000000000000000001"
