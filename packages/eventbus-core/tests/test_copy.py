"""copy_events (_copy.py): exact copies, type filters, resuming after a crash, following."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    CopyProgress,
    EventStore,
    MemoryStore,
    ReadResult,
    StoreError,
    copy_events,
)
from eventbus.core.testing import make_record

from ._support import PlainStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventbus.core import Checkpoint, EventRecord, Offset, Position, StoredEvent


def _fill(store: MemoryStore, count: int, type_name: str = "t.a") -> list[EventRecord]:
    records = [
        make_record(
            {"i": i},
            type_name=type_name,
            metadata={"k": str(i)},
            timestamp=datetime(2026, 1, 1, 0, 0, i % 60, tzinfo=UTC),
            origin=f"bus-{i % 3}",
        )
        for i in range(count)
    ]
    store.append_batch(records)
    return records


def _fields(events: Sequence[StoredEvent]) -> list[tuple[object, ...]]:
    return [
        (e.event_id, e.type_name, e.data, e.timestamp, dict(e.metadata), e.origin) for e in events
    ]


def _all(store: EventStore) -> list[StoredEvent]:
    return list(store.read(OLDEST, 10_000).events)


class _PlainStore(PlainStore):
    """Only the required part of the contract, counting its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, after: Position = OLDEST, limit: int = 100) -> ReadResult:
        self.reads += 1
        return super().read(after, limit)


def _wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


class _CrashingStore(MemoryStore):
    """Fails the n-th checkpoint save, as a copy killed between append and save would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.saves = 0
        self.fail_at = fail_at

    def save_checkpoint(self, subscription_id: str, offset: Checkpoint) -> None:
        self.saves += 1
        if self.saves == self.fail_at:
            raise StoreError("killed between the append and the checkpoint")
        super().save_checkpoint(subscription_id, offset)


@pytest.fixture
def save_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Save the copy's checkpoint after every batch, so a crash can fall between."""
    monkeypatch.setattr("eventbus.core._copy.CHECKPOINT_EVERY", 0.0)


class _DyingStore(MemoryStore):
    """Fails its n-th append_batch, as a copy killed mid-way between two saves would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.batches = 0
        self.fail_at = fail_at

    def append_batch(self, records: Sequence[EventRecord]) -> list[Offset]:
        self.batches += 1
        if self.batches == self.fail_at:
            raise StoreError("killed before this batch")
        return super().append_batch(records)


def test_a_copy_killed_long_after_its_last_save_resumes_from_what_it_finds() -> None:
    src, dst = MemoryStore(), _DyingStore(5)
    _fill(src, 20)
    with pytest.raises(StoreError, match="killed"):
        copy_events(src, dst, batch_size=3)  # only the start mark was saved
    assert len(_all(dst)) == 12
    assert copy_events(src, dst, batch_size=3).copied == 8
    assert _fields(_all(dst)) == _fields(_all(src))


def test_every_field_but_the_offset_is_copied_in_order() -> None:
    src, dst = MemoryStore(), MemoryStore()
    _fill(src, 7)
    progress = copy_events(src, dst, batch_size=3)
    assert _fields(_all(dst)) == _fields(_all(src))
    assert progress == CopyProgress(7, 0, src.read(NEWEST).next, True)


def test_only_the_given_types_are_copied() -> None:
    src, dst = MemoryStore(), MemoryStore()
    _fill(src, 2, "t.a")
    wanted = _fill(src, 3, "t.b")
    _fill(src, 2, "t.a")
    progress = copy_events(src, dst, types=["t.b"], batch_size=2)
    assert [e.event_id for e in _all(dst)] == [r.event_id for r in wanted]
    assert (progress.copied, progress.skipped) == (3, 4)


def test_a_rerun_copies_only_what_is_new() -> None:
    src, dst = MemoryStore(), MemoryStore()
    _fill(src, 5)
    copy_events(src, dst, batch_size=2)
    assert copy_events(src, dst, batch_size=2).copied == 0
    _fill(src, 3)
    assert copy_events(src, dst, batch_size=2).copied == 3
    assert _fields(_all(dst)) == _fields(_all(src))


@pytest.mark.parametrize("fail_at", [2, 3, 4])
def test_a_copy_killed_between_append_and_checkpoint_stores_nothing_twice(
    fail_at: int, save_every_batch: None
) -> None:
    src, dst = MemoryStore(), _CrashingStore(fail_at)
    _fill(src, 9)
    with pytest.raises(StoreError, match="killed"):
        copy_events(src, dst, batch_size=2)
    assert 0 < len(_all(dst)) < 9
    copy_events(src, dst, batch_size=2)
    assert _fields(_all(dst)) == _fields(_all(src))


@pytest.mark.parametrize("make_source", [MemoryStore, _PlainStore])
def test_events_already_in_the_destination_are_kept_and_not_confused(
    make_source: type, save_every_batch: None
) -> None:
    src, dst = make_source(), _CrashingStore(3)
    foreign = _fill(dst, 2, "other")
    src.append_batch([make_record() for _ in range(6)])
    with pytest.raises(StoreError):
        copy_events(src, dst, batch_size=2)
    dst.append(make_record(type_name="other"))  # another writer, between the two runs
    copy_events(src, dst, batch_size=2)
    copied = [e for e in _all(dst) if e.type_name != "other"]
    assert _fields(copied) == _fields(_all(src))
    assert [e.event_id for e in _all(dst)[:2]] == [r.event_id for r in foreign]


def test_a_first_run_stopped_before_its_first_batch_starts_over() -> None:
    src, dst = MemoryStore(), MemoryStore()
    _fill(src, 3)
    stop = threading.Event()
    stop.set()
    assert copy_events(src, dst, stop=stop).copied == 0  # only the start mark was saved
    assert dst.list_checkpoints() == {"eventbus.copy": OLDEST}
    assert copy_events(src, dst).copied == 3
    assert _fields(_all(dst)) == _fields(_all(src))


def test_without_a_checkpoint_the_copy_starts_from_the_oldest_each_time() -> None:
    src, dst = _PlainStore(), _PlainStore()
    for _ in range(3):
        src.append(make_record())
    assert copy_events(src, dst, checkpoint_id=None, batch_size=2).copied == 3
    assert _fields(_all(dst)) == _fields(_all(src))
    assert dst.inner.list_checkpoints() == {}


def test_a_destination_without_checkpoints_needs_checkpoint_id_none() -> None:
    with pytest.raises(TypeError, match="checkpoint_id=None"):
        copy_events(MemoryStore(), _PlainStore())


def test_a_source_without_streaming_reads_is_read_by_pages_when_resuming(
    save_every_batch: None,
) -> None:
    src, dst = _PlainStore(), _CrashingStore(3)
    for _ in range(5):
        src.append(make_record())
    with pytest.raises(StoreError):
        copy_events(src, dst, batch_size=2)
    copy_events(src, dst, batch_size=2)
    assert _fields(_all(dst)) == _fields(_all(src))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"batch_size": True}, TypeError, "batch_size must be an int"),
        ({"poll_interval": 0}, ValueError, "poll_interval"),
        ({"checkpoint_id": ""}, ValueError, "checkpoint_id"),
        ({"types": "t.a"}, TypeError, "collection of wire names, got the string 't.a'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        copy_events(MemoryStore(), MemoryStore(), **options)  # type: ignore[arg-type]


def test_progress_is_reported_per_batch_and_once_when_caught_up() -> None:
    src, dst = MemoryStore(), MemoryStore()
    _fill(src, 5)
    seen: list[CopyProgress] = []
    copy_events(src, dst, batch_size=2, on_progress=seen.append)
    reported = [(p.copied, p.caught_up) for p in seen]
    assert reported == [(2, False), (4, False), (5, False), (5, True)]


@pytest.mark.parametrize("make_source", [MemoryStore, _PlainStore])
def test_follow_mirrors_events_appended_later_until_stopped(make_source: type) -> None:
    src, dst = make_source(), MemoryStore()
    src.append(make_record())
    stop = threading.Event()
    caught_up = threading.Event()

    def progress(p: CopyProgress) -> None:
        if p.caught_up:
            caught_up.set()

    result: list[CopyProgress] = []
    thread = threading.Thread(
        target=lambda: result.append(
            copy_events(src, dst, follow=True, poll_interval=0.01, stop=stop, on_progress=progress)
        )
    )
    thread.start()
    try:
        assert caught_up.wait(10)
        late = make_record()
        src.append(late)
        _wait_until(lambda: late.event_id in {e.event_id for e in _all(dst)}, "the late event")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert result[0].copied == 2
    assert _fields(_all(dst)) == _fields(_all(src))


def test_an_idle_follow_reports_caught_up_once_not_per_poll() -> None:
    src, dst = _PlainStore(), MemoryStore()
    src.append(make_record())
    stop = threading.Event()
    seen: list[CopyProgress] = []
    thread = threading.Thread(
        target=copy_events,
        args=(src, dst),
        kwargs={"follow": True, "poll_interval": 0.001, "stop": stop, "on_progress": seen.append},
    )
    thread.start()
    try:
        _wait_until(lambda: src.reads >= 20, "many idle polls")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [(p.copied, p.caught_up) for p in seen] == [(1, False), (1, True)]
