"""SQLiteStore beyond the conformance kit: options, bad input, group commit, tailing."""

from __future__ import annotations

import _thread
import contextlib
import dataclasses
import functools
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from eventbus.core import (
    NEWEST,
    OLDEST,
    OffsetError,
    StoreClosedError,
    StoreCorruptError,
    StoredEvent,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from eventbus.core.testing import make_record
from eventbus.sqlite import MEMORY, DatabasePathError, SQLiteStore
from eventbus.sqlite import _store as store_module

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db) as opened:
        yield opened


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


class _Call:
    """Run a function in a thread; keep its result or exception."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[[], Any]) -> None:
        try:
            self.result = function()
        except BaseException as exc:  # inspected by the test
            self.error = exc

    def join(self) -> Any:
        self._thread.join(10)
        assert not self._thread.is_alive(), "the call did not finish"
        return self.result


# -- construction and options -----------------------------------------------------------


def test_accepts_path_objects_and_reports_options(db: Path) -> None:
    with SQLiteStore(db, durability="full", busy_timeout=1, read_batch_size=3) as store:
        assert store.path == str(db)
        assert store.durability == "full"
        assert repr(store) == f"<SQLiteStore {str(db)!r} durability='full'>"
        mode = store._writer.execute("PRAGMA synchronous").fetchone()[0]
        assert mode == 2  # FULL
    assert repr(store) == f"<SQLiteStore {str(db)!r} closed>"


def test_normal_durability_is_wal_with_synchronous_normal(store: SQLiteStore) -> None:
    assert store._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"durability": "fast"}, ValueError, "durability must be 'normal' or 'full'"),
        ({"busy_timeout": "5"}, TypeError, "busy_timeout must be a number"),
        ({"busy_timeout": True}, TypeError, "busy_timeout must be a number"),
        ({"busy_timeout": -1}, ValueError, "finite number of seconds >= 0"),
        ({"busy_timeout": float("inf")}, ValueError, "finite number of seconds >= 0"),
        ({"busy_timeout": float("nan")}, ValueError, "finite number of seconds >= 0"),
        ({"read_batch_size": 0}, ValueError, "read_batch_size must be at least 1"),
        ({"read_batch_size": 2.0}, TypeError, "read_batch_size must be an int"),
    ],
)
def test_bad_options_are_refused_before_touching_disk(
    db: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SQLiteStore(db, **options)
    assert not db.exists()


def test_bytes_path_is_refused(db: Path) -> None:
    with pytest.raises(TypeError, match=r"str or os\.PathLike"):
        SQLiteStore(bytes(db))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["events?mode=ro.db", "events#1.db"])
def test_path_with_uri_characters_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatabasePathError, match=r"contains '\?' or '#'") as caught:
        SQLiteStore(tmp_path / name)
    assert name in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_empty_path_is_refused() -> None:
    with pytest.raises(DatabasePathError, match="path is empty"):
        SQLiteStore("")


def test_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "events.db"
    with pytest.raises(DatabasePathError, match="does not exist") as caught:
        SQLiteStore(path)
    assert str(tmp_path / "missing") in str(caught.value)
    assert not (tmp_path / "missing").exists()


def test_folder_as_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabasePathError, match="is a folder"):
        SQLiteStore(tmp_path)


def test_read_only_folder_is_refused(
    tmp_path: Path, make_read_only: Callable[[Path], None]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    make_read_only(folder)
    with pytest.raises(DatabasePathError, match="is read-only") as caught:
        SQLiteStore(folder / "events.db")
    assert str(folder) in str(caught.value)
    assert list(folder.iterdir()) == []


def test_read_only_file_is_refused_and_left_alone(
    db: Path, make_read_only: Callable[[Path], None]
) -> None:
    with SQLiteStore(db) as store:
        store.append(make_record())
    before = db.read_bytes()
    make_read_only(db)
    with pytest.raises(DatabasePathError, match="is read-only") as caught:
        SQLiteStore(db)
    assert str(db) in str(caught.value)
    assert db.read_bytes() == before


def test_file_that_is_not_a_database_is_refused_untouched(db: Path) -> None:
    content = b"these are my notes, not a database\n" * 200
    db.write_bytes(content)
    with pytest.raises(StoreCorruptError, match="not a database") as caught:
        SQLiteStore(db)
    assert str(db) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert db.read_bytes() == content


def test_corrupt_database_is_refused(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.append_batch([make_record() for _ in range(50)])
        store._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    # Keep the 100-byte header, wreck the schema page that follows it.
    data[100:4096] = b"\xff" * (4096 - 100)
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="corrupt or not a database") as caught:
        SQLiteStore(db)
    assert str(db) in str(caught.value)


def test_database_of_another_application_is_refused_untouched(db: Path) -> None:
    conn = _raw(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreCorruptError, match="not an eventbus store") as caught:
        SQLiteStore(db)
    assert "invoices" in str(caught.value)
    assert db.read_bytes() == before


def test_unopenable_file_is_named(tmp_path: Path) -> None:
    link = tmp_path / "events.db"
    link.symlink_to(tmp_path / "gone" / "events.db")  # dangling: SQLite cannot open it
    with pytest.raises(StoreUnavailableError, match="unable to open") as caught:
        SQLiteStore(link)
    assert str(link) in str(caught.value)


def test_locked_database_at_open_times_out_and_writes_nothing(db: Path) -> None:
    empty = _raw(db)
    empty.execute("PRAGMA journal_mode = WAL")
    empty.execute("BEGIN EXCLUSIVE")  # holds the write lock of the still empty file
    try:
        with pytest.raises(StoreTimeoutError, match="stayed locked") as caught:
            SQLiteStore(db, busy_timeout=0)
        assert str(db) in str(caught.value)
    finally:
        empty.execute("ROLLBACK")
        empty.close()
    with SQLiteStore(db) as store:  # nothing was half-written
        assert store.read().events == []


def test_non_sqlite_failure_during_open_propagates(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(conn: sqlite3.Connection, path: str) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "ensure_schema", boom)
    with pytest.raises(KeyboardInterrupt):
        SQLiteStore(db)


# -- memory -----------------------------------------------------------------------------


def test_memory_stores_are_independent_and_keep_data() -> None:
    with SQLiteStore(MEMORY) as first, SQLiteStore(":memory:") as second:
        first.append(make_record())
        assert len(first.read().events) == 1
        assert second.read().events == []
        assert first._writer.execute("PRAGMA journal_mode").fetchone()[0] == "memory"


def test_memory_store_reads_from_many_threads() -> None:
    with SQLiteStore(MEMORY) as store:
        offsets = store.append_batch([make_record() for _ in range(10)])
        seen: list[list[str]] = []
        calls = [
            _Call(lambda: seen.append([e.offset for e in store.read(limit=100).events]))
            for _ in range(4)
        ]
        for call in calls:
            call.join()
        assert seen == [offsets] * 4


# -- records and offsets ----------------------------------------------------------------


def test_stored_event_fields_match_the_fast_decoder() -> None:
    names = tuple(field.name for field in dataclasses.fields(StoredEvent))
    assert names == store_module.STORED_EVENT_FIELDS


def test_every_field_round_trips_including_empty_metadata(store: SQLiteStore) -> None:
    plain = make_record(metadata={})
    tagged = make_record(metadata={"trace": "t-1", "ünï": "cödé"})
    offsets = store.append_batch([plain, tagged])
    events = store.read().events
    assert [e.offset for e in events] == offsets
    assert events[0].metadata == {}
    assert events[1].metadata == {"trace": "t-1", "ünï": "cödé"}
    for event, record in zip(events, [plain, tagged], strict=True):
        assert (event.event_id, event.type_name, event.data, event.origin) == (
            record.event_id,
            record.type_name,
            record.data,
            record.origin,
        )
        assert event.timestamp == record.timestamp
    with pytest.raises(TypeError):
        events[1].metadata["trace"] = "changed"  # type: ignore[index]


def test_non_utc_timestamp_keeps_its_instant(store: SQLiteStore) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    store.append(make_record(timestamp=moment))
    assert store.read().events[0].timestamp == moment


class _Moment(datetime):
    """A datetime subclass: stored through its own isoformat()."""


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no fraction: isoformat leaves it out
        datetime(1, 1, 1, tzinfo=UTC),
        _Moment(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_timestamps_are_stored_as_their_isoformat_text(
    db: Path, store: SQLiteStore, moment: datetime
) -> None:
    store.append(make_record(timestamp=moment))
    with contextlib.closing(_raw(db)) as conn:
        (text,) = conn.execute("SELECT timestamp FROM events").fetchone()
    assert text == moment.isoformat()
    assert store.read().events[0].timestamp == moment


def test_naive_timestamp_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="naive timestamp"):
        store.append(make_record(timestamp=datetime(2026, 1, 1)))
    assert store.read().events == []


def test_non_records_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(TypeError, match="EventRecord instances"):
        store.append({"data": "{}"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EventRecord instances"):
        store.append_batch([make_record(), "nope"])  # type: ignore[list-item]
    assert store.read().events == []


def test_offsets_are_fixed_width_and_sort_as_strings(store: SQLiteStore) -> None:
    offsets = store.append_batch([make_record() for _ in range(12)])
    assert all(len(o) == 20 and o.isdigit() for o in offsets)
    assert offsets == sorted(offsets)
    assert offsets[9] == "00000000000000000010"
    assert store.compare_offsets(offsets[8], offsets[9]) == -1  # "9" > "10" as text unpadded
    assert store.compare_offsets(offsets[9], offsets[9]) == 0


def test_offsets_from_another_store_are_refused(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "a.db") as big, SQLiteStore(tmp_path / "b.db") as small:
        foreign = big.append_batch([make_record() for _ in range(5)])[-1]
        small.append(make_record())
        for call in (
            lambda: small.read(foreign),
            lambda: small.iter_events(foreign),
            lambda: small.tail(foreign, timeout=0),
            lambda: small.compare_offsets(foreign, "00000000000000000001"),
            lambda: small.save_checkpoint("s", foreign),
        ):
            with pytest.raises(OffsetError, match="past the tail"):
                call()
        assert small.load_checkpoint("s") is None


def test_positions_are_never_reused_after_deleting_the_newest(store: SQLiteStore) -> None:
    first, second = store.append_batch([make_record(), make_record()])
    store._writer.execute("DELETE FROM events WHERE position = 2")
    third = store.append(make_record())
    assert store.compare_offsets(third, second) > 0
    assert [e.offset for e in store.read().events] == [first, third]


def test_duplicate_event_id_is_refused_clearly(store: SQLiteStore) -> None:
    record = make_record()
    store.append(record)
    with pytest.raises(StoreError, match="already stored") as caught:
        store.append(dataclasses.replace(record, data='{"other": 1}'))
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert len(store.read().events) == 1


def test_batch_with_duplicate_event_id_stores_nothing(store: SQLiteStore) -> None:
    record = make_record()
    with pytest.raises(StoreError, match="already stored"):
        store.append_batch([record, make_record(), record])
    assert store.read().events == []


# -- reading ----------------------------------------------------------------------------


def test_iter_events_uses_the_read_batch_size(db: Path) -> None:
    with SQLiteStore(db, read_batch_size=2) as store:
        offsets = store.append_batch([make_record() for _ in range(5)])
        queries: list[str] = []
        store._reader().conn.set_trace_callback(queries.append)
        assert [e.offset for e in store.iter_events()] == offsets
        selects = [q for q in queries if "FROM events WHERE position >" in q]
        assert len(selects) == 4  # 2 + 2 + 1, then the empty page that ends it
        assert [e.offset for e in store.iter_events(offsets[1], batch_size=10)] == offsets[2:]


def test_reads_do_not_wait_for_a_writer(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    writer = _raw(db)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO events (event_id, type_name, data, timestamp, origin) "
        "VALUES ('x', 't', '{}', '2026-01-01T00:00:00+00:00', 'o')"
    )
    try:
        assert [e.offset for e in store.read().events] == [offset]  # WAL snapshot
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_reader_connections_of_finished_threads_are_closed(store: SQLiteStore) -> None:
    store.append(make_record())
    _Call(lambda: store.read()).join()
    assert len(store._readers) == 1
    finished = store._readers[0]
    _Call(lambda: store.read()).join()
    assert len(store._readers) == 1
    assert store._readers[0] is not finished
    with pytest.raises(sqlite3.ProgrammingError):
        finished.conn.execute("SELECT 1")


def test_reader_opened_during_close_is_not_leaked(store: SQLiteStore) -> None:
    store.close()
    with pytest.raises(StoreClosedError):
        store._reader()
    assert store._readers == []


def test_corrupt_checkpoint_value_is_reported(db: Path, store: SQLiteStore) -> None:
    conn = _raw(db)
    conn.execute("INSERT INTO checkpoints (subscription_id, checkpoint) VALUES ('s', 'garbage')")
    conn.close()
    with pytest.raises(StoreCorruptError, match="'garbage', which is not an offset"):
        store.load_checkpoint("s")


def test_checkpoint_write_failure_keeps_the_old_value(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    store.save_checkpoint("s", OLDEST)
    conn = _raw(db)
    conn.execute(
        "CREATE TRIGGER no_moves BEFORE UPDATE ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are frozen'); END"
    )
    conn.close()
    with pytest.raises(StoreError, match="checkpoints are frozen"):
        store.save_checkpoint("s", offset)
    assert store.load_checkpoint("s") is OLDEST
    assert not store._writer.in_transaction


def test_checkpoint_of_oldest_is_stored_distinguishably(db: Path, store: SQLiteStore) -> None:
    offset = store.append(make_record())
    store.save_checkpoint("a", OLDEST)
    store.save_checkpoint("b", offset)
    with contextlib.closing(_raw(db)) as conn:
        rows = dict(conn.execute("SELECT subscription_id, checkpoint FROM checkpoints"))
    assert rows == {"a": "oldest", "b": offset}


# -- group commit -----------------------------------------------------------------------


def _append_n(store: SQLiteStore, n: int) -> str:
    return store.append(make_record({"n": n}))


def test_appends_queued_behind_a_writer_share_one_transaction(store: SQLiteStore) -> None:
    inserts: list[str] = []
    store._writer.set_trace_callback(
        lambda sql: inserts.append(sql) if sql.startswith("INSERT INTO events") else None
    )
    store._write_lock.acquire()  # a long write in progress
    try:
        leader = _Call(lambda: store.append(make_record({"n": 0})))
        _wait_until(lambda: store._leading and not store._pending, "the leader to take its batch")
        followers = [_Call(functools.partial(_append_n, store, i)) for i in (1, 2, 3)]
        _wait_until(lambda: len(store._pending) == 3, "three queued followers")
    finally:
        store._write_lock.release()
    offsets = [leader.join()] + [f.join() for f in followers]
    assert len(set(offsets)) == 4
    # The leader's own statement, then one statement (one transaction) for all three.
    assert [sql.count('{"n": ') for sql in inserts] == [1, 3]
    stored = {e.offset: e.data for e in store.read().events}
    assert stored == {offsets[i]: f'{{"n": {i}}}' for i in range(4)}
    assert not store._leading


def test_large_batches_span_several_statements_in_one_transaction(store: SQLiteStore) -> None:
    first = store.append(make_record())
    records = [make_record({"n": n}) for n in range(150)]
    offsets = store.append_batch(records)
    assert offsets == [f"{n:020d}" for n in range(2, 152)]
    assert [e.data for e in store.read(first, limit=200).events] == [r.data for r in records]
    taken = records[140]
    with pytest.raises(StoreError, match="already stored"):
        store.append_batch([make_record() for _ in range(100)] + [taken])  # fails in chunk 2
    assert store.read(NEWEST).next == offsets[-1]
    assert not store._writer.in_transaction


def test_leader_after_a_group_yields_once_to_the_woken_callers(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        second = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 1, "the second")
        third = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 2, "the third")
    finally:
        store._write_lock.release()
    for call in (leader, second, third):
        call.join()
    assert store._woken == 1  # the second led [second, third] and woke the third
    sleeps: list[float] = []
    real_sleep = time.sleep

    def spy(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", spy)
    store.append(make_record())  # yields once: the woken caller may append again
    store.append(make_record())  # alone: no yield
    monkeypatch.undo()
    assert sleeps == [0]
    assert len(store.read().events) == 5


def test_one_bad_record_does_not_fail_its_group(store: SQLiteStore) -> None:
    taken = make_record()
    store.append(taken)
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        duplicate = _Call(lambda: store.append(taken))
        _wait_until(lambda: len(store._pending) == 1, "the duplicate to queue")
        good = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 2, "the good record to queue")
    finally:
        store._write_lock.release()
    leader.join()
    good_offset = good.join()
    duplicate.join()
    assert isinstance(duplicate.error, StoreError)
    assert "already stored" in str(duplicate.error)
    assert good.error is None
    assert store.read().events[-1].offset == good_offset


def test_busy_database_fails_every_queued_append(db: Path) -> None:
    with SQLiteStore(db, busy_timeout=0) as store:
        blocker = _raw(db)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            store._write_lock.acquire()
            try:
                first = _Call(lambda: store.append(make_record()))
                _wait_until(lambda: store._leading and not store._pending, "the leader")
                second = _Call(lambda: store.append(make_record()))
                third = _Call(lambda: store.append(make_record()))
                _wait_until(lambda: len(store._pending) == 2, "two followers")
            finally:
                store._write_lock.release()
            for call in (first, second, third):
                call.join()
                assert isinstance(call.error, StoreTimeoutError)
            assert second.error is not third.error
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.append(make_record()) == "00000000000000000001"


def test_close_fails_queued_appends_cleanly(store: SQLiteStore) -> None:
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        follower = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 1, "the follower")
        closer = _Call(store.close)
        _wait_until(lambda: store._closed, "close to begin")
    finally:
        store._write_lock.release()
    closer.join()
    for call in (leader, follower):
        call.join()
        assert isinstance(call.error, StoreClosedError)
        assert "before the append was committed" in str(call.error)


class _ClosingLock:
    """The store's write lock, except that taking it without waiting starts a close."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._lock = store._write_lock
        self.closers: list[_Call] = []

    def acquire(self, blocking: bool = True) -> bool:
        took = self._lock.acquire(blocking)
        if took and not blocking:  # the uncontended append: close() now waits for it
            self.closers.append(_Call(self._store.close))
            _wait_until(lambda: self._store._closed, "close to begin")
        return took

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def test_close_just_before_an_uncontended_write_stores_nothing(
    db: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = _ClosingLock(store)
    monkeypatch.setattr(store, "_write_lock", lock)
    with pytest.raises(StoreClosedError, match="before the append was committed"):
        store.append(make_record())
    (closer,) = lock.closers
    closer.join()
    assert closer.error is None
    monkeypatch.undo()
    assert not store._write_lock.locked()
    with SQLiteStore(db) as reopened:
        assert reopened.read().events == []


def test_uncontended_appends_skip_the_queue(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_queue(rows: list[Any]) -> list[str]:
        raise AssertionError("an uncontended append went through the queue")

    monkeypatch.setattr(store, "_submit", no_queue)
    assert store.append(make_record()) == "00000000000000000001"
    assert store.append_batch([make_record(), make_record()]) == [
        "00000000000000000002",
        "00000000000000000003",
    ]
    assert not store._write_lock.locked()
    assert not store._leading


def test_batches_queue_behind_a_busy_writer(store: SQLiteStore) -> None:
    store._write_lock.acquire()  # another writer, such as save_checkpoint
    try:
        first = _Call(lambda: store.append_batch([make_record({"n": 0}), make_record({"n": 1})]))
        _wait_until(lambda: store._leading and not store._pending, "the first batch to lead")
        second = _Call(lambda: store.append_batch([make_record({"n": 2}), make_record({"n": 3})]))
        _wait_until(lambda: len(store._pending) == 1, "the second batch to queue")
    finally:
        store._write_lock.release()
    assert first.join() == ["00000000000000000001", "00000000000000000002"]
    assert second.join() == ["00000000000000000003", "00000000000000000004"]
    assert [e.data for e in store.read().events] == [f'{{"n": {n}}}' for n in range(4)]
    assert not store._leading


def test_interrupted_leader_fails_its_batch_and_steps_down(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = store._write

    def write(batch: list[Any]) -> None:
        if len(batch) > 1:
            raise KeyboardInterrupt  # the leader of the second batch is interrupted
        real_write(batch)

    monkeypatch.setattr(store, "_write", write)
    store._write_lock.acquire()
    try:
        first = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        second = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 1, "the second")
        third = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 2, "the third")
    finally:
        store._write_lock.release()
    for call in (first, second, third):
        call.join()
    assert first.error is None
    assert isinstance(second.error, KeyboardInterrupt)
    assert isinstance(third.error, StoreUnavailableError)
    assert "interrupted before it committed" in str(third.error)
    assert not store._leading
    assert len(store.read().events) == 1
    monkeypatch.undo()
    assert store.append(make_record()) == "00000000000000000002"


class _InterruptedWake:
    """A follower's wake lock whose blocking wait is interrupted (as by Ctrl-C).

    ``after`` decides when: at once, or once the leader released it (committed the
    rows, or promoted the follower to leader).
    """

    def __init__(self, after_release: bool) -> None:
        self._lock = threading.Lock()
        self._after_release = after_release

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking or not self._lock.locked():
            return self._lock.acquire(blocking)
        if self._after_release:
            _wait_until(lambda: not self._lock.locked(), "the leader to release the wake")
        raise KeyboardInterrupt

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def _interrupt_next_follower(
    monkeypatch: pytest.MonkeyPatch, *, after_release: bool, skip: int = 0
) -> None:
    made = iter([*([None] * skip), _InterruptedWake(after_release)])
    real = _thread.allocate_lock

    class _Thread:
        @staticmethod
        def allocate_lock() -> Any:
            return next(made, None) or real()

    monkeypatch.setattr(store_module, "_thread", _Thread)


def test_follower_interrupted_while_queued_stores_nothing(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=False)
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record({"who": "leader"})))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        quitter = _Call(lambda: store.append(make_record({"who": "quitter"})))
        quitter.join()
        assert isinstance(quitter.error, KeyboardInterrupt)
        assert store._pending == []
    finally:
        store._write_lock.release()
    leader.join()
    assert [e.data for e in store.read().events] == ['{"who": "leader"}']
    assert not store._leading


def test_promoted_follower_interrupted_with_nobody_behind_steps_down(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=True)
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        follower = _Call(lambda: store.append(make_record()))
        _wait_until(lambda: len(store._pending) == 1, "the follower")
        # The leader promotes the follower, whose wait is then interrupted.
    finally:
        store._write_lock.release()
    leader.join()
    follower.join()
    assert isinstance(follower.error, KeyboardInterrupt)
    assert not store._leading  # it handed the role back: later appends do not hang
    assert len(store.read().events) == 1
    store.append(make_record())
    assert len(store.read().events) == 2


def test_promoted_follower_interrupted_passes_leadership_on(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=True)
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record({"n": 0})))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        quitter = _Call(lambda: store.append(make_record({"n": 1})))
        _wait_until(lambda: len(store._pending) == 1, "the quitter")
        last = _Call(lambda: store.append(make_record({"n": 2})))
        _wait_until(lambda: len(store._pending) == 2, "the last follower")
    finally:
        store._write_lock.release()
    leader.join()
    quitter.join()
    last.join()
    assert isinstance(quitter.error, KeyboardInterrupt)
    assert last.error is None
    assert [e.data for e in store.read().events] == ['{"n": 0}', '{"n": 2}']
    assert not store._leading


def test_follower_interrupted_after_its_rows_were_taken_keeps_them(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_next_follower(monkeypatch, after_release=True, skip=1)
    store._write_lock.acquire()
    try:
        leader = _Call(lambda: store.append(make_record({"n": 0})))
        _wait_until(lambda: store._leading and not store._pending, "the leader")
        successor = _Call(lambda: store.append(make_record({"n": 1})))
        _wait_until(lambda: len(store._pending) == 1, "the successor")
        quitter = _Call(lambda: store.append(make_record({"n": 2})))
        _wait_until(lambda: len(store._pending) == 2, "the quitter")
    finally:
        store._write_lock.release()
    for call in (leader, successor, quitter):
        call.join()
    assert successor.error is None
    # Its rows were committed in the successor's batch before the interrupt landed.
    assert isinstance(quitter.error, KeyboardInterrupt)
    assert [e.data for e in store.read().events] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert not store._leading


# -- tailing ----------------------------------------------------------------------------


def test_tail_sees_appends_through_another_store_on_the_same_file(db: Path) -> None:
    with SQLiteStore(db) as follower, SQLiteStore(db) as writer:
        start = follower.read(NEWEST).next
        waiting = _Call(lambda: follower.tail(start, timeout=30))
        time.sleep(0.1)  # let the follower back off to its longer polls
        offset = writer.append(make_record())
        result = waiting.join()
        assert [e.offset for e in result.events] == [offset]


def test_tail_from_newest_waits_for_the_next_event(store: SQLiteStore) -> None:
    store.append(make_record())
    waiting = _Call(lambda: store.tail(NEWEST, timeout=30))
    _wait_until(lambda: store._commits >= 1, "the first commit")
    time.sleep(0.01)
    offset = store.append(make_record())
    assert [e.offset for e in waiting.join().events] == [offset]


def test_tail_timeout_on_empty_store_keeps_oldest(store: SQLiteStore) -> None:
    result = store.tail(OLDEST, timeout=0.01)
    assert result.events == []
    assert result.next is OLDEST


def test_tail_counts_itself_only_while_it_waits(store: SQLiteStore) -> None:
    assert store.tail(OLDEST, timeout=0.01).events == []
    assert store._tailing == 0
    waiting = _Call(lambda: store.tail(OLDEST, timeout=30))
    _wait_until(lambda: store._tailing == 1, "the tail to wait")
    offset = store.append(make_record())  # a waiting tail is notified
    assert [e.offset for e in waiting.join().events] == [offset]
    assert store._tailing == 0
    closed = _Call(lambda: store.tail(offset, timeout=30))
    _wait_until(lambda: store._tailing == 1, "the second tail to wait")
    store.close()
    closed.join()
    assert isinstance(closed.error, StoreClosedError)
    assert store._tailing == 0


def test_tail_keeps_waiting_after_a_failed_append(store: SQLiteStore) -> None:
    record = make_record()
    offset = store.append(record)
    waiting = _Call(lambda: store.tail(offset, timeout=0.3))
    time.sleep(0.02)
    with pytest.raises(StoreError, match="already stored"):
        store.append(record)  # wakes the waiter, which finds nothing new
    result = waiting.join()
    assert result.events == []
    assert result.next == offset
