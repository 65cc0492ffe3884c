"""A tiny job for the run-retry test: its first run waits to be killed, its retry succeeds.

``CRASH_JOB_DIR`` is a folder shared with the test. Without ``killed`` in it, the op
writes its process id to ``worker.pid`` and waits; the test kills that process (the run
worker: the executor runs the op in it) and creates ``killed``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg


@dg.op
def wait_to_be_killed() -> None:
    folder = Path(os.environ["CRASH_JOB_DIR"])
    if (folder / "killed").exists():
        return
    (folder / "worker.pid.tmp").write_text(str(os.getpid()))
    (folder / "worker.pid.tmp").rename(folder / "worker.pid")
    time.sleep(600)


@dg.job(executor_def=dg.in_process_executor)
def crash_job() -> None:
    wait_to_be_killed()


defs = dg.Definitions(jobs=[crash_job])
