"""A child process for the multi-process and crash tests (run as a script).

Usage::

    python _child.py open-append PATH GO_FILE   # wait for GO_FILE, open, append one
    python _child.py append PATH COUNT TAG      # append COUNT records, print each offset
    python _child.py append-forever PATH        # append until killed, print each offset
    python _child.py tail PATH AFTER TIMEOUT    # wait for events after AFTER, print them
    python _child.py race PATH ROUNDS ME OTHER  # per round: read the end, meet OTHER,
                                                # append expecting it; print the outcome

Each offset is printed (and flushed) only after ``append`` returned, so whatever the
parent reads was committed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from eventbus.core import NEWEST, OLDEST, AppendConflictError
from eventbus.core.testing import make_record
from eventbus.sqlite import SQLiteStore


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
    elif command == "race":
        rounds, me, other = int(argv[2]), argv[3], argv[4]
        folder = Path(path).parent
        with SQLiteStore(path) as store:
            for n in range(rounds):
                end = store.read(NEWEST).next
                # Both read the end before either appends: a file each as a barrier.
                (folder / f"ready-{me}-{n}").touch()
                while not (folder / f"ready-{other}-{n}").exists():
                    time.sleep(0.0005)
                try:
                    won = store.append_expecting([make_record({"tag": me, "n": n})], end)
                    print(n, end, "won", won[0], flush=True)
                except AppendConflictError as exc:
                    print(n, exc.expected, "lost", exc.current, flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
