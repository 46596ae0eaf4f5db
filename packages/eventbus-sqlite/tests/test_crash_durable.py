"""A durable subscription killed with SIGKILL never has a checkpoint ahead of its work.

A child process runs a durable subscription whose handler journals "begin OFFSET" and
"end OFFSET" (each line fsync'ed) around its work, while the parent keeps publishing.
The child is killed at a random moment. The saved checkpoint must be OLDEST or the
offset of an event whose "end" line was written: never an event still in progress.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventbus.core import OLDEST, EventBus
from eventbus.sqlite import SQLiteStore

CONSUMER = textwrap.dedent(
    """
    import os, sys, time
    from dataclasses import dataclass
    from eventbus.core import EventBus, Envelope
    from eventbus.sqlite import SQLiteStore

    @dataclass(frozen=True)
    class Tick:
        __event_name__ = "crash.tick"
        n: int

    path, journal = sys.argv[1], sys.argv[2]
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def note(line: str) -> None:
        os.write(fd, (line + "\\n").encode())
        os.fsync(fd)

    def handle(event: Tick, envelope: Envelope) -> None:
        note(f"begin {envelope.offset}")
        time.sleep(0.001)
        note(f"end {envelope.offset}")

    bus = EventBus(store=SQLiteStore(path, durability="full"))
    bus.subscribe_durable("crashy", handle)
    print("ready", flush=True)
    time.sleep(120)
    """
)


@dataclass(frozen=True)
class Tick:
    __event_name__ = "crash.tick"
    n: int


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_checkpoint_never_ahead_of_an_unfinished_handler(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "events.db"
    journal = tmp_path / "journal.txt"
    SQLiteStore(path).close()
    with subprocess.Popen(
        [sys.executable, "-c", CONSUMER, str(path), str(journal)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with EventBus(store=SQLiteStore(path)) as bus:
            deadline = time.monotonic() + rng.uniform(0.05, 0.4)
            n = 0
            while time.monotonic() < deadline:
                bus.publish(Tick(n))
                n += 1
            os.kill(child.pid, signal.SIGKILL)
        child.wait(30)

    lines = journal.read_text().split("\n") if journal.exists() else []
    finished = {line.split()[1] for line in lines if line.startswith("end ")}
    store = SQLiteStore(path)
    try:
        checkpoint = store.load_checkpoint("crashy")
        assert checkpoint is OLDEST or checkpoint in finished, (checkpoint, sorted(finished)[-3:])
        # Offsets in the log are continuous: nothing half-written survived the kill.
        offsets = [int(e.offset) for e in store.iter_events()]
        assert offsets == list(range(1, len(offsets) + 1))
    finally:
        store.close()
