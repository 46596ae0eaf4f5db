"""Shared helpers for the bench scripts: timing, medians, the table and the JSON file."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured ratio: ``value`` of the case divided by ``floor`` of its baseline."""

    name: str
    unit: str
    value: float
    floor_name: str
    floor: float
    ratio: float
    bar: str
    passed: bool | None


def median_seconds(run: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``run``, with the GC off while timing."""
    samples = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            run()
            samples.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return statistics.median(samples)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    return parser.parse_args()


def report(
    title: str, rows: list[Row], path: Path | None, extra: dict[str, Any] | None = None
) -> None:
    """Print the table and write the JSON file."""
    print(f"\n## {title}  (Python {sys.version.split()[0]})\n")
    print("| case | value | floor | ratio | bar | result |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        verdict = "-" if r.passed is None else ("PASS" if r.passed else "FAIL")
        print(
            f"| {r.name} | {r.value:,.1f} {r.unit} | {r.floor_name}: {r.floor:,.1f} {r.unit} "
            f"| {r.ratio:.2f}x | {r.bar} | {verdict} |"
        )
    if path is not None:
        payload = {"title": title, "python": sys.version, "rows": [asdict(r) for r in rows]}
        if extra:
            payload.update(extra)
        path.write_text(json.dumps(payload, indent=2))
