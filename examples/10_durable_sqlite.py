"""A durable, resumable consumer on a SQLite file: it survives a restart.

The first run handles the history and its own orders; after a "restart" (a new bus on
the same file) the mailer resumes from its checkpoint and handles only the new orders.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eventbus.core import EventBus
from eventbus.sqlite import SQLiteStore


@dataclass(frozen=True)
class OrderPlaced:
    __event_name__ = "shop.order-placed"
    order_id: str
    amount: float


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the mailer did not catch up in time")
        time.sleep(0.01)


def run(path: Path, prefix: str) -> list[str]:
    """Start a bus on the file, publish three orders, return what the mailer handled."""
    mailed: list[str] = []

    def send_receipt(event: OrderPlaced) -> None:
        mailed.append(event.order_id)

    with EventBus(store=SQLiteStore(path)) as bus:
        bus.subscribe_durable("mailer", send_receipt)
        bus.publish(OrderPlaced(f"{prefix}-1", 42.0))
        bus.publish_many([OrderPlaced(f"{prefix}-2", 1.0), OrderPlaced(f"{prefix}-3", 2.0)])
        wait_until(lambda: sum(o.startswith(prefix) for o in mailed) == 3)
    return mailed


def main() -> None:
    path = Path("orders.db")
    path.unlink(missing_ok=True)
    first = run(path, "first")
    print(f"first run: the mailer handled {first}")
    second = run(path, "second")
    print(f"after a restart: the mailer handled only {second}")
    assert second == ["second-1", "second-2", "second-3"], second
    with EventBus(store=SQLiteStore(path)) as bus:
        bus.register(OrderPlaced)
        log = [(stored.offset, event.order_id) for event, stored in bus.replay_events()]
    print(f"the log on disk holds {len(log)} events:")
    for offset, order_id in log:
        print(f"  {offset}  {order_id}")


if __name__ == "__main__":
    main()
