"""``eventbus verify`` (_verify.py): every unreadable record, found past the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._support import corrupt, fill, records
from .conftest import run

if TYPE_CHECKING:
    from pathlib import Path


def test_a_clean_log_verifies(db: Path) -> None:
    fill(db, records(3))
    result = run("verify", f"sqlite:{db}")
    assert (result.returncode, result.stdout) == (0, f"3 records in sqlite:{db}: 0 invalid\n")


def test_rows_corrupted_with_raw_sqlite_are_each_reported(db: Path) -> None:
    offsets = fill(db, records(6))
    corrupt(db, (2, "metadata", "[1, 2]"), (4, "timestamp", "yesterday"), (5, "data", '{"n": '))
    result = run("verify", f"sqlite:{db}")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"offset {offsets[1]}: metadata: The event at offset {offsets[1]}")
    assert lines[1].startswith(f"offset {offsets[3]}: timestamp: ")
    assert lines[2].startswith(f"offset {offsets[4]}: data: not JSON: ")
    assert lines[3:] == [f"6 records in sqlite:{db}: 3 invalid"]


def test_verify_reads_a_durable_stream(ds_store_url: str) -> None:
    from eventbus.core import open_store

    store = open_store(ds_store_url)
    store.append_batch(records(4))
    store.close()  # type: ignore[attr-defined]
    result = run("verify", ds_store_url)
    assert (result.returncode, result.stdout) == (0, f"4 records in {ds_store_url}: 0 invalid\n")
