"""DurableStreamStore against the real reference server: the core conformance kit."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import EventStore
from eventbus.core.testing import StoreContract
from eventbus.durablestream import DurableStreamStore

_names = itertools.count()


def new_stream() -> str:
    """A fresh stream path."""
    return f"/v1/stream/eventbus-store-{uuid.uuid4().hex[:12]}-{next(_names)}"


class _Contract(StoreContract):
    offsets_sort_as_strings = True  # the reference server's offsets are fixed-width
    concurrency = (8, 40)
    server_url = ""

    def make_store(self, directory: Path) -> DurableStreamStore:
        stream = new_stream()
        (directory / "stream").write_text(stream)
        return DurableStreamStore(self.server_url, stream)

    def reopen_store(self, store: EventStore, directory: Path) -> DurableStreamStore:
        return DurableStreamStore(self.server_url, (directory / "stream").read_text())


class TestDurableStreamStoreMemory(_Contract):
    @pytest.fixture(autouse=True)
    def _server(self, ds_server: Any) -> None:
        self.server_url = ds_server.url


class TestDurableStreamStoreFile(_Contract):
    @pytest.fixture(autouse=True)
    def _server(self, ds_file_server: Any) -> None:
        self.server_url = ds_file_server.url
