"""Test doubles shared by the persistence tests: stores that fail or hide capabilities."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventbus.core import (
    OLDEST,
    Checkpoint,
    EventRecord,
    MemoryStore,
    Offset,
    Position,
    ReadResult,
)

WAIT = 10.0  # generous bound for things that happen "soon"; never a timing assertion


def eventually(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    amount: float


@dataclass(frozen=True)
class OrderShipped:
    order_id: str


@dataclass(frozen=True)
class V1:
    __event_name__ = "thing.v1"
    n: int


@dataclass(frozen=True)
class V2:
    __event_name__ = "thing.v2"
    n: int
    doubled: int


class PlainStore:
    """Only the required EventStore methods of a MemoryStore: no tail, no streaming."""

    def __init__(self, inner: MemoryStore | None = None) -> None:
        self.inner = inner or MemoryStore()
        self.append_calls = 0
        self.batch_calls = 0

    def append(self, record: EventRecord) -> Offset:
        self.append_calls += 1
        return self.inner.append(record)

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        self.batch_calls += 1
        return self.inner.append_batch(records)

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        return self.inner.read(after, limit)


class CheckpointingPlainStore(PlainStore):
    """A PlainStore that keeps checkpoints, but cannot tail."""

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        self.inner.save_checkpoint(subscription_id, offset)

    def load_checkpoint(self, subscription_id: str) -> Checkpoint | None:
        return self.inner.load_checkpoint(subscription_id)


class FailingStore(PlainStore):
    """Appends raise the given exception while ``failing`` is set."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.failing = True

    def append(self, record: EventRecord) -> Offset:
        if self.failing:
            raise self.error
        return super().append(record)

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        if self.failing:
            raise self.error
        return super().append_batch(records)


class SlowStore(PlainStore):
    """Appends wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def append(self, record: EventRecord) -> Offset:
        self.release.wait(10)
        return super().append(record)


class GappyStore(PlainStore):
    """Returns one empty page with an advancing offset before the real events (ebu bug 7)."""

    def __init__(self) -> None:
        super().__init__()
        self.gap_served = False

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        result = self.inner.read(after, limit)
        if not self.gap_served and result.events:
            self.gap_served = True
            # Pretend the first event is a skipped gap: no events, but the cursor moves
            # to just before the second event... by returning the first event's offset.
            return ReadResult(events=[], next=result.events[0].offset)
        return result
