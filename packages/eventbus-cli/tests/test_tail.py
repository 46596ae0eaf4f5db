"""``eventbus tail`` (_tail.py): the last events, from a position, by type, as JSON, following."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from eventbus.core import open_store

from ._support import Lines, corrupt, fill, records
from .conftest import run, start

if TYPE_CHECKING:
    from pathlib import Path


def _offsets(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()]


def test_tail_prints_the_last_ten_events_like_tail(db: Path) -> None:
    offsets = fill(db, records(12))
    result = run("tail", f"sqlite:{db}")
    assert result.returncode == 0, result.stderr
    assert _offsets(result.stdout) == offsets[2:]
    first = result.stdout.splitlines()[0]
    assert first == f'{offsets[2]}  2026-01-01T00:00:02.000Z  orders.placed  {{"n": 2}}'


def test_n_picks_how_many_and_type_which(db: Path) -> None:
    offsets = fill(db, records(3, "a"), records(3, "b", 3), records(1, "a", 6))
    assert _offsets(run("tail", "-n", "2", f"sqlite:{db}").stdout) == offsets[5:]
    result = run("tail", "-n", "3", "--type", "a", f"sqlite:{db}")
    assert _offsets(result.stdout) == [offsets[1], offsets[2], offsets[6]]
    assert run("tail", "-n", "0", f"sqlite:{db}").stdout == ""


def test_from_prints_every_event_after_a_position(db: Path) -> None:
    offsets = fill(db, records(15))
    assert _offsets(run("tail", "--from", "oldest", f"sqlite:{db}").stdout) == offsets
    assert _offsets(run("tail", "--from", offsets[11], f"sqlite:{db}").stdout) == offsets[12:]
    result = run("tail", "--from", "OLDEST", "-n", "2", "--type", "orders.placed", f"sqlite:{db}")
    assert _offsets(result.stdout) == offsets[:2]
    assert run("tail", "--from", "newest", f"sqlite:{db}").stdout == ""


def test_json_prints_one_object_a_line(db: Path) -> None:
    [record] = records(1)
    [offset] = fill(db, [record])
    result = run("tail", "--json", f"sqlite:{db}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "offset": offset,
        "id": record.event_id,
        "type": "orders.placed",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "origin": "bus-0",
        "metadata": {"n": "0"},
        "data": {"n": 0},
    }


def test_data_that_is_not_json_is_printed_as_text(db: Path) -> None:
    fill(db, records(1))
    corrupt(db, (1, "data", "not json"))
    assert json.loads(run("tail", "--json", f"sqlite:{db}").stdout)["data"] == "not json"


def test_a_malformed_offset_is_a_usage_error(db: Path) -> None:
    result = run("tail", "--from", "yesterday", f"sqlite:{db}")
    assert result.returncode == 2
    assert "'yesterday' is not a SQLiteStore offset" in result.stderr


def test_unreadable_records_are_reported_on_stderr_and_passed(db: Path) -> None:
    offsets = fill(db, records(3))
    corrupt(db, (2, "timestamp", "noon"))
    for args in (["--from", "oldest"], []):
        result = run("tail", *args, f"sqlite:{db}")
        assert result.returncode == 0, result.stderr
        assert _offsets(result.stdout) == [offsets[0], offsets[2]]
        assert result.stderr.startswith(f"unreadable record at offset {offsets[1]}: ")


def _follow(url: str, *args: str) -> tuple[subprocess.Popen[str], Lines]:
    process = start("tail", "-f", *args, url)
    assert process.stdout is not None
    return process, Lines(process.stdout)


def _interrupt(process: subprocess.Popen[str], lines: Lines) -> list[str]:
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    assert process.stderr is not None
    assert process.stdout is not None
    with process.stderr:
        assert process.stderr.read() == ""  # quiet: no traceback, no "Aborted!"
    with process.stdout:
        return lines.close()


def test_follow_sees_an_event_another_process_appends(db: Path) -> None:
    offsets = fill(db, records(2))
    # From an explicit offset, so whenever the follower gets there, the event is after it.
    process, lines = _follow(f"sqlite:{db}", "--from", offsets[-1], "--json")
    try:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from eventbus.sqlite import SQLiteStore;"
                "from eventbus.core.testing import make_record;"
                "s = SQLiteStore(sys.argv[1]); s.append(make_record(type_name='orders.late'))",
                str(db),
            ],
            check=True,
            timeout=60,
        )
        lines.wait_for("orders.late")
    finally:
        out = _interrupt(process, lines)
    [event] = [json.loads(line) for line in out]
    assert event["type"] == "orders.late"
    assert event["offset"] > offsets[-1]


def test_follow_from_newest_prints_only_what_comes_later(db: Path) -> None:
    fill(db, records(2))
    process, lines = _follow(f"sqlite:{db}", "--from", "newest")
    try:
        with open_store(f"sqlite:{db}") as store:  # type: ignore[attr-defined]
            # Append until one is printed: those before the follower resolved newest are
            # (rightly) not; each append gets half a second, all of them 60 seconds.
            deadline = time.monotonic() + 60
            while not lines.lines:
                assert time.monotonic() < deadline, "tail -f printed nothing new"
                store.append(records(1, "orders.late")[0])
                with contextlib.suppress(AssertionError):
                    lines.wait_for("orders.late", timeout=0.5)
    finally:
        out = _interrupt(process, lines)
    assert out
    assert all("orders.late" in line for line in out)


def test_follow_after_history_continues_where_it_stopped(db: Path) -> None:
    offsets = fill(db, records(3))
    process, lines = _follow(f"sqlite:{db}", "-n", "1")
    try:
        lines.wait_for(offsets[2])
        with open_store(f"sqlite:{db}") as store:  # type: ignore[attr-defined]
            [late] = store.append_batch(records(1, "orders.late"))
        lines.wait_for(late)
    finally:
        out = _interrupt(process, lines)
    assert _offsets("\n".join(out)) == [offsets[2], late]


def test_follow_on_a_durable_stream(ds_store_url: str) -> None:
    store = open_store(ds_store_url)
    try:
        store.append_batch(records(1))
        process, lines = _follow(ds_store_url, "--type", "orders.late")
        try:
            [late] = store.append_batch(records(1, "orders.late"))
            lines.wait_for(late)
        finally:
            out = _interrupt(process, lines)
    finally:
        store.close()  # type: ignore[attr-defined]
    assert _offsets("\n".join(out)) == [late]


@pytest.mark.parametrize("count", ["-1", "x"])
def test_n_must_be_a_count(db: Path, count: str) -> None:
    assert run("tail", "-n", count, f"sqlite:{db}").returncode == 2


def test_a_reader_that_goes_away_ends_tail_quietly(db: Path) -> None:
    fill(db, *(records(1000, "orders.placed", n) for n in range(0, 20_000, 1000)))
    process = start("tail", "--from", "oldest", f"sqlite:{db}")
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.readline().startswith("00000000000000000001  ")
    process.stdout.close()  # like head -1: the rest of the output has nowhere to go
    with process.stderr:
        assert process.stderr.read() == ""
    assert process.wait(60) == 0
