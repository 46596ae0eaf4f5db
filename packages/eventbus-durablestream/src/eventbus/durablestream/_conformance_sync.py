"""The synchronous face of the conformance adapter: each command on the blocking client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._client import DurableStreamClient
from ._conformance_shared import (
    Adapter,
    CommandError,
    ReadCollector,
    add_sent,
    append_data,
    batch_result,
    benchmark_result,
    catch_up_result,
    head_result,
    idempotent_append_result,
    live_mode,
    roundtrip_payload,
)
from ._errors import DurableStreamError
from ._producer import IdempotentProducer
from ._requests import OCTET_STREAM, is_json_content_type
from ._results import ReadChunk

__all__ = ["SyncFace"]


def _collect(chunks: Iterator[ReadChunk], collector: ReadCollector) -> ReadCollector:
    for chunk in chunks:
        if collector.add(chunk):
            break
    chunks.close()  # type: ignore[attr-defined]
    return collector


def _quiet(call: Callable[[], object]) -> None:
    # Best effort: the command's own outcome is what gets reported.
    with contextlib.suppress(DurableStreamError):
        call()


class SyncFace:
    def __init__(self, adapter: Adapter) -> None:
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
            raise CommandError("NOT_SUPPORTED", f"Unknown command type {kind!r}.")
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
        return head_result(info)

    def do_delete(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        self.client.delete(url, headers=command.get("headers"))
        self.a.content_types.pop(command["path"], None)
        return {"type": "delete", "success": True, "status": 200}

    def do_append(self, command: dict[str, Any], url: str) -> dict[str, Any]:
        headers, headers_sent, params, params_sent = self.a.dynamic.resolve()
        headers.update(command.get("headers") or {})
        data = append_data(command)
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
        add_sent(out, headers_sent, params_sent)
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
        live = live_mode(command.get("live"))
        offset = command.get("offset") or "-1"
        if live is None:
            chunk = self.client.read(url, offset=offset, headers=headers, params=params)
            out = catch_up_result(chunk, json_stream)
        else:
            chunks = self.client.iter_chunks(
                url,
                offset=offset,
                live=live,
                stop_after=(command.get("timeoutMs") or 5000) / 1000,
                headers=headers,
                params=params,
            )
            out = _collect(chunks, ReadCollector(command, json_stream)).result()
        add_sent(out, headers_sent, params_sent)
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
        return idempotent_append_result(result)

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
        return batch_result(result)

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
            payload = roundtrip_payload(content_type, op["size"])
            # One thread: append, then follow the stream live from the offset before it.
            self.client.append(url, payload, content_type=content_type)
            chunks = self.client.iter_chunks(
                url, offset=created.next_offset or "-1", live=op.get("live") or "long-poll"
            )
            first = _collect(chunks, ReadCollector({"maxChunks": 1}, json_stream=False))
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
            raise CommandError("NOT_SUPPORTED", f"Unknown benchmark operation {kind!r}.")
        return benchmark_result(command, time.perf_counter_ns() - start, metrics)
