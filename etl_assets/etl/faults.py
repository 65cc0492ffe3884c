"""Fault points for the reliability tests: crashes, pauses, disk errors, and a record of syncs.

``ETL_CRASH_AT=<point>[:<n>]``: at the n-th time (default 1) the named point is
reached, the process sends itself SIGKILL: a real crash, with no cleanup and no
exception handlers. ``ETL_PAUSE_AT=<point>:<seconds>``: the first time the point is
reached, the process sleeps (so a test can restart the database under it).
``ETL_FAIL_AT=<point>[:<n>]:<errno name>`` (``ENOSPC``, ``EIO``, ...): at the n-th visit
the point raises ``OSError`` with that errno, as a full or failing disk would, so the
ordinary error paths run. Unset, a fault point costs a few environment lookups.

``ETL_FSYNC_LOG=<file>``: every fsync and rename done by ``durable.py`` appends a line
(``fsync<TAB>path`` with the path the descriptor really refers to, ``rename<TAB>src<TAB>dst``)
to the file, from every process, so a test can check what reached the disk before what.
"""

from __future__ import annotations

import errno
import os
import signal
import time

_ENV = "ETL_CRASH_AT"
_FAIL_ENV = "ETL_FAIL_AT"
_SYNC_LOG_ENV = "ETL_FSYNC_LOG"
_seen: dict[str, int] = {}
_failed: dict[str, int] = {}
_paused: set[str] = set()


def crash_point(name: str) -> None:
    """Die here if ``ETL_CRASH_AT`` names this point (and this is its n-th visit); or fail as asked."""
    pause = os.environ.get("ETL_PAUSE_AT")
    if pause and pause.partition(":")[0] == name and name not in _paused:
        _paused.add(name)
        time.sleep(float(pause.partition(":")[2] or 1))
    fail = os.environ.get(_FAIL_ENV)
    if fail:
        _fail_point(name, fail)
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fail_point(name: str, wanted: str) -> None:
    """Raise the ``OSError`` that ``ETL_FAIL_AT`` asks for at its n-th visit of ``name``."""
    point, *rest = wanted.split(":")
    if point != name:
        return
    code_name = rest[-1] if rest and not rest[-1].isdigit() else "EIO"
    nth = int(rest[0]) if rest and rest[0].isdigit() else 1
    code = getattr(errno, code_name, None)
    if not isinstance(code, int):
        raise ValueError(f"{_FAIL_ENV}={wanted!r}: {code_name} is not an errno name")
    _failed[name] = _failed.get(name, 0) + 1
    if _failed[name] == nth:
        raise OSError(code, f"{os.strerror(code)} (injected at {name})")


def record_sync(event: str, *paths: str) -> None:
    """Append ``event`` and its paths to ``ETL_FSYNC_LOG`` when a test asks for it."""
    log = os.environ.get(_SYNC_LOG_ENV)
    if not log:
        return
    line = "\t".join((event, *paths)) + "\n"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())  # one write with O_APPEND: lines of several processes never mix
    finally:
        os.close(fd)


def record_fsync(fd: int) -> None:
    """Record a finished fsync of ``fd`` under the path the descriptor really refers to (Linux ``/proc``)."""
    if not os.environ.get(_SYNC_LOG_ENV):
        return
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        path = f"<fd {fd}>"
    record_sync("fsync", path)
