"""docs/observability.md: its example runs and prints one trace's spans."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# The repository's page: this test runs from a checkout (nox -s tests-otel).
PAGE = Path(__file__).resolve().parents[3] / "docs" / "observability.md"


def test_the_example_prints_the_spans_of_one_trace(tmp_path: Path) -> None:
    program = "\n".join(re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    spans = [json.loads(block) for block in re.findall(r"^\{\n.*?^\}$", result.stdout, re.S | re.M)]
    names = sorted(span["name"] for span in spans)
    assert names == [
        "checkout",
        "process shop.OrderPlaced",
        "process shop.OrderPlaced",
        "publish shop.OrderPlaced",
    ]
    assert len({span["context"]["trace_id"] for span in spans}) == 1
    groups = [span["attributes"].get("messaging.consumer.group.name") for span in spans]
    assert "mailer" in groups
    assert "audit o-1" in result.stdout
    assert "mail o-1" in result.stdout
