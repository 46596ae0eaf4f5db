"""The sync and async clients are one API: same methods, same parameters, same errors.

Signatures are compared by introspection (the async face may differ only where it
documents it: pipelining options of its producer); errors by running the same failing
calls through both faces against the reference server.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventbus.durablestream import (
    AsyncDurableStreamClient,
    AsyncIdempotentProducer,
    DurableStreamClient,
    DurableStreamError,
    IdempotentProducer,
)

# What only the async face has, and why: pipelined requests need an event loop.
ASYNC_ONLY = {("producer", "max_in_flight"), ("producer", "linger")}


def public(cls: type) -> dict[str, Any]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_")}


def shape(member: Any) -> list[tuple[str, str, str]] | str:
    """Parameter names, kinds and defaults; "attribute" for a non-callable."""
    if isinstance(member, property) or not callable(member):
        return "attribute"
    return [
        (p.name, p.kind.name, repr(p.default))
        for p in inspect.signature(member).parameters.values()
    ]


@pytest.mark.parametrize(
    ("sync_face", "async_face"),
    [
        (DurableStreamClient, AsyncDurableStreamClient),
        (IdempotentProducer, AsyncIdempotentProducer),
    ],
)
def test_both_faces_have_the_same_methods_and_parameters(sync_face: type, async_face: type) -> None:
    sync_members, async_members = public(sync_face), public(async_face)
    assert set(sync_members) == set(async_members)
    for name, member in sync_members.items():
        sync_shape, async_shape = shape(member), shape(async_members[name])
        if isinstance(async_shape, list):
            async_shape = [p for p in async_shape if (name, p[0]) not in ASYNC_ONLY]
        assert sync_shape == async_shape, f"{sync_face.__name__}.{name} differs"


def test_the_async_face_awaits_what_the_sync_face_blocks_on() -> None:
    for name, member in public(AsyncDurableStreamClient).items():
        if name in ("iter_chunks", "base_url"):
            continue  # an async iterator, and an attribute
        assert inspect.iscoroutinefunction(member), f"AsyncDurableStreamClient.{name}"
    returns = inspect.signature(AsyncDurableStreamClient.iter_chunks).return_annotation
    assert "AsyncIterator[ReadChunk]" in str(returns)


def test_the_async_only_options_exist_only_there() -> None:
    sync_parameters = inspect.signature(DurableStreamClient.producer).parameters
    async_parameters = inspect.signature(AsyncDurableStreamClient.producer).parameters
    for name, option in ASYNC_ONLY:
        assert name == "producer"
        assert option in async_parameters
        assert option not in sync_parameters


# Each case: a name, and a call that fails the same way on both faces. The calls get the
# client and a fresh stream path; ``run`` hides which face is used.
Run = Callable[[str, tuple[Any, ...], dict[str, Any]], Any]
CASES: dict[str, Callable[[Run, str], Any]] = {
    "read a missing stream": lambda run, url: run("read", (url,), {}),
    "head a missing stream": lambda run, url: run("head", (url,), {}),
    "delete a missing stream": lambda run, url: run("delete", (url,), {}),
    "append to a missing stream": lambda run, url: run("append_json", (url, {"n": 1}), {}),
    "create again with another content type": lambda run, url: (
        run("create", (url,), {"content_type": "application/json"}),
        run("create", (url,), {"content_type": "text/plain"}),
    ),
    "append to a closed stream": lambda run, url: (
        run("create", (url,), {"content_type": "application/json"}),
        run("close_stream", (url,), {}),
        run("append_json", (url, {"n": 1}), {}),
    ),
    "append text to a json stream": lambda run, url: (
        run("create", (url,), {"content_type": "application/json"}),
        run("append", (url, "text"), {"content_type": "text/plain"}),
    ),
    "read from a malformed offset": lambda run, url: (
        run("create", (url,), {"content_type": "application/json"}),
        run("read", (url,), {"offset": "not-an-offset"}),
    ),
}


def sync_error(base: str, case: Callable[[Run, str], Any]) -> BaseException:
    url = f"/v1/stream/parity-{uuid.uuid4().hex}"
    with DurableStreamClient(base) as client:

        def run(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return getattr(client, method)(*args, **kwargs)

        with pytest.raises(DurableStreamError) as caught:
            case(run, url)
    return caught.value


def async_error(base: str, case: Callable[[Run, str], Any]) -> BaseException:
    url = f"/v1/stream/parity-{uuid.uuid4().hex}"

    async def main() -> BaseException:
        async with AsyncDurableStreamClient(base) as client:
            calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

            def record(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                calls.append((method, args, kwargs))

            case(record, url)
            try:
                for method, args, kwargs in calls:
                    result: Awaitable[Any] = getattr(client, method)(*args, **kwargs)
                    await result
            except Exception as exc:
                return exc
        raise AssertionError("the async face raised nothing")

    return asyncio.run(main())


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_faces_raise_the_same_error(ds_url: str, case: str) -> None:
    from_sync = sync_error(ds_url, CASES[case])
    from_async = async_error(ds_url, CASES[case])
    assert type(from_sync) is type(from_async), (from_sync, from_async)
    assert _without_paths(str(from_sync)) == _without_paths(str(from_async))


def test_both_faces_refuse_calls_after_close_with_the_same_error(ds_url: str) -> None:
    client = DurableStreamClient(ds_url)
    client.close()
    with pytest.raises(DurableStreamError) as from_sync:
        client.read("/v1/stream/anything")

    async def closed() -> BaseException:
        async_client = AsyncDurableStreamClient(ds_url)
        await async_client.close()
        try:
            await async_client.read("/v1/stream/anything")
        except Exception as exc:
            return exc
        raise AssertionError("the async face raised nothing")

    from_async = asyncio.run(closed())
    assert type(from_sync.value) is type(from_async)
    assert str(from_sync.value) == str(from_async).replace("AsyncDurable", "Durable")


def _without_paths(message: str) -> str:
    # Each face used its own fresh stream: compare the messages with the names taken out.
    words = message.split()
    return " ".join("<path>" if "parity-" in word else word for word in words)
