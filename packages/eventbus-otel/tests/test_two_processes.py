"""A durable consumer in another process continues the publisher's trace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventbus.core import EventBus
from eventbus.sqlite import SQLiteStore

from ._events import OrderPlaced
from .conftest import Telemetry

PUBLISHER = Path(__file__).with_name("_publisher.py")


def test_the_consumer_span_in_process_b_has_process_a_trace_id(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    path = tmp_path / "events.db"
    result = subprocess.run(
        [sys.executable, str(PUBLISHER), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trace_id, producer_id = result.stdout.split()

    seen: list[str] = []
    with EventBus(store=SQLiteStore(path)) as bus:
        durable = bus.subscribe_durable(
            "mailer", lambda e: seen.append(e.order_id), event_type=OrderPlaced
        )
        assert durable.drain(timeout=10)
    assert seen == ["o-1"]
    (consumer,) = telemetry.spans("process")
    assert f"{consumer.context.trace_id:032x}" == trace_id
    assert consumer.parent is not None
    assert consumer.parent.is_remote
    assert f"{consumer.parent.span_id:016x}" == producer_id
    assert (consumer.attributes or {})["messaging.consumer.group.name"] == "mailer"
