"""The envelope and publish metadata carried in a context variable (_envelope.py)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from datetime import UTC, datetime

import pytest

from eventbus.core import Envelope, current_metadata, publish_metadata


def test_no_metadata_outside_any_block() -> None:
    assert dict(current_metadata()) == {}


def test_publish_metadata_is_visible_inside_and_gone_after() -> None:
    with publish_metadata(tenant="acme", request_id="r-1") as pairs:
        assert dict(pairs) == {"tenant": "acme", "request_id": "r-1"}
        assert dict(current_metadata()) == {"tenant": "acme", "request_id": "r-1"}
    assert dict(current_metadata()) == {}


def test_nested_blocks_add_and_override_then_restore() -> None:
    with publish_metadata(tenant="acme", user="u-1"):
        with publish_metadata(user="u-2", trace="t-9") as inner:
            assert dict(inner) == {"tenant": "acme", "user": "u-2", "trace": "t-9"}
        assert dict(current_metadata()) == {"tenant": "acme", "user": "u-1"}
    assert dict(current_metadata()) == {}


def test_metadata_is_restored_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), publish_metadata(tenant="acme"):
        _ = 1 / 0
    assert dict(current_metadata()) == {}


def test_metadata_is_read_only() -> None:
    with publish_metadata(tenant="acme"):
        metadata = current_metadata()
        with pytest.raises(TypeError):
            metadata["tenant"] = "other"  # type: ignore[index]


@pytest.mark.parametrize("value", [1, None, b"bytes", 2.5])
def test_non_string_values_are_rejected_with_the_fix(value: object) -> None:
    with pytest.raises(TypeError, match="Metadata values must be strings") as info:
        publish_metadata(tenant=value).__enter__()  # type: ignore[arg-type]
    assert f"tenant={value!r}" in str(info.value)
    assert "tenant=str(value)" in str(info.value)
    assert dict(current_metadata()) == {}


def test_metadata_follows_tasks_but_not_into_a_fresh_context() -> None:
    seen: dict[str, dict[str, str]] = {}

    async def child() -> None:
        seen["task"] = dict(current_metadata())

    async def main() -> None:
        with publish_metadata(tenant="acme"):
            await asyncio.create_task(child())

    asyncio.run(main())
    assert seen["task"] == {"tenant": "acme"}
    fresh = contextvars.Context()
    assert dict(fresh.run(current_metadata)) == {}


def test_envelope_is_a_frozen_record() -> None:
    now = datetime.now(UTC)
    envelope = Envelope("01J0", None, "app.OrderPlaced", now, {"k": "v"}, "bus-1")
    assert (envelope.event_id, envelope.offset, envelope.type_name) == (
        "01J0",
        None,
        "app.OrderPlaced",
    )
    assert (envelope.timestamp, dict(envelope.metadata), envelope.origin) == (
        now,
        {"k": "v"},
        "bus-1",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        envelope.offset = "1"  # type: ignore[misc]
