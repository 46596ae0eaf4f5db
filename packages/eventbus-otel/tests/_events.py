"""Event classes shared by the tests and the child process (stable wire names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OrderPlaced:
    __event_name__ = "shop.OrderPlaced"
    order_id: str
