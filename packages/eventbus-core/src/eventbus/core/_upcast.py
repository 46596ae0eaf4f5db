"""TEMPORARY STUB written by the lead so _bus.py imports; the codec helper owns this file
and should overwrite it completely with the real implementation."""

from __future__ import annotations

from typing import Any

__all__ = ["UpcasterRegistry"]


class UpcasterRegistry:
    def __bool__(self) -> bool:
        return False

    def apply(self, type_name: str, data: str) -> tuple[str, str]:
        return type_name, data

    def register_raw(self, *args: Any) -> None:
        raise NotImplementedError

    def register_typed(self, *args: Any) -> None:
        raise NotImplementedError
