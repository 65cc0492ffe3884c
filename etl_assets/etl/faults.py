"""Crash points for the reliability tests.

``ETL_CRASH_AT=<point>[:<n>]``: at the n-th time (default 1) the named point is
reached, the process sends itself SIGKILL: a real crash, with no cleanup and no
exception handlers. ``ETL_PAUSE_AT=<point>:<seconds>``: the first time the point is
reached, the process sleeps (so a test can restart the database under it). Unset,
a crash point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time

_ENV = "ETL_CRASH_AT"
_seen: dict[str, int] = {}
_paused: set[str] = set()


def crash_point(name: str) -> None:
    """Die here if ``ETL_CRASH_AT`` names this point (and this is its n-th visit)."""
    pause = os.environ.get("ETL_PAUSE_AT")
    if pause and pause.partition(":")[0] == name and name not in _paused:
        _paused.add(name)
        time.sleep(float(pause.partition(":")[2] or 1))
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
