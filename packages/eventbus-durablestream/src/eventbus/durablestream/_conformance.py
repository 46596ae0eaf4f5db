"""The client adapter of the official Durable Streams client conformance suite.

The suite's runner starts ``python -m eventbus.durablestream.conformance --face sync|async``
and talks JSON lines over stdin/stdout: one command per line, exactly one result line each.
Every command is carried out by this package's client (the synchronous or the asyncio face); the
adapter only translates between the suite's vocabulary and the client's API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import IO, Any

from ._conformance_async import AsyncFace
from ._conformance_shared import Adapter, error_result
from ._conformance_sync import SyncFace

__all__ = ["main", "serve"]


def _parse(line: str) -> dict[str, Any] | dict[str, str]:
    command = json.loads(line)
    if not isinstance(command, dict) or not isinstance(command.get("type"), str):
        raise ValueError(f"A command must be a JSON object with a type, got {line[:80]!r}.")
    return command


def _write(stdout: IO[str], result: dict[str, Any]) -> None:
    stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    stdout.flush()


def _bad_line(line: str, exc: Exception) -> dict[str, Any]:
    return {
        "type": "error",
        "success": False,
        "commandType": "init",
        "errorCode": "PARSE_ERROR",
        "message": f"Failed to parse command {line[:80]!r}: {exc}",
    }


def serve(stdin: IO[str], stdout: IO[str], face: str) -> None:
    """Answer the suite's commands from ``stdin`` on ``stdout`` until shutdown or EOF.

    Args:
        stdin: the command stream, one JSON object per line.
        stdout: where each result line is written (and flushed).
        face: ``"sync"`` for :class:`DurableStreamClient`, ``"async"`` for
            :class:`AsyncDurableStreamClient`.

    Raises:
        ValueError: ``face`` is neither ``"sync"`` nor ``"async"``.
    """
    if face == "sync":
        _serve_sync(stdin, stdout)
    elif face == "async":
        asyncio.run(_serve_async(stdin, stdout))
    else:
        raise ValueError(f"face must be 'sync' or 'async', got {face!r}.")


def _serve_sync(stdin: IO[str], stdout: IO[str]) -> None:
    runner = SyncFace(Adapter())
    try:
        for line in stdin:
            if not line.strip():
                continue
            try:
                command = _parse(line)
            except ValueError as exc:
                _write(stdout, _bad_line(line, exc))
                continue
            try:
                result = runner.handle(command)
            except Exception as exc:
                result = error_result(command["type"], exc)
            _write(stdout, result)
            if command["type"] == "shutdown":
                break
    finally:
        runner.close()


async def _serve_async(stdin: IO[str], stdout: IO[str]) -> None:
    runner = AsyncFace(Adapter())
    try:
        # Commands come one at a time and each is answered before the next: a blocking
        # readline between commands holds up nothing.
        for line in stdin:
            if not line.strip():
                continue
            try:
                command = _parse(line)
            except ValueError as exc:
                _write(stdout, _bad_line(line, exc))
                continue
            try:
                result = await runner.handle(command)
            except Exception as exc:
                result = error_result(command["type"], exc)
            _write(stdout, result)
            if command["type"] == "shutdown":
                break
    finally:
        await runner.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``python -m eventbus.durablestream.conformance --face sync``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """

    parser = argparse.ArgumentParser(
        prog="python -m eventbus.durablestream.conformance",
        description="Durable Streams client conformance adapter (JSON lines on stdin/stdout).",
    )
    parser.add_argument("--face", choices=("sync", "async"), default="sync")
    args = parser.parse_args(argv)
    serve(sys.stdin, sys.stdout, args.face)
