"""``eventbus info``: what a store holds, by type, and how far each subscription is behind."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from eventbus.core import OLDEST, CheckpointListing, LeaseStore

from ._render import console, offset_text, time_text
from ._scan import Unreadable, scan
from ._stores import opened

if TYPE_CHECKING:
    from rich.console import Console

    from eventbus.core import Checkpoint, EventStore, StoredEvent

__all__ = ["Summary", "info", "summarize"]


@dataclass
class Subscription:
    """A durable subscription's checkpoint and how many events lie after it."""

    id: str
    checkpoint: Checkpoint
    lag: int | None = None  # None: the checkpoint names no event of the log
    owner: str | None = None  # who holds its lease now; None: nobody (or no leases)


@dataclass
class Summary:
    """Everything ``info`` reports about one store."""

    url: str
    store: str
    count: int = 0
    unreadable: int = 0
    first: StoredEvent | None = None
    last: StoredEvent | None = None
    size: int | None = None
    types: Counter[str] = field(default_factory=Counter)
    subscriptions: list[Subscription] | None = None  # None: the store cannot list them

    def as_json(self) -> dict[str, Any]:
        """The summary as one JSON object."""
        return {
            "url": self.url,
            "store": self.store,
            "events": self.count,
            "unreadable": self.unreadable,
            "first": _end(self.first),
            "last": _end(self.last),
            "size_bytes": self.size,
            "types": dict(sorted(self.types.items())),
            "subscriptions": None
            if self.subscriptions is None
            else [
                {
                    "id": s.id,
                    "checkpoint": offset_text(s.checkpoint),
                    "lag": s.lag,
                    "owner": s.owner,
                }
                for s in self.subscriptions
            ],
        }


def _end(event: StoredEvent | None) -> dict[str, str] | None:
    if event is None:
        return None
    return {"offset": event.offset, "timestamp": time_text(event.timestamp)}


def _size(store: EventStore) -> int | None:
    """Bytes on disk for a store with a file ``path`` (with its -wal file), else None."""
    path = getattr(store, "path", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.isfile(p))


def summarize(url: str, store: EventStore) -> Summary:
    """Read the whole log of ``store`` once and summarize it."""
    summary = Summary(url, type(store).__name__, size=_size(store))
    checkpoints: dict[str, Checkpoint] | None = None
    if isinstance(store, CheckpointListing):
        checkpoints = store.list_checkpoints()
    ordinals: dict[str, int] = {}  # a checkpoint's offset -> events up to and including it
    wanted = set((checkpoints or {}).values())
    for item in scan(store):
        if isinstance(item, Unreadable):
            summary.unreadable += 1
            continue
        summary.count += 1
        summary.first = summary.first or item
        summary.last = item
        summary.types[item.type_name] += 1
        if item.offset in wanted:
            ordinals[item.offset] = summary.count
    if checkpoints is not None:
        summary.subscriptions = []
        for sub_id, checkpoint in checkpoints.items():
            done = 0 if checkpoint is OLDEST else ordinals.get(checkpoint)
            lag = None if done is None else summary.count - done
            summary.subscriptions.append(
                Subscription(sub_id, checkpoint, lag, owner_of(store, sub_id))
            )
    return summary


def owner_of(store: EventStore, subscription_id: str) -> str | None:
    """``host:pid:instance`` of the lease holder of ``subscription_id``, if one holds it.

    A holder that died keeps its lease until a standby's ttl runs out: this shows the
    store's record, which tools cannot tell apart from a live owner without waiting.
    """
    if not isinstance(store, LeaseStore):
        return None
    lease = store.read_lease(subscription_id)
    return None if lease is None or lease.released else str(lease.owner)


def _print(summary: Summary, out: Console) -> None:
    rows = Table.grid(padding=(0, 2))
    rows.add_row("store", f"{summary.url} ({summary.store})")
    rows.add_row("events", f"{summary.count}")
    if summary.unreadable:
        rows.add_row("unreadable", f"{summary.unreadable} (see: eventbus verify)")
    for name, event in (("first", summary.first), ("last", summary.last)):
        if event is not None:
            rows.add_row(name, f"{event.offset}  {time_text(event.timestamp)}")
    if summary.size is not None:
        rows.add_row("size", f"{summary.size} bytes")
    out.print(rows)
    if summary.types:
        types = Table("type", "events", title="by type", title_justify="left")
        for name, count in sorted(summary.types.items()):
            types.add_row(name, str(count))
        out.print(types)
    if summary.subscriptions is None:
        out.print("subscriptions: this store cannot list its checkpoints")
    elif summary.subscriptions:
        subs = Table(
            "subscription",
            "checkpoint",
            "lag",
            "owner",
            title="subscriptions",
            title_justify="left",
        )
        for sub in summary.subscriptions:
            lag = "?" if sub.lag is None else str(sub.lag)
            subs.add_row(sub.id, offset_text(sub.checkpoint), lag, sub.owner or "-")
        out.print(subs)
    else:
        out.print("subscriptions: none")


@click.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(url: str, as_json: bool) -> None:
    """Events, first and last offsets, size, counts per type and subscription lag."""
    with opened(url, "read") as store:
        summary = summarize(url, store)
    if as_json:
        click.echo(json.dumps(summary.as_json(), ensure_ascii=False))
    else:
        _print(summary, console())
