"""docs/cli.md: its sample sessions, run again in order on the same store, print the same."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sqlite3
import subprocess
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventbus.core import EventRecord
from eventbus.sqlite import SQLiteStore

from .conftest import ROOT, script

if TYPE_CHECKING:
    from pathlib import Path

# Samples that cannot print the same twice: a live follow, a server, a rate, an owner
# process (busy.db: its pid and instance differ each run), and --version (it lists the
# eventbus distributions installed where it runs; test_app checks its form).
_NOT_REPEATABLE = re.compile(
    r" -f | --follow |durablestream\+|^eventbus copy |busy\.db|^eventbus --version"
)


def _sessions() -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of the page's console blocks with the lines it printed."""
    text = (ROOT / "docs" / "cli.md").read_text()
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def _sample_store(path: Path) -> None:
    """The store the page was written on: five orders placed, one shipped, two subscribers."""
    records = [
        EventRecord(
            f"01KBQ7Y0{n:018d}",
            "orders.placed",
            json.dumps({"order_id": f"o-{n + 1}", "amount": 10.0 + n}),
            datetime(2026, 12, 1, 9, 0, n, tzinfo=UTC),
            {"tenant": "acme"},
            "bus-1",
        )
        for n in range(5)
    ]
    records.append(
        EventRecord(
            "01KBQ7Y1000000000000000001",
            "orders.shipped",
            json.dumps({"order_id": "o-1"}),
            datetime(2026, 12, 1, 9, 5, tzinfo=UTC),
            {},
            "bus-2",
        )
    )
    with SQLiteStore(path) as store:
        offsets = store.append_batch(records)
        store.save_checkpoint("mailer", offsets[-1])
        store.save_checkpoint("billing", offsets[2])


def test_the_sample_sessions_print_what_the_page_shows(tmp_path: Path) -> None:
    _sample_store(tmp_path / "events.db")
    ran = 0
    for command, expected in _sessions():
        words = shlex.split(command)
        if words[0] == "sqlite3":  # the page's raw edit, made with the stdlib module
            with contextlib.closing(sqlite3.connect(tmp_path / words[1])) as conn, conn:
                conn.execute(words[2])
            continue
        if _NOT_REPEATABLE.search(f"{command} "):
            continue
        assert words[0] == "eventbus", command
        result = subprocess.run(
            [*script(), *words[1:]],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        printed = [line.rstrip() for line in result.stdout.splitlines()]
        assert printed == expected, f"$ {command}"
        ran += 1
    assert ran >= 14
