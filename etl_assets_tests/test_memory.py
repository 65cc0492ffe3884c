"""Bounded memory: the pipeline finishes under a limit that a whole-file load cannot meet.

Memory is measured from outside the load, by the kernel's own high-water mark: this test
polls ``VmHWM`` in ``/proc/<pid>/status`` of the load process and of every process below it
(transform workers included) while they live, and adds up each process's peak. That sum is
at least the peak of the whole tree at any moment, and a brief spike between two polls is
still counted, because VmHWM only grows. The pipeline's own ``MemoryMonitor`` is not used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from etl_assets.samples import generate_export

LIMIT_MB = 220

WHOLE_FILE_LOAD = """
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    document = json.load(archive.extractfile("messages.json"))
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(hwm // 1024)
"""


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_measured(command: list[str], env: dict[str, str], timeout: float = 600) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run ``command``; return its outcome, the summed peak (MB) of its process tree and how many processes it had."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    root = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout
    # Pipes are read after the exit: the load prints one JSON line, far below a pipe's buffer.
    while process.poll() is None:
        assert time.monotonic() < deadline, "the load did not finish in time"
        try:
            pids = [process.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.Error:
            pids = [process.pid]
        for pid in pids:
            hwm = _vm_hwm_kb(pid)
            if hwm is not None and hwm >= peaks.get(pid, 0):
                peaks[pid] = hwm
        time.sleep(0.01)
    out, err = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, out, err), sum(peaks.values()) / 1024, len(peaks)


def test_pipeline_stays_under_a_limit_that_a_whole_file_load_exceeds(database_url: str, schema: str, tmp_path: Path) -> None:
    truth = generate_export(tmp_path / "8_live_big_export.tar", messages=150_000, seed=4, media=True)
    assert truth.rows["media_files"] > 1000  # media files in the archive: the media copy runs too
    whole_file_mb = int(
        subprocess.run([sys.executable, "-c", WHOLE_FILE_LOAD, str(truth.path)], capture_output=True, text=True, check=True).stdout
    )
    assert whole_file_mb > LIMIT_MB * 1.5  # the original approach could not run under this limit

    env = {**os.environ, "ETL_HOME": str(tmp_path / "home")}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT", "ETL_PAUSE_AT", "ETL_MEMORY_LIMIT_MB"):
        env.pop(name, None)
    done, peak_mb, processes = run_measured(
        [sys.executable, "-m", "etl_assets.cli", "load", str(truth.path), "--database-url", database_url,
         "--schema", schema, "--json", "--workers", "1", "--batch-size", "10000"],
        env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["exports"][0]["messages"] == truth.messages
    assert processes >= 1
    assert peak_mb < LIMIT_MB, f"the load's processes peaked at {peak_mb:.0f} MB together ({processes} processes)"
