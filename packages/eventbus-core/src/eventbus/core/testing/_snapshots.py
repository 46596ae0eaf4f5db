"""Tests of the ``SnapshotStore`` capability: the latest snapshot of each id, with its offset."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import ClassVar

import pytest

from eventbus.core._exceptions import OffsetError
from eventbus.core._store import NEWEST, OLDEST, EventStore, Snapshot, SnapshotStore

from ._fixtures import StoreFixtures, lacks

__all__ = ["SnapshotContract"]


def _snapshots(store: EventStore) -> SnapshotStore:
    if not isinstance(store, SnapshotStore):
        lacks(SnapshotStore)
    return store


class SnapshotContract(StoreFixtures):
    """Snapshots: absent, saved and replaced per id, any text, offsets checked, durable."""

    malformed_offsets: ClassVar[tuple[str, ...]]

    def test_snapshot_absent_is_none(self, store: EventStore) -> None:
        assert _snapshots(store).load_snapshot("never-saved") is None

    def test_snapshot_saves_and_replaces_per_id(self, store: EventStore) -> None:
        snapshots = _snapshots(store)
        _, offsets = self.append_many(store, 3)
        snapshots.save_snapshot("balance", OLDEST, "0")
        assert snapshots.load_snapshot("balance") == Snapshot("balance", OLDEST, "0")
        snapshots.save_snapshot("balance", offsets[1], '{"total": 2}')
        snapshots.save_snapshot("names", offsets[2], "[]")
        assert snapshots.load_snapshot("balance") == Snapshot("balance", offsets[1], '{"total": 2}')
        assert snapshots.load_snapshot("names") == Snapshot("names", offsets[2], "[]")
        rest = self.read_all(store, offsets[1])
        assert [e.offset for e in rest] == [offsets[2]], "a snapshot's offset is a resume point"

    def test_snapshot_keeps_any_text(self, store: EventStore) -> None:
        snapshots = _snapshots(store)
        texts = ["", "plain", json.dumps({"ünï": ["\N{GHOST}", 1.5, None]}, ensure_ascii=False)]
        texts.append("x" * 200_000)
        for number, text in enumerate(texts):
            snapshots.save_snapshot(f"s{number}", OLDEST, text)
        for number, text in enumerate(texts):
            loaded = snapshots.load_snapshot(f"s{number}")
            assert loaded is not None
            assert loaded.data == text

    def test_snapshot_rejects_bad_arguments(self, store: EventStore) -> None:
        snapshots = _snapshots(store)
        self.append_many(store, 1)
        with pytest.raises(ValueError, match="NEWEST"):
            snapshots.save_snapshot("s", NEWEST, "{}")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="snapshot id"):
            snapshots.save_snapshot("", OLDEST, "{}")
        with pytest.raises(ValueError, match="snapshot id"):
            snapshots.load_snapshot("")
        with pytest.raises(TypeError, match="text"):
            snapshots.save_snapshot("s", OLDEST, b"{}")  # type: ignore[arg-type]
        for bad in self.malformed_offsets:
            with pytest.raises(OffsetError):
                snapshots.save_snapshot("s", bad, "{}")
        assert snapshots.load_snapshot("s") is None

    def test_snapshot_survives_reopen(
        self, store: EventStore, reopen: Callable[[EventStore], EventStore]
    ) -> None:
        snapshots = _snapshots(store)
        _, offsets = self.append_many(store, 2)
        snapshots.save_snapshot("s", offsets[0], "first")
        snapshots.save_snapshot("s", offsets[1], "second")
        again = reopen(store)
        assert isinstance(again, SnapshotStore)
        assert again.load_snapshot("s") == Snapshot("s", offsets[1], "second")

    def test_snapshot_is_shared_by_instances(
        self, store: EventStore, second_instance: Callable[[EventStore], EventStore]
    ) -> None:
        snapshots = _snapshots(store)
        other = second_instance(store)
        assert isinstance(other, SnapshotStore)
        _, offsets = self.append_many(store, 1)
        snapshots.save_snapshot("s", offsets[0], "mine")
        assert other.load_snapshot("s") == Snapshot("s", offsets[0], "mine")
        other.save_snapshot("s", OLDEST, "theirs")
        assert snapshots.load_snapshot("s") == Snapshot("s", OLDEST, "theirs")
