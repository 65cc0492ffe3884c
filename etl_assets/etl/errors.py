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


class InvalidSettingError(EtlError, ValueError):
    """A setting the user must change; the message names the setting and the reason."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"{setting}: {reason}")


class InvalidDatabaseUrl(EtlError):
    """A database URL or connection string that libpq cannot use; the message has no secret."""


class DatabaseError(EtlError):
    """A database operation failed; the message never contains a password."""


class ConnectError(EtlError):
    """No connection could be made; the message names the server without any password."""


class LockTimeout(EtlError):
    """A lock stayed taken by another session for longer than ``ETL_LOCK_TIMEOUT_SECONDS``."""


class EmbeddedServerError(EtlError):
    """The embedded PostgreSQL could not be set up or started safely."""
