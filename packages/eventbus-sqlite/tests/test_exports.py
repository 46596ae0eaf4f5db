"""The public surface of eventbus.sqlite is exactly its __all__."""

from __future__ import annotations

import eventbus.sqlite


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(eventbus.sqlite) if not name.startswith("_")}
    public -= {"annotations"}
    # The order itself is ruff's (RUF022: constants, classes, functions); here: no
    # duplicates and nothing public left out or listed without existing.
    assert len(set(eventbus.sqlite.__all__)) == len(eventbus.sqlite.__all__)
    assert set(eventbus.sqlite.__all__) == public
