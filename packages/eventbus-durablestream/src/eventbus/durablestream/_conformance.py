"""The client adapter of the official Durable Streams client conformance suite.

The suite's runner starts ``python -m eventbus.durablestream.conformance --face sync|async``
and talks JSON lines over stdin/stdout: one command per line, exactly one result line each.
Every command is carried out by this package's client (the synchronous or the asyncio face); the
adapter only translates between the suite's vocabulary and the client's API.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any, Final

from ._async_client import AsyncDurableStreamClient, AsyncIdempotentProducer
from ._client import DurableStreamClient, IdempotentProducer
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
from ._protocol import OCTET_STREAM, AppendResult, ReadChunk, RetryPolicy, is_json_content_type

__all__ = ["main", "serve"]

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


class _CommandError(Exception):
    """An error result the adapter itself decides on (not raised by the client)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _error_result(command_type: str, exc: BaseException) -> dict[str, Any]:
    status = getattr(exc, "status", None)
    if isinstance(exc, _CommandError):
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


def _sent(
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
            raise _CommandError("NOT_SUPPORTED", f"Unknown validation target {target!r}.")
    except ValueError as exc:
        message = str(exc)
        names = [camel for name, camel in _CAMEL.items() if name in message]
        raise _CommandError("INVALID_ARGUMENT", f"{', '.join(names)}: {message}") from exc


class _Adapter:
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


class _ReadCollector:
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


def _collect(chunks: Iterator[ReadChunk], collector: _ReadCollector) -> _ReadCollector:
    for chunk in chunks:
        if collector.add(chunk):
            break
    chunks.close()  # type: ignore[attr-defined]
    return collector


async def _acollect(chunks: AsyncIterator[ReadChunk], collector: _ReadCollector) -> _ReadCollector:
    async for chunk in chunks:
        if collector.add(chunk):
            break
    await chunks.aclose()  # type: ignore[attr-defined]
    return collector


def _live_mode(live: Any) -> Any:
    return {True: "auto", "long-poll": "long-poll", "sse": "sse"}.get(live)


# --------------------------------------------------------------------------- synchronous face


class _SyncFace:
    def __init__(self, adapter: _Adapter) -> None:
        self.a = adapter
        self.client = DurableStreamClient()
        self.producers: dict[tuple[str, str, int], IdempotentProducer] = {}

    def close(self) -> None:
        self.client.close()

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        a = self.a
        kind = command["type"]
        if kind == "init":
            self.producers.clear()
            return a.init(command)
        local = a.local(command)
        if local is not None:
            return local
        if kind == "benchmark":
            return self.benchmark(command)
        method = getattr(self, "do_" + kind.replace("-", "_"), None)
        if method is None:
            raise _CommandError("NOT_SUPPORTED", f"Unknown command type {kind!r}.")
        result: dict[str, Any] = method(command, a.url(command))
        return result

    def do_create(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        content_type = command.get("contentType") or OCTET_STREAM
        result = self.client.create(
            url,
            content_type=content_type,
            ttl_seconds=command.get("ttlSeconds"),
            expires_at=command.get("expiresAt"),
            closed=bool(command.get("closed")),
            data=command.get("data"),
            headers=command.get("headers"),
        )
        self.a.content_types[command["path"]] = content_type
        return {
            "type": "create",
            "success": True,
            "status": result.status,
            "offset": result.next_offset,
        }

    def do_connect(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        info = self.client.head(url, headers=command.get("headers"))
        self.a.content_types[command["path"]] = info.content_type or OCTET_STREAM
        return {"type": "connect", "success": True, "status": 200, "offset": info.next_offset}

    def do_head(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        info = self.client.head(url, headers=command.get("headers"))
        self.a.content_types[command["path"]] = info.content_type or OCTET_STREAM
        return _head_result(info)

    def do_delete(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        self.client.delete(url, headers=command.get("headers"))
        self.a.content_types.pop(command["path"], None)
        return {"type": "delete", "success": True, "status": 200}

    def do_append(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        headers, headers_sent, params, params_sent = self.a.dynamic.resolve()
        headers.update(command.get("headers") or {})
        data = _append_data(command)
        seq = command.get("seq")
        result = self.client.append(
            url,
            data,
            content_type=self.a.content_type(command),
            seq=None if seq is None else str(seq),
            headers=headers,
            params=params,
        )
        out: dict[str, Any] = {
            "type": "append",
            "success": True,
            "status": 200,
            "offset": result.next_offset,
        }
        _sent(out, headers_sent, params_sent)
        return out

    def do_close(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        result = self.client.close_stream(
            url,
            data=command.get("data"),
            content_type=command.get("contentType") or self.a.content_type(command),
        )
        return {"type": "close", "success": True, "finalOffset": result.final_offset}

    def do_read(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        headers, headers_sent, params, params_sent = self.a.dynamic.resolve()
        headers.update(command.get("headers") or {})
        json_stream = is_json_content_type(self.a.content_types.get(command["path"]))
        live = _live_mode(command.get("live"))
        offset = command.get("offset") or "-1"
        if live is None:
            chunk = self.client.read(url, offset=offset, headers=headers, params=params)
            out = _catch_up_result(chunk, json_stream)
        else:
            chunks = self.client.iter_chunks(
                url,
                offset=offset,
                live=live,
                stop_after=(command.get("timeoutMs") or 5000) / 1000,
                headers=headers,
                params=params,
            )
            out = _collect(chunks, _ReadCollector(command, json_stream)).result()
        _sent(out, headers_sent, params_sent)
        return out

    def _producer(self, command: dict[str, Any], url: str) -> IdempotentProducer:
        key = (command["path"], command["producerId"], command["epoch"])
        producer = self.producers.get(key)
        if producer is None:
            producer = self.client.producer(
                url,
                command["producerId"],
                epoch=command["epoch"],
                auto_claim=bool(command.get("autoClaim")),
                content_type=self.a.content_type(command),
                headers=command.get("headers"),
            )
            self.producers[key] = producer
        return producer

    def do_idempotent_append(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        producer = self._producer(command, url)
        producer.append(command["data"])
        result = producer.flush()
        return _idempotent_append_result(result)

    def do_idempotent_append_batch(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        in_flight = command.get("maxInFlight") or 1
        producer = self.client.producer(
            url,
            command["producerId"],
            epoch=command["epoch"],
            auto_claim=bool(command.get("autoClaim")),
            content_type=self.a.content_type(command),
            max_batch_items=1 if in_flight > 1 else None,
            headers=command.get("headers"),
        )
        try:
            for item in command["items"]:
                producer.append(item)
            result = producer.flush()
        finally:
            _quiet(producer.detach)
        return _batch_result(result)

    def do_idempotent_close(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        result = self._producer(command, url).close_stream(command.get("data"))
        return {
            "type": "idempotent-close",
            "success": True,
            "status": 200,
            "finalOffset": result.final_offset,
        }

    def do_idempotent_detach(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        self._producer(command, url).detach()
        self.producers.pop((command["path"], command["producerId"], command["epoch"]), None)
        return {"type": "idempotent-detach", "success": True, "status": 200}

    def benchmark(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["operation"]
        url = f"{self.a.server_url}{op['path']}"
        kind = op["op"]
        metrics: dict[str, int] = {}
        start = time.perf_counter_ns()
        if kind == "append":
            self.client.append(url, b"*" * op["size"], content_type=self.a.content_type(op))
            metrics["bytesTransferred"] = op["size"]
        elif kind == "read":
            chunk = self.client.read(url, offset=op.get("offset") or "-1")
            metrics["bytesTransferred"] = len(chunk.data)
        elif kind == "roundtrip":
            content_type = op.get("contentType") or OCTET_STREAM
            created = self.client.create(url, content_type=content_type)
            payload = _roundtrip_payload(content_type, op["size"])
            # One thread: append, then follow the stream live from the offset before it.
            self.client.append(url, payload, content_type=content_type)
            chunks = self.client.iter_chunks(
                url, offset=created.next_offset or "-1", live=op.get("live") or "long-poll"
            )
            first = _collect(chunks, _ReadCollector({"maxChunks": 1}, json_stream=False))
            metrics["bytesTransferred"] = op["size"] + len(first.chunks[0]["data"])
        elif kind == "create":
            self.client.create(url, content_type=op.get("contentType") or OCTET_STREAM)
        elif kind == "throughput_append":
            _quiet(lambda: self.client.create(url, content_type=self.a.content_type(op)))
            producer = self.client.producer(
                url, "bench-producer", content_type=self.a.content_type(op)
            )
            payload = b"*" * op["size"]
            for _ in range(op["count"]):
                producer.append(payload)
            producer.flush()
            metrics["bytesTransferred"] = op["count"] * op["size"]
            metrics["messagesProcessed"] = op["count"]
        elif kind == "throughput_read":
            items = self.client.read(url).json()
            metrics["messagesProcessed"] = len(items)
        else:
            raise _CommandError("NOT_SUPPORTED", f"Unknown benchmark operation {kind!r}.")
        return _benchmark_result(command, time.perf_counter_ns() - start, metrics)


# --------------------------------------------------------------------------- asyncio face


class _AsyncFace:
    def __init__(self, adapter: _Adapter) -> None:
        self.a = adapter
        self.client = AsyncDurableStreamClient()
        self.producers: dict[tuple[str, str, int], AsyncIdempotentProducer] = {}

    async def close(self) -> None:
        await self.client.close()

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        a = self.a
        kind = command["type"]
        if kind == "init":
            self.producers.clear()
            return a.init(command)
        local = a.local(command)
        if local is not None:
            return local
        if kind == "benchmark":
            return await self.benchmark(command)
        method = getattr(self, "do_" + kind.replace("-", "_"), None)
        if method is None:
            raise _CommandError("NOT_SUPPORTED", f"Unknown command type {kind!r}.")
        result: dict[str, Any] = await method(command, a.url(command))
        return result

    async def do_create(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        content_type = command.get("contentType") or OCTET_STREAM
        result = await self.client.create(
            url,
            content_type=content_type,
            ttl_seconds=command.get("ttlSeconds"),
            expires_at=command.get("expiresAt"),
            closed=bool(command.get("closed")),
            data=command.get("data"),
            headers=command.get("headers"),
        )
        self.a.content_types[command["path"]] = content_type
        return {
            "type": "create",
            "success": True,
            "status": result.status,
            "offset": result.next_offset,
        }

    async def do_connect(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        info = await self.client.head(url, headers=command.get("headers"))
        self.a.content_types[command["path"]] = info.content_type or OCTET_STREAM
        return {"type": "connect", "success": True, "status": 200, "offset": info.next_offset}

    async def do_head(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        info = await self.client.head(url, headers=command.get("headers"))
        self.a.content_types[command["path"]] = info.content_type or OCTET_STREAM
        return _head_result(info)

    async def do_delete(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        await self.client.delete(url, headers=command.get("headers"))
        self.a.content_types.pop(command["path"], None)
        return {"type": "delete", "success": True, "status": 200}

    async def do_append(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        headers, headers_sent, params, params_sent = self.a.dynamic.resolve()
        headers.update(command.get("headers") or {})
        data = _append_data(command)
        seq = command.get("seq")
        result = await self.client.append(
            url,
            data,
            content_type=self.a.content_type(command),
            seq=None if seq is None else str(seq),
            headers=headers,
            params=params,
        )
        out: dict[str, Any] = {
            "type": "append",
            "success": True,
            "status": 200,
            "offset": result.next_offset,
        }
        _sent(out, headers_sent, params_sent)
        return out

    async def do_close(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        result = await self.client.close_stream(
            url,
            data=command.get("data"),
            content_type=command.get("contentType") or self.a.content_type(command),
        )
        return {"type": "close", "success": True, "finalOffset": result.final_offset}

    async def do_read(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        headers, headers_sent, params, params_sent = self.a.dynamic.resolve()
        headers.update(command.get("headers") or {})
        json_stream = is_json_content_type(self.a.content_types.get(command["path"]))
        live = _live_mode(command.get("live"))
        offset = command.get("offset") or "-1"
        if live is None:
            chunk = await self.client.read(url, offset=offset, headers=headers, params=params)
            out = _catch_up_result(chunk, json_stream)
        else:
            chunks = self.client.iter_chunks(
                url,
                offset=offset,
                live=live,
                stop_after=(command.get("timeoutMs") or 5000) / 1000,
                headers=headers,
                params=params,
            )
            out = (await _acollect(chunks, _ReadCollector(command, json_stream))).result()
        _sent(out, headers_sent, params_sent)
        return out

    async def _producer(self, command: dict[str, Any], url: str) -> AsyncIdempotentProducer:
        key = (command["path"], command["producerId"], command["epoch"])
        producer = self.producers.get(key)
        if producer is None:
            producer = await self.client.producer(
                url,
                command["producerId"],
                epoch=command["epoch"],
                auto_claim=bool(command.get("autoClaim")),
                content_type=self.a.content_type(command),
                max_in_flight=1,
                headers=command.get("headers"),
            )
            self.producers[key] = producer
        return producer

    async def do_idempotent_append(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        producer = await self._producer(command, url)
        producer.append(command["data"])
        result = await producer.flush()
        return _idempotent_append_result(result)

    async def do_idempotent_append_batch(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        in_flight = command.get("maxInFlight") or 1
        producer = await self.client.producer(
            url,
            command["producerId"],
            epoch=command["epoch"],
            auto_claim=bool(command.get("autoClaim")),
            content_type=self.a.content_type(command),
            max_batch_items=1 if in_flight > 1 else None,
            max_in_flight=in_flight,
            headers=command.get("headers"),
        )
        try:
            for item in command["items"]:
                producer.append(item)
            result = await producer.flush()
        finally:
            await _aquiet(producer.detach)
        return _batch_result(result)

    async def do_idempotent_close(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        result = await (await self._producer(command, url)).close_stream(command.get("data"))
        return {
            "type": "idempotent-close",
            "success": True,
            "status": 200,
            "finalOffset": result.final_offset,
        }

    async def do_idempotent_detach(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        await (await self._producer(command, url)).detach()
        self.producers.pop((command["path"], command["producerId"], command["epoch"]), None)
        return {"type": "idempotent-detach", "success": True, "status": 200}

    async def benchmark(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["operation"]
        url = f"{self.a.server_url}{op['path']}"
        kind = op["op"]
        metrics: dict[str, int] = {}
        start = time.perf_counter_ns()
        if kind == "append":
            await self.client.append(url, b"*" * op["size"], content_type=self.a.content_type(op))
            metrics["bytesTransferred"] = op["size"]
        elif kind == "read":
            chunk = await self.client.read(url, offset=op.get("offset") or "-1")
            metrics["bytesTransferred"] = len(chunk.data)
        elif kind == "roundtrip":
            content_type = op.get("contentType") or OCTET_STREAM
            created = await self.client.create(url, content_type=content_type)
            payload = _roundtrip_payload(content_type, op["size"])

            chunks = self.client.iter_chunks(
                url, offset=created.next_offset or "-1", live=op.get("live") or "long-poll"
            )
            # The reader waits while the append happens, as a live consumer would.
            reader = asyncio.create_task(
                _acollect(chunks, _ReadCollector({"maxChunks": 1}, json_stream=False))
            )
            await self.client.append(url, payload, content_type=content_type)
            first = await reader
            metrics["bytesTransferred"] = op["size"] + len(first.chunks[0]["data"])
        elif kind == "create":
            await self.client.create(url, content_type=op.get("contentType") or OCTET_STREAM)
        elif kind == "throughput_append":
            await _aquiet(lambda: self.client.create(url, content_type=self.a.content_type(op)))
            producer = await self.client.producer(
                url, "bench-producer", content_type=self.a.content_type(op)
            )
            payload = b"*" * op["size"]
            for _ in range(op["count"]):
                producer.append(payload)
            await producer.flush()
            metrics["bytesTransferred"] = op["count"] * op["size"]
            metrics["messagesProcessed"] = op["count"]
        elif kind == "throughput_read":
            items = (await self.client.read(url)).json()
            metrics["messagesProcessed"] = len(items)
        else:
            raise _CommandError("NOT_SUPPORTED", f"Unknown benchmark operation {kind!r}.")
        return _benchmark_result(command, time.perf_counter_ns() - start, metrics)


# --------------------------------------------------------------------------- shared helpers


def _append_data(command: dict[str, Any]) -> bytes | str:
    if command.get("binary"):
        return base64.b64decode(command["data"])
    data: str = command["data"]
    return data


def _roundtrip_payload(content_type: str, size: int) -> bytes:
    if is_json_content_type(content_type):
        return json.dumps(["*" * max(size - 4, 1)]).encode()
    return b"*" * size


def _head_result(info: Any) -> dict[str, Any]:
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


def _catch_up_result(chunk: ReadChunk, json_stream: bool) -> dict[str, Any]:
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


def _idempotent_append_result(result: AppendResult | None) -> dict[str, Any]:
    assert result is not None  # a flush after an append always sent a request
    return {
        "type": "idempotent-append",
        "success": True,
        "status": 200,
        "offset": result.next_offset,
        "duplicate": result.duplicate,
        "producerSeq": result.producer_seq,
    }


def _batch_result(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "idempotent-append-batch", "success": True, "status": 200}
    if result is not None and result.producer_seq is not None:
        out["producerSeq"] = result.producer_seq
    return out


def _benchmark_result(
    command: dict[str, Any], duration_ns: int, metrics: dict[str, int]
) -> dict[str, Any]:
    return {
        "type": "benchmark",
        "success": True,
        "iterationId": command["iterationId"],
        "durationNs": str(duration_ns),
        "metrics": metrics,
    }


def _quiet(call: Callable[[], object]) -> None:
    # Best effort: the command's own outcome is what gets reported.
    with contextlib.suppress(DurableStreamError):
        call()


async def _aquiet(call: Callable[[], Any]) -> None:
    # Best effort: the command's own outcome is what gets reported.
    with contextlib.suppress(DurableStreamError):
        await call()


def _parse(line: str) -> dict[str, Any] | dict[str, str]:
    command = json.loads(line)
    if not isinstance(command, dict) or not isinstance(command.get("type"), str):
        raise ValueError(f"A command must be a JSON object with a type, got {line[:80]!r}.")
    return command


def _write(stdout: IO[str], result: dict[str, Any]) -> None:
    stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    stdout.flush()


def _bad_line(line: str, exc: Exception) -> dict[str, Any]:
    return {
        "type": "error",
        "success": False,
        "commandType": "init",
        "errorCode": "PARSE_ERROR",
        "message": f"Failed to parse command {line[:80]!r}: {exc}",
    }


def serve(stdin: IO[str], stdout: IO[str], face: str) -> None:
    """Answer the suite's commands from ``stdin`` on ``stdout`` until shutdown or EOF.

    Args:
        stdin: the command stream, one JSON object per line.
        stdout: where each result line is written (and flushed).
        face: ``"sync"`` for :class:`DurableStreamClient`, ``"async"`` for
            :class:`AsyncDurableStreamClient`.

    Raises:
        ValueError: ``face`` is neither ``"sync"`` nor ``"async"``.
    """
    if face == "sync":
        _serve_sync(stdin, stdout)
    elif face == "async":
        asyncio.run(_serve_async(stdin, stdout))
    else:
        raise ValueError(f"face must be 'sync' or 'async', got {face!r}.")


def _serve_sync(stdin: IO[str], stdout: IO[str]) -> None:
    runner = _SyncFace(_Adapter())
    try:
        for line in stdin:
            if not line.strip():
                continue
            try:
                command = _parse(line)
            except ValueError as exc:
                _write(stdout, _bad_line(line, exc))
                continue
            try:
                result = runner.handle(command)
            except Exception as exc:
                result = _error_result(command["type"], exc)
            _write(stdout, result)
            if command["type"] == "shutdown":
                break
    finally:
        runner.close()


async def _serve_async(stdin: IO[str], stdout: IO[str]) -> None:
    runner = _AsyncFace(_Adapter())
    try:
        # Commands come one at a time and each is answered before the next: a blocking
        # readline between commands holds up nothing.
        for line in stdin:
            if not line.strip():
                continue
            try:
                command = _parse(line)
            except ValueError as exc:
                _write(stdout, _bad_line(line, exc))
                continue
            try:
                result = await runner.handle(command)
            except Exception as exc:
                result = _error_result(command["type"], exc)
            _write(stdout, result)
            if command["type"] == "shutdown":
                break
    finally:
        await runner.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``python -m eventbus.durablestream.conformance --face sync``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m eventbus.durablestream.conformance",
        description="Durable Streams client conformance adapter (JSON lines on stdin/stdout).",
    )
    parser.add_argument("--face", choices=("sync", "async"), default="sync")
    args = parser.parse_args(argv)
    serve(sys.stdin, sys.stdout, args.face)
