"""Where the warehouse lives: a given PostgreSQL URL, or the embedded server under ETL_HOME.

The embedded server (``embedded.py``) is private to its owner and keeps running after
this process exits, so the Dagster webserver, daemon and run workers all share it.
"""

from __future__ import annotations

from pathlib import Path

from .embedded import psql_executable, start_embedded  # noqa: F401 - psql_executable: the command's face


def redact_url(url: str) -> str:
    """The URL or connection string with every secret as ``***`` (see ``secrets.redact``)."""
    from ..secrets import redact

    return redact(url)


def scrub_secret(text: str, url: str) -> str:
    """``text`` without any secret of ``url``, in any spelling (see ``secrets.scrub``)."""
    from ..secrets import scrub

    return scrub(text, url)


def resolve_database_url(url: str | None, *, home: str | Path) -> str:
    """``url`` if given, else the embedded server under ``home`` (started if needed)."""
    return url or start_embedded(home)


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL for dagster-postgres (``postgresql+psycopg2``)."""
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url
