"""Tests of the ``CheckpointStore`` capability."""

from __future__ import annotations

import pytest

from eventbus.core._store import NEWEST, OLDEST, CheckpointListing, CheckpointStore, EventStore

from ._fixtures import StoreFixtures, lacks

__all__ = ["CheckpointContract"]


class CheckpointContract(StoreFixtures):
    """Checkpoints: absent versus saved ``OLDEST``, overwrite, resume, rejected input;
    listing and deleting them (``CheckpointListing``)."""

    def test_checkpoint_absent_is_none(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        assert store.load_checkpoint("never-saved") is None

    def test_checkpoint_saved_oldest_is_not_absent(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        store.save_checkpoint("sub", OLDEST)
        assert store.load_checkpoint("sub") is OLDEST

    def test_checkpoint_saves_overwrites_and_resumes(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        records, offsets = self.append_many(store, 4)
        store.save_checkpoint("sub", offsets[1])
        saved = store.load_checkpoint("sub")
        assert saved == offsets[1]
        assert saved is not None
        rest = self.read_all(store, saved)
        assert [e.event_id for e in rest] == [r.event_id for r in records[2:]]
        store.save_checkpoint("sub", offsets[3])
        assert store.load_checkpoint("sub") == offsets[3]
        store.save_checkpoint("sub", OLDEST)
        assert store.load_checkpoint("sub") is OLDEST

    def test_checkpoint_ids_are_independent(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        _, offsets = self.append_many(store, 2)
        names = ["a", "b", "A", "a/b", "a b", "\u00e9\U0001f600", "x" * 200]
        for index, name in enumerate(names):
            store.save_checkpoint(name, offsets[index % 2])
        for index, name in enumerate(names):
            assert store.load_checkpoint(name) == offsets[index % 2], name
        assert store.load_checkpoint("c") is None

    def test_checkpoint_rejects_newest_and_keeps_the_old_value(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        _, offsets = self.append_many(store, 1)
        with pytest.raises(ValueError, match="NEWEST"):
            store.save_checkpoint("sub", NEWEST)  # type: ignore[arg-type]
        assert store.load_checkpoint("sub") is None
        store.save_checkpoint("sub", offsets[0])
        with pytest.raises(ValueError, match="NEWEST"):
            store.save_checkpoint("sub", NEWEST)  # type: ignore[arg-type]
        assert store.load_checkpoint("sub") == offsets[0]

    def test_checkpoint_rejects_empty_subscription_id(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointStore):
            lacks(CheckpointStore)
        with pytest.raises(ValueError, match="''"):
            store.save_checkpoint("", OLDEST)
        with pytest.raises(ValueError, match="''"):
            store.load_checkpoint("")

    def test_checkpoints_are_listed_by_id_and_deleted(self, store: EventStore) -> None:
        if not isinstance(store, CheckpointListing) or not isinstance(store, CheckpointStore):
            lacks(CheckpointListing)
        assert store.list_checkpoints() == {}
        _, offsets = self.append_many(store, 2)
        store.save_checkpoint("b", offsets[1])
        store.save_checkpoint("a", OLDEST)
        store.save_checkpoint("c", offsets[0])
        listed = store.list_checkpoints()
        assert list(listed.items()) == [("a", OLDEST), ("b", offsets[1]), ("c", offsets[0])]
        assert store.delete_checkpoint("b") is True
        assert store.delete_checkpoint("b") is False
        assert store.load_checkpoint("b") is None
        assert store.list_checkpoints() == {"a": OLDEST, "c": offsets[0]}
        with pytest.raises(ValueError, match="''"):
            store.delete_checkpoint("")
