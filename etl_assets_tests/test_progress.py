"""Phase statistics: time, CPU (worker processes included) and peak memory."""

from __future__ import annotations

import subprocess
import sys

from etl_assets.etl.progress import MemoryMonitor, ProgressTracker

_BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"


def test_cpu_seconds_include_worker_processes() -> None:
    tracker = ProgressTracker(MemoryMonitor())
    with tracker.phase("transform") as stats:
        subprocess.run([sys.executable, "-c", _BUSY], check=True)
        stats.messages_processed = 10
    assert stats.cpu_seconds >= 0.5  # the child's CPU time, not only this process's
    assert stats.duration_seconds >= stats.cpu_seconds * 0.9
    import psutil

    assert stats.peak_rss_mb >= 0.9 * psutil.Process().memory_info().rss / 2**20  # at least this process's memory
    assert abs(stats.messages_per_second - 10 / stats.duration_seconds) < 0.01 * stats.messages_per_second
