"""What both faces of the conformance adapter share: the suite's vocabulary and its results.

The command dispatch state (server URL, content types, dynamic headers and params), the
mapping of client exceptions to the suite's error codes, the collection of live read chunks,
and the builders of each result line. :mod:`._conformance_sync` and
:mod:`._conformance_async` carry the commands out with the two client faces.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, Final

from ._client import DurableStreamClient
from ._errors import (
    BadRequestError,
    ContentTypeMismatchError,
    DurableStreamConnectionError,
    DurableStreamError,
    DurableStreamTimeoutError,
    MalformedResponseError,
    SequenceConflictError,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
)
from ._requests import OCTET_STREAM, is_json_content_type
from ._results import AppendResult, ReadChunk
from ._retry import RetryPolicy

__all__ = [
    "CLIENT_NAME",
    "CLIENT_VERSION",
    "FEATURES",
    "Adapter",
    "CommandError",
    "ReadCollector",
    "add_sent",
    "append_data",
    "batch_result",
    "benchmark_result",
    "catch_up_result",
    "error_result",
    "head_result",
    "idempotent_append_result",
    "live_mode",
    "roundtrip_payload",
]

CLIENT_NAME: Final = "eventbus-durablestream"
CLIENT_VERSION: Final = "0.1.0"
FEATURES: Final = {
    "batching": True,
    "sse": True,
    "longPoll": True,
    "auto": True,
    "streaming": True,
    "dynamicHeaders": True,
    "retryOptions": True,
    "batchItems": True,
    "strictZeroValidation": True,
}
_CAMEL: Final = {
    "max_retries": "maxRetries",
    "initial_delay": "initialDelayMs",
    "max_delay": "maxDelayMs",
    "multiplier": "multiplier",
    "max_batch_bytes": "maxBatchBytes",
    "max_batch_items": "maxBatchItems",
    "epoch": "epoch",
    "producer_id": "producerId",
}


class CommandError(Exception):
    """An error result the adapter itself decides on (not raised by the client)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def error_result(command_type: str, exc: BaseException) -> dict[str, Any]:
    status = getattr(exc, "status", None)
    if isinstance(exc, CommandError):
        code = exc.code
    elif isinstance(exc, StreamNotFoundError):
        code = "NOT_FOUND"
    elif isinstance(exc, StreamClosedError):
        code = "STREAM_CLOSED"
    elif isinstance(exc, StreamExistsError | ContentTypeMismatchError):
        code = "CONFLICT"
    elif isinstance(exc, SequenceConflictError):
        code = "SEQUENCE_CONFLICT"
    elif isinstance(exc, BadRequestError):
        code = "INVALID_OFFSET"
    elif isinstance(exc, MalformedResponseError):
        code = "PARSE_ERROR"
    elif isinstance(exc, DurableStreamTimeoutError):
        code = "TIMEOUT"
    elif isinstance(exc, DurableStreamConnectionError):
        code = "NETWORK_ERROR"
    elif isinstance(exc, DurableStreamError):
        code = "UNEXPECTED_STATUS" if status is not None else "INTERNAL_ERROR"
    elif isinstance(exc, ValueError | TypeError):
        code = "INVALID_ARGUMENT"
    else:
        code = "INTERNAL_ERROR"
    result: dict[str, Any] = {
        "type": "error",
        "success": False,
        "commandType": command_type,
        "errorCode": code,
        "message": str(exc),
    }
    if status is not None:
        result["status"] = status
    return result


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


class _Dynamic:
    """The suite's dynamic headers and params: each command resolves them once."""

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, Any]] = {}
        self.params: dict[str, dict[str, Any]] = {}

    def clear(self) -> None:
        self.headers.clear()
        self.params.clear()

    @staticmethod
    def _resolve(
        table: dict[str, dict[str, Any]],
    ) -> tuple[dict[str, Callable[[], str]], dict[str, str]]:
        values: dict[str, str] = {}
        for name, config in table.items():
            if config["type"] == "counter":
                config["counter"] += 1
                values[name] = str(config["counter"])
            elif config["type"] == "timestamp":
                values[name] = str(int(time.time() * 1000))
            else:
                values[name] = config.get("token") or ""
        # Callables, so the client evaluates them per request as it would a real token source.
        providers = {name: _constant(value) for name, value in values.items()}
        return providers, values

    def resolve(self) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, str]]:
        headers, headers_sent = self._resolve(self.headers)
        params, params_sent = self._resolve(self.params)
        return headers, headers_sent, params, params_sent


def add_sent(
    result: dict[str, Any], headers_sent: dict[str, str], params_sent: dict[str, str]
) -> None:
    if headers_sent:
        result["headersSent"] = headers_sent
    if params_sent:
        result["paramsSent"] = params_sent


def _chunk_data(chunk: ReadChunk, json_stream: bool) -> str:
    if json_stream:
        chunk.json()  # a malformed body is a PARSE_ERROR, as the suite expects
    return chunk.text()


def _validate(target: dict[str, Any]) -> None:
    try:
        if target["target"] == "retry-options":
            defaults = RetryPolicy()
            initial = target.get("initialDelayMs")
            maximum = target.get("maxDelayMs")
            RetryPolicy(
                max_retries=target.get("maxRetries", defaults.max_retries),
                initial_delay=defaults.initial_delay if initial is None else initial / 1000,
                max_delay=(
                    max(defaults.max_delay, initial / 1000 if initial else 0)
                    if maximum is None
                    else maximum / 1000
                ),
                multiplier=target.get("multiplier", defaults.multiplier),
            )
        elif target["target"] == "idempotent-producer":
            with DurableStreamClient("http://127.0.0.1:9") as client:
                client.producer(
                    "/validate",
                    target.get("producerId", "test-producer"),
                    epoch=target.get("epoch", 0),
                    content_type=OCTET_STREAM,
                    max_batch_bytes=target.get("maxBatchBytes", 1024 * 1024),
                    max_batch_items=target.get("maxBatchItems"),
                )
        else:
            raise CommandError("NOT_SUPPORTED", f"Unknown validation target {target!r}.")
    except ValueError as exc:
        message = str(exc)
        names = [camel for name, camel in _CAMEL.items() if name in message]
        raise CommandError("INVALID_ARGUMENT", f"{', '.join(names)}: {message}") from exc


class Adapter:
    """State shared by both faces: server URL, known content types, dynamic values."""

    def __init__(self) -> None:
        self.server_url = ""
        self.content_types: dict[str, str] = {}
        self.dynamic = _Dynamic()

    def url(self, command: dict[str, Any]) -> str:
        return f"{self.server_url}{command['path']}"

    def content_type(self, command: dict[str, Any]) -> str:
        return self.content_types.get(command["path"], OCTET_STREAM)

    def init(self, command: dict[str, Any]) -> dict[str, Any]:
        self.server_url = command["serverUrl"]
        self.content_types.clear()
        self.dynamic.clear()
        return {
            "type": "init",
            "success": True,
            "clientName": CLIENT_NAME,
            "clientVersion": CLIENT_VERSION,
            "features": dict(FEATURES),
        }

    def local(self, command: dict[str, Any]) -> dict[str, Any] | None:
        """Commands that need no server; ``None`` for the others."""
        kind = command["type"]
        if kind == "set-dynamic-header":
            config = {"type": command["valueType"], "counter": 0}
            config["token"] = command.get("initialValue")
            self.dynamic.headers[command["name"]] = config
        elif kind == "set-dynamic-param":
            self.dynamic.params[command["name"]] = {"type": command["valueType"], "counter": 0}
        elif kind == "clear-dynamic":
            self.dynamic.clear()
        elif kind == "validate":
            _validate(command["target"])
        elif kind == "shutdown":
            pass
        else:
            return None
        return {"type": kind, "success": True}


class ReadCollector:
    """Collects live chunks the way the suite's ``read`` command describes."""

    def __init__(self, command: dict[str, Any], json_stream: bool) -> None:
        self.max_chunks = command.get("maxChunks") or 100
        self.wait_up_to_date = bool(command.get("waitForUpToDate"))
        self.json_stream = json_stream
        self.chunks: list[dict[str, Any]] = []
        self.offset: str | None = command.get("offset")
        self.up_to_date = False
        self.closed = False
        self.stopped = False
        self.status = 200

    def add(self, chunk: ReadChunk) -> bool:
        """Record a chunk; return whether to stop."""
        # The status reported is that of the response that brought the first data.
        self.status = self.status if self.chunks else chunk.status
        if chunk.data:
            self.chunks.append(
                {"data": _chunk_data(chunk, self.json_stream), "offset": chunk.next_offset}
            )
        self.offset = chunk.next_offset
        self.up_to_date = chunk.up_to_date
        self.closed = chunk.stream_closed
        self.stopped = len(self.chunks) >= self.max_chunks or (
            self.wait_up_to_date and self.up_to_date
        )
        return self.stopped

    def result(self) -> dict[str, Any]:
        return {
            "type": "read",
            "success": True,
            "status": self.status,
            "chunks": self.chunks,
            "offset": self.offset if self.offset is not None else "-1",
            # A live read that ran until its time was up has caught up with the stream.
            "upToDate": self.up_to_date or not (self.stopped or self.closed),
            "streamClosed": self.closed,
        }


def live_mode(live: Any) -> Any:
    return {True: "auto", "long-poll": "long-poll", "sse": "sse"}.get(live)


def append_data(command: dict[str, Any]) -> bytes | str:
    if command.get("binary"):
        return base64.b64decode(command["data"])
    data: str = command["data"]
    return data


def roundtrip_payload(content_type: str, size: int) -> bytes:
    if is_json_content_type(content_type):
        return json.dumps(["*" * max(size - 4, 1)]).encode()
    return b"*" * size


def head_result(info: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": "head",
        "success": True,
        "status": 200,
        "offset": info.next_offset,
        "contentType": info.content_type,
        "streamClosed": info.closed,
    }
    if info.ttl_seconds is not None:
        result["ttlSeconds"] = info.ttl_seconds
    if info.expires_at is not None:
        result["expiresAt"] = info.expires_at
    return result


def catch_up_result(chunk: ReadChunk, json_stream: bool) -> dict[str, Any]:
    chunks = []
    if chunk.data:
        chunks.append({"data": _chunk_data(chunk, json_stream), "offset": chunk.next_offset})
    return {
        "type": "read",
        "success": True,
        "status": chunk.status,
        "chunks": chunks,
        "offset": chunk.next_offset,
        "upToDate": chunk.up_to_date,
        "streamClosed": chunk.stream_closed,
    }


def idempotent_append_result(result: AppendResult | None) -> dict[str, Any]:
    assert result is not None  # a flush after an append always sent a request
    return {
        "type": "idempotent-append",
        "success": True,
        "status": 200,
        "offset": result.next_offset,
        "duplicate": result.duplicate,
        "producerSeq": result.producer_seq,
    }


def batch_result(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "idempotent-append-batch", "success": True, "status": 200}
    if result is not None and result.producer_seq is not None:
        out["producerSeq"] = result.producer_seq
    return out


def benchmark_result(
    command: dict[str, Any], duration_ns: int, metrics: dict[str, int]
) -> dict[str, Any]:
    return {
        "type": "benchmark",
        "success": True,
        "iterationId": command["iterationId"],
        "durationNs": str(duration_ns),
        "metrics": metrics,
    }
