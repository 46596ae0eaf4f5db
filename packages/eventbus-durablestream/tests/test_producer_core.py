"""The producer state machine on its own: validation, batching, numbering, claims."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from eventbus.durablestream import ProducerSequenceGapError, RetryPolicy, StaleEpochError
from eventbus.durablestream._actions import Send, Sleep
from eventbus.durablestream._producer_core import (
    AwaitPrevious,
    LookForCopy,
    ProducerCore,
    Reanchor,
)

URL = "http://ds.test/s"


def _core(**kw: Any) -> ProducerCore:
    options: dict[str, Any] = {
        "epoch": 0,
        "auto_claim": False,
        "content_type": "text/plain",
        "max_batch_bytes": 1024,
        "max_batch_items": None,
        "max_in_flight": 1,
        "headers": None,
        "retry": RetryPolicy(max_retries=0),
    }
    options.update(kw)
    return ProducerCore(URL, options.pop("producer_id", "p"), **options)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"producer_id": ""}, "producer_id"),
        ({"epoch": -1}, "epoch"),
        ({"max_batch_bytes": 0}, "max_batch_bytes"),
        ({"max_batch_items": 0}, "max_batch_items"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ],
)
def test_validation(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        _core(**kwargs)


def test_batches_seal_by_size_and_count() -> None:
    core = _core(max_batch_bytes=4, max_batch_items=3)
    assert not core.add("ab")
    assert core.add(b"cd")  # 4 bytes
    batch = core.seal()
    assert batch is not None
    assert (batch.index, batch.body, batch.count, batch.close) == (0, b"abcd", 2, False)
    assert core.seal() is None
    assert not core.add("")
    assert not core.add("")
    assert core.add("")  # 3 items
    empty_close = _core().seal(close=True)
    assert empty_close is not None
    assert (empty_close.body, empty_close.close) == (b"", True)


def test_json_batches_are_arrays() -> None:
    core = _core(content_type="application/json")
    core.add_json({"a": 1})
    core.add("[1,2]")
    batch = core.seal()
    assert batch is not None
    assert batch.body == b'[{"a":1},[1,2]]'
    core.set_content_type("text/plain")
    with pytest.raises(ValueError, match="application/json"):
        core.add_json(1)


def _answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", URL))


def test_claims_are_bounded() -> None:
    core = _core(auto_claim=True)
    core.add("x")
    batch = core.seal()
    assert batch is not None
    operation = core.send_operation(batch)
    action = operation.send(None)
    epochs = []
    for _ in range(9):
        assert isinstance(action, Send)
        epochs.append(action.spec.headers["Producer-Epoch"])
        assert operation.send(_answer(403, **{"Producer-Epoch": "100"})) == AwaitPrevious(0)
        if len(epochs) == 9:
            break
        action = operation.send(True)
    assert epochs == ["0", *[str(101 + n) for n in range(8)]]
    with pytest.raises(StaleEpochError):
        operation.send(True)  # the ninth claim is one too many


def test_an_earlier_claim_renumbers_without_claiming_again() -> None:
    core = _core(auto_claim=True, max_in_flight=2)
    core.add("a")
    first = core.seal()
    core.add("b")
    second = core.seal()
    assert first is not None
    assert second is not None
    op_first = core.send_operation(first)
    op_second = core.send_operation(second)
    sent_first = op_first.send(None)
    sent_second = op_second.send(None)
    assert isinstance(sent_second, Send)
    assert sent_second.spec.headers["Producer-Seq"] == "1"
    # Both were fenced by epoch 7; the first claims epoch 8 ...
    assert op_first.send(_answer(403, **{"Producer-Epoch": "7"})) == AwaitPrevious(0)
    again = op_first.send(True)
    assert isinstance(again, Send)
    assert (again.spec.headers["Producer-Epoch"], again.spec.headers["Producer-Seq"]) == ("8", "0")
    # ... and the second, fenced under epoch 0, is renumbered under 8 without a new claim.
    assert op_second.send(_answer(403, **{"Producer-Epoch": "7"})) == AwaitPrevious(1)
    renumbered = op_second.send(True)
    assert isinstance(renumbered, Send)
    headers = renumbered.spec.headers
    assert (headers["Producer-Epoch"], headers["Producer-Seq"]) == ("8", "1")
    assert isinstance(sent_first, Send)


# -- what the store's group commit uses: hooks, gaps, anchors, giving up ----------------

RETRYING = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.01, jitter=False)


def _numbers(action: Any) -> tuple[str, str]:
    assert isinstance(action, Send)
    return action.spec.headers["Producer-Epoch"], action.spec.headers["Producer-Seq"]


def _gap(expected: int, received: int) -> httpx.Response:
    return _answer(
        409,
        **{"Producer-Expected-Seq": str(expected), "Producer-Received-Seq": str(received)},
    )


def test_a_forgetful_server_restarts_the_epoch_when_asked_and_not_forever() -> None:
    core = _core(restart_on_gap=True)
    core.number(b"x", 1)  # batch 0, delivered
    operation = core.send_operation(core.number(b"y", 1))
    sent = [_numbers(operation.send(None))]
    for _ in range(8):  # the server forgot us each time: a new epoch, seq 0, at once
        sent.append(_numbers(operation.send(_gap(0, int(sent[-1][1])))))
    assert sent == [("0", "1"), *[(str(n), "0") for n in range(1, 9)]]
    with pytest.raises(ProducerSequenceGapError):
        operation.send(_gap(0, 0))  # the ninth restart of one batch is one too many
    assert core.epoch == 8


def test_without_restart_a_gap_still_waits_for_the_previous_batch() -> None:
    core = _core()
    core.number(b"x", 1)
    operation = core.send_operation(core.number(b"y", 1))
    assert _numbers(operation.send(None)) == ("0", "1")
    assert operation.send(_gap(0, 1)) == AwaitPrevious(1)
    assert _numbers(operation.send(True)) == ("0", "1")  # same numbers, after the wait
    with pytest.raises(ProducerSequenceGapError):
        operation.send(_gap(0, 1))


def test_a_possibly_stored_batch_is_looked_for_before_it_is_resent() -> None:
    core = _core(look_before_resend=True, retry=RETRYING)
    batch = core.number(b"x", 1, stream_seq="a")
    operation = core.send_operation(batch)
    request = operation.send(None)
    assert isinstance(request, Send)
    assert request.spec.headers["Stream-Seq"] == "a"
    lost = httpx.ReadError("response lost")
    assert operation.send(lost) == Sleep(0.01)
    assert operation.send(None) == LookForCopy(batch)
    assert _numbers(operation.send(False)) == ("0", "0")  # not there: the same request
    with pytest.raises(StopIteration) as stop:
        operation.send(_answer(200, **{"Stream-Next-Offset": "b"}))
    assert stop.value.value.next_offset == "b"


def test_a_look_that_finds_the_batch_ends_the_send_without_a_result() -> None:
    core = _core(look_before_resend=True, retry=RETRYING)
    batch = core.number(b"x", 1)
    operation = core.send_operation(batch)
    operation.send(None)
    operation.send(httpx.ReadError("response lost"))
    assert operation.send(None) == LookForCopy(batch)
    with pytest.raises(StopIteration) as stop:
        operation.send(True)
    assert stop.value.value is None


def test_a_look_that_fails_is_waited_out_like_a_request_then_raised() -> None:
    core = _core(look_before_resend=True, retry=RETRYING)
    batch = core.number(b"x", 1)
    operation = core.send_operation(batch)
    operation.send(None)
    assert operation.send(httpx.ReadError("response lost")) == Sleep(0.01)  # retry 1
    assert operation.send(None) == LookForCopy(batch)
    unreachable = ConnectionError("cannot look")
    assert operation.send(unreachable) == Sleep(0.01)  # retry 2: the look again
    assert operation.send(None) == LookForCopy(batch)
    with pytest.raises(ConnectionError, match="cannot look"):
        operation.send(unreachable)  # retries used up


def test_a_request_that_never_left_is_resent_without_looking() -> None:
    core = _core(look_before_resend=True, retry=RETRYING)
    operation = core.send_operation(core.number(b"x", 1))
    operation.send(None)
    assert operation.send(httpx.ConnectError("refused")) == Sleep(0.01)
    assert _numbers(operation.send(None)) == ("0", "0")


def test_a_stream_seq_conflict_asks_for_a_new_anchor_and_keeps_the_numbers() -> None:
    core = _core(retry=RETRYING)
    batch = core.number(b"x", 1, stream_seq="a")
    operation = core.send_operation(batch)
    operation.send(None)
    assert operation.send(_answer(409)) == Reanchor(batch)
    assert operation.send(ConnectionError("no HEAD")) == Sleep(0.01)  # waited out
    assert operation.send(None) == Reanchor(batch)
    batch.stream_seq = "b"
    again = operation.send(None)
    assert isinstance(again, Send)
    assert again.spec.headers["Stream-Seq"] == "b"
    assert _numbers(again) == ("0", "0")


def test_a_given_up_batch_keeps_its_numbers_and_later_ones_start_a_new_epoch() -> None:
    core = _core(retry=RETRYING)
    core.number(b"x", 1)
    given_up = core.number(b"y", 1)
    core.give_up(given_up)
    later = core.number(b"z", 1)
    assert _numbers(core.send_operation(later).send(None)) == ("1", "0")
    resend = core.send_operation(given_up)
    request = resend.send(None)
    assert _numbers(request) == ("0", "1")
    assert isinstance(request, Send)
    assert not request.spec.replay_safe  # the caller's retry: sent once
    with pytest.raises(httpx.ReadError):
        resend.send(httpx.ReadError("lost again"))
    fenced = core.send_operation(given_up)
    fenced.send(None)
    with pytest.raises(StaleEpochError):  # refusals of a pinned batch are final
        fenced.send(_answer(403, **{"Producer-Epoch": "1"}))
