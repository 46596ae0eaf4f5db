"""SIGKILL a writer at a random moment: every append that returned survives, in order."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventbus.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("_child.py")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
@pytest.mark.parametrize("round_", range(3))
def test_every_reported_append_survives_sigkill(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "events.db"
    with subprocess.Popen(
        [sys.executable, str(CHILD), "append-forever", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as child:
        assert child.stdout is not None
        first = child.stdout.readline()  # it is appending now
        assert first.strip(), "the child did not start appending"
        time.sleep(random.uniform(0.05, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        rest = child.stdout.read()  # the same buffered reader: nothing read ahead is lost
    assert child.returncode == -signal.SIGKILL
    lines = (first + rest).decode().split("\n")
    # The last line may be cut mid-write by the kill; every complete one was committed.
    reported = [line for line in lines[:-1] if len(line) == 20]
    assert len(reported) >= 1
    with SQLiteStore(path) as store:
        offsets = [event.offset for event in store.iter_events()]
    assert offsets[: len(reported)] == reported
    # Continuous: no holes, and at most a few appends committed but not yet printed.
    assert offsets == [f"{n:020d}" for n in range(1, len(offsets) + 1)]
    assert len(offsets) - len(reported) <= 1
