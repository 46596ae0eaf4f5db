"""A file-backed server killed and restarted under publishers and a durable subscription."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventbus.core import EventBus, HandlerFailure
from eventbus.durablestream import DurableStreamStore, RetryPolicy

_SERVER_DIR = Path(__file__).resolve().parents[3] / "servers" / "durable-streams"
PATIENT = RetryPolicy(max_retries=20, initial_delay=0.05, max_delay=0.5)


@dataclass(frozen=True)
class Tick:
    __event_name__ = "test.Tick"
    writer: int
    n: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    node = shutil.which("node")
    assert node is not None
    command = [node, "start.mjs", "--port", str(port), "--data-dir", str(data_dir)]
    command += ["--long-poll-ms", "500"]
    process = subprocess.Popen(
        command, cwd=_SERVER_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.02)
    process.kill()  # pragma: no cover - only if the server cannot start
    raise AssertionError("the reference server did not start")  # pragma: no cover - as above


@pytest.mark.slow
def test_kill_and_restart_loses_and_duplicates_nothing() -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        server = _start(port, Path(data))
        url = f"http://127.0.0.1:{port}"
        path = f"/v1/stream/restart-{uuid.uuid4().hex}"
        failures: list[HandlerFailure] = []
        delivered: list[str] = []
        published: list[str] = []
        refused: list[BaseException] = []
        publisher_bus = EventBus(
            store=DurableStreamStore(url, path, retry=PATIENT), on_error=failures.append
        )
        consumer_bus = EventBus(
            store=DurableStreamStore(url, path, retry=PATIENT), on_error=failures.append
        )

        def handle(tick: Tick) -> None:
            delivered.append(f"{tick.writer}-{tick.n}")

        try:
            subscription = consumer_bus.subscribe_durable("sub", handle, poll_interval=0.2)

            def publish(writer: int) -> None:
                for n in range(40):
                    try:
                        publisher_bus.publish(Tick(writer, n))
                    except Exception as exc:  # counted: at most once in the log
                        refused.append(exc)
                    else:
                        published.append(f"{writer}-{n}")
                    time.sleep(0.01)

            writers = [threading.Thread(target=publish, args=(w,)) for w in range(3)]
            for thread in writers:
                thread.start()
            time.sleep(0.25)
            server.kill()
            server.wait(10)
            time.sleep(0.3)
            server = _start(port, Path(data))
            for thread in writers:
                thread.join(60)
            deadline = time.monotonic() + 30
            while not set(published) <= set(delivered) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert subscription.stop(10)
            with DurableStreamStore(url, path) as reader:
                logged = [
                    f"{e['writer']}-{e['n']}"
                    for e in (json.loads(s.data) for s in reader.iter_events())
                ]
            counts = Counter(logged)
            assert all(c == 1 for c in counts.values()), "an event is in the log twice"
            assert set(published) <= set(logged), "a publish that returned is missing"
            assert len(logged) <= len(published) + len(refused)
            assert delivered == logged, "the subscription did not deliver the log exactly"
            # Resuming from the saved checkpoint delivers only what comes next.
            again: list[int] = []
            consumer_bus.subscribe_durable("sub", lambda t: again.append(t.n), event_type=Tick)
            publisher_bus.publish(Tick(9, 9))
            deadline = time.monotonic() + 10
            while not again and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            assert again == [9]
        finally:
            publisher_bus.close()
            consumer_bus.close()
            server.terminate()
            server.wait(10)
