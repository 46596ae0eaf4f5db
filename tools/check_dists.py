"""Check built distributions the way a user meets them.

For every wheel in the given folder: it must not contain ``eventbus/__init__.py`` (the
namespace is PEP 420), must ship its ``py.typed``, and must install alone into a fresh
virtual environment (with only its declared dependencies, eventbus-core taken from the
same folder) and import. The ``eventbus-core`` wheel must declare no runtime dependency:
only its ``testing`` extra (the conformance kit's test tools) and its ``fast`` extra
(msgspec, a faster parser) may require anything.
Every sdist must be present too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

IMPORTS = {
    "eventbus_core": "eventbus.core",
    "eventbus_sqlite": "eventbus.sqlite",
    "eventbus_durablestream": "eventbus.durablestream",
    "eventbus_cli": "eventbus.cli",
    "eventbus_otel": "eventbus.otel",
}


def check_wheel(wheel: Path, dist: Path) -> list[str]:
    problems: list[str] = []
    project = wheel.name.split("-")[0]
    module = IMPORTS[project]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if "eventbus/__init__.py" in names:
            problems.append(f"{wheel.name}: contains eventbus/__init__.py (breaks the namespace)")
        typed = module.replace(".", "/") + "/py.typed"
        if typed not in names:
            problems.append(f"{wheel.name}: {typed} is missing")
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist") or []
    runtime = [
        r for r in requires if not re.search(r"""; *extra *== *["'](testing|fast)["']$""", r)
    ]
    if project == "eventbus_core" and runtime:
        problems.append(f"{wheel.name}: eventbus-core must declare no dependency, has {runtime}")
    with tempfile.TemporaryDirectory() as env_dir:
        venv.create(env_dir, with_pip=True)
        python = str(Path(env_dir) / "bin" / "python")
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--find-links", str(dist), str(wheel)],
            check=True,
        )
        result = subprocess.run(
            [python, "-c", f"import {module}; print({module}.__name__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            problems.append(f"{wheel.name}: import {module} failed: {result.stderr.strip()}")
        else:
            print(f"ok: {wheel.name} installs alone and imports {module}; requires {requires}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dist", type=Path, help="folder holding the built wheels and sdists")
    args = parser.parse_args()
    wheels = sorted(args.dist.glob("*.whl"))
    sdists = sorted(args.dist.glob("*.tar.gz"))
    problems: list[str] = []
    if len(wheels) != len(IMPORTS) or len(sdists) != len(IMPORTS):
        problems.append(f"expected {len(IMPORTS)} wheels and sdists, found {wheels} {sdists}")
    for wheel in wheels:
        problems.extend(check_wheel(wheel, args.dist))
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
