"""A child process for the multi-process and crash tests (run as a script).

Usage::

    python _child.py open-append PATH GO_FILE   # wait for GO_FILE, open, append one
    python _child.py append PATH COUNT TAG      # append COUNT records, print each offset
    python _child.py append-forever PATH        # append until killed, print each offset
    python _child.py tail PATH AFTER TIMEOUT    # wait for events after AFTER, print them
    python _child.py durable PATH LOG           # publish forever; a durable handler logs
                                                # "start OFFSET" / "done OFFSET" (fsynced)

Each offset is printed (and flushed) only after ``append`` returned, so whatever the
parent reads was committed.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eventbus.core import OLDEST, Envelope, EventBus
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore


@dataclass(frozen=True)
class Tick:
    """The event of the durable crash test."""

    __event_name__ = "crash.Tick"

    n: int


def _durable(path: str, log_path: str) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives until the kill

    def note(line: str) -> None:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())

    def handler(event: Tick, envelope: Envelope) -> None:
        note(f"start {envelope.offset}")
        time.sleep(random.uniform(0, 0.002))  # the handler's work
        note(f"done {envelope.offset}")

    bus = EventBus(store=SQLiteStore(path))
    bus.subscribe_durable("crash-sub", handler)
    n = 0
    while True:
        bus.publish(Tick(n))
        n += 1
        time.sleep(0.0005)


def main(argv: list[str]) -> int:
    command, path = argv[0], argv[1]
    if command == "open-append":
        go = Path(argv[2])
        while not go.exists():
            time.sleep(0.001)
        with SQLiteStore(path) as store:
            print(store.append(make_record()), flush=True)
    elif command == "append":
        count, tag = int(argv[2]), argv[3]
        with SQLiteStore(path) as store:
            for n in range(count):
                print(store.append(make_record({"tag": tag, "n": n})), flush=True)
    elif command == "append-forever":
        with SQLiteStore(path) as store:
            n = 0
            while True:
                print(store.append(make_record({"n": n})), flush=True)
                n += 1
    elif command == "tail":
        with SQLiteStore(path) as store:
            after = OLDEST if argv[2] == "oldest" else argv[2]
            result = store.tail(after, timeout=float(argv[3]))
            for event in result.events:
                print(event.offset, event.data, flush=True)
    elif command == "durable":
        _durable(path, argv[2])
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
