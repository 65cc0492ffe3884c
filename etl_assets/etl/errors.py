"""The error types the components raise, so callers can tell bad input from failures."""

from __future__ import annotations

from pathlib import Path


class EtlError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidExportError(EtlError):
    """The input cannot be used as a Skype export at all (whole-file error).

    Carries the file, where in it the problem is, and why, so one line tells the user
    what to fix. Per-record problems never raise this: they go to ``rejected_records``.
    """

    def __init__(self, path: str | Path, reason: str, location: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.location = location
        where = f" at {location}" if location else ""
        super().__init__(f"{self.path}{where}: {reason}")


class MemoryLimitExceeded(EtlError):
    """The process grew past the configured ``memory_limit_mb``; stopped before an OOM kill."""
