"""MemoryStore: the conformance kit plus what is specific to the in-memory store."""

from __future__ import annotations

import math
import re
import threading
import time
from types import MappingProxyType
from typing import TYPE_CHECKING

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    CheckpointStore,
    ClosableStore,
    EventStore,
    MemoryStore,
    OffsetError,
    OffsetOrdering,
    ReadResult,
    StoreClosedError,
    StreamingReader,
    TailingStore,
)
from eventbus.core._memory import open_memory_store
from eventbus.core.testing import StoreContract, make_record

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class TestMemoryStore(StoreContract):
    offsets_sort_as_strings = True
    malformed_offsets = (
        *StoreContract.malformed_offsets,
        "1",
        "00000000000000000000",
        "0000000000000000000x",
        "-0000000000000000001",
        "000000000000000000001",
        "\uff11" * 20,
    )

    def make_store(self, directory: Path) -> MemoryStore:
        return MemoryStore()


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    with MemoryStore() as memory:
        yield memory


def test_offsets_are_fixed_width_positions_from_one(store: MemoryStore) -> None:
    offsets = [store.append(make_record()) for _ in range(3)]
    offsets += store.append_batch([make_record(), make_record()])
    assert offsets == [f"{n:020d}" for n in range(1, 6)]


def test_an_offset_past_the_tail_is_rejected_with_its_value(store: MemoryStore) -> None:
    bigger = MemoryStore()
    foreign = bigger.append_batch([make_record() for _ in range(3)])[-1]
    store.append(make_record())
    with pytest.raises(OffsetError, match=f"'{foreign}' is past the tail.*last offset is '0+1'"):
        store.read(foreign)
    with pytest.raises(OffsetError, match="past the tail"):
        store.compare_offsets(foreign, foreign)
    with pytest.raises(OffsetError, match="past the tail"):
        store.tail(foreign, timeout=0)
    with pytest.raises(OffsetError, match="past the tail"):
        store.save_checkpoint("sub", foreign)
    assert store.load_checkpoint("sub") is None


def test_offset_zero_is_not_an_offset(store: MemoryStore) -> None:
    store.append(make_record())
    with pytest.raises(OffsetError, match="start at 1; use OLDEST"):
        store.read("0" * 20)


@pytest.mark.parametrize("bad", [None, 1, 1.0, b"00000000000000000001", OLDEST.value])
def test_offsets_of_the_wrong_type_or_shape_name_the_value(store: MemoryStore, bad: object) -> None:
    store.append(make_record())
    with pytest.raises(OffsetError, match="is not a MemoryStore offset") as caught:
        store.read(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("limit", [1.5, "3", True, None])
def test_a_limit_that_is_not_an_int_is_a_type_error(store: MemoryStore, limit: object) -> None:
    with pytest.raises(TypeError, match="limit must be an int"):
        store.read(OLDEST, limit)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_size must be an int"):
        store.iter_events(OLDEST, batch_size=limit)  # type: ignore[arg-type]


def test_bad_input_fails_before_iteration_starts(store: MemoryStore) -> None:
    with pytest.raises(OffsetError):
        store.iter_events("nope")
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        store.iter_events(batch_size=0)


def test_append_rejects_what_is_not_a_record(store: MemoryStore) -> None:
    with pytest.raises(TypeError, match="EventRecord instances, got 'data'"):
        store.append("data")  # type: ignore[arg-type]


def test_a_batch_with_a_bad_record_stores_nothing(store: MemoryStore) -> None:
    with pytest.raises(TypeError, match="got None"):
        store.append_batch([make_record(), None])  # type: ignore[list-item]
    assert list(store.read().events) == []


def test_stored_metadata_is_a_read_only_copy(store: MemoryStore) -> None:
    metadata = {"k": "v"}
    store.append(make_record(metadata=metadata))
    stored = store.read().events[0].metadata
    assert isinstance(stored, MappingProxyType)
    with pytest.raises(TypeError):
        stored["k"] = "changed"  # type: ignore[index]
    metadata["k"] = "changed"
    assert stored == {"k": "v"}


def test_each_read_returns_a_new_list(store: MemoryStore) -> None:
    store.append(make_record())
    first = store.read().events
    assert isinstance(first, list)
    first.clear()
    assert len(store.read().events) == 1


@pytest.mark.parametrize("timeout", [math.nan, -0.5])
def test_tail_rejects_a_negative_or_nan_timeout(store: MemoryStore, timeout: float) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(timeout))):
        store.tail(OLDEST, timeout=timeout)


@pytest.mark.parametrize("timeout", [math.inf, 1e300])
def test_tail_without_a_finite_bound_waits_for_an_event(store: MemoryStore, timeout: float) -> None:
    result: list[ReadResult] = []
    waiter = threading.Thread(target=lambda: result.append(store.tail(OLDEST, timeout=timeout)))
    waiter.start()
    offset = store.append(make_record())
    waiter.join(30)
    assert not waiter.is_alive()
    assert [e.offset for e in result[0].events] == [offset]


@pytest.mark.parametrize("batch", [False, True])
def test_an_append_wakes_a_tail_that_is_already_waiting(store: MemoryStore, batch: bool) -> None:
    result: list[ReadResult] = []
    waiter = threading.Thread(target=lambda: result.append(store.tail(OLDEST, timeout=30)))
    waiter.start()
    for _ in range(3000):  # until the waiter is inside wait_for, so the notify path runs
        if store._waiting:
            break
        time.sleep(0.01)
    assert store._waiting == 1
    record = make_record()
    offsets = store.append_batch([record]) if batch else [store.append(record)]
    waiter.join(30)
    assert not waiter.is_alive()
    assert [e.event_id for e in result[0].events] == [record.event_id]
    assert [e.offset for e in result[0].events] == offsets
    assert store._waiting == 0


def test_checkpoints_check_their_id_and_offset(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="non-empty string, got None"):
        store.save_checkpoint(None, OLDEST)  # type: ignore[arg-type]
    with pytest.raises(OffsetError, match="'x'"):
        store.save_checkpoint("sub", "x")
    with pytest.raises(ValueError, match=r"store\.read\(NEWEST\)\.next"):
        store.save_checkpoint("sub", NEWEST)  # type: ignore[arg-type]
    assert store.load_checkpoint("sub") is None


def test_repr_shows_size_and_state() -> None:
    store = MemoryStore()
    store.append(make_record())
    assert repr(store) == "<MemoryStore 1 events>"
    store.close()
    assert repr(store) == "<MemoryStore closed>"


def test_context_manager_closes_the_store() -> None:
    with MemoryStore() as store:
        store.append(make_record())
    with pytest.raises(StoreClosedError, match="MemoryStore was closed"):
        store.read()


def test_is_every_capability() -> None:
    store = MemoryStore()
    for capability in (
        EventStore,
        CheckpointStore,
        StreamingReader,
        TailingStore,
        OffsetOrdering,
        ClosableStore,
    ):
        assert isinstance(store, capability), capability


@pytest.mark.parametrize("url", ["memory://", "memory:", "MEMORY://", "Memory:"])
def test_open_memory_store_returns_a_new_empty_store(url: str) -> None:
    first, second = open_memory_store(url), open_memory_store(url)
    assert first is not second
    first.append(make_record())
    assert list(second.read().events) == []


@pytest.mark.parametrize(
    "url",
    [
        "memory://name",
        "memory:///path",
        "memory:name",
        "memory://?size=3",
        "memory://#x",
        "sqlite://",
        "",
    ],
)
def test_open_memory_store_rejects_urls_that_would_mean_something(url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(url))):
        open_memory_store(url)
