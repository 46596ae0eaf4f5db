"""A checkpoint save whose response is lost after the server stored it.

The old layout numbered checkpoints and kept the older of two equal numbers, so a save
that raised after landing left the next save repeating its number, and after a restart
the server's checkpoint lagged the subscription's: an event was redelivered. Checkpoints
are now records in the subscription's log, and the last one in log order counts; these
tests lose responses (injected by a transport that forwards to the real server first) and
check that the latest save is what every instance, and a restarted server, loads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from eventbus.core import OLDEST, Owner, StoreUnavailableError
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamStore, RetryPolicy

# Three retries, quickly: four lost responses in a row make a save give up.
FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.02, jitter=False)
GIVE_UP = 4

Start = Callable[[], Any]


class LosingTransport(httpx.BaseTransport):
    """Forwards every request to the real server; loses the answer to the next ``lose``
    checkpoint POSTs (the server has stored them, the caller sees a reset)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = 0
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        if self.lose and request.method == "POST" and _is_checkpoint(request):
            self.lose -= 1
            self.lost += 1
            raise httpx.ReadError("response lost (injected)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def _is_checkpoint(request: httpx.Request) -> bool:
    records = json.loads(request.content or b"[]")
    return any(isinstance(r, dict) and r.get("kind") == "checkpoint" for r in records)


def _path() -> str:
    return f"/v1/stream/eventbus-lost-checkpoint-{uuid.uuid4().hex}"


@pytest.mark.parametrize("fenced", [False, True], ids=["unfenced", "fenced"])
def test_a_save_retried_after_a_lost_response_is_the_checkpoint(
    ds_server: Any, fenced: bool
) -> None:
    path, losing = _path(), LosingTransport()
    with DurableStreamStore(str(ds_server.url), path, retry=FAST, transport=losing) as store:
        first, second = store.append_batch([make_record(), make_record()])
        lease = store.claim_lease("sub", Owner("host", 1, "a"), None) if fenced else None
        save = _saver(store, lease)
        save(first)
        losing.lose = 1
        save(second)  # the retry finds (fenced) or repeats (unfenced) what landed
        assert losing.lost == 1
        assert store.load_checkpoint("sub") == second
    with DurableStreamStore(str(ds_server.url), path) as fresh:
        assert fresh.load_checkpoint("sub") == second


@pytest.mark.parametrize("fenced", [False, True], ids=["unfenced", "fenced"])
def test_a_save_that_gave_up_after_it_landed_is_not_undone_by_the_next(
    ds_server: Any, fenced: bool
) -> None:
    path, losing = _path(), LosingTransport()
    with DurableStreamStore(str(ds_server.url), path, retry=FAST, transport=losing) as store:
        offsets = store.append_batch([make_record() for _ in range(3)])
        lease = store.claim_lease("sub", Owner("host", 1, "a"), None) if fenced else None
        save = _saver(store, lease)
        save(offsets[0])
        losing.lose = GIVE_UP
        with pytest.raises(StoreUnavailableError):
            save(offsets[1])  # stored, but every answer was lost
        assert losing.lost == GIVE_UP
        with DurableStreamStore(str(ds_server.url), path) as other:
            assert other.load_checkpoint("sub") == offsets[1]  # what the server holds
        save(offsets[2])  # the failed save used up its place: this one lands after it
        assert store.load_checkpoint("sub") == offsets[2]
    with DurableStreamStore(str(ds_server.url), path) as fresh:
        assert fresh.load_checkpoint("sub") == offsets[2]


def test_after_a_lost_answer_and_a_server_restart_the_server_has_the_latest_save(
    start_file_server: Start,
) -> None:
    path, losing = _path(), LosingTransport()
    server = start_file_server()
    with DurableStreamStore(str(server.url), path, retry=FAST, transport=losing) as store:
        offsets = store.append_batch([make_record() for _ in range(3)])
        lease = store.claim_lease("sub", Owner("host", 1, "a"), None)
        assert lease is not None
        store.save_checkpoint_fenced(lease, offsets[0])
        losing.lose = GIVE_UP
        with pytest.raises(StoreUnavailableError):
            store.save_checkpoint_fenced(lease, offsets[1])
        store.save_checkpoint_fenced(lease, offsets[2])
    server.process.kill()  # SIGKILL: nothing flushed beyond what the appends did
    server.process.wait()
    with DurableStreamStore(str(start_file_server().url), path) as restarted:
        assert restarted.load_checkpoint("sub") == offsets[2]


def _saver(store: DurableStreamStore, lease: Any) -> Callable[[Any], None]:
    if lease is None:
        return lambda offset: store.save_checkpoint("sub", offset)
    return lambda offset: store.save_checkpoint_fenced(lease, offset)


class RefusingTransport(LosingTransport):
    """Refuses the connection of every checkpoint POST while ``refuse`` is set."""

    refuse = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refuse and request.method == "POST" and _is_checkpoint(request):
            self.lost += 1
            raise httpx.ConnectError("connection refused (injected)", request=request)
        return super().handle_request(request)


def test_a_save_that_never_reached_the_server_is_retried_once_not_twice_over(
    ds_server: Any,
) -> None:
    path, refusing = _path(), RefusingTransport()
    with DurableStreamStore(str(ds_server.url), path, retry=FAST, transport=refusing) as store:
        (offset,) = store.append_batch([make_record()])
        store.save_checkpoint("sub", offset)  # the log exists: the next POST is the save
        refusing.refuse = True
        with pytest.raises(StoreUnavailableError, match="refused"):
            store.save_checkpoint("sub", offset)
        # The client retried the unsent request; the lease log did not retry it again.
        assert refusing.lost == 1 + FAST.max_retries


def test_resending_a_lost_answer_stops_at_the_call_deadline(ds_server: Any) -> None:
    slow = RetryPolicy(max_retries=5, initial_delay=5.0, max_delay=5.0, jitter=False)
    path, losing = _path(), LosingTransport()
    with DurableStreamStore(
        str(ds_server.url), path, retry=slow, transport=losing, timeout=1.0
    ) as store:
        (offset,) = store.append_batch([make_record()])
        store.save_checkpoint("sub", OLDEST)  # the log exists: the next POST is the save
        losing.lose = 1
        with pytest.raises(StoreUnavailableError, match="response lost"):
            store.save_checkpoint("sub", offset)  # a 5 s wait would pass the 1 s budget
        assert losing.lost == 1
    with DurableStreamStore(str(ds_server.url), path) as fresh:
        assert fresh.load_checkpoint("sub") == offset  # it had landed all the same
