#!/usr/bin/env python3
"""Set up a local virtual environment on first use, then run a project task in it.

    python3 run.py demo        # generate a sample export and load it through Dagster
    python3 run.py test        # the test suite (extra arguments go to pytest)
    python3 run.py dev         # the Dagster UI on http://127.0.0.1:3000
    python3 run.py bench       # benchmarks side by side (extra arguments go to benchmarks.run)
    python3 run.py load FILE   # any other skype-etl command

Needs only Python 3.11+; everything else is installed into ``.venv`` from PyPI.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def _requirements_hash(extras: str) -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()


def ensure_environment(extras: str = "test") -> None:
    """Create ``.venv`` and install the project with ``extras`` when pyproject.toml changed."""
    if sys.version_info < (3, 11):
        sys.exit(f"skype-etl needs Python 3.11 or newer, not {sys.version.split()[0]}")
    wanted = _requirements_hash(extras)
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing skype-etl and its dependencies into .venv (first run only) ...", flush=True)
    subprocess.run(
        [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}[{extras}]"],
        check=True,
    )
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    task, rest = argv[0], argv[1:]
    ensure_environment("test,bench" if task == "bench" else "test")
    os.chdir(ROOT)
    if task == "test":
        command = [str(BIN / "python"), "-m", "pytest", *rest]
    elif task == "bench":
        command = [str(BIN / "python"), "-m", "benchmarks.run", *rest]
    else:
        command = [str(BIN / "skype-etl"), task, *rest]
    if os.name == "nt":
        return subprocess.run(command).returncode
    os.execv(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
