"""DurableStreamStore leases and checkpoints beyond the kit: races between instances,
zombies, generations, the old checkpoint layout and the faults around them.

The kit's ``LeaseContract`` runs in ``test_store.py``; these tests use the real reference
server, with a transport that can run something just before a chosen request.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from eventbus.core import (
    OLDEST,
    Lease,
    LeaseLostError,
    Owner,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
)
from eventbus.core.testing import make_record
from eventbus.durablestream import (
    DurableStreamClient,
    DurableStreamStore,
    StreamNotFoundError,
    _lease_log,
)

JSON = "application/json"


def owner(name: str) -> Owner:
    return Owner("host-" + name, 7, name)


Hook = Callable[[httpx.Request], "httpx.Response | object"]


class HookTransport(httpx.BaseTransport):
    """Forwards to the server; a planned hook runs before (or instead of) a matching request."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.hooks: list[tuple[Callable[[httpx.Request], bool], Hook]] = []
        self.posts = 0
        self.methods: set[str] = set()

    def before(self, match: Callable[[httpx.Request], bool], hook: Hook) -> None:
        self.hooks.append((match, hook))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.methods.add(request.method)
        if request.method == "POST":
            self.posts += 1
        for index, (match, hook) in enumerate(self.hooks):
            if match(request):
                del self.hooks[index]
                answer = hook(request)
                if isinstance(answer, httpx.Response):
                    return answer
                break
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def fenced_post(kind: str) -> Callable[[httpx.Request], bool]:
    """Matches a POST of a lease record of ``kind``."""

    def match(request: httpx.Request) -> bool:
        return request.method == "POST" and f'"kind": "{kind}"' in request.content.decode()

    return match


@pytest.fixture
def url(ds_server: Any) -> str:
    return str(ds_server.url)


@pytest.fixture
def path() -> str:
    return f"/v1/stream/eventbus-leases-{uuid.uuid4().hex}"


@pytest.fixture
def hook() -> HookTransport:
    return HookTransport()


@pytest.fixture
def store(url: str, path: str, hook: HookTransport) -> Iterator[DurableStreamStore]:
    with DurableStreamStore(url, path, transport=hook) as opened:
        yield opened


@pytest.fixture
def other(url: str, path: str) -> Iterator[DurableStreamStore]:
    with DurableStreamStore(url, path) as opened:
        yield opened


@pytest.fixture
def client(url: str) -> Iterator[DurableStreamClient]:
    with DurableStreamClient(url) as opened:
        yield opened


def log_url(path: str, generation: int = 0, subscription_id: str = "sub") -> str:
    name = base64.urlsafe_b64encode(subscription_id.encode()).decode().rstrip("=")
    head = f"{path}.eventbus-leases/{name}"
    return head if generation == 0 else f"{head}.{generation}"


def move_by_hand(client: DurableStreamClient, path: str) -> None:
    """Close generation 0 with a move to generation 1, as a mover does first."""
    moved = {"kind": "moved", "to": log_url(path, 1), "nonce": "by-hand"}
    client.close_stream(log_url(path, 0), data=json.dumps([moved]), content_type=JSON)


def claim(store: DurableStreamStore, name: str, seen: Lease | None = None) -> Lease:
    lease = store.claim_lease("sub", owner(name), seen)
    assert lease is not None
    return lease


# -- races between instances (processes) ---------------------------------------------------


def test_instances_racing_claims_have_exactly_one_winner(url: str, path: str) -> None:
    stores = [DurableStreamStore(url, path) for _ in range(8)]
    try:
        seen = stores[0].read_lease("sub")
        for store in stores:
            store.read_lease("sub")  # each instance has read the same record
        start = threading.Barrier(len(stores))
        won: list[Lease | None] = [None] * len(stores)

        def run(index: int) -> None:
            start.wait()
            won[index] = stores[index].claim_lease("sub", owner(str(index)), seen)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [lease for lease in won if lease is not None]
        assert len(winners) == 1, f"exactly one claim may win, got {winners}"
        for store in stores:
            assert store.read_lease("sub") == winners[0]
    finally:
        for store in stores:
            store.close()


def test_racing_claims_with_one_token_store_one_claim(
    store: DurableStreamStore, other: DurableStreamStore, hook: HookTransport
) -> None:
    # Both read "never claimed"; the other instance's claim lands first with the same token.
    hook.before(fenced_post("claim"), lambda _: other.claim_lease("sub", owner("b"), None))
    assert store.claim_lease("sub", owner("a"), None) is None
    assert store.read_lease("sub") == Lease("sub", owner("b"), 1)


def test_a_renewal_landing_before_a_claim_stops_the_claim(
    store: DurableStreamStore, other: DurableStreamStore, hook: HookTransport
) -> None:
    lease = claim(other, "a")
    seen = store.read_lease("sub")
    assert seen == lease
    renewed: list[Lease] = []
    # Between this instance's read and its claim, the holder renews: the claim carries the
    # index of the lease change it expects (Stream-Seq), which the renewal took (409).
    hook.before(fenced_post("claim"), lambda _: renewed.append(other.renew_lease(lease)))
    assert store.claim_lease("sub", owner("b"), seen) is None
    assert store.read_lease("sub") == renewed[0]
    other.renew_lease(renewed[0])  # the holder keeps it


def test_a_release_after_an_unseen_renewal_releases(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    lease = claim(store, "a")
    other.read_lease("sub")
    renewed = other.renew_lease(lease)  # a renewal this instance has not read
    store.release_lease(renewed)
    released = other.read_lease("sub")
    assert released is not None
    assert released.released


def test_a_later_token_beats_a_claim_in_flight(
    store: DurableStreamStore, other: DurableStreamStore, hook: HookTransport
) -> None:
    first = claim(other, "b")
    second = claim(other, "b", first)
    store.read_lease("sub")

    # Between this instance's read and its claim, the other claims twice: the claim's
    # token is already below the server's epoch (403).
    def claim_twice(_: httpx.Request) -> None:
        third = claim(other, "c", second)
        claim(other, "d", third)

    hook.before(fenced_post("claim"), claim_twice)
    assert store.claim_lease("sub", owner("a"), second) is None
    assert store.read_lease("sub") == Lease("sub", owner("d"), 4)


def test_a_zombie_writes_nothing_after_a_takeover(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    offsets = store.append_batch([make_record() for _ in range(3)])
    mine = claim(store, "a")
    store.save_checkpoint_fenced(mine, offsets[0])
    theirs = claim(other, "b", store.renew_lease(mine))
    with pytest.raises(LeaseLostError, match="claimed it with token 2"):
        store.renew_lease(mine)
    with pytest.raises(LeaseLostError):
        store.save_checkpoint_fenced(mine, offsets[2])
    store.release_lease(mine)  # lost: changes nothing
    assert other.read_lease("sub") == theirs
    assert other.load_checkpoint("sub") == offsets[0]


def test_release_after_a_takeover_with_the_next_token_changes_nothing(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    mine = claim(store, "a")
    theirs = claim(other, "b", mine)
    assert theirs.token == mine.token + 1  # the release would spend this very token
    store.release_lease(mine)
    assert store.read_lease("sub") == theirs
    other.renew_lease(theirs)


@pytest.mark.parametrize("claims", [1, 2])
def test_a_release_racing_a_takeover_changes_nothing(
    store: DurableStreamStore,
    other: DurableStreamStore,
    hook: HookTransport,
    claims: int,
) -> None:
    mine = claim(store, "a")
    store.read_lease("sub")  # this instance has seen its lease current
    taken: list[Lease] = [mine]

    def take_over(_: httpx.Request) -> None:
        for name in "bc"[:claims]:
            taken.append(claim(other, name, taken[-1]))

    # One takeover spends the release's token (204); two put it below the epoch (403).
    hook.before(fenced_post("release"), take_over)
    store.release_lease(mine)
    assert store.read_lease("sub") == taken[-1]


def test_a_fenced_write_with_a_token_never_claimed_is_refused(store: DurableStreamStore) -> None:
    lease = claim(store, "a")
    with pytest.raises(LeaseLostError):
        store.renew_lease(Lease("sub", owner("a"), 9))  # the server: a new epoch needs seq 0
    assert store.read_lease("sub") == lease


def test_a_renewal_by_a_second_instance_catches_up_its_sequence(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    lease = claim(store, "a")
    other.read_lease("sub")
    renewed = store.renew_lease(lease)
    # The other instance's fold misses that renewal: its first sequence is a duplicate
    # (204, not stored), so it reads on and appends with the next one.
    again = other.renew_lease(renewed)
    assert again.beat > renewed.beat
    assert store.read_lease("sub") == again


def test_a_write_answered_as_duplicate_of_itself_counts_as_stored(
    store: DurableStreamStore, hook: HookTransport
) -> None:
    def land_then_duplicate(request: httpx.Request) -> httpx.Response:
        # The request lands but its answer is lost; the resent request gets 204.
        hook.inner.handle_request(request).read()
        return hook.inner.handle_request(request)

    hook.before(fenced_post("claim"), land_then_duplicate)
    lease = claim(store, "a")
    assert store.read_lease("sub") == lease
    hook.before(fenced_post("beat"), land_then_duplicate)
    renewed = store.renew_lease(lease)
    assert store.read_lease("sub") == renewed
    hook.before(fenced_post("release"), land_then_duplicate)
    store.release_lease(renewed)
    released = store.read_lease("sub")
    assert released is not None
    assert released.released


def test_a_write_that_stays_a_duplicate_gives_up(
    store: DurableStreamStore, hook: HookTransport
) -> None:
    lease = claim(store, "a")
    for _ in range(_lease_log._ATTEMPTS):
        hook.before(fenced_post("beat"), lambda _: httpx.Response(204))
    with pytest.raises(StoreError, match="attempts"):
        store.renew_lease(lease)


def test_a_wrong_sequence_guess_is_corrected_from_the_log(store: DurableStreamStore) -> None:
    lease = claim(store, "a")
    store._leases._views["sub"].mine[lease.token] = 41  # as if it had written more
    renewed = store.renew_lease(lease)
    assert store.read_lease("sub") == renewed


def test_a_fenced_write_of_a_never_written_id_is_refused(store: DurableStreamStore) -> None:
    with pytest.raises(LeaseLostError, match="no lease"):
        store.renew_lease(Lease("sub", owner("a"), 1))
    store.release_lease(Lease("sub", owner("a"), 1))
    assert store.read_lease("sub") is None


# -- generations: compaction by moving to a new stream ------------------------------------


@pytest.fixture
def small_generations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lease_log, "COMPACT_AFTER", 4)


@pytest.mark.usefixtures("small_generations")
def test_a_full_generation_moves_to_a_new_stream(
    store: DurableStreamStore,
    client: DurableStreamClient,
    hook: HookTransport,
    url: str,
    path: str,
) -> None:
    offsets = store.append_batch([make_record() for _ in range(3)])
    lease = claim(store, "a")
    for n in range(20):
        lease = store.renew_lease(lease)
        store.save_checkpoint_fenced(lease, offsets[n % 3])
    assert store.read_lease("sub") == lease
    assert store.load_checkpoint("sub") == offsets[19 % 3]
    old = client.read(log_url(path, 0))
    assert old.stream_closed, "a full generation is closed"
    assert old.json()[-1]["to"] == log_url(path, 1)
    assert client.head(log_url(path, 1)).closed, "generations move on, one after another"
    assert "DELETE" not in hook.methods, "nothing is deleted (and so nothing created twice)"
    with DurableStreamStore(url, path) as fresh:  # finds the newest generation at once
        assert fresh.read_lease("sub") == lease
        assert fresh.load_checkpoint("sub") == offsets[19 % 3]
        taken = claim(fresh, "b", lease)
    with pytest.raises(LeaseLostError):
        store.renew_lease(lease)
    assert store.read_lease("sub") == taken


@pytest.mark.usefixtures("small_generations")
def test_a_zombie_is_fenced_in_the_new_generation(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    old = claim(store, "a")
    new = claim(other, "b", old)
    for _ in range(6):  # the other instance moves the log on; the zombie still reads gen 0
        new = other.renew_lease(new)
    with pytest.raises(LeaseLostError):
        store.renew_lease(old)
    with pytest.raises(LeaseLostError):
        store.save_checkpoint_fenced(old, OLDEST)
    store.release_lease(old)
    assert other.read_lease("sub") == new
    assert other.load_checkpoint("sub") is None


@pytest.mark.usefixtures("small_generations")
def test_writers_follow_a_move_made_by_another_instance(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    offset = store.append(make_record())
    lease = claim(store, "a")
    other.read_lease("sub")
    for _ in range(5):
        lease = store.renew_lease(lease)
    # Every kind of write by the other instance starts in the closed generation.
    store.save_checkpoint("sub", offset)
    other.save_checkpoint("sub", OLDEST)
    assert store.load_checkpoint("sub") is OLDEST
    for _ in range(5):
        lease = store.renew_lease(lease)
    store.release_lease(lease)
    released = store.read_lease("sub")
    assert released is not None
    assert released.released
    taken = claim(other, "b", released)
    assert store.read_lease("sub") == taken


@pytest.mark.usefixtures("small_generations")
def test_a_move_left_half_done_is_finished_by_a_reader(
    store: DurableStreamStore, client: DurableStreamClient, url: str, path: str
) -> None:
    lease = claim(store, "a")
    store.save_checkpoint_fenced(lease, OLDEST)
    # A mover closed generation 0 and stopped before creating generation 1.
    move_by_hand(client, path)
    with DurableStreamStore(url, path) as fresh:
        assert fresh.read_lease("sub") == lease
        assert fresh.load_checkpoint("sub") is OLDEST
    assert client.read(log_url(path, 1)).json()[0]["kind"] == "snapshot"
    renewed = store.renew_lease(lease)
    assert store.read_lease("sub") == renewed


@pytest.mark.usefixtures("small_generations")
def test_the_newest_of_many_generations_is_found_by_bisection(
    store: DurableStreamStore, url: str, path: str
) -> None:
    lease = claim(store, "a")
    for _ in range(18):  # generations 0..5: probes 1, 2, 4, 8, then 6 and 5
        lease = store.renew_lease(lease)
    with DurableStreamStore(url, path) as fresh:
        assert fresh.read_lease("sub") == lease


@pytest.mark.usefixtures("small_generations")
def test_a_move_found_done_when_about_to_move_is_not_repeated(
    store: DurableStreamStore, client: DurableStreamClient, hook: HookTransport, path: str
) -> None:
    lease = claim(store, "a")
    for _ in range(2):
        lease = store.renew_lease(lease)
    store.read_lease("sub")

    def land_then_move(request: httpx.Request) -> httpx.Response:
        # The 4th record lands; another mover closes the log before this one reads on.
        response = hook.inner.handle_request(request)
        move_by_hand(client, path)
        return response

    hook.before(fenced_post("beat"), land_then_move)
    lease = store.renew_lease(lease)
    assert store.read_lease("sub") == lease
    assert not client.head(log_url(path, 1)).closed, "the new generation is not moved again"


@pytest.mark.usefixtures("small_generations")
def test_a_move_racing_another_writer_is_one_move(
    store: DurableStreamStore, other: DurableStreamStore, hook: HookTransport, path: str
) -> None:
    lease = claim(store, "a")
    for _ in range(2):
        lease = store.renew_lease(lease)
    other.read_lease("sub")
    other.save_checkpoint("sub", OLDEST)  # the 4th record: other moves the log...

    def is_close(request: httpx.Request) -> bool:
        return request.method == "POST" and "moved" in request.content.decode()

    # ...and this instance, one record later, finds the close already done.
    hook.before(is_close, lambda _: None)
    lease = store.renew_lease(lease)
    assert other.read_lease("sub") == lease


def test_a_claim_during_a_move_claims_in_the_new_generation(
    store: DurableStreamStore, client: DurableStreamClient, hook: HookTransport, path: str
) -> None:
    first = claim(store, "a")
    store.release_lease(first)
    released = store.read_lease("sub")

    def move(_: httpx.Request) -> None:
        move_by_hand(client, path)

    hook.before(fenced_post("claim"), move)
    lease = claim(store, "b", released)
    assert lease.token == 3
    assert store.read_lease("sub") == lease
    assert client.read(log_url(path, 1)).json()[-1]["kind"] == "claim"


def test_a_claim_that_keeps_finding_moves_gives_up(
    store: DurableStreamStore, hook: HookTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lease_log, "_ATTEMPTS", 1)
    hook.before(fenced_post("claim"), lambda _: _closed())
    with pytest.raises(StoreError, match="Could not claim 'sub'"):
        store.claim_lease("sub", owner("a"), None)
    hook.before(fenced_post("checkpoint"), lambda _: _closed())
    with pytest.raises(StoreError, match="moved to a new generation 1 times"):
        store.save_checkpoint("sub", OLDEST)
    lease = claim(store, "a")
    hook.before(fenced_post("release"), lambda _: _closed())
    with pytest.raises(StoreError, match="moved"):
        store.release_lease(lease)


def _closed() -> httpx.Response:
    return httpx.Response(409, headers={"Stream-Closed": "true"}, text="Stream is closed")


def test_a_deleted_generation_is_reported(
    store: DurableStreamStore, client: DurableStreamClient, path: str, hook: HookTransport
) -> None:
    lease = claim(store, "a")
    store.save_checkpoint("sub", OLDEST)
    client.delete(log_url(path, 0))
    store._leases._views["sub"].generation = 1  # as if it had moved on
    store._leases._views["sub"].url = log_url(path, 1)
    with pytest.raises(LeaseLostError):
        store.renew_lease(lease)
    with pytest.raises(StreamNotFoundError):
        store.save_checkpoint("sub", OLDEST)


# -- reading -------------------------------------------------------------------------------


def test_a_read_that_ends_before_the_tail_reads_on(
    store: DurableStreamStore, hook: HookTransport, url: str, path: str
) -> None:
    lease = claim(store, "a")
    inner = hook.inner

    class Partial(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = inner.handle_request(request)
            if request.method == "GET" and "offset=-1" in str(request.url):
                response.read()
                headers = {k: v for k, v in response.headers.items() if k != "stream-up-to-date"}
                return httpx.Response(
                    response.status_code, headers=headers, content=response.content
                )
            return response

    hook.inner = Partial()  # type: ignore[assignment]
    try:
        with DurableStreamStore(
            store._url.split("/v1/")[0], store._stream, transport=hook
        ) as fresh:
            assert fresh.read_lease("sub") == lease
    finally:
        hook.inner = inner


def test_a_corrupt_lease_log_is_reported(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    client.create(log_url(path), content_type=JSON, data=json.dumps([{"kind": "vote"}]))
    with pytest.raises(StoreCorruptError, match="not a lease record"):
        store.read_lease("sub")


def test_wait_lease_follows_a_move(
    store: DurableStreamStore, other: DurableStreamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = claim(store, "a")
    assert store.wait_lease("sub", lease, timeout=0) == lease
    monkeypatch.setattr(_lease_log, "COMPACT_AFTER", 2)
    renewed = [other.renew_lease(lease)]
    renewed.append(other.renew_lease(renewed[0]))  # the other instance moves the log on
    assert store.wait_lease("sub", lease, timeout=10) == renewed[-1]
    assert store._leases._views["sub"].generation >= 1
    # While this instance waits in the new generation, the other renews again.
    later = threading.Timer(0.3, lambda: renewed.append(other.renew_lease(renewed[1])))
    later.start()
    try:
        seen = store.wait_lease("sub", renewed[1], timeout=10)
    finally:
        later.join()
    assert seen == renewed[-1]


def waits_out(store: DurableStreamStore, lease: Lease, timeout: float) -> None:
    """``wait_lease`` on an unchanged ``lease`` returns it, after the whole timeout."""
    start = time.monotonic()
    assert store.wait_lease("sub", lease, timeout=timeout) == lease
    assert time.monotonic() - start >= timeout


def test_wait_lease_outlasts_the_servers_long_poll_period(store: DurableStreamStore) -> None:
    lease = claim(store, "a")
    for _ in range(2):  # each wait is longer than the server's long-poll (LONG_POLL_MS)
        waits_out(store, lease, 0.6)


def test_wait_lease_on_a_log_closed_by_hand_waits_out_its_timeout(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    lease = claim(store, "a")
    assert store.read_lease("sub") == lease
    client.close_stream(log_url(path))  # closed without a move: nothing will ever come
    waits_out(store, lease, 0.5)


def test_wait_lease_rereads_when_another_call_read_on_meanwhile(
    store: DurableStreamStore, other: DurableStreamStore, hook: HookTransport
) -> None:
    lease = claim(store, "a")
    assert store.read_lease("sub") == lease
    renewed: list[Lease] = []

    def renew_then_read_on(request: httpx.Request) -> httpx.Response:
        renewed.append(other.renew_lease(lease))
        response = hook.inner.handle_request(request)  # answers at once: there is data
        store.read_lease("sub")  # this instance reads past it before the waiter folds it
        return response

    hook.before(lambda r: "live=long-poll" in str(r.url), renew_then_read_on)
    assert store.wait_lease("sub", lease, timeout=10) == renewed[0]


def test_a_checkpoint_does_not_end_a_wait(
    store: DurableStreamStore, other: DurableStreamStore
) -> None:
    lease = claim(store, "a")
    assert store.read_lease("sub") == lease
    later = threading.Timer(0.1, lambda: other.save_checkpoint("sub", OLDEST))
    later.start()
    try:
        waits_out(store, lease, 0.6)
    finally:
        later.join()
    assert store.load_checkpoint("sub") is OLDEST


def test_close_wakes_wait_lease(store: DurableStreamStore) -> None:
    lease = claim(store, "a")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            store.wait_lease("sub", lease, timeout=30)
        except BaseException as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    threading.Event().wait(0.2)
    store.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert [type(e) for e in errors] == [StoreClosedError]


def test_wait_lease_refuses_a_negative_timeout(store: DurableStreamStore) -> None:
    with pytest.raises(ValueError, match="timeout"):
        store.wait_lease("sub", None, timeout=-1)
    with pytest.raises(ValueError, match="subscription_id"):
        store.read_lease("")


def test_idle_renewal_is_one_request(store: DurableStreamStore, hook: HookTransport) -> None:
    lease = claim(store, "a")
    before = hook.posts
    for _ in range(5):
        lease = store.renew_lease(lease)
    assert hook.posts - before == 5


# -- the old checkpoint layout ---------------------------------------------------------------


def slot(path: str, number: int) -> str:
    name = base64.urlsafe_b64encode(b"sub").decode().rstrip("=")
    return f"{path}.eventbus-checkpoints/{name}/{number}"


def test_a_checkpoint_of_the_old_layout_is_loaded_until_a_new_one_is_saved(
    store: DurableStreamStore, client: DurableStreamClient, path: str
) -> None:
    offset = store.append(make_record())
    client.create(
        slot(path, 0),
        content_type=JSON,
        data=json.dumps([{"n": 0, "oldest": True, "offset": None}]),
    )
    assert store.load_checkpoint("sub") is OLDEST
    client.append(slot(path, 0), json.dumps([{"n": 1, "oldest": False, "offset": offset}]))
    client.create(slot(path, 1), content_type=JSON)
    assert store.load_checkpoint("sub") == offset
    store.save_checkpoint("sub", OLDEST)
    assert store.load_checkpoint("sub") is OLDEST
    assert len(client.read(slot(path, 0)).json()) == 2, "the old slots are never written"


@pytest.mark.parametrize("value", [[1], [{"n": "1", "offset": "0_1"}], [{"n": 1}], [{"n": True}]])
def test_a_corrupt_checkpoint_slot_of_the_old_layout_is_reported(
    store: DurableStreamStore, client: DurableStreamClient, path: str, value: Any
) -> None:
    client.create(slot(path, 1), content_type=JSON, data=json.dumps(value))
    with pytest.raises(StoreCorruptError, match="slot"):
        store.load_checkpoint("sub")
