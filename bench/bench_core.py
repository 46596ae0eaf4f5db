"""Core persistence costs: persistent publish on MemoryStore vs the in-process bus, and
typed replay vs a floor of ``json.loads`` over the same stored records.

Run through ``nox -s bench``; prints a table and writes JSON with ``--json PATH``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from _common import Row, median_seconds, parse_args, report

from eventbus.core import EventBus, MemoryStore

N_PUBLISH = 20_000
N_REPLAY = 50_000
REPEATS = 5


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    amount: float


def noop(event: OrderPlaced) -> None:
    pass


def main() -> None:
    args = parse_args(__doc__ or "")
    event = OrderPlaced("o-1", 12.5)

    plain = EventBus()
    plain.subscribe(OrderPlaced, noop)

    def publish_plain() -> None:
        for _ in range(N_PUBLISH):
            plain.publish(event)

    def publish_persistent() -> None:
        bus = EventBus(store=MemoryStore())
        bus.subscribe(OrderPlaced, noop)
        for _ in range(N_PUBLISH):
            bus.publish(event)

    t_plain = median_seconds(publish_plain, REPEATS)
    t_persist = median_seconds(publish_persistent, REPEATS)

    store = MemoryStore()
    writer = EventBus(store=store)
    writer.publish_many(OrderPlaced(f"o-{i}", i * 0.5) for i in range(N_REPLAY))
    reader = EventBus(store=store)
    reader.register(OrderPlaced)
    stored = list(reader.replay())

    def floor_replay() -> None:
        for record in stored:
            json.loads(record.data)

    def typed_replay() -> None:
        for _ in reader.replay_events():
            pass

    t_floor = median_seconds(floor_replay, REPEATS)
    t_typed = median_seconds(typed_replay, REPEATS)

    rows = [
        Row(
            "persistent publish (MemoryStore), 1 handler",
            "ns/event",
            t_persist / N_PUBLISH * 1e9,
            "in-process publish",
            t_plain / N_PUBLISH * 1e9,
            t_persist / t_plain,
            "report only",
            None,
        ),
        Row(
            "typed replay (MemoryStore) vs json.loads of the stored data",
            "events/s",
            N_REPLAY / t_typed,
            "json.loads loop",
            N_REPLAY / t_floor,
            t_floor / t_typed,
            "report only",
            None,
        ),
    ]
    report("core persistence", rows, args.json)


if __name__ == "__main__":
    main()
