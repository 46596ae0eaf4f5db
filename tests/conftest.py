"""Store factories for the cross-package tests: every bundled store, on real resources."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventbus.core import EventStore, MemoryStore
from eventbus.durablestream import DurableStreamStore
from eventbus.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent

StoreFactory = Callable[[], EventStore]


@pytest.fixture(scope="session")
def ds_server_url() -> Iterator[str]:
    """The pinned Durable Streams reference server, on a free port of 127.0.0.1."""
    yield from _ds_server()


@pytest.fixture(scope="session")
def ds_file_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The reference server in file mode (its data in a folder, as in production)."""
    yield from _ds_server("--data-dir", str(tmp_path_factory.mktemp("ds-data")))


def _ds_server(*options: str) -> Iterator[str]:
    folder = Path(os.environ.get("EVENTBUS_DS_SERVER_DIR", ROOT / "servers" / "durable-streams"))
    if not (folder / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
    with subprocess.Popen(
        ["node", "start.mjs", "--long-poll-ms", "500", *options],
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        assert server.stdout is not None
        # File mode logs its recovery first; the URL line follows.
        lines = [server.stdout.readline().strip() for _ in range(1)]
        while not lines[-1].startswith("DS_SERVER_URL=") and len(lines) < 50 and lines[-1]:
            lines.append(server.stdout.readline().strip())
        line = lines[-1]
        assert line.startswith("DS_SERVER_URL="), lines
        # Keep reading what the server prints, so a full pipe never blocks it.
        threading.Thread(target=server.stdout.read, daemon=True).start()
        try:
            yield line.removeprefix("DS_SERVER_URL=")
        finally:
            server.terminate()
            server.wait(10)


@pytest.fixture(params=["memory", "sqlite", "durablestream"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of stores that share one log: each call opens the same log again."""
    if request.param == "memory":
        shared = MemoryStore()

        def memory() -> EventStore:
            return _Unclosable(shared)

        yield memory
    elif request.param == "sqlite":
        path = tmp_path / "events.db"
        yield lambda: SQLiteStore(path)
    else:
        url = request.getfixturevalue("ds_server_url")
        stream = f"/v1/stream/tests-{uuid.uuid4().hex}"
        yield lambda: DurableStreamStore(url, stream)


class _Unclosable:
    """MemoryStore cannot be reopened after close: a view of one that ignores close()."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner
        self.append = inner.append
        self.append_batch = inner.append_batch
        self.read = inner.read
        self.tail = inner.tail
        self.iter_events = inner.iter_events
        self.save_checkpoint = inner.save_checkpoint
        self.load_checkpoint = inner.load_checkpoint

    def close(self) -> None:
        """The shared log outlives every bus that used it."""
