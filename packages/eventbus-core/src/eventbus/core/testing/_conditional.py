"""Tests of the ``ConditionalAppendStore`` capability: append only if the log's end is unmoved."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar

import pytest

from eventbus.core._exceptions import AppendConflictError, OffsetError
from eventbus.core._store import NEWEST, OLDEST, Checkpoint, ConditionalAppendStore, EventStore

from ._fixtures import StoreFixtures, lacks, supported
from ._records import make_record
from ._threads import run_threads

__all__ = ["ConditionalAppendContract"]


def _conditional(store: EventStore) -> ConditionalAppendStore:
    if not isinstance(store, ConditionalAppendStore):
        lacks(ConditionalAppendStore)
    with supported():  # a store whose backend lacks the feature says so on first use
        store.append_expecting([], store.read(NEWEST).next)
    return store


class ConditionalAppendContract(StoreFixtures):
    """Conditional appends: success at the expected end, a typed conflict otherwise."""

    malformed_offsets: ClassVar[tuple[str, ...]]
    wake_timeout: ClassVar[float]

    def test_conditional_append_on_an_empty_log_expects_oldest(self, store: EventStore) -> None:
        conditional = _conditional(store)
        records = [make_record(), make_record()]
        offsets = conditional.append_expecting(records, OLDEST)
        assert len(offsets) == 2
        self.assert_increasing(store, offsets)
        self.assert_log(store, records, offsets)
        assert store.read(NEWEST).next == offsets[-1]

    def test_conditional_append_at_the_current_end_succeeds(self, store: EventStore) -> None:
        conditional = _conditional(store)
        records, offsets = self.append_many(store, 3)
        more = [make_record()]
        offsets += conditional.append_expecting(more, store.read(NEWEST).next)
        again = [make_record(), make_record()]
        offsets += conditional.append_expecting(again, offsets[-1])
        self.assert_increasing(store, offsets)
        self.assert_log(store, records + more + again, offsets)

    def test_conditional_append_conflict_carries_the_current_end(self, store: EventStore) -> None:
        conditional = _conditional(store)
        records, offsets = self.append_many(store, 3)
        for stale in (OLDEST, offsets[0], offsets[1]):
            with pytest.raises(AppendConflictError) as caught:
                conditional.append_expecting([make_record()], stale)
            assert (caught.value.expected, caught.value.current) == (stale, offsets[-1])
        self.assert_log(store, records, offsets)  # nothing stored by the refused appends

    def test_conditional_append_of_nothing_only_checks(self, store: EventStore) -> None:
        conditional = _conditional(store)
        assert conditional.append_expecting([], OLDEST) == []
        _, offsets = self.append_many(store, 1)
        assert conditional.append_expecting([], offsets[0]) == []
        with pytest.raises(AppendConflictError) as caught:
            conditional.append_expecting([], OLDEST)
        assert caught.value.current == offsets[0]
        assert len(self.read_all(store)) == 1

    def test_conditional_append_rejects_a_malformed_offset(self, store: EventStore) -> None:
        conditional = _conditional(store)
        self.append_many(store, 1)
        for bad in self.malformed_offsets:
            with pytest.raises(OffsetError):
                conditional.append_expecting([make_record()], bad)
        assert len(self.read_all(store)) == 1

    def test_conditional_append_racing_pairs_have_exactly_one_winner(
        self, store: EventStore
    ) -> None:
        conditional = _conditional(store)
        rounds = 20
        barrier = threading.Barrier(2)
        lock = threading.Lock()
        outcomes: list[tuple[int, Checkpoint, str]] = []  # (round, expected, won or current)

        def writer() -> None:
            for round_ in range(rounds):
                barrier.wait(self.wake_timeout)
                end = store.read(NEWEST).next
                barrier.wait(self.wake_timeout)  # both read the same end, then race
                try:
                    won = conditional.append_expecting([make_record()], end)[0]
                    outcome = (round_, end, "won " + won)
                except AppendConflictError as exc:
                    outcome = (round_, exc.expected, f"lost to {exc.current}")
                with lock:
                    outcomes.append(outcome)

        run_threads([writer, writer], timeout=60)
        for round_ in range(rounds):
            pair = sorted(o[2] for o in outcomes if o[0] == round_)
            assert len(pair) == 2
            assert pair[0].startswith("lost to "), pair
            assert pair[1].startswith("won "), pair
            assert len({o[1] for o in outcomes if o[0] == round_}) == 1, "both expected one end"
            assert pair[0].removeprefix("lost to ") == pair[1].removeprefix("won "), (
                "the loser must see the winner's event as the end"
            )
        assert len(self.read_all(store)) == rounds

    def test_conditional_append_sees_another_instance(
        self, store: EventStore, second_instance: Callable[[EventStore], EventStore]
    ) -> None:
        conditional = _conditional(store)
        other = second_instance(store)
        assert isinstance(other, ConditionalAppendStore)
        mine = conditional.append_expecting([make_record()], OLDEST)
        theirs = other.append_expecting([make_record()], mine[-1])
        with pytest.raises(AppendConflictError) as caught:
            conditional.append_expecting([make_record()], mine[-1])
        assert caught.value.current == theirs[-1]
