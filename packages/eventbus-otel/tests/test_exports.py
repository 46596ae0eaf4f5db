"""The public surface of eventbus.otel is exactly its __all__."""

from __future__ import annotations

import eventbus.otel


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(eventbus.otel) if not name.startswith("_")}
    public -= {"annotations"}
    assert len(set(eventbus.otel.__all__)) == len(eventbus.otel.__all__)
    assert set(eventbus.otel.__all__) == public
