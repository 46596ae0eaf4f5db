"""Consumers in other processes: every event once per subscription id, in log order."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from eventbus.core import EventBus
from eventbus.sqlite import SQLiteStore

from .test_bus_on_every_store import Deposited

CONSUMER = textwrap.dedent(
    """
    import sys, time
    from dataclasses import dataclass
    from eventbus.core import EventBus
    from eventbus.sqlite import SQLiteStore

    @dataclass(frozen=True)
    class Deposited:
        __event_name__ = "bank.deposited"
        account: str
        cents: int

    path, out, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seen = []
    with open(out, "w") as sink:
        def handle(event: Deposited) -> None:
            seen.append(event.cents)
            sink.write(f"{event.cents}\\n")
            sink.flush()
        with EventBus(store=SQLiteStore(path)) as bus:
            bus.subscribe_durable("consumer", handle)
            print("ready", flush=True)
            deadline = time.monotonic() + 30
            while len(seen) < expected and time.monotonic() < deadline:
                time.sleep(0.005)
    """
)


def test_a_consumer_in_another_process_sees_every_event_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteStore(path).close()  # create the schema before the child opens the file
    out = tmp_path / "seen.txt"
    count = 300
    with subprocess.Popen(
        [sys.executable, "-c", CONSUMER, str(path), str(out), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with EventBus(store=SQLiteStore(path)) as bus:
            bus.publish_many(Deposited("a", n) for n in range(100))
            for n in range(100, count):
                bus.publish(Deposited("a", n))
        assert child.wait(60) == 0
    assert [int(line) for line in out.read_text().split()] == list(range(count))
