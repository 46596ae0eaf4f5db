"""Tests of the ``LeaseStore`` capability: one owner per subscription id, fenced writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar

import pytest

from eventbus.core._exceptions import LeaseLostError
from eventbus.core._store import OLDEST, EventStore, Lease, LeaseStore, Owner

from ._fixtures import StoreFixtures, lacks
from ._threads import Background, run_threads

__all__ = ["LeaseContract"]


def _owner(name: str) -> Owner:
    return Owner("host-" + name, 4242, "instance-" + name)


def _leases(store: EventStore) -> LeaseStore:
    if not isinstance(store, LeaseStore):
        lacks(LeaseStore)
    return store


class LeaseContract(StoreFixtures):
    """Claim, renew, release, wait and the fenced checkpoint write, within and across instances."""

    wake_timeout: ClassVar[float]

    def test_lease_claim_when_never_claimed(self, store: EventStore) -> None:
        leases = _leases(store)
        assert leases.read_lease("sub") is None
        lease = leases.claim_lease("sub", _owner("a"), None)
        assert lease is not None
        assert (lease.subscription_id, lease.owner, lease.beat, lease.released) == (
            "sub",
            _owner("a"),
            0,
            False,
        )
        assert lease.token >= 1
        assert leases.read_lease("sub") == lease
        assert leases.read_lease("other") is None, "leases of different ids are independent"

    def test_lease_claim_fails_when_the_record_changed(self, store: EventStore) -> None:
        leases = _leases(store)
        first = leases.claim_lease("sub", _owner("a"), None)
        assert first is not None
        assert leases.claim_lease("sub", _owner("b"), None) is None, "claimed: not free any more"
        renewed = leases.renew_lease(first)
        assert leases.claim_lease("sub", _owner("b"), first) is None, "renewed since seen"
        assert leases.read_lease("sub") == renewed

    def test_lease_renew_keeps_the_token_and_changes_the_record(self, store: EventStore) -> None:
        leases = _leases(store)
        lease = leases.claim_lease("sub", _owner("a"), None)
        assert lease is not None
        once = leases.renew_lease(lease)
        twice = leases.renew_lease(once)
        assert (once.token, twice.token) == (lease.token, lease.token)
        assert len({lease, once, twice}) == 3, "every renewal must change the record"
        assert leases.read_lease("sub") == twice
        assert (twice.owner, twice.released) == (_owner("a"), False)

    def test_lease_tokens_grow_with_every_claim(self, store: EventStore) -> None:
        leases = _leases(store)
        seen: Lease | None = None
        tokens = []
        for name in "abcd":
            claimed = leases.claim_lease("sub", _owner(name), seen)
            assert claimed is not None
            assert claimed.owner == _owner(name)
            tokens.append(claimed.token)
            seen = claimed if name in "ab" else leases.renew_lease(claimed)
        assert tokens == sorted(set(tokens)), f"tokens must strictly grow, got {tokens}"

    def test_lease_renew_after_takeover_raises(self, store: EventStore) -> None:
        leases = _leases(store)
        old = leases.claim_lease("sub", _owner("a"), None)
        assert old is not None
        new = leases.claim_lease("sub", _owner("b"), old)
        assert new is not None
        with pytest.raises(LeaseLostError, match="sub"):
            leases.renew_lease(old)
        assert leases.read_lease("sub") == new, "a refused renewal changes nothing"

    def test_lease_release_frees_the_id(self, store: EventStore) -> None:
        leases = _leases(store)
        lease = leases.claim_lease("sub", _owner("a"), None)
        assert lease is not None
        leases.release_lease(lease)
        released = leases.read_lease("sub")
        assert released is not None
        assert released.released
        assert released.owner == lease.owner
        assert released.token >= lease.token, "a release may fence with a new token"
        with pytest.raises(LeaseLostError):
            leases.renew_lease(lease)
        taken = leases.claim_lease("sub", _owner("b"), released)
        assert taken is not None
        assert taken.token > lease.token
        assert not taken.released
        leases.release_lease(lease)  # a lost lease's release does nothing
        assert leases.read_lease("sub") == taken

    def test_lease_fences_checkpoint_writes(self, store: EventStore) -> None:
        leases = _leases(store)
        _, offsets = self.append_many(store, 3)
        old = leases.claim_lease("sub", _owner("a"), None)
        assert old is not None
        leases.save_checkpoint_fenced(old, offsets[0])
        assert leases.load_checkpoint("sub") == offsets[0]
        renewed = leases.renew_lease(old)
        leases.save_checkpoint_fenced(old, OLDEST)  # a renewal keeps the token
        assert leases.load_checkpoint("sub") is OLDEST
        new = leases.claim_lease("sub", _owner("b"), renewed)
        assert new is not None
        with pytest.raises(LeaseLostError):
            leases.save_checkpoint_fenced(old, offsets[2])
        assert leases.load_checkpoint("sub") is OLDEST, "a fenced-off write changes nothing"
        leases.save_checkpoint_fenced(new, offsets[1])
        leases.release_lease(new)
        with pytest.raises(LeaseLostError):
            leases.save_checkpoint_fenced(new, offsets[2])
        assert leases.load_checkpoint("sub") == offsets[1]

    def test_lease_fenced_checkpoint_of_a_never_claimed_id_is_refused(
        self, store: EventStore
    ) -> None:
        leases = _leases(store)
        ghost = Lease("sub", _owner("a"), 1)
        with pytest.raises(LeaseLostError):
            leases.save_checkpoint_fenced(ghost, OLDEST)
        assert leases.load_checkpoint("sub") is None

    def test_lease_concurrent_claims_have_one_winner(self, store: EventStore) -> None:
        leases = _leases(store)
        seen = leases.claim_lease("sub", _owner("old"), None)
        assert seen is not None
        winners: list[Lease] = []
        lock = threading.Lock()

        def claim(name: str) -> Callable[[], None]:
            def run() -> None:
                lease = leases.claim_lease("sub", _owner(name), seen)
                if lease is not None:
                    with lock:
                        winners.append(lease)

            return run

        run_threads([claim(str(n)) for n in range(8)], timeout=60)
        assert len(winners) == 1, f"exactly one claim may win, got {winners}"
        assert leases.read_lease("sub") == winners[0]

    def test_lease_wait_returns_a_changed_record_at_once(self, store: EventStore) -> None:
        leases = _leases(store)
        lease = leases.claim_lease("sub", _owner("a"), None)
        start = time.monotonic()
        assert leases.wait_lease("sub", None, timeout=30) == lease
        assert time.monotonic() - start < self.wake_timeout

    def test_lease_wait_times_out_on_an_unchanged_record(self, store: EventStore) -> None:
        leases = _leases(store)
        lease = leases.claim_lease("sub", _owner("a"), None)
        start = time.monotonic()
        assert leases.wait_lease("sub", lease, timeout=0.2) == lease
        assert time.monotonic() - start >= 0.2
        assert leases.wait_lease("never", None, timeout=0.05) is None

    def test_lease_wait_wakes_on_a_renewal(self, store: EventStore) -> None:
        leases = _leases(store)
        lease = leases.claim_lease("sub", _owner("a"), None)
        assert lease is not None
        waiter = Background(lambda: leases.wait_lease("sub", lease, timeout=60))
        assert waiter.started.wait(self.wake_timeout)
        renewed = leases.renew_lease(lease)
        assert waiter.join(self.wake_timeout), "wait_lease did not wake on a renewal"
        assert waiter.error is None
        assert waiter.result == renewed

    def test_lease_is_shared_by_instances(
        self, store: EventStore, second_instance: Callable[[EventStore], EventStore]
    ) -> None:
        leases = _leases(store)
        other = second_instance(store)
        assert isinstance(other, LeaseStore)
        _, offsets = self.append_many(store, 2)
        mine = leases.claim_lease("sub", _owner("a"), None)
        assert mine is not None
        assert other.read_lease("sub") == mine
        assert other.claim_lease("sub", _owner("b"), None) is None
        waiter = Background(lambda: other.wait_lease("sub", mine, timeout=60))
        assert waiter.started.wait(self.wake_timeout)
        renewed = leases.renew_lease(mine)
        assert waiter.join(self.wake_timeout), "another instance's wait missed a renewal"
        assert waiter.result == renewed
        theirs = other.claim_lease("sub", _owner("b"), renewed)
        assert theirs is not None
        with pytest.raises(LeaseLostError):
            leases.save_checkpoint_fenced(mine, offsets[1])
        other.save_checkpoint_fenced(theirs, offsets[0])
        assert leases.load_checkpoint("sub") == offsets[0]

    def test_lease_survives_reopen(
        self, store: EventStore, reopen: Callable[[EventStore], EventStore]
    ) -> None:
        leases = _leases(store)
        lease = leases.claim_lease("sub", _owner("a"), None)
        assert lease is not None
        renewed = leases.renew_lease(lease)
        again = reopen(store)
        assert isinstance(again, LeaseStore)
        assert again.read_lease("sub") == renewed
        taken = again.claim_lease("sub", _owner("b"), renewed)
        assert taken is not None
        assert taken.token > lease.token, "tokens must keep growing after a reopen"
