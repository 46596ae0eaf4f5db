"""The server behaviours the lease logs rely on, each against the real reference server.

Each test is named for the protocol rule (PROTOCOL.md §5.2.1 idempotent producers,
``Stream-Seq``, stream closure, create) that :mod:`eventbus.durablestream._lease_log`
builds on; if a server breaks one, the test naming it fails, not only some lease test
downstream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from eventbus.durablestream import (
    AppendResult,
    BadRequestError,
    DurableStreamClient,
    ProducerSequenceGapError,
    SequenceConflictError,
    StaleEpochError,
    StreamClosedError,
    StreamExistsError,
)

JSON = "application/json"


@pytest.fixture
def client(any_url: str) -> Iterator[DurableStreamClient]:
    with DurableStreamClient(any_url) as client:
        yield client


@pytest.fixture
def log(client: DurableStreamClient) -> str:
    url = f"/v1/stream/lease-rule-{uuid.uuid4().hex}"
    client.create(url, content_type=JSON)
    return url


def fenced(
    client: DurableStreamClient,
    url: str,
    epoch: int,
    seq: int,
    value: Any,
    stream_seq: str | None = None,
) -> AppendResult:
    headers = {"Producer-Id": "p", "Producer-Epoch": str(epoch), "Producer-Seq": str(seq)}
    return client.append(
        url, json.dumps([value]), content_type=JSON, seq=stream_seq, headers=headers
    )


def stored(client: DurableStreamClient, url: str) -> list[Any]:
    return client.read(url).json()


def test_new_producer_epoch_at_seq_0_is_stored_with_200(
    client: DurableStreamClient, log: str
) -> None:
    assert fenced(client, log, 1, 0, "claim 1").status == 200
    assert fenced(client, log, 1, 1, "beat").status == 200
    assert fenced(client, log, 2, 0, "claim 2").status == 200
    assert stored(client, log) == ["claim 1", "beat", "claim 2"]


def test_stale_producer_epoch_is_refused_with_403(client: DurableStreamClient, log: str) -> None:
    fenced(client, log, 1, 0, "claim 1")
    fenced(client, log, 2, 0, "claim 2")
    with pytest.raises(StaleEpochError) as refused:
        fenced(client, log, 1, 1, "zombie")
    assert refused.value.status == 403
    with pytest.raises(StaleEpochError):
        fenced(client, log, 1, 0, "late claim 1")
    assert stored(client, log) == ["claim 1", "claim 2"], "a refused append stores nothing"


def test_duplicate_seq_in_same_epoch_is_not_stored(client: DurableStreamClient, log: str) -> None:
    assert fenced(client, log, 1, 0, "claimer a").status == 200
    # A racing claimer with the same epoch and seq, and a different body: the body is not
    # compared, the request is a duplicate (204) and nothing is stored.
    assert fenced(client, log, 1, 0, "claimer b").status == 204
    fenced(client, log, 1, 1, "beat")
    assert fenced(client, log, 1, 0, "claimer c").status == 204, "seq below the last too"
    assert stored(client, log) == ["claimer a", "beat"]


def test_new_epoch_must_start_at_seq_0(client: DurableStreamClient, log: str) -> None:
    fenced(client, log, 1, 0, "claim 1")
    with pytest.raises(BadRequestError):
        fenced(client, log, 2, 1, "write under an unclaimed epoch")
    assert stored(client, log) == ["claim 1"]


def test_first_producer_contact_must_start_at_seq_0(client: DurableStreamClient, log: str) -> None:
    with pytest.raises(ProducerSequenceGapError):
        fenced(client, log, 1, 1, "write before any claim")
    assert stored(client, log) == []


def test_sequence_gap_in_same_epoch_is_refused_with_409(
    client: DurableStreamClient, log: str
) -> None:
    fenced(client, log, 1, 0, "claim 1")
    with pytest.raises(ProducerSequenceGapError):
        fenced(client, log, 1, 2, "skipped seq 1")
    assert stored(client, log) == ["claim 1"]


def test_producer_state_is_per_stream(client: DurableStreamClient, log: str) -> None:
    # A new generation starts without producer state: its first writer, with any epoch,
    # starts at seq 0 (the snapshot tells readers which epoch that must be).
    other = f"{log}.1"
    client.create(other, content_type=JSON)
    fenced(client, log, 5, 0, "epoch 5 here")
    assert fenced(client, other, 3, 0, "epoch 3 there").status == 200


def test_plain_appends_ignore_producer_epochs(client: DurableStreamClient, log: str) -> None:
    fenced(client, log, 2, 0, "claim 2")
    client.append(log, json.dumps(["unfenced"]), content_type=JSON)
    assert stored(client, log) == ["claim 2", "unfenced"]


def test_stream_seq_that_does_not_increase_is_refused_with_409(
    client: DurableStreamClient, log: str
) -> None:
    # A claim carries the index of the lease change it expects; a renewal that took it
    # first makes the claim conflict.
    fenced(client, log, 1, 0, "claim 1", stream_seq="0000000000000000")
    fenced(client, log, 1, 1, "beat", stream_seq="0000000000000001")
    with pytest.raises(SequenceConflictError):
        fenced(client, log, 2, 0, "claim 2", stream_seq="0000000000000001")
    client.append(log, json.dumps(["unfenced checkpoint"]), content_type=JSON)
    fenced(client, log, 2, 0, "claim 2", stream_seq="0000000000000002")
    assert stored(client, log) == ["claim 1", "beat", "unfenced checkpoint", "claim 2"]


def test_refused_stream_seq_does_not_advance_the_producer(
    client: DurableStreamClient, log: str
) -> None:
    fenced(client, log, 1, 0, "claim 1", stream_seq="0000000000000005")
    with pytest.raises(SequenceConflictError):
        fenced(client, log, 1, 1, "stale change", stream_seq="0000000000000005")
    # Sequence 1 was not taken by the refused request: it is stored now (200, not 204).
    assert fenced(client, log, 1, 1, "beat", stream_seq="0000000000000006").status == 200
    with pytest.raises(SequenceConflictError):
        fenced(client, log, 2, 0, "claim 2", stream_seq="0000000000000006")
    assert fenced(client, log, 2, 0, "claim 2", stream_seq="0000000000000007").status == 200
    assert stored(client, log) == ["claim 1", "beat", "claim 2"]


def test_closed_stream_refuses_appends(client: DurableStreamClient, log: str) -> None:
    client.close_stream(log, data=json.dumps([{"kind": "moved"}]), content_type=JSON)
    with pytest.raises(StreamClosedError):
        fenced(client, log, 1, 0, "after the close")
    with pytest.raises(StreamClosedError):
        client.append(log, json.dumps(["plain"]), content_type=JSON)
    with pytest.raises(StreamClosedError):
        client.close_stream(log, data=json.dumps([{"kind": "moved"}]), content_type=JSON)
    chunk = client.read(log)
    assert chunk.json() == [{"kind": "moved"}], "the final record is stored with the close"
    assert chunk.stream_closed


def test_create_of_an_existing_stream_keeps_its_data(client: DurableStreamClient, log: str) -> None:
    # Two readers finishing one move create the next generation with the same snapshot;
    # the second create is a no-op (200) and never replaces what is there.
    url = f"{log}.1"
    assert client.create(url, content_type=JSON, data=json.dumps([{"n": 1}])).created
    again = client.create(url, content_type=JSON, data=json.dumps([{"n": 2}]))
    assert not again.created
    assert stored(client, url) == [{"n": 1}]


def test_create_of_a_closed_stream_conflicts(client: DurableStreamClient, log: str) -> None:
    client.close_stream(log)
    with pytest.raises(StreamExistsError):
        client.create(log, content_type=JSON)
