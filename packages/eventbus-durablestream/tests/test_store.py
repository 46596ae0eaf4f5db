"""DurableStreamStore against the real reference server: the core conformance kit."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from eventbus.core import EventStore
from eventbus.core.testing import StoreContract
from eventbus.durablestream import DurableStreamStore

_ROOT = Path(__file__).resolve().parents[3]
_SERVER_DIR = Path(os.environ.get("EVENTBUS_DS_SERVER_DIR", _ROOT / "servers" / "durable-streams"))
_names = itertools.count()


@dataclass
class DSServer:
    """A running reference server process."""

    process: subprocess.Popen[str]
    url: str
    data_dir: Path | None
    port: int
    log: IO[str]

    def stop(self) -> None:
        self._close_pipe()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
                self.process.kill()
                self.process.wait(10)

    def _close_pipe(self) -> None:
        self.log.close()

    def kill(self) -> None:
        self._close_pipe()
        self.process.kill()
        self.process.wait(10)


def start_server(
    data_dir: Path | None = None, *, port: int = 0, long_poll_ms: int = 2000
) -> DSServer:
    """Start the pinned reference server on 127.0.0.1 and wait for its URL."""
    node = shutil.which("node")
    assert node is not None, "node is needed for the reference server"
    command = [node, str(_SERVER_DIR / "start.mjs"), "--port", str(port)]
    command += ["--long-poll-ms", str(long_poll_ms)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        command, cwd=_SERVER_DIR, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log.seek(0)
        match = re.search(r"DS_SERVER_URL=(http://\S+)", log.read())
        if match:
            url = match.group(1)
            return DSServer(process, url, data_dir, int(url.rsplit(":", 1)[1]), log)
        time.sleep(0.02)
    process.kill()  # pragma: no cover - only when the server cannot start
    raise AssertionError("the reference server did not start")  # pragma: no cover


@pytest.fixture(scope="session")
def memory_server() -> Iterator[DSServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DSServer]:
    server = start_server(tmp_path_factory.mktemp("ds-data"))
    yield server
    server.stop()


def new_stream() -> str:
    return f"/v1/stream/eventbus-test-{uuid.uuid4().hex[:12]}-{next(_names)}"


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
    def _server(self, memory_server: DSServer) -> None:
        self.server_url = memory_server.url


class TestDurableStreamStoreFile(_Contract):
    @pytest.fixture(autouse=True)
    def _server(self, file_server: DSServer) -> None:
        self.server_url = file_server.url
