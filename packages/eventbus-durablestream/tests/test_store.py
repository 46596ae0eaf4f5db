"""DurableStreamStore against the real reference server: the core conformance kit.

``StoreContract`` and ``AsyncStoreContract`` both run on each server mode (memory and
file-backed), on stores made the same way.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import EventStore
from eventbus.core.testing import AsyncStoreContract, StoreContract
from eventbus.durablestream import DurableStreamClient, DurableStreamStore

_names = itertools.count()


def new_stream() -> str:
    """A fresh stream path."""
    return f"/v1/stream/eventbus-store-{uuid.uuid4().hex[:12]}-{next(_names)}"


class _OnServer:
    """Stores on ``server_url``, each on a fresh stream whose path is kept in its directory."""

    offsets_sort_as_strings = True  # the reference server's offsets are fixed-width
    server_url = ""

    def make_store(self, directory: Path) -> DurableStreamStore:
        stream = new_stream()
        (directory / "stream").write_text(stream)
        return DurableStreamStore(self.server_url, stream)

    def reopen_store(self, store: EventStore, directory: Path) -> DurableStreamStore:
        return DurableStreamStore(self.server_url, (directory / "stream").read_text())

    def break_store(self, store: EventStore, directory: Path) -> None:
        # Another client deletes the stream: the store's appends then fail on the server.
        with DurableStreamClient(self.server_url) as client:
            client.delete((directory / "stream").read_text())


class _MemoryServer:
    @pytest.fixture(autouse=True)
    def _server(self, ds_server: Any) -> None:
        self.server_url = ds_server.url


class _FileServer:
    @pytest.fixture(autouse=True)
    def _server(self, ds_file_server: Any) -> None:
        self.server_url = ds_file_server.url


class _Contract(_OnServer, StoreContract):
    concurrency = (8, 40)


class _AsyncContract(_OnServer, AsyncStoreContract):
    pass


class TestDurableStreamStoreMemory(_MemoryServer, _Contract):
    pass


class TestDurableStreamStoreFile(_FileServer, _Contract):
    pass


class TestDurableStreamStoreAsyncMemory(_MemoryServer, _AsyncContract):
    pass


class TestDurableStreamStoreAsyncFile(_FileServer, _AsyncContract):
    pass
