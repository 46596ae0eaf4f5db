"""Session fixtures: the real Durable Streams reference server, in memory and file-backed.

The server is the pinned ``@durable-streams/server`` in ``servers/durable-streams``, started
with its launcher ``start.mjs`` on 127.0.0.1 with a short long-poll timeout, and stopped (by
its own PID) when the session ends. ``EVENTBUS_DS_SERVER_DIR`` names the server folder (nox
sets it); by default it is found relative to this file. Without ``node_modules`` there,
``npm ci`` installs it from the committed lockfile first.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LONG_POLL_MS = 400
SLOW_LONG_POLL_MS = 1500
_DEFAULT_DIR = Path(__file__).resolve().parents[3] / "servers" / "durable-streams"


@dataclasses.dataclass
class DSServer:
    """A running reference server."""

    url: str
    process: subprocess.Popen[str]
    data_dir: Path | None

    def stop(self) -> None:
        """Stop the server by its PID and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - only if the server hangs
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:  # pragma: no branch - always piped
            self.process.stdout.close()


def server_dir() -> Path:
    """The folder holding package.json, the lockfile and start.mjs."""
    folder = Path(os.environ.get("EVENTBUS_DS_SERVER_DIR", _DEFAULT_DIR))
    if not (folder / "node_modules" / "@durable-streams" / "server").exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install the reference server"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
    return folder


def start_server(data_dir: Path | None = None, long_poll_ms: int = LONG_POLL_MS) -> DSServer:
    """Start a reference server on a free port and wait for its URL line.

    Args:
        data_dir: a folder for file-backed mode, or ``None`` for memory mode.
        long_poll_ms: the server's long-poll timeout.

    Returns:
        The running server.
    """
    node = shutil.which("node")
    assert node is not None, "node is needed to run the reference server"
    folder = server_dir()
    command = [node, str(folder / "start.mjs"), "--port", "0", "--long-poll-ms", str(long_poll_ms)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    urls: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_drain, args=(process.stdout, urls), daemon=True).start()
    try:
        url = urls.get(timeout=30)
    except queue.Empty:  # pragma: no cover - only if the server cannot start
        process.kill()
        raise
    return DSServer(url, process, data_dir)


def _drain(stdout: IO[str], urls: queue.Queue[str]) -> None:
    """Pass on the launcher's URL line and keep reading the server's log, so it never blocks."""
    for line in stdout:
        if line.startswith("DS_SERVER_URL="):
            urls.put(line.strip().removeprefix("DS_SERVER_URL="))


@pytest.fixture(scope="session")
def ds_server() -> Iterator[DSServer]:
    """A memory-mode reference server for the whole session."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ds_slow_server() -> Iterator[DSServer]:
    """A memory-mode server with a long-poll period of SLOW_LONG_POLL_MS, for counting polls."""
    server = start_server(long_poll_ms=SLOW_LONG_POLL_MS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ds_file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DSServer]:
    """A file-backed reference server for the whole session."""
    server = start_server(tmp_path_factory.mktemp("ds-data"))
    yield server
    server.stop()


@pytest.fixture(params=["memory", "file"])
def any_server(request: pytest.FixtureRequest) -> DSServer:
    """Each test using it runs against both server modes."""
    name = "ds_server" if request.param == "memory" else "ds_file_server"
    server: DSServer = request.getfixturevalue(name)
    return server


@pytest.fixture
def any_url(any_server: DSServer) -> str:
    """The base URL of each server mode in turn."""
    return any_server.url


@pytest.fixture
def ds_url(ds_server: DSServer) -> str:
    """The memory server's base URL."""
    return ds_server.url


@pytest.fixture
def path() -> str:
    """A fresh stream path."""
    return f"/v1/stream/test-{uuid.uuid4().hex}"


@pytest.fixture
def start_file_server(tmp_path: Path) -> Iterator[Callable[[], DSServer]]:
    """Start file-backed servers on one data folder (one at a time); all stop at the end."""
    started: list[DSServer] = []

    def start() -> DSServer:
        started.append(start_server(tmp_path))
        return started[-1]

    yield start
    for server in started:
        server.stop()


class RecordingTransport(httpx.BaseTransport):
    """Forwards to the real server and keeps every request (for tests to count or inspect)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def long_polls(self) -> int:
        """How many of the requests were long-polls."""
        return sum(r.url.params.get("live") == "long-poll" for r in self.requests)


@pytest.fixture
def recording() -> Iterator[RecordingTransport]:
    """A transport that keeps every request it forwards; closed after the test."""
    transport = RecordingTransport()
    yield transport
    transport.close()
