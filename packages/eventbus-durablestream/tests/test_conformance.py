"""The conformance adapter, driven in-process through serve() against the real server."""

from __future__ import annotations

import base64
import importlib
import io
import json
import runpy
import sys
import uuid
from typing import Any

import pytest

from eventbus.durablestream import (
    DurableStreamConnectionError,
    DurableStreamError,
    DurableStreamTimeoutError,
    MalformedResponseError,
    UnexpectedStatusError,
)
from eventbus.durablestream._conformance import main, serve
from eventbus.durablestream._conformance_shared import error_result


def run(face: str, commands: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    lines = [c if isinstance(c, str) else json.dumps(c) for c in commands]
    stdout = io.StringIO()
    serve(io.StringIO("\n".join(lines) + "\n"), stdout, face)
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def _p() -> str:
    return f"/conf-{uuid.uuid4().hex}"


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def test_stream_commands(face: str, ds_url: str) -> None:
    a, j, t, e, missing = _p(), _p(), _p(), _p(), _p()
    results = run(
        face,
        [
            {"type": "init", "serverUrl": ds_url},
            {"type": "create", "path": a, "contentType": "text/plain"},
            {"type": "create", "path": a, "contentType": "text/plain"},
            {"type": "create", "path": a, "contentType": "application/json"},
            {"type": "connect", "path": a},
            {"type": "connect", "path": missing},
            {"type": "set-dynamic-header", "name": "X-Count", "valueType": "counter"},
            {
                "type": "set-dynamic-header",
                "name": "X-Tok",
                "valueType": "token",
                "initialValue": "tok",
            },
            {"type": "set-dynamic-header", "name": "X-Time", "valueType": "timestamp"},
            {"type": "set-dynamic-param", "name": "p", "valueType": "counter"},
            {"type": "append", "path": a, "data": "hello", "seq": 5, "headers": {"X-C": "1"}},
            {"type": "append", "path": a, "data": "again", "seq": 4},
            {"type": "clear-dynamic"},
            {
                "type": "append",
                "path": a,
                "data": base64.b64encode(b" bin").decode(),
                "binary": True,
            },
            {"type": "read", "path": a},
            {"type": "read", "path": a, "offset": "bogus"},
            {"type": "read", "path": a, "live": "long-poll", "waitForUpToDate": True},
            {"type": "read", "path": a, "live": "sse", "maxChunks": 1},
            {"type": "read", "path": a, "offset": "now", "live": True, "timeoutMs": 300},
            {"type": "read", "path": a, "offset": "now", "live": "long-poll", "timeoutMs": 900},
            {"type": "head", "path": a},
            {"type": "close", "path": a, "data": "!"},
            {"type": "append", "path": a, "data": "late"},
            {"type": "read", "path": a, "live": "long-poll"},
            {"type": "delete", "path": a},
            {"type": "delete", "path": a},
            {
                "type": "create",
                "path": j,
                "contentType": "application/json",
                "ttlSeconds": 60,
                "data": "[1]",
            },
            {"type": "head", "path": j},
            {"type": "read", "path": j},
            {"type": "create", "path": e, "expiresAt": "2099-01-01T00:00:00Z"},
            {"type": "head", "path": e},
            {"type": "read", "path": e},
            {"type": "create", "path": t, "contentType": "text/plain", "closed": True},
            {"type": "no-such-command"},
            {"type": "shutdown"},
            {"type": "init", "serverUrl": "never read"},
        ],
    )
    ok = [r["success"] for r in results]
    assert ok == [
        True,
        True,
        True,
        False,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
        True,
        True,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        True,
    ]
    init = results[0]
    assert init["features"]["sse"]
    assert [results[1]["status"], results[2]["status"]] == [201, 200]
    assert results[3]["errorCode"] == "CONFLICT"
    assert results[5]["errorCode"] == "NOT_FOUND"
    appended = results[10]
    assert appended["headersSent"]["X-Count"] == "1"
    assert appended["headersSent"]["X-Tok"] == "tok"
    assert appended["headersSent"]["X-Time"].isdigit()
    assert appended["paramsSent"] == {"p": "1"}
    assert results[11]["errorCode"] == "SEQUENCE_CONFLICT"
    assert "headersSent" not in results[13]
    assert results[14]["chunks"][0]["data"] == "hello bin"
    assert results[15]["errorCode"] == "INVALID_OFFSET"
    assert results[16]["upToDate"] is True
    assert "".join(c["data"] for c in results[16]["chunks"]) == "hello bin"
    assert len(results[17]["chunks"]) == 1
    assert results[18]["upToDate"] is True
    assert results[18]["chunks"] == []
    assert results[19]["status"] == 204
    assert results[20]["contentType"] == "text/plain"
    assert results[21]["finalOffset"]
    assert results[22]["errorCode"] == "STREAM_CLOSED"
    assert results[23]["streamClosed"] is True
    assert results[25]["errorCode"] == "NOT_FOUND"
    assert results[27]["ttlSeconds"] == 60
    assert results[28]["chunks"][0]["data"] == "[1]"
    assert "expiresAt" in results[30]
    assert results[31]["chunks"] == []
    assert results[33]["errorCode"] == "NOT_SUPPORTED"
    assert results[34] == {"type": "shutdown", "success": True}
    assert len(results) == 35  # nothing after shutdown


def test_producer_commands(face: str, ds_url: str) -> None:
    j, t, missing = _p(), _p(), _p()
    producer = {"producerId": "p", "epoch": 0, "autoClaim": False}
    results = run(
        face,
        [
            {"type": "init", "serverUrl": ds_url},
            {"type": "create", "path": j, "contentType": "application/json"},
            {"type": "idempotent-append", "path": j, "data": '{"a":1}', **producer},
            {"type": "idempotent-append", "path": j, "data": '{"a":2}', **producer},
            {
                "type": "idempotent-append-batch",
                "path": j,
                "items": ["3", "4"],
                "producerId": "q",
                "epoch": 0,
                "autoClaim": False,
            },
            {
                "type": "idempotent-append-batch",
                "path": j,
                "items": ["5", "6", "7"],
                "producerId": "r",
                "epoch": 0,
                "autoClaim": True,
                "maxInFlight": 3,
            },
            {
                "type": "idempotent-append-batch",
                "path": missing,
                "items": ["1"],
                "producerId": "s",
                "epoch": 0,
                "autoClaim": False,
            },
            {"type": "idempotent-close", "path": j, "data": "8", **producer},
            {"type": "idempotent-close", "path": j, **producer},
            {"type": "idempotent-detach", "path": j, **producer},
            {"type": "read", "path": j},
            {"type": "create", "path": t, "contentType": "text/plain"},
            {"type": "idempotent-detach", "path": t, "producerId": "x", "epoch": 0},
            {
                "type": "idempotent-append-batch",
                "path": t,
                "items": [],
                "producerId": "y",
                "epoch": 0,
                "autoClaim": False,
            },
        ],
    )
    assert [r["success"] for r in results] == [
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        True,
    ]
    assert results[2]["duplicate"] is False
    assert results[3]["producerSeq"] == 1
    assert results[5]["producerSeq"] == 2
    assert results[6]["errorCode"] == "NOT_FOUND"
    assert results[7]["finalOffset"] == results[8]["finalOffset"]
    assert json.loads(results[10]["chunks"][0]["data"]) == [{"a": 1}, {"a": 2}, 3, 4, 5, 6, 7, 8]
    assert "producerSeq" not in results[13]


def test_validate_and_local_commands(face: str) -> None:
    results = run(
        face,
        [
            {
                "type": "validate",
                "target": {
                    "target": "retry-options",
                    "maxRetries": 3,
                    "initialDelayMs": 100,
                    "maxDelayMs": 5000,
                },
            },
            {"type": "validate", "target": {"target": "retry-options", "initialDelayMs": 9000}},
            {"type": "validate", "target": {"target": "retry-options", "maxRetries": -1}},
            {"type": "validate", "target": {"target": "retry-options", "initialDelayMs": 0}},
            {
                "type": "validate",
                "target": {"target": "retry-options", "initialDelayMs": 1000, "maxDelayMs": 500},
            },
            {"type": "validate", "target": {"target": "retry-options", "multiplier": 0.5}},
            {
                "type": "validate",
                "target": {"target": "idempotent-producer", "producerId": "p", "maxBatchBytes": 10},
            },
            {"type": "validate", "target": {"target": "idempotent-producer", "epoch": -1}},
            {"type": "validate", "target": {"target": "idempotent-producer", "maxBatchItems": 0}},
            {"type": "validate", "target": {"target": "future"}},
            "",
            "{not json",
            "[1, 2]",
        ],
    )
    assert [r["success"] for r in results[:7]] == [True, True, False, False, False, False, True]
    messages = [r.get("message", "") for r in results[2:6]] + [results[7]["message"]]
    for needle, message in zip(
        ["maxRetries", "initialDelayMs", "maxDelayMs", "multiplier", "epoch"],
        messages,
        strict=True,
    ):
        assert needle in message
    assert results[8]["errorCode"] == "INVALID_ARGUMENT"
    assert "maxBatchItems" in results[8]["message"]
    assert results[9]["errorCode"] == "NOT_SUPPORTED"
    assert [r["errorCode"] for r in results[10:]] == ["PARSE_ERROR", "PARSE_ERROR"]
    assert len(results) == 12  # the blank line has no answer


def test_benchmark_commands(face: str, ds_url: str) -> None:
    base = _p()
    ops = [
        {"op": "create", "path": f"{base}/s"},
        {"op": "append", "path": f"{base}/s", "size": 100},
        {"op": "read", "path": f"{base}/s"},
        {"op": "roundtrip", "path": f"{base}/r", "size": 100},
        {
            "op": "roundtrip",
            "path": f"{base}/sse",
            "size": 100,
            "live": "sse",
            "contentType": "application/json",
        },
        {"op": "throughput_append", "path": f"{base}/t", "count": 50, "size": 10, "concurrency": 4},
        {"op": "throughput_read", "path": f"{base}/j"},
        {"op": "teleport", "path": f"{base}/s"},
    ]
    commands: list[dict[str, Any] | str] = [
        {"type": "init", "serverUrl": ds_url},
        {
            "type": "create",
            "path": f"{base}/j",
            "contentType": "application/json",
            "data": "[1,2,3]",
        },
    ]
    commands += [
        {"type": "benchmark", "iterationId": f"i{n}", "operation": op} for n, op in enumerate(ops)
    ]
    results = run(face, commands)[2:]
    assert [r["success"] for r in results] == [True] * 7 + [False]
    assert all(int(r["durationNs"]) > 0 for r in results[:7])
    assert results[1]["metrics"] == {"bytesTransferred": 100}
    assert results[2]["metrics"] == {"bytesTransferred": 100}
    assert results[3]["metrics"]["bytesTransferred"] == 200
    assert results[4]["metrics"]["bytesTransferred"] > 100
    assert results[5]["metrics"] == {"bytesTransferred": 500, "messagesProcessed": 50}
    assert results[6]["metrics"] == {"messagesProcessed": 3}
    assert results[7]["errorCode"] == "NOT_SUPPORTED"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DurableStreamTimeoutError("slow"), "TIMEOUT"),
        (DurableStreamConnectionError("down"), "NETWORK_ERROR"),
        (MalformedResponseError("junk"), "PARSE_ERROR"),
        (UnexpectedStatusError("teapot", status=418), "UNEXPECTED_STATUS"),
        (DurableStreamError("odd"), "INTERNAL_ERROR"),
        (TypeError("bad type"), "INVALID_ARGUMENT"),
        (RuntimeError("boom"), "INTERNAL_ERROR"),
    ],
)
def test_error_codes(error: Exception, code: str) -> None:
    result = error_result("read", error)
    assert result["errorCode"] == code
    assert result["message"] == str(error)
    assert result.get("status") == getattr(error, "status", None)


def test_bad_face() -> None:
    with pytest.raises(ValueError, match="face"):
        serve(io.StringIO(""), io.StringIO(), "threads")


def test_main_and_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"type": "shutdown"}\n'))
    main(["--face", "async"])
    assert json.loads(capsys.readouterr().out) == {"type": "shutdown", "success": True}
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"type": "clear-dynamic"}\n'))
    monkeypatch.setattr(sys, "argv", ["conformance", "--face", "sync"])
    runpy.run_module("eventbus.durablestream.conformance", run_name="__main__")
    assert json.loads(capsys.readouterr().out) == {"type": "clear-dynamic", "success": True}
    module = importlib.import_module("eventbus.durablestream.conformance")
    assert module.main is main  # importing it runs nothing
