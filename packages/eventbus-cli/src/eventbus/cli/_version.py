"""``eventbus --version``: the installed eventbus distributions and the stores they register."""

from __future__ import annotations

from importlib.metadata import distributions, entry_points
from typing import Final

__all__ = ["versions"]

ENTRY_POINT_GROUP: Final = "eventbus.stores"  # where backends register (docs/writing-a-backend.md)


def versions() -> str:
    """One line per installed ``eventbus-*`` distribution, then one per store URL scheme."""
    installed = sorted(
        {
            (dist.metadata["Name"].lower(), dist.version)
            for dist in distributions()
            if (dist.metadata["Name"] or "").lower().startswith("eventbus-")
        }
    )
    lines = [f"{name} {version}" for name, version in installed]
    lines.append(f"stores (entry-point group {ENTRY_POINT_GROUP}):")
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    lines.extend(
        f"  {ep.name}:  {ep.value} ({ep.dist.name if ep.dist else 'unknown distribution'})"
        for ep in found
    )
    return "\n".join(lines)
