"""Consumers in other processes: a child process publishes, this process consumes live.

Both share one SQLite file; the durable subscription here sees the child's events as
they are committed, through the store's cross-process tail.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from eventbus.core import EventBus
from eventbus.sqlite import SQLiteStore


@dataclass(frozen=True)
class Reading:
    __event_name__ = "sensors.reading"
    sensor: str
    celsius: float


CHILD = """
import sys
sys.path.insert(0, {here!r})
from importlib import import_module
example = import_module({module!r})
from eventbus.core import EventBus
from eventbus.sqlite import SQLiteStore
with EventBus(store=SQLiteStore({path!r})) as bus:
    for i in range(5):
        bus.publish(example.Reading("kitchen", 20.0 + i))
"""


def main() -> None:
    path = Path("sensors.db").resolve()
    path.unlink(missing_ok=True)
    received: list[float] = []
    all_arrived = threading.Event()

    def on_reading(event: Reading) -> None:
        received.append(event.celsius)
        print(f"  received from another process: {event}")
        if len(received) == 5:
            all_arrived.set()

    with EventBus(store=SQLiteStore(path)) as bus:
        bus.subscribe_durable("dashboard", on_reading).wait_caught_up(10)
        here = str(Path(__file__).resolve().parent)
        code = CHILD.format(here=here, module=Path(__file__).stem, path=str(path))
        print("starting a publisher process")
        subprocess.run([sys.executable, "-c", code], check=True)
        if not all_arrived.wait(10):
            raise SystemExit(f"only {received} arrived")
    print(f"all {len(received)} readings arrived in log order: {received}")


if __name__ == "__main__":
    main()
