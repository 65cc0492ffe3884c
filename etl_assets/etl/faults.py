"""Crash points for the crash-safety tests: ``ETL_CRASH_AT=<point>[:<n>]`` kills the process.

At the n-th time (default 1) the named point is reached, the process sends itself
SIGKILL: a real crash, with no cleanup and no exception handlers. Unset, a crash point
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_ENV = "ETL_CRASH_AT"
_seen: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here if ``ETL_CRASH_AT`` names this point (and this is its n-th visit)."""
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
