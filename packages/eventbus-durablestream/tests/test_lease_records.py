"""The lease-log records and their fold, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from eventbus.core import OLDEST, Lease, Owner, StoreCorruptError
from eventbus.durablestream._lease_records import (
    LeaseState,
    apply_record,
    beat_record,
    checkpoint_record,
    claim_record,
    moved_record,
    release_record,
    snapshot_record,
)

A = Owner("host-a", 1, "a")
B = Owner("host-b", 2, "b")


def fold(*records: Any) -> LeaseState:
    state = LeaseState("sub")
    for record in records:
        apply_record(state, record, "/log")
    return state


def test_claims_beats_and_releases_fold_into_the_lease() -> None:
    state = fold(claim_record(1, A), beat_record(1, 1, 1), beat_record(1, 2, 2))
    assert state.lease == Lease("sub", A, 1, 2)
    assert (state.epoch, state.last_seq, state.records) == (1, 2, 3)
    assert state.next_seq(1) == 3
    assert state.next_seq(2) == 1, "a token nobody claimed starts at 1: the server refuses it"
    state = fold(claim_record(1, A), release_record(2, A))
    assert state.lease == Lease("sub", A, 2, 0, released=True)
    assert not state.is_current(1)
    assert not state.is_current(2)


def test_nothing_claimed_has_no_current_token() -> None:
    state = LeaseState("sub")
    assert state.next_seq(0) == 1, "token 0 is never claimed: even it starts at 1"
    assert not state.is_current(0)


def test_a_beat_of_a_superseded_token_changes_nothing() -> None:
    state = fold(claim_record(1, A), claim_record(2, B), beat_record(1, 1, 7))
    assert state.lease == Lease("sub", B, 2, 0)
    assert (state.epoch, state.last_seq) == (2, 0), "a record below the epoch moves nothing"


def test_a_claim_that_opens_no_new_epoch_is_ignored() -> None:
    # Only a server that lost its producer state in a crash could store it: the first counts.
    state = fold(claim_record(1, A), claim_record(1, B))
    assert state.lease == Lease("sub", A, 1, 0)


def test_the_last_checkpoint_counts_fenced_or_not() -> None:
    state = fold(
        claim_record(1, A),
        checkpoint_record("0_5", 1, 1),
        checkpoint_record(OLDEST, None, None),
    )
    assert state.checkpoint is OLDEST
    assert (state.epoch, state.last_seq) == (1, 1), "an unfenced save moves no sequence"
    assert fold(checkpoint_record("0_9", None, None)).checkpoint == "0_9"


def test_a_snapshot_carries_the_state_into_a_new_generation() -> None:
    old = fold(claim_record(3, A), beat_record(3, 1, 4), checkpoint_record("0_7", 3, 2))
    new = fold(snapshot_record(old))
    assert (new.lease, new.checkpoint, new.epoch) == (old.lease, "0_7", 3)
    assert new.next_seq(3) == 0, "the holder starts the new stream's producer state"
    assert new.next_seq(2) == 1
    empty = fold(snapshot_record(LeaseState("sub")))
    assert (empty.lease, empty.checkpoint, empty.epoch) == (None, None, 0)
    oldest = fold(snapshot_record(fold(checkpoint_record(OLDEST, None, None))))
    assert oldest.checkpoint is OLDEST


def test_a_moved_record_names_the_next_generation() -> None:
    assert fold(moved_record("/log.1")).moved_to == "/log.1"


def test_every_record_has_its_own_nonce() -> None:
    assert claim_record(1, A)["nonce"] != claim_record(1, A)["nonce"]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ("text", "kind"),
        ({"kind": "vote"}, "kind"),
        ({"kind": "claim", "token": 1, "seq": 0, "owner": "nobody"}, "owner"),
        ({"kind": "claim", "token": 1, "seq": 0, "owner": 5}, "owner"),
        ({"kind": "claim", "token": "1", "seq": 0, "owner": str(A)}, "token"),
        ({"kind": "release", "token": 1, "seq": -1, "owner": str(A)}, "seq"),
        ({"kind": "beat", "token": 1, "seq": 1}, "beat"),
        ({"kind": "checkpoint", "token": None, "offset": 5}, "offset"),
        ({"kind": "checkpoint", "token": 1, "seq": True, "offset": "0_1"}, "seq"),
        ({"kind": "snapshot", "epoch": 1, "lease": [], "checkpoint": None}, "lease"),
        ({"kind": "snapshot", "epoch": None, "lease": None, "checkpoint": None}, "epoch"),
        ({"kind": "snapshot", "epoch": 1, "lease": {"owner": str(A)}, "checkpoint": None}, "token"),
        ({"kind": "moved", "to": ""}, "to"),
    ],
)
def test_a_record_that_is_not_a_lease_record_is_reported(record: Any, field: str) -> None:
    with pytest.raises(StoreCorruptError, match=f"'/log'.*bad field '{field}'"):
        fold(record)
