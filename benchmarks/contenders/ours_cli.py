"""ours_cli: the project's own command, ``skype-etl load FILE --database-url URL --schema S --json``.

The full pipeline: extract (validate, sha256), transform (Parquet per table), load (merge
into every table, with all indexes). The benchmark runs the command itself, not this module;
``main`` is for running the contender by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .common import count_rows, emit, parse_argv

TABLE = "messages"


def command(path: str, url: str, schema: str) -> list[str]:
    """The command line of one run (the console script of the venv this Python belongs to)."""
    script = Path(sys.executable).with_name("skype-etl")
    prefix = [str(script)] if script.exists() else [sys.executable, "-c", "from etl_assets.cli import main; main()"]
    return [*prefix, "load", path, "--database-url", url, "--schema", schema, "--json"]


def main() -> None:
    path, url, schema = parse_argv()
    done = subprocess.run(command(path, url, schema), capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    emit(rows=count_rows(url, schema, TABLE), phases=report["phases"])


if __name__ == "__main__":
    main()
