"""Several processes on one file: appends stay unique and complete; tails cross over."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventbus.core import NEWEST
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("_child.py")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_processes_and_threads_appending_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    children = [_spawn("append", str(path), "200", f"p{i}") for i in range(4)]
    with SQLiteStore(path) as store:  # this process appends meanwhile, too
        mine = [store.append(make_record({"tag": "parent", "n": n})) for n in range(200)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    reported = [line for out, _ in outputs for line in out.split()] + mine
    assert len(reported) == len(set(reported)) == 1000
    for out, _ in outputs:  # each writer saw its own offsets increase
        own = out.split()
        assert own == sorted(own)
    with SQLiteStore(path) as store:
        events = list(store.iter_events())
    assert sorted(reported) == [e.offset for e in events]
    assert [e.offset for e in events] == [f"{n:020d}" for n in range(1, 1001)]
    tags: dict[str, list[int]] = {}
    for event in events:
        data = json.loads(event.data)
        tags.setdefault(data["tag"], []).append(data["n"])
    assert tags == {tag: list(range(200)) for tag in ("p0", "p1", "p2", "p3", "parent")}


@pytest.mark.slow
def test_tail_in_another_process_sees_a_new_event(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SQLiteStore(path) as store:
        start = store.append(make_record())
        follower = _spawn("tail", str(path), start, "60")
        time.sleep(0.5)  # the follower is (most likely) waiting by now
        offset = store.append(make_record({"hello": "there"}))
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out.split("\n")[0] == f'{offset} {{"hello": "there"}}'


@pytest.mark.slow
def test_tail_sees_events_another_process_appends(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SQLiteStore(path) as store:
        tail = store.read(NEWEST).next
        writer = _spawn("append", str(path), "3", "w")
        got: list[str] = []
        while len(got) < 3:
            result = store.tail(tail, timeout=60)
            assert result.events, "the writer's events never arrived"
            got.extend(e.offset for e in result.events)
            tail = result.next
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert got == out.split()


@pytest.mark.slow
def test_conditional_appends_racing_in_two_processes_have_one_winner_each(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()
    rounds = 50
    children = [
        _spawn("race", str(path), str(rounds), "a", "b"),
        _spawn("race", str(path), str(rounds), "b", "a"),
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    lines = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(lines) == 2 * rounds
    with SQLiteStore(path) as store:
        events = list(store.iter_events())
    assert len(events) == rounds, "exactly one append per round"
    for n in range(rounds):
        pair = sorted((line for line in lines if line[0] == str(n)), key=lambda line: line[2])
        (_, lost_expected, lost, current), (_, won_expected, won, offset) = pair
        assert (lost, won) == ("lost", "won"), pair
        assert lost_expected == won_expected, "both expected the same end"
        assert current == offset == events[n].offset, "the loser saw the winner's event"
