"""Event codec cost against the json module it is built on.

For a small frozen dataclass (one ``str`` and one ``float`` field, with and without
``slots``) and for a nested dataclass with converted fields (``datetime``,
``Decimal``, a list of items), measures per event:

* decode: ``EventCodec.decode(text)`` against the floor ``json.loads(text)``,
* encode: ``EventCodec.encode(event)`` against the floor ``json.dumps(dict)`` of the
  equivalent dict with the same separators.

Reports the median of several runs in ns per call, with the garbage collector
disabled while timing, and the throughput ratio floor/codec (1.0 = as fast as json
alone). Typed replay's bar is a decode ratio of at least 0.6 on the flat event, with the
parser an install gets (msgspec with ``eventbus-core[fast]``, as the Durable Streams
package brings it); the json module's parser is reported beside it.

Usage::

    python bench/bench_codec.py [--n 100000] [--runs 7] [--json results.json]

The script exits 0 either way: it measures, it does not gate.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from eventbus.core import _codec as codec_module
from eventbus.core._names import TypeRegistry

DECODE_BAR = 0.6


@dataclass(frozen=True)
class OrderPlaced:
    """The flat event: plain fields only, restored without conversion."""

    order_id: str
    amount: float


@dataclass(frozen=True, slots=True)
class OrderPlacedSlots:
    """The flat event with ``slots=True``."""

    order_id: str
    amount: float


@dataclass(frozen=True)
class Line:
    """An order line, nested in :class:`OrderShipped`."""

    sku: str
    price: Decimal
    quantity: int


@dataclass(frozen=True)
class OrderShipped:
    """A nested event whose fields need converting."""

    order_id: str
    shipped_at: datetime
    lines: list[Line]


def _time(fn: Callable[[], object], n: int, runs: int) -> list[float]:
    """ns per call of each run."""
    results = []
    gc.disable()
    try:
        for _ in range(runs):
            start = time.perf_counter_ns()
            for _ in range(n):
                fn()
            results.append((time.perf_counter_ns() - start) / n)
    finally:
        gc.enable()
    return results


def _cases() -> list[tuple[str, Any, dict[str, Any]]]:
    shipped_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    lines = [Line(f"sku-{i}", Decimal("9.95"), i) for i in range(3)]
    return [
        ("flat", OrderPlaced("o-1", 99.5), {"order_id": "o-1", "amount": 99.5}),
        ("flat-slots", OrderPlacedSlots("o-1", 99.5), {"order_id": "o-1", "amount": 99.5}),
        (
            "nested",
            OrderShipped("o-1", shipped_at, lines),
            {
                "order_id": "o-1",
                "shipped_at": shipped_at.isoformat(),
                "lines": [
                    {"sku": line.sku, "price": str(line.price), "quantity": line.quantity}
                    for line in lines
                ],
            },
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and optionally write JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="calls per run")
    parser.add_argument("--runs", type=int, default=7, help="runs per case")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    loads = json.loads
    rows: list[dict[str, Any]] = []
    # With eventbus-core[fast] installed the codec parses with msgspec; the json module's
    # path is measured too (decode only: encoding does not change), so both are on record.
    installed = codec_module.FAST_PARSE
    parsers = [("msgspec", installed), ("json", None)] if installed else [("json", None)]
    for (case, event, as_dict), (parser, engine) in itertools.product(_cases(), parsers):
        codec_module.FAST_PARSE = engine
        codec = TypeRegistry().register(type(event))
        codec_module.FAST_PARSE = installed
        text = codec.encode(event)
        assert codec.decode(text) == event
        assert loads(text) == as_dict
        pairs: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
            (f"decode ({parser})", partial(codec.decode, text), partial(loads, text)),
        ]
        if engine is installed:
            pairs.append(("encode", partial(codec.encode, event), partial(dumps, as_dict)))
        for op, measured, floor in pairs:
            codec_ns = statistics.median(_time(measured, args.n, args.runs))
            floor_ns = statistics.median(_time(floor, args.n, args.runs))
            rows.append(
                {
                    "case": case,
                    "op": op,
                    "codec_ns": round(codec_ns, 1),
                    "json_ns": round(floor_ns, 1),
                    "ratio": round(floor_ns / codec_ns, 3),
                }
            )

    print(f"{'case':<12} {'op':<18} {'codec ns':>9} {'json ns':>9} {'json/codec':>11}")
    for row in rows:
        print(
            f"{row['case']:<12} {row['op']:<18} {row['codec_ns']:>9.0f} {row['json_ns']:>9.0f} "
            f"{row['ratio']:>11.2f}"
        )
    default = f"decode ({parsers[0][0]})"  # what an install with every extra runs
    flat = next(r for r in rows if r["case"] == "flat" and r["op"] == default)
    verdict = "PASS" if flat["ratio"] >= DECODE_BAR else "FAIL"
    print(f"\nflat decode ratio {flat['ratio']:.2f} (bar {DECODE_BAR}): {verdict}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "platform": platform.platform(),
                    "n": args.n,
                    "runs": args.runs,
                    "decode_bar": DECODE_BAR,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
