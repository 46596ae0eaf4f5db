"""SQLite specifics of leases; the contract itself runs through the conformance kit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventbus.core import LeaseLostError, Owner, StoreCorruptError
from eventbus.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("column", "value"),
    [("token", "'seven'"), ("beat", "1.5"), ("released", "2"), ("owner", "'no-colons'")],
)
def test_a_hand_edited_lease_row_is_reported_as_corrupt(
    tmp_path: Path, column: str, value: str
) -> None:
    path = tmp_path / "events.db"
    with SQLiteStore(path) as store:
        assert store.claim_lease("billing", Owner("h", 1, "i"), None) is not None
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE leases SET {column} = {value}")
    conn.commit()
    conn.close()
    with SQLiteStore(path) as store, pytest.raises(StoreCorruptError) as caught:
        store.read_lease("billing")
    assert "'billing'" in str(caught.value)
    assert "edited by hand" in str(caught.value)
    assert caught.value.field == "lease"


def test_a_refused_fenced_write_names_the_new_owner(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "events.db") as store:
        old = store.claim_lease("billing", Owner("host-a", 1, "a"), None)
        assert old is not None
        new = store.claim_lease("billing", Owner("host-b", 2, "b"), old)
        assert new is not None
        with pytest.raises(LeaseLostError) as caught:
            store.save_checkpoint_fenced(old, store.read().next)
    message = str(caught.value)
    assert "'billing'" in message
    assert "host-a:1:a" in message
    assert f"host-b:2:b claimed it with token {new.token}" in message


def test_wait_lease_refuses_a_negative_timeout(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "events.db") as store, pytest.raises(ValueError, match="-1"):
        store.wait_lease("billing", None, timeout=-1)
