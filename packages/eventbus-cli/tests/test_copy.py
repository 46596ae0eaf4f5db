"""``eventbus copy`` (_copy.py, _progress.py): exact copies between stores, resumable."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from eventbus.core import NEWEST, OLDEST, open_store

from ._support import Lines, corrupt, everything, fields, fill, records, wait_until
from .conftest import run, script, start

if TYPE_CHECKING:
    from pathlib import Path


def _has_events(url: str) -> bool:
    store = open_store(url)
    try:
        return store.read(NEWEST).next is not OLDEST
    finally:
        store.close()  # type: ignore[attr-defined]


def test_copy_keeps_every_field_and_a_rerun_copies_nothing(db: Path, tmp_path: Path) -> None:
    fill(db, records(5, "a"), records(3, "b", 5))
    dst = f"sqlite:{tmp_path / 'copy.db'}"
    result = run("copy", f"sqlite:{db}", dst)
    assert result.returncode == 0, result.stderr
    assert fields(everything(dst)) == fields(everything(f"sqlite:{db}"))
    assert result.stderr.splitlines()[-1] == (
        f"copied 8 events from sqlite:{db} to {dst} (0 skipped)"
    )
    assert "caught up: 8 copied, 0 skipped" in result.stderr
    again = run("copy", "--quiet", f"sqlite:{db}", dst)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(everything(dst)) == 8


def test_copy_only_the_given_types(db: Path, tmp_path: Path) -> None:
    fill(db, records(2, "a"), records(3, "b", 2), records(2, "c", 5))
    dst = f"sqlite:{tmp_path / 'copy.db'}"
    result = run("copy", "--type", "b", "--type", "c", f"sqlite:{db}", dst)
    assert result.returncode == 0, result.stderr
    assert [e.type_name for e in everything(dst)] == ["b", "b", "b", "c", "c"]
    assert "(2 skipped)" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "durablestream"])
def test_a_copy_killed_half_way_resumes_and_stores_nothing_twice(
    db: Path, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    total = 20_000 if kind == "sqlite" else 6_000
    fill(db, *(records(1000, "orders.placed", n) for n in range(0, total, 1000)))
    src = f"sqlite:{db}"
    dst = (
        f"sqlite:{tmp_path / 'copy.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("ds_store_url")
    )
    process = start("copy", "--batch-size", "10", "--quiet", src, dst)
    try:
        wait_until(lambda: _has_events(dst), "the first copied batch", timeout=60)
    finally:
        process.kill()  # SIGKILL: no cleanup, no final checkpoint
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    partial = len(everything(dst))
    assert 0 < partial < total, "the kill did not land half-way"
    result = run("copy", "--batch-size", "500", src, dst)
    assert result.returncode == 0, result.stderr
    copied = everything(dst)
    assert fields(copied) == fields(everything(src))  # ids, order, data: exactly once each
    assert len({e.event_id for e in copied}) == total
    assert f"copied {total - partial} events" in result.stderr.splitlines()[-1]


def test_copy_to_a_durable_stream_and_back(db: Path, tmp_path: Path, ds_store_url: str) -> None:
    fill(db, records(30))
    assert run("copy", "-q", f"sqlite:{db}", ds_store_url).returncode == 0
    back = f"sqlite:{tmp_path / 'back.db'}"
    assert run("copy", "-q", ds_store_url, back).returncode == 0
    assert fields(everything(back)) == fields(everything(f"sqlite:{db}"))
    assert fields(everything(ds_store_url)) == fields(everything(f"sqlite:{db}"))


def test_follow_mirrors_what_another_process_appends(db: Path, tmp_path: Path) -> None:
    fill(db, records(3))
    dst = f"sqlite:{tmp_path / 'mirror.db'}"
    process = start("copy", "--follow", f"sqlite:{db}", dst)
    assert process.stderr is not None
    lines = Lines(process.stderr)
    try:
        lines.wait_for("caught up: 3 copied")
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from eventbus.sqlite import SQLiteStore;"
                "from eventbus.core.testing import make_record;"
                "s = SQLiteStore(sys.argv[1]); s.append(make_record(type_name='late'))",
                str(db),
            ],
            check=True,
            timeout=60,
        )
        wait_until(lambda: len(everything(dst)) == 4, "the mirrored event")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        assert process.stdout is not None
        process.stdout.close()
        with process.stderr:
            output = lines.close()
    assert not any("Traceback" in line or "Aborted" in line for line in output)
    assert fields(everything(dst)) == fields(everything(f"sqlite:{db}"))


def test_a_terminal_gets_a_progress_bar(db: Path, tmp_path: Path) -> None:
    fill(db, records(40))
    dst = f"sqlite:{tmp_path / 'copy.db'}"
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen(
        [*script(), "copy", "--batch-size", "7", f"sqlite:{db}", dst],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(60) == 0
    assert process.stdout is not None
    process.stdout.close()
    screen = b"".join(chunks).decode(errors="replace")
    assert "40/40" in screen
    assert "events/s" in screen
    assert "copied 40 events" in screen
    assert len(everything(dst)) == 40


def test_copying_a_store_into_itself_is_a_usage_error(db: Path) -> None:
    fill(db, records(2))
    result = run("copy", f"sqlite:{db}", f"sqlite:{db}")
    assert result.returncode == 2
    assert (
        result.stderr == f"error: SRC and DST are the same store (sqlite:{db}); name two stores.\n"
    )
    assert len(everything(f"sqlite:{db}")) == 2


def test_a_bad_destination_url_is_a_usage_error(db: Path) -> None:
    result = run("copy", f"sqlite:{db}", "sqlite://host/x.db")
    assert result.returncode == 2
    assert "is not a SQLite store URL" in result.stderr


def test_an_unreadable_source_record_stops_the_copy_naming_it(db: Path, tmp_path: Path) -> None:
    offsets = fill(db, records(4))
    corrupt(db, (3, "metadata", "oops"))
    dst = f"sqlite:{tmp_path / 'copy.db'}"
    result = run("copy", "-q", f"sqlite:{db}", dst)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: The event at offset {offsets[2]} ")
    assert len(everything(dst)) == 2
