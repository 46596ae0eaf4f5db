"""``python -m eventbus.cli``: the same as the ``eventbus`` command."""

from __future__ import annotations

from ._app import main

main(prog_name="eventbus")
