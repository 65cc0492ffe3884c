"""Phase statistics and memory guarding for a pipeline run.

``MemoryMonitor`` samples the resident memory of this process (and its children) in
a background thread, keeps the peak, and turns crossing ``memory_limit_mb`` into a
clear :class:`MemoryLimitExceeded` at the next check instead of an OOM kill.
``ProgressTracker`` times each phase and records its counts and throughput.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import psutil

from .errors import MemoryLimitExceeded

_MB = 1024 * 1024
log = logging.getLogger(__name__)


class MemoryMonitor:
    """Samples RSS every ``interval`` seconds; ``check()`` raises once past the limit."""

    def __init__(self, memory_limit_mb: float | None = None, interval: float = 0.05) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.interval = interval
        self._process = psutil.Process()
        self._peak = 0
        self._over: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._users = 0
        self._users_lock = threading.Lock()

    def rss_bytes(self) -> int:
        rss = self._process.memory_info().rss
        try:
            for child in self._process.children(recursive=True):
                rss += child.memory_info().rss
        except psutil.Error:
            pass
        return rss

    def sample(self) -> int:
        rss = self.rss_bytes()
        self._peak = max(self._peak, rss)
        if self.memory_limit_mb is not None and rss > self.memory_limit_mb * _MB and self._over is None:
            self._over = rss
        return rss

    @property
    def peak_mb(self) -> float:
        return self._peak / _MB

    def reset_peak(self) -> None:
        self._peak = 0
        self.sample()

    def check(self) -> None:
        """Raise :class:`MemoryLimitExceeded` if the limit was crossed since the start."""
        if self._over is not None:
            raise MemoryLimitExceeded(
                f"memory use reached {self._over / _MB:.0f} MB, over the limit of "
                f"{self.memory_limit_mb:.0f} MB (memory_limit_mb); lower the batch size or raise the limit"
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemoryMonitor:
        """Start sampling; phases running at once (the media copy beside the load) share one sampler."""
        with self._users_lock:
            self._users += 1
            if self._users == 1:
                self.sample()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="memory-monitor", daemon=True)
                self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._users_lock:
            self._users -= 1
            if self._users == 0:
                self._stop.set()
                if self._thread is not None:
                    self._thread.join()
        self.sample()


@dataclass
class PhaseStats:
    """Statistics of one phase, as stored in ``etl_phase_stats`` and shown in Dagster."""

    phase: str
    conversations_total: int = 0
    conversations_processed: int = 0
    messages_total: int = 0
    messages_processed: int = 0
    duration_seconds: float = 0.0
    messages_per_second: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0
    bytes_read: int = 0
    rejected: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class ProgressTracker:
    """Times phases: wall time, CPU of the process tree, peak memory."""

    def __init__(self, monitor: MemoryMonitor) -> None:
        self.monitor = monitor

    @contextmanager
    def phase(self, name: str, *, cpu_clock: Callable[[], float] | None = None) -> Iterator[PhaseStats]:
        """Measure the enclosed work; the caller fills the counts on the yielded stats.

        ``cpu_clock``: CPU seconds to count (default: the whole process tree). A phase that runs
        in its own thread beside another (the media copy) counts its thread only
        (``time.thread_time``); the other phase's count then includes it.
        """
        stats = PhaseStats(phase=name)
        clock = cpu_clock or _cpu_seconds
        self.monitor.reset_peak()
        cpu = clock()
        start = time.perf_counter()
        log.info("%s: started", name)
        yield stats
        stats.duration_seconds = round(time.perf_counter() - start, 3)
        stats.cpu_seconds = round(clock() - cpu, 3)
        self.monitor.sample()
        stats.peak_rss_mb = round(self.monitor.peak_mb, 1)
        if stats.duration_seconds > 0:
            stats.messages_per_second = round(stats.messages_processed / stats.duration_seconds, 1)
        log.info(
            "%s: %d messages in %.2f s (%.0f/s), peak RSS %.0f MB",
            name, stats.messages_processed, stats.duration_seconds, stats.messages_per_second, stats.peak_rss_mb,
        )

def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the transform's worker processes)."""
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system
