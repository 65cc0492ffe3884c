"""Estimates of how far a phase is, for the progress callback: counted checks, staged rows, bytes read, files written."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from .load.loader import Loader


class CountingCheck:
    """The transform's periodic check, counting its calls to estimate the messages transformed."""

    CHECK_EVERY = 2048
    """The transformer checks every 2,048 messages of a share (``transform_share``)."""

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self.calls = 0
        self.scale = 1

    def __call__(self) -> None:
        self.calls += 1
        self._check()

    @property
    def estimate(self) -> int:
        return self.calls * self.CHECK_EVERY * self.scale


class StagedRows:
    """Rows of the export staged so far, from the loader's own record of staged parts.

    Only the progress sampler's thread uses its connection. Staging is most of a later
    load; a first load stages the small tables only and copies the messages inside the
    publishing transaction, so its bar moves little until the publish commits.
    """

    def __init__(self, loader: Loader, sha256: str) -> None:
        self._loader = loader
        self._tag = sha256[:12] + "%"
        self._conn = None
        self._most = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        import psycopg
        from psycopg import sql

        with self._lock:
            if self._conn is None:
                self._conn = psycopg.connect(self._loader.database_url, autocommit=True,
                                             application_name="skype-etl progress", connect_timeout=5)
            query = sql.SQL("SELECT coalesce(sum(rows), 0) FROM {}.staged_parts WHERE tag LIKE %s").format(
                sql.Identifier(self._loader.staging_schema)
            )
            try:
                rows = int(self._conn.execute(query, (self._tag,)).fetchone()[0])
            except psycopg.errors.UndefinedTable:
                rows = 0
            # the publish deletes the record of staged parts: never report going back
            self._most = max(self._most, rows)
            return self._most

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def io_counter(name: str) -> Callable[[], int]:
    """Bytes this process has read or written (``read_chars``/``write_chars``) since now, where the system counts them."""
    import psutil

    process = psutil.Process(os.getpid())
    try:
        start = getattr(process.io_counters(), name)
    except (AttributeError, psutil.Error, NotImplementedError):
        return lambda: 0
    return lambda: getattr(process.io_counters(), name) - start


def new_files(folder: Path) -> Callable[[], int]:
    """How many files ``folder`` has gained since now (the media copy's files, counted as they appear).

    Names starting with a dot are the copy's files still being written, not counted.
    """

    def count() -> int:
        try:
            with os.scandir(folder) as entries:
                return sum(1 for entry in entries if not entry.name.startswith("."))
        except OSError:
            return 0

    start = count()
    return lambda: max(0, count() - start)
