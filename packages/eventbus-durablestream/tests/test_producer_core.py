"""The producer state machine on its own: validation, batching, numbering, claims."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from eventbus.durablestream import RetryPolicy, StaleEpochError
from eventbus.durablestream._actions import Send
from eventbus.durablestream._producer_core import AwaitPrevious, ProducerCore

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
