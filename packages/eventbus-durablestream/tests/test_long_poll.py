"""The live tail's long-polls, against a reference server with a 1.5 s long-poll period.

An idle subscriber calls ``tail`` in a loop with a short timeout; it must hold at most one
outstanding long-poll, start a request (and its helper thread) only when one is needed, and
still see a publish from elsewhere at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from eventbus.core import NEWEST, StoreClosedError, StoredEvent
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamClient, DurableStreamStore

if TYPE_CHECKING:
    from conftest import RecordingTransport

PERIOD = 1.5  # the server's long-poll period, in seconds (conftest's SLOW_LONG_POLL_MS)
POLL_THREAD = "eventbus-ds-long-poll"


@pytest.fixture
def url(ds_slow_server: Any) -> str:
    return str(ds_slow_server.url)


@pytest.fixture
def path() -> str:
    return f"/v1/stream/eventbus-tail-{uuid.uuid4().hex}"


@pytest.fixture
def thread_starts(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The long-poll helper threads started while the test runs."""
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        if thread.name == POLL_THREAD:
            started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    return started


def ids(events: Any) -> list[str]:
    return [e.event_id for e in events]


def test_an_idle_tail_holds_one_long_poll_and_still_sees_a_publish_at_once(
    url: str, path: str, recording: RecordingTransport, thread_starts: list[threading.Thread]
) -> None:
    with (
        DurableStreamStore(url, path, transport=recording) as store,
        DurableStreamStore(url, path) as publisher,
    ):
        cursor = store.append(make_record())
        before = len(recording.requests)
        calls = 0
        began = time.monotonic()
        while time.monotonic() - began < 3 * PERIOD:
            page = store.tail(cursor, timeout=0.2)
            assert page.events == []
            assert page.next == cursor
            calls += 1
        idle = time.monotonic() - began
        requests = recording.requests[before:]
        # One catch-up read, then one long-poll per server period (the first and last
        # periods may be partial), each on its own helper thread.
        assert calls >= 10
        assert recording.long_polls() <= idle / PERIOD + 2
        assert len(requests) <= recording.long_polls() + 1
        # The last call may have started a helper whose request is not sent yet.
        deadline = time.monotonic() + 10
        while len(thread_starts) != recording.long_polls():
            assert time.monotonic() < deadline, (len(thread_starts), recording.long_polls())
            time.sleep(0.01)

        record = make_record()
        timer = threading.Timer(0.3, publisher.append, args=(record,))
        waited = time.monotonic()
        timer.start()
        page = store.tail(cursor, timeout=10)
        latency = time.monotonic() - waited - 0.3
        timer.join()
        assert ids(page.events) == [record.event_id]
        assert latency < 0.5  # the long-poll answered it, not the end of a period


def test_a_long_poll_that_ended_with_data_serves_the_next_call(
    url: str, path: str, recording: RecordingTransport, thread_starts: list[threading.Thread]
) -> None:
    with (
        DurableStreamStore(url, path, transport=recording) as store,
        DurableStreamStore(url, path) as publisher,
    ):
        cursor = store.append(make_record())
        assert store.tail(cursor, timeout=0.1).events == []  # a long-poll is left pending
        [pending] = store._poller._polls.values()
        sent = len(recording.requests)
        record = make_record()
        publisher.append(record)
        # The pending long-poll brings the event while nobody waits (a 0.3 s sleep here
        # was too short for a loaded host: the next call then waited on it in vain).
        assert pending.done.wait(10)
        page = store.tail(cursor, timeout=0.05)
        assert ids(page.events) == [record.event_id]
        assert len(recording.requests) == sent  # no request: it was already there
        assert len(thread_starts) == recording.long_polls() == 1


def test_a_tail_without_time_to_wait_reads_what_is_there(url: str, path: str) -> None:
    with (
        DurableStreamStore(url, path) as store,
        DurableStreamStore(url, path) as publisher,
    ):
        cursor = store.append(make_record())
        assert store.tail(cursor, timeout=0).events == []
        record = make_record()
        publisher.append(record)
        assert ids(store.tail(cursor, timeout=0).events) == [record.event_id]


def test_callers_waiting_at_one_offset_share_one_long_poll(
    url: str, path: str, recording: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        DurableStreamStore(url, path, transport=recording) as store,
        DurableStreamStore(url, path) as publisher,
    ):
        cursor = store.append(make_record())
        store.tail(cursor, timeout=0)  # the window now ends at the cursor
        pages: list[list[StoredEvent]] = []
        entered: list[str] = []
        wait_at = store._poller.wait

        def counted_wait(server_offset: str, remaining: float) -> Any:
            entered.append(server_offset)
            return wait_at(server_offset, remaining)

        monkeypatch.setattr(store._poller, "wait", counted_wait)

        def wait() -> None:
            pages.append(list(store.tail(cursor, timeout=10).events))

        waiters = [threading.Thread(target=wait) for _ in range(3)]
        for waiter in waiters:
            waiter.start()
        # All three wait before the publish (a 0.3 s sleep was no proof: a waiter that
        # starts after it reads the event, or starts a second long-poll).
        deadline = time.monotonic() + 10
        while len(entered) < 3:
            assert time.monotonic() < deadline, f"only {len(entered)} waiters reached the poll"
            time.sleep(0.01)
        record = make_record()
        publisher.append(record)
        for waiter in waiters:
            waiter.join(10)
        assert [ids(page) for page in pages] == [[record.event_id]] * 3
        assert recording.long_polls() == 1


def test_a_long_poll_cut_by_the_store_timeout_is_renewed(
    url: str, path: str, recording: RecordingTransport
) -> None:
    # The store's timeout (0.4 s) is shorter than the server's long-poll period: each
    # request ends quietly at the timeout and the next call asks again.
    with (
        DurableStreamStore(url, path, timeout=0.4, transport=recording) as store,
        DurableStreamStore(url, path) as publisher,
    ):
        cursor = store.append(make_record())
        assert store.tail(cursor, timeout=1.0).events == []
        assert recording.long_polls() >= 2
        record = make_record()
        timer = threading.Timer(0.1, publisher.append, args=(record,))
        timer.start()
        assert ids(store.tail(cursor, timeout=5).events) == [record.event_id]
        # The tail can see the event before the publisher has read the append's
        # response: closing the publisher under it would fail the timer's thread.
        timer.join(5)


def test_a_new_position_forgets_long_polls_of_old_ones(url: str, path: str) -> None:
    with (
        DurableStreamStore(url, path) as store,
        DurableStreamStore(url, path) as publisher,
    ):
        cursor = store.append(make_record())
        assert store.tail(cursor, timeout=0.05).events == []  # pending at the old tail
        [pending] = store._poller._polls.values()
        record = make_record()
        offset = publisher.append(record)
        assert pending.done.wait(10)  # it ends with the event, which nobody takes
        assert ids(store.read(cursor).events) == [record.event_id]
        assert store.tail(offset, timeout=0.05).events == []  # a long-poll at the new tail
        # (the server's tail: an event's offset names it by its POST's anchor)
        assert list(store._poller._polls) == [publisher.read(NEWEST).next]


def test_close_wakes_a_waiting_tail_at_once(url: str, path: str) -> None:
    store = DurableStreamStore(url, path)
    cursor = store.append(make_record())
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            store.tail(cursor, timeout=30)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    closed = time.monotonic()
    store.close()
    waiter.join(5)
    assert time.monotonic() - closed < 0.5
    assert isinstance(outcome[0], StoreClosedError)


def test_close_wakes_a_tail_waiting_out_a_closed_stream(url: str, path: str) -> None:
    store = DurableStreamStore(url, path)
    cursor = store.append(make_record())
    with DurableStreamClient(url) as client:
        client.close_stream(path)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            store.tail(cursor, timeout=30)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    closed = time.monotonic()
    store.close()
    waiter.join(5)
    assert time.monotonic() - closed < 0.5
    assert isinstance(outcome[0], StoreClosedError)
