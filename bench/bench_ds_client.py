"""Benchmark the Durable Streams client; every figure is a ratio measured in the same run.

1. The official suite's benchmark scenarios (``RUNNER --bench ADAPTER --format json``) for the
   TypeScript reference client and for our adapter (both faces), back to back, ``--repeat``
   times each; the median of the per-run medians is compared:

   - median append, read and create latency: at most 1.2x the TypeScript client's;
   - append-then-live-read roundtrip: at most 1.0x;
   - small-message producer throughput: at least 0.2x; large-message and read: at least 0.8x.

2. Against a reference server started here: sequential appends and a catch-up read of a
   100k-message JSON stream through our client vs the same requests made with raw httpx, on
   both faces: at least 0.9x of raw throughput (interleaved, at least 7 runs each: a
   single 100k-message read moves by 20% from run to run here).

Usage: ``python bench/bench_ds_client.py [--json PATH] [--runner RUNNER] [--repeat N]``. The
runner defaults to ``$DS_CONFORMANCE_RUNNER``; without one, part 1 is skipped (see
docs/conformance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from eventbus.durablestream import AsyncDurableStreamClient, DurableStreamClient

ROOT = Path(__file__).resolve().parents[1]
LATENCY_TARGETS = {  # scenario: maximum ratio ours / TypeScript of the median latency
    "latency-append": 1.2,
    "latency-read": 1.2,
    "latency-create": 1.2,
    "latency-roundtrip": 1.0,
}
THROUGHPUT_TARGETS = {  # scenario: minimum ratio ours / TypeScript of messages per second
    "throughput-small-messages": 0.2,
    "throughput-large-messages": 0.8,
    "throughput-read": 0.8,
}
RAW_TARGET = 0.9


def _scenarios(runner: str, adapter: str, repeat: int) -> dict[str, dict[str, float]]:
    """Run the suite's benchmarks ``repeat`` times; median per scenario of each figure."""
    runs: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeat):
        done = subprocess.run(
            [runner, "--bench", adapter, "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(done.stdout)
        for result in report["results"]:
            if result.get("skipped") or result.get("error"):
                continue
            figures = runs.setdefault(result["scenario"]["id"], {"median": [], "ops": []})
            figures["median"].append(result["stats"]["median"])
            if result.get("opsPerSec"):
                figures["ops"].append(result["opsPerSec"])
    return {
        sid: {name: statistics.median(values) for name, values in figures.items() if values}
        for sid, figures in runs.items()
    }


def official(runner: str, repeat: int) -> dict[str, Any]:
    """Part 1: the suite's scenarios, TypeScript vs our two faces."""
    python = sys.executable
    adapters = {
        "ts": "ts",
        "sync": f"{python} -m eventbus.durablestream.conformance --face sync",
        "async": f"{python} -m eventbus.durablestream.conformance --face async",
    }
    figures = {name: _scenarios(runner, command, repeat) for name, command in adapters.items()}
    ratios: dict[str, dict[str, Any]] = {}
    ts = figures["ts"]
    for face in ("sync", "async"):
        ours = figures[face]
        for sid, limit in LATENCY_TARGETS.items():
            ratio = ours[sid]["median"] / ts[sid]["median"]
            ratios.setdefault(face, {})[sid] = {
                "ours_ms": ours[sid]["median"],
                "ts_ms": ts[sid]["median"],
                "ratio": ratio,
                "target": f"<= {limit}",
                "met": ratio <= limit,
            }
        for sid, floor in THROUGHPUT_TARGETS.items():
            ratio = ours[sid]["ops"] / ts[sid]["ops"]
            ratios[face][sid] = {
                "ours_ops": ours[sid]["ops"],
                "ts_ops": ts[sid]["ops"],
                "ratio": ratio,
                "target": f">= {floor}",
                "met": ratio >= floor,
            }
    return {"figures": figures, "ratios": ratios}


# --------------------------------------------------------------------------- client vs raw httpx


def _start_server() -> tuple[subprocess.Popen[str], str]:
    folder = Path(os.environ.get("EVENTBUS_DS_SERVER_DIR", ROOT / "servers" / "durable-streams"))
    if not (folder / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
    node = shutil.which("node") or "node"
    process = subprocess.Popen(
        [node, str(folder / "start.mjs"), "--port", "0"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.strip().removeprefix("DS_SERVER_URL=")


def _interleaved(a: Callable[[], float], b: Callable[[], float], runs: int) -> tuple[float, float]:
    """Alternate two measurements so drift hits both; return their medians."""
    first, second = [], []
    for _ in range(runs):
        first.append(a())
        second.append(b())
    return statistics.median(first), statistics.median(second)


def raw_comparison(runs: int, appends: int, events: int) -> dict[str, Any]:
    """Part 2: our client vs raw httpx on the same server, both faces."""
    process, base = _start_server()
    payload = b"x" * 100
    octet = {"Content-Type": "application/octet-stream"}
    results: dict[str, Any] = {}
    try:
        with DurableStreamClient(base) as client, httpx.Client(base_url=base) as raw:
            append_path = f"/bench/append-{uuid.uuid4().hex}"
            client.create(append_path)

            def ours_append() -> float:
                start = time.perf_counter()
                for _ in range(appends):
                    client.append(append_path, payload)
                return appends / (time.perf_counter() - start)

            def raw_append() -> float:
                start = time.perf_counter()
                for _ in range(appends):
                    response = raw.post(append_path, content=payload, headers=octet)
                    assert response.status_code == 204
                    response.headers["Stream-Next-Offset"]
                return appends / (time.perf_counter() - start)

            read_path = f"/bench/read-{uuid.uuid4().hex}"
            client.create(read_path, content_type="application/json")
            batch = [
                {"n": n, "data": f"event-{n}-padding-to-about-a-hundred-bytes"} for n in range(1000)
            ]
            for _ in range(events // 1000):
                client.append_json_batch(read_path, batch)

            def ours_read() -> float:
                start = time.perf_counter()
                items = client.read(read_path).json()
                assert len(items) == events
                return events / (time.perf_counter() - start)

            def raw_read() -> float:
                start = time.perf_counter()
                response = raw.get(read_path, params={"offset": "-1"})
                response.raise_for_status()
                items = json.loads(response.content)
                assert len(items) == events
                response.headers["Stream-Next-Offset"]
                return events / (time.perf_counter() - start)

            ours_append()  # warm the connection and the HEAD-learned content type
            raw_append()
            for name, (ours, theirs) in {
                "sync append": _interleaved(ours_append, raw_append, runs),
                "sync catch-up read": _interleaved(ours_read, raw_read, runs),
            }.items():
                results[name] = _raw_row(ours, theirs)
        results.update(asyncio.run(_async_raw(base, runs, appends, events, payload)))
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    return results


def _raw_row(ours: float, theirs: float) -> dict[str, Any]:
    ratio = ours / theirs
    return {
        "ours_per_s": ours,
        "raw_per_s": theirs,
        "ratio": ratio,
        "target": f">= {RAW_TARGET}",
        "met": ratio >= RAW_TARGET,
    }


async def _async_raw(
    base: str, runs: int, appends: int, events: int, payload: bytes
) -> dict[str, Any]:
    octet = {"Content-Type": "application/octet-stream"}
    async with AsyncDurableStreamClient(base) as client, httpx.AsyncClient(base_url=base) as raw:
        append_path = f"/bench/aappend-{uuid.uuid4().hex}"
        await client.create(append_path)
        read_path = f"/bench/aread-{uuid.uuid4().hex}"
        await client.create(read_path, content_type="application/json")
        batch = [
            {"n": n, "data": f"event-{n}-padding-to-about-a-hundred-bytes"} for n in range(1000)
        ]
        for _ in range(events // 1000):
            await client.append_json_batch(read_path, batch)

        async def ours_append() -> float:
            start = time.perf_counter()
            for _ in range(appends):
                await client.append(append_path, payload)
            return appends / (time.perf_counter() - start)

        async def raw_append() -> float:
            start = time.perf_counter()
            for _ in range(appends):
                response = await raw.post(append_path, content=payload, headers=octet)
                assert response.status_code == 204
                response.headers["Stream-Next-Offset"]
            return appends / (time.perf_counter() - start)

        async def ours_read() -> float:
            start = time.perf_counter()
            items = (await client.read(read_path)).json()
            assert len(items) == events
            return events / (time.perf_counter() - start)

        async def raw_read() -> float:
            start = time.perf_counter()
            response = await raw.get(read_path, params={"offset": "-1"})
            response.raise_for_status()
            items = json.loads(response.content)
            assert len(items) == events
            response.headers["Stream-Next-Offset"]
            return events / (time.perf_counter() - start)

        async def pair(
            a: Callable[[], Awaitable[float]], b: Callable[[], Awaitable[float]]
        ) -> tuple[float, float]:
            first, second = [], []
            for _ in range(runs):
                first.append(await a())
                second.append(await b())
            return statistics.median(first), statistics.median(second)

        await ours_append()
        await raw_append()
        return {
            "async append": _raw_row(*await pair(ours_append, raw_append)),
            "async catch-up read": _raw_row(*await pair(ours_read, raw_read)),
        }


def _print_table(report: dict[str, Any]) -> None:
    print("\nDurable Streams client benchmark (ratios measured in this run)")
    if "official" in report:
        print(
            f"\n{'face':<6} {'scenario':<28} {'ours':>12} {'TypeScript':>12} {'ratio':>7}  target"
        )
        for face, rows in report["official"]["ratios"].items():
            for sid, row in rows.items():
                if "ours_ms" in row:
                    ours, ts = f"{row['ours_ms']:.3f} ms", f"{row['ts_ms']:.3f} ms"
                else:
                    ours, ts = f"{row['ours_ops']:,.0f}/s", f"{row['ts_ops']:,.0f}/s"
                mark = "ok" if row["met"] else "MISSED"
                print(
                    f"{face:<6} {sid:<28} {ours:>12} {ts:>12} {row['ratio']:>7.2f}  "
                    f"{row['target']} {mark}"
                )
    else:
        print("\n(official scenarios skipped: no runner; see docs/conformance.md)")
    print(f"\n{'measurement':<22} {'client':>12} {'raw httpx':>12} {'ratio':>7}  target")
    for name, row in report["raw"].items():
        mark = "ok" if row["met"] else "MISSED"
        print(
            f"{name:<22} {row['ours_per_s']:>10,.0f}/s {row['raw_per_s']:>10,.0f}/s "
            f"{row['ratio']:>7.2f}  {row['target']} {mark}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run both parts, print the table and write the JSON report.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0; the benchmark measures, it does not gate.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--runner", default=os.environ.get("DS_CONFORMANCE_RUNNER"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    if args.runner:
        report["official"] = official(args.runner, args.repeat)
    report["raw"] = raw_comparison(max(args.repeat, 7), args.appends, args.events)
    _print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
