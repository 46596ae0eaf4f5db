"""The documentation's promises point at tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "packages" / "eventbus-core" / "src" / "eventbus" / "core" / "testing.py"
PREFIXES = {
    "core": ROOT / "packages" / "eventbus-core" / "tests",
    "sqlite": ROOT / "packages" / "eventbus-sqlite" / "tests",
    "ds": ROOT / "packages" / "eventbus-durablestream" / "tests",
    "tests": ROOT / "tests",
}


def test_every_test_named_in_guarantees_md_exists() -> None:
    text = (ROOT / "docs" / "guarantees.md").read_text()
    cited = 0
    for cell in re.findall(r"\| ([^|]*::[^|]*) \|$", text, re.MULTILINE):
        current: Path | None = None
        for reference in re.findall(r"`([^`]+)`", cell):
            if "/" in reference:
                prefix, rest = reference.split("/", 1)
                file_part, _, name = rest.partition("::")
                current = PREFIXES[prefix] / file_part
            else:
                name = reference.removeprefix("::")
            if not name.startswith("test_"):
                continue
            assert current is not None, reference
            # Tests inherited from the conformance kit are defined in the kit itself.
            source = current.read_text() + KIT.read_text()
            assert re.search(rf"def {re.escape(name)}\b", source), (
                f"{reference} in docs/guarantees.md does not exist in {current}"
            )
            cited += 1
    assert cited > 30
