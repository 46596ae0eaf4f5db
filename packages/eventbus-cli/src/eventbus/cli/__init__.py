"""eventbus.cli: the ``eventbus`` command, to operate any eventbus store by URL."""

from __future__ import annotations

from ._app import main as main

__all__ = ["main"]
