"""The bus-level guarantees over DurableStreamStore on the real server (BusContract).

An unreadable record is appended the way another tool could write one: an eventbus
envelope, anchored like the store's own, whose metadata is not a list of pairs. A record
without a name is another writer's message, carrying the store's anchor field.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import EventStore
from eventbus.core.testing import BusContract, raw_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore
from eventbus.durablestream._envelope_codec import encode_batch


class TestDurableStreamBus(BusContract):
    server_url = ""

    @pytest.fixture(autouse=True)
    def _server(self, ds_server: Any) -> None:
        self.server_url = ds_server.url

    def make_store(self, directory: Path) -> DurableStreamStore:
        stream = f"/v1/stream/eventbus-bus-{uuid.uuid4().hex}"
        (directory / "stream").write_text(stream)
        return DurableStreamStore(self.server_url, stream)

    def reopen_store(self, store: EventStore, directory: Path) -> DurableStreamStore:
        return DurableStreamStore(self.server_url, (directory / "stream").read_text())

    def write_corrupt_record(self, store: EventStore, directory: Path, type_name: str) -> None:
        path = (directory / "stream").read_text()
        with DurableStreamClient(self.server_url) as client:
            anchor = client.head(path).next_offset
            assert anchor is not None
            record = raw_record(type_name, json.dumps({"account": "x", "amount": 0}))
            items = json.loads(encode_batch([record], anchor))
            items[0]["meta"] = "not a list of pairs"
            client.append(path, json.dumps(items), content_type="application/json", seq=anchor)

    def write_nameless_record(self, store: EventStore, directory: Path) -> None:
        # Another writer's message, carrying the store's anchor field pointing far ahead.
        path = (directory / "stream").read_text()
        far = "9999999999999999_9999999999999999"
        with DurableStreamClient(self.server_url) as client:
            client.append(path, json.dumps([{"s": far, "hi": 1}]), content_type="application/json")
