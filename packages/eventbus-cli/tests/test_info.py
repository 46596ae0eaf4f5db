"""``eventbus info`` (_info.py): counts, ends, size, types, subscriptions and their lag."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from eventbus.core import OLDEST, MemoryStore, Owner
from eventbus.sqlite import SQLiteStore

from ._support import corrupt, fill, fingerprint, records
from .conftest import run

if TYPE_CHECKING:
    from pathlib import Path


def test_info_counts_types_and_the_lag_of_each_subscription(db: Path) -> None:
    offsets = fill(db, records(3, "orders.placed"), records(2, "orders.shipped", 3))
    with SQLiteStore(db) as store:
        store.save_checkpoint("billing", offsets[1])  # 3 events behind
        store.save_checkpoint("audit", offsets[-1])  # caught up
        store.save_checkpoint("replayer", OLDEST)  # 5 behind
        owned = store.claim_lease("billing", Owner("worker-host", 7, "abc"), None)
        released = store.claim_lease("audit", Owner("worker-host", 8, "def"), None)
        assert owned is not None
        assert released is not None
        store.release_lease(released)
    result = run("info", f"sqlite:{db}", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events"] == 5
    assert summary["unreadable"] == 0
    assert summary["store"] == "SQLiteStore"
    assert summary["first"] == {"offset": offsets[0], "timestamp": "2026-01-01T00:00:00.000Z"}
    assert summary["last"] == {"offset": offsets[4], "timestamp": "2026-01-01T00:00:04.000Z"}
    assert summary["types"] == {"orders.placed": 3, "orders.shipped": 2}
    assert summary["size_bytes"] >= db.stat().st_size
    assert summary["subscriptions"] == [
        {"id": "audit", "checkpoint": offsets[-1], "lag": 0, "owner": None},
        {"id": "billing", "checkpoint": offsets[1], "lag": 3, "owner": "worker-host:7:abc"},
        {"id": "replayer", "checkpoint": "oldest", "lag": 5, "owner": None},
    ]
    text = run("info", f"sqlite:{db}").stdout
    assert "worker-host:7:abc" in text
    assert "worker-host:8:def" not in text, "a released lease has no owner"


def test_info_as_text_shows_the_same_in_tables(db: Path) -> None:
    offsets = fill(db, records(2, "orders.placed"))
    with SQLiteStore(db) as store:
        store.save_checkpoint("billing", offsets[0])
    result = run("info", f"sqlite:{db}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"sqlite:{db} (SQLiteStore)" in out
    assert "events  2" in out
    assert f"first   {offsets[0]}  2026-01-01T00:00:00.000Z" in out
    assert "orders.placed" in out
    assert "billing" in out
    assert "size    " in out


def test_info_on_an_empty_store_says_so(db: Path) -> None:
    result = run("info", f"sqlite:{db}")
    assert result.returncode == 0, result.stderr
    assert "events  0" in result.stdout
    assert "subscriptions: none" in result.stdout
    assert "first" not in result.stdout
    summary = json.loads(run("info", "--json", f"sqlite:{db}").stdout)
    assert (summary["events"], summary["first"], summary["last"]) == (0, None, None)
    assert (summary["types"], summary["subscriptions"]) == ({}, [])


def test_info_counts_unreadable_records_and_reads_past_them(db: Path) -> None:
    fill(db, records(3))
    corrupt(db, (2, "metadata", "not json"))
    result = run("info", f"sqlite:{db}", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["events"], summary["unreadable"]) == (2, 1)
    text = run("info", f"sqlite:{db}")
    assert "unreadable  1 (see: eventbus verify)" in text.stdout


def test_a_checkpoint_that_names_no_event_has_an_unknown_lag(db: Path) -> None:
    offsets = fill(db, records(3))
    with SQLiteStore(db) as store:
        store.save_checkpoint("billing", offsets[1])
    corrupt(db, (2, "metadata", "not json"))
    result = run("info", f"sqlite:{db}", "--json")
    assert json.loads(result.stdout)["subscriptions"] == [
        {"id": "billing", "checkpoint": offsets[1], "lag": None, "owner": None}
    ]
    assert "billing  " in run("info", f"sqlite:{db}").stdout.replace("│", " ")


def test_info_never_writes_to_a_live_database(db: Path) -> None:
    fill(db, records(4))
    before = fingerprint(db)
    watcher = sqlite3.connect(db)
    version = watcher.execute("PRAGMA data_version").fetchone()[0]
    for args in (["info"], ["info", "--json"], ["tail", "-n", "2"], ["verify"]):
        result = run(*args, f"sqlite:{db}")
        assert result.returncode == 0, result.stderr
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
    watcher.close()
    assert fingerprint(db) == before


def test_info_on_a_durable_stream_says_it_cannot_list_subscriptions(ds_store_url: str) -> None:
    from eventbus.core import open_store

    store = open_store(ds_store_url)
    store.append_batch(records(2))
    store.close()  # type: ignore[attr-defined]
    result = run("info", ds_store_url, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["events"], summary["subscriptions"], summary["size_bytes"]) == (2, None, None)
    text = run("info", ds_store_url)
    assert "subscriptions: this store cannot list its checkpoints" in text.stdout


def test_info_on_a_missing_stream_fails_and_creates_nothing(ds_store_url: str) -> None:
    result = run("info", ds_store_url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot open {ds_store_url}: ")
    assert len(result.stderr.splitlines()) == 1
    again = run("checkpoints", "set", ds_store_url, "mailer", "oldest")
    assert again.returncode == 1
    assert run("info", ds_store_url).returncode == 1  # still not there


def test_a_store_without_leases_shows_no_owner() -> None:
    class NoLeases(MemoryStore):
        """A store that lists checkpoints but keeps no leases."""

        read_lease = None  # type: ignore[assignment]  # hides the capability

    from eventbus.cli._info import owner_of

    store = NoLeases()
    store.save_checkpoint("billing", OLDEST)
    assert owner_of(store, "billing") is None
    assert owner_of(MemoryStore(), "billing") is None
