"""The conformance adapter entry point: ``python -m eventbus.durablestream.conformance``.

See :func:`eventbus.durablestream._conformance.serve`; the runner of the official suite spawns
this module with ``--face sync`` or ``--face async``.
"""

from __future__ import annotations

from ._conformance import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
