"""Tests of the ``OffsetOrdering`` capability."""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest

from eventbus.core._exceptions import OffsetError
from eventbus.core._store import EventStore, OffsetOrdering

from ._fixtures import StoreFixtures, lacks
from ._records import make_record

__all__ = ["OrderingContract"]


class OrderingContract(StoreFixtures):
    """``compare_offsets`` follows log order over every pair and rejects bad offsets."""

    malformed_offsets: ClassVar[tuple[str, ...]]

    def test_compare_offsets_follows_log_order(self, store: EventStore) -> None:
        if not isinstance(store, OffsetOrdering):
            lacks(OffsetOrdering)
        _, offsets = self.append_many(store, 4)
        offsets += store.append_batch([make_record(), make_record()])
        for (i, a), (j, b) in itertools.product(enumerate(offsets), repeat=2):
            result = store.compare_offsets(a, b)
            assert (result > 0) - (result < 0) == (i > j) - (i < j), (a, b, result)

    def test_compare_offsets_rejects_malformed_offsets(self, store: EventStore) -> None:
        if not isinstance(store, OffsetOrdering):
            lacks(OffsetOrdering)
        _, offsets = self.append_many(store, 1)
        for offset in self.malformed_offsets:
            with pytest.raises(OffsetError):
                store.compare_offsets(offset, offsets[0])
            with pytest.raises(OffsetError):
                store.compare_offsets(offsets[0], offset)
