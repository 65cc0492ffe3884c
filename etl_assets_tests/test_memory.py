"""Bounded memory: the pipeline finishes under a limit that a whole-file load cannot meet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from etl_assets.samples import generate_export

from .helpers import run_cli

LIMIT_MB = 220

WHOLE_FILE_LOAD = """
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    document = json.load(archive.extractfile("messages.json"))
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(hwm // 1024)
"""


def test_pipeline_stays_under_a_limit_that_a_whole_file_load_exceeds(database_url: str, schema: str, tmp_path: Path) -> None:
    truth = generate_export(tmp_path / "8_live_big_export.tar", messages=150_000, seed=4, media=False)
    whole_file_mb = int(
        subprocess.run([sys.executable, "-c", WHOLE_FILE_LOAD, str(truth.path)], capture_output=True, text=True, check=True).stdout
    )
    assert whole_file_mb > LIMIT_MB * 1.5  # the original approach could not run under this limit

    done = run_cli(
        "load", str(truth.path), "--database-url", database_url, "--schema", schema, "--json",
        "--memory-limit-mb", str(LIMIT_MB), "--workers", "1", "--batch-size", "10000",
        home=tmp_path / "home",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["exports"][0]["messages"] == truth.messages
    assert max(phase["peak_rss_mb"] for phase in report["phases"].values()) < LIMIT_MB
