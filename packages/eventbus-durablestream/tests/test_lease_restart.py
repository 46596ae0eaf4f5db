"""Leases and checkpoints across a SIGKILL and restart of a file-backed reference server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from eventbus.core import Lease, LeaseLostError, Owner
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore, StaleEpochError

Start = Callable[[], Any]


def sigkill_and_restart(server: Any, start: Start) -> str:
    server.process.kill()  # SIGKILL: no shutdown, nothing flushed beyond what appends did
    server.process.wait()
    return str(start().url)


def test_producer_epochs_survive_a_server_restart_in_file_mode(start_file_server: Start) -> None:
    url = f"/v1/stream/lease-rule-{uuid.uuid4().hex}"
    server = start_file_server()
    with DurableStreamClient(server.url) as client:
        client.create(url, content_type="application/json")
        for epoch in (1, 2):
            headers = {"Producer-Id": "p", "Producer-Epoch": str(epoch), "Producer-Seq": "0"}
            client.append(url, json.dumps([epoch]), headers=headers)
    with DurableStreamClient(sigkill_and_restart(server, start_file_server)) as client:
        headers = {"Producer-Id": "p", "Producer-Epoch": "1", "Producer-Seq": "1"}
        with pytest.raises(StaleEpochError):
            client.append(url, json.dumps(["zombie"]), headers=headers)
        headers["Producer-Epoch"], headers["Producer-Seq"] = "2", "0"
        assert client.append(url, json.dumps(["again"]), headers=headers).status == 204
        assert client.read(url).json() == [1, 2]


def test_lease_and_checkpoint_survive_a_server_sigkill(start_file_server: Start) -> None:
    path = f"/v1/stream/lease-restart-{uuid.uuid4().hex}"
    owner = Owner("host-a", 1, "a")
    server = start_file_server()
    with DurableStreamStore(server.url, path) as store:
        offsets = store.append_batch([make_record() for _ in range(2)])
        lease = store.claim_lease("sub", owner, None)
        assert lease is not None
        lease = store.renew_lease(lease)
        store.save_checkpoint_fenced(lease, offsets[1])
    url = sigkill_and_restart(server, start_file_server)
    with DurableStreamStore(url, path) as store, DurableStreamStore(url, path) as other:
        assert store.read_lease("sub") == lease
        assert store.load_checkpoint("sub") == offsets[1]
        lease = store.renew_lease(lease)  # the holder goes on after the restart
        taken = other.claim_lease("sub", Owner("host-b", 2, "b"), lease)
        assert taken is not None
        assert taken.token > lease.token
        with pytest.raises(LeaseLostError):
            store.save_checkpoint_fenced(lease, offsets[0])
        assert other.load_checkpoint("sub") == offsets[1]
        assert other.read_lease("sub") == taken
        assert isinstance(taken, Lease)
