"""Snapshot streams in generations: a cold load reads a bounded number of saves.

Against the real reference server; moves left half done are set up with the plain client,
as a saver killed between the steps of a move would leave them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from eventbus.core import OLDEST, Snapshot, StoreCorruptError, StoreError
from eventbus.durablestream import DurableStreamClient, DurableStreamStore, StreamClosedError
from eventbus.durablestream._snapshot_log import SAVES_PER_GENERATION

JSON = "application/json"


def _stream(path: str, snapshot_id: str, generation: int) -> str:
    head = f"{path}.eventbus-snapshots/" + base64.urlsafe_b64encode(
        snapshot_id.encode()
    ).decode().rstrip("=")
    return head if generation == 0 else f"{head}.{generation}"


def _saved(url: str, path: str, generation: int) -> list[Any]:
    with DurableStreamClient(url) as client:
        return list(client.read(_stream(path, "s", generation)).json())


def test_a_full_generation_moves_to_the_next(ds_url: str, path: str) -> None:
    saves = 2 * SAVES_PER_GENERATION + 3
    with DurableStreamStore(ds_url, path) as store:
        for n in range(saves):
            store.save_snapshot("s", OLDEST, f"state {n}")
        assert store.load_snapshot("s") == Snapshot("s", OLDEST, f"state {saves - 1}")
    first = _saved(ds_url, path, 0)
    assert len(first) == SAVES_PER_GENERATION + 1
    assert first[-1] == {"moved": 1}
    assert _saved(ds_url, path, 1)[-1] == {"moved": 2}
    assert [item["data"] for item in _saved(ds_url, path, 2)] == [
        "state 32",
        "state 33",
        "state 34",
    ]


def test_a_cold_load_reads_only_the_newest_generation(
    ds_url: str, path: str, recording: Any
) -> None:
    saves = 5 * SAVES_PER_GENERATION + 1
    with DurableStreamStore(ds_url, path) as store:
        for n in range(saves):
            store.save_snapshot("s", OLDEST, f"state {n}")
    with DurableStreamStore(ds_url, path, transport=recording) as fresh:
        before = len(recording.requests)
        assert fresh.load_snapshot("s") == Snapshot("s", OLDEST, f"state {saves - 1}")
        load = recording.requests[before:]
    reads = [r.url.path for r in load if r.method == "GET"]
    assert reads == [_stream(path, "s", 5)]
    heads = [r for r in load if r.method == "HEAD"]
    assert len(heads) <= 6  # doubling to 8, then bisecting 4..8: O(log generations)


def test_savers_in_two_instances_share_the_generations(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as mine, DurableStreamStore(ds_url, path) as theirs:
        for n in range(3 * SAVES_PER_GENERATION):
            saver, loader = (mine, theirs) if n % 3 else (theirs, mine)
            saver.save_snapshot("s", OLDEST, str(n))
            assert loader.load_snapshot("s") == Snapshot("s", OLDEST, str(n))
    with DurableStreamClient(ds_url) as client:
        for generation in range(2):
            closed = client.read(_stream(path, "s", generation))
            assert closed.json()[-1] == {"moved": generation + 1}


def test_a_move_closed_but_not_created_is_finished_by_the_next_saver(
    ds_url: str, path: str
) -> None:
    with DurableStreamStore(ds_url, path) as store, DurableStreamStore(ds_url, path) as other:
        store.save_snapshot("s", OLDEST, "before the move")
        assert other.load_snapshot("s") == Snapshot("s", OLDEST, "before the move")
        with DurableStreamClient(ds_url) as client:  # a saver killed after closing
            client.close_stream(_stream(path, "s", 0), data='[{"moved": 1}]', content_type=JSON)
        # A reader that was there and a new one both keep the last snapshot before it.
        assert other.load_snapshot("s") == Snapshot("s", OLDEST, "before the move")
        with DurableStreamStore(ds_url, path) as fresh:
            assert fresh.load_snapshot("s") == Snapshot("s", OLDEST, "before the move")
            fresh.save_snapshot("s", OLDEST, "after the move")
        assert other.load_snapshot("s") == Snapshot("s", OLDEST, "after the move")
    assert [item["data"] for item in _saved(ds_url, path, 1)] == ["after the move"]


def test_a_newest_generation_without_a_snapshot_yet_is_read_past(ds_url: str, path: str) -> None:
    with DurableStreamStore(ds_url, path) as store:
        for n in range(SAVES_PER_GENERATION):
            store.save_snapshot("s", OLDEST, str(n))
    with DurableStreamClient(ds_url) as client:  # a saver killed after creating
        client.close_stream(_stream(path, "s", 0), data='[{"moved": 1}]', content_type=JSON)
        client.create(_stream(path, "s", 1), content_type=JSON)
    with DurableStreamStore(ds_url, path) as fresh:
        assert fresh.load_snapshot("s") == Snapshot("s", OLDEST, str(SAVES_PER_GENERATION - 1))
        fresh.save_snapshot("s", OLDEST, "next")
        assert fresh.load_snapshot("s") == Snapshot("s", OLDEST, "next")
    assert _saved(ds_url, path, 1) == [{"offset": "oldest", "data": "next"}]


def test_a_saver_whose_generation_was_moved_under_it_saves_in_the_new_one(
    ds_url: str, path: str
) -> None:
    with DurableStreamStore(ds_url, path) as mine, DurableStreamStore(ds_url, path) as theirs:
        mine.save_snapshot("s", OLDEST, "mine")
        for n in range(SAVES_PER_GENERATION):  # theirs fills generation 0 and moves on
            theirs.save_snapshot("s", OLDEST, str(n))
        mine.save_snapshot("s", OLDEST, "mine again")  # refused by the closed stream
        assert theirs.load_snapshot("s") == Snapshot("s", OLDEST, "mine again")
    assert _saved(ds_url, path, 1)[-1] == {"offset": "oldest", "data": "mine again"}


def test_a_move_record_for_another_generation_is_corrupt(ds_url: str, path: str) -> None:
    with DurableStreamClient(ds_url) as client:
        client.create(_stream(path, "s", 0), content_type=JSON)
        client.append(_stream(path, "s", 0), json.dumps([{"moved": 7}]), content_type=JSON)
    with (
        DurableStreamStore(ds_url, path) as store,
        pytest.raises(StoreCorruptError, match="not a snapshot record"),
    ):
        store.load_snapshot("s")


def test_a_save_that_keeps_finding_its_stream_moved_gives_up_clearly(
    ds_url: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DurableStreamStore(ds_url, path) as store:
        store.save_snapshot("s", OLDEST, "first")

        # Every append is refused as if another saver had just moved the stream.
        def closed(*args: Any, **kwargs: Any) -> Any:
            raise StreamClosedError("closed (injected)", url="x")

        monkeypatch.setattr(DurableStreamClient, "append_json", closed)
        with pytest.raises(StoreError, match="kept moving to new generations"):
            store.save_snapshot("s", OLDEST, "second")
