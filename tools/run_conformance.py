"""Run the Durable Streams client conformance suite against one adapter and judge the result.

Used by ``nox -s conformance``::

    python tools/run_conformance.py --runner RUNNER --adapter "CMD" --min-passed 253

``RUNNER`` is a script that takes the adapter command line followed by suite options (the
ready-to-run copy's ``run`` wrapper, or one built as docs/conformance.md describes). The
runner's output is streamed; afterwards its ``Passed``/``Failed``/``Skipped`` totals are parsed,
a per-suite table (consumer, producer, lifecycle, validation) is printed, and the exit status is
non-zero on any failure, on fewer than ``--min-passed`` passes, or when no totals were printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["Counts", "main", "parse_output", "suite_groups"]

_TOTAL = re.compile(r"^(Passed|Failed|Skipped):\s*(\d+)\s*$")
_RESULT = re.compile(r"^\s+([✓✗○])\s")
_UNDERLINE = re.compile(r"^─+$")
_GROUPS = ("consumer", "producer", "lifecycle", "validation")


@dataclasses.dataclass
class Counts:
    """Passed, failed and skipped test counts."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, mark: str) -> None:
        """Count one result line by its mark (✓ passed, ✗ failed, ○ skipped)."""
        if mark == "✓":
            self.passed += 1
        elif mark == "✗":
            self.failed += 1
        else:
            self.skipped += 1


def suite_groups(runner: Path) -> dict[str, str]:
    """Map each suite's display name to its group, from the test-case files near the runner.

    The group is the test-case folder (consumer, producer, lifecycle, validation). Without
    test-case files beside the runner the map is empty and suites are reported as "other".

    Args:
        runner: the runner script.

    Returns:
        Suite name to group.
    """
    groups: dict[str, str] = {}
    for base in (runner.parent / "suite" / "test-cases", runner.parent / "test-cases"):
        for path in sorted(base.glob("*/**/*.yaml")):
            group = path.relative_to(base).parts[0]
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("name:"):
                    groups[line.removeprefix("name:").strip().strip("'\"")] = group
                    break
    return groups


def parse_output(
    lines: list[str], groups: dict[str, str]
) -> tuple[dict[str, int], dict[str, Counts]]:
    """Parse the runner's output.

    Args:
        lines: the output lines.
        groups: suite name to group, from :func:`suite_groups`.

    Returns:
        The totals (``Passed``, ``Failed``, ``Skipped``; missing ones absent) and per-group
        counts.
    """
    totals: dict[str, int] = {}
    per_group: dict[str, Counts] = {}
    current = "other"
    previous = ""
    for line in lines:
        stripped = line.rstrip("\n")
        if _UNDERLINE.match(stripped) and previous:
            current = groups.get(previous, "other")
        elif match := _RESULT.match(stripped):
            per_group.setdefault(current, Counts()).add(match.group(1))
        elif match := _TOTAL.match(stripped):
            totals[match.group(1)] = int(match.group(2))
        previous = stripped.strip()
    return totals, per_group


def main(argv: list[str] | None = None) -> int:
    """Run the suite and judge it.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when every test passed and enough of them ran.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", required=True, help="the suite's run script")
    parser.add_argument("--adapter", required=True, help="the adapter command line")
    parser.add_argument("--min-passed", type=int, default=253)
    parser.add_argument("suite_args", nargs="*", help="extra options for the runner")
    args = parser.parse_args(argv)
    runner = Path(args.runner)
    command = [args.runner, args.adapter, *args.suite_args]
    print(f"$ {shlex.join(command)}", flush=True)
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8"
    ) as process:
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
        status = process.wait()
    totals, per_group = parse_output(lines, suite_groups(runner))
    print(f"\nConformance of {args.adapter!r}, per suite:")
    print(f"  {'suite':<12}{'passed':>8}{'failed':>8}{'skipped':>9}")
    order = [*_GROUPS, *sorted(set(per_group) - set(_GROUPS))]
    for group in order:
        counts = per_group.get(group, Counts())
        print(f"  {group:<12}{counts.passed:>8}{counts.failed:>8}{counts.skipped:>9}")
    problems: list[str] = []
    if not {"Passed", "Failed", "Skipped"} <= totals.keys():
        problems.append("the runner printed no Passed/Failed/Skipped totals")
    passed, failed = totals.get("Passed", 0), totals.get("Failed", 0)
    print(f"  {'total':<12}{passed:>8}{failed:>8}{totals.get('Skipped', 0):>9}")
    if failed:
        problems.append(f"{failed} test(s) failed")
    if passed < args.min_passed:
        problems.append(f"only {passed} passed, fewer than the required {args.min_passed}")
    if status != 0 and not problems:
        problems.append(f"the runner exited with status {status}")
    for problem in problems:
        print(f"FAIL: {problem}.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
