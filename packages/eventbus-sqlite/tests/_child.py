"""A child process for the multi-process and crash tests (run as a script).

Usage::

    python _child.py open-append PATH GO_FILE   # wait for GO_FILE, open, append one
    python _child.py append PATH COUNT TAG      # append COUNT records, print each offset
    python _child.py append-forever PATH        # append until killed, print each offset
    python _child.py tail PATH AFTER TIMEOUT    # wait for events after AFTER, print them

Each offset is printed (and flushed) only after ``append`` returned, so whatever the
parent reads was committed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from eventbus.core import OLDEST
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
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
