"""Connections to the warehouse: bounded waits, server-side timeouts, keepalives, retries, the export lock.

A load must neither fail at the first sign of a busy server nor wait for ever on a peer
that is gone. Every connection made here therefore:

- waits, with exponential backoff, for a free connection slot (the role's or the
  server's connection limit, SQLSTATE 53300) or a server that is starting or stopping
  (57P03) for up to ``ETL_CONNECT_WAIT_SECONDS``, then fails with one line naming the
  server (password redacted); a refused connection (nothing listening) is retried for
  ``REFUSED_WAIT`` seconds only, so a wrong URL fails fast;
- turns on TCP keepalives and ``tcp_user_timeout`` on both ends (libpq parameters for the
  client, ``tcp_keepalives_*`` for the server), so a peer that vanished is noticed within
  about a minute instead of the system's two hours, and its locks are released;
- sets ``idle_in_transaction_session_timeout``: the server ends a session that sits inside
  a transaction for longer, so a hung client cannot hold locks for hours;
- sets ``lock_timeout`` (every lock wait is bounded) and ``statement_timeout`` (0, no
  limit, by default: index builds of a large export take minutes).

The waits and timeouts are settings of ``config.py`` (``ETL_CONNECT_WAIT_SECONDS``,
``ETL_LOCK_TIMEOUT_SECONDS``, ``ETL_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS``,
``ETL_STATEMENT_TIMEOUT_SECONDS``).

The settings go to the server as startup ``options``, before any the URL or ``PGOPTIONS``
has (those win); parameters the URL already sets (``keepalives_idle=...``) are kept.

Psycopg reports a failed connection attempt as ``OperationalError`` without a SQLSTATE
(libpq keeps only the message text of the server's FATAL report), so only there the
server's standard message texts decide; every error raised on an open connection is
classified by its psycopg error class.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from ..config import ETLConfig, load_config
from ..errors import ConnectError, EtlError, LockTimeout
from ..secrets import redact, scrub

log = logging.getLogger(__name__)
T = TypeVar("T")

REFUSED_WAIT = 15.0
"""Seconds a refused connection (nothing listens there yet) is retried: a wrong URL fails fast."""
KEEPALIVES_IDLE = 30
KEEPALIVES_INTERVAL = 10
KEEPALIVES_COUNT = 3
TCP_USER_TIMEOUT_MS = 60_000
RETRY_WINDOW = 90.0
"""Seconds a whole operation is retried after transient errors (lost connection, restart, deadlock)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Waits and timeouts of every warehouse connection (see the module docstring)."""

    connect_wait: float
    lock_timeout: float
    idle_in_transaction_timeout: float
    statement_timeout: float

    @classmethod
    def from_config(cls, config: ETLConfig | None = None) -> ConnectionSettings:
        """The settings of ``config``, or of the environment's configuration."""
        config = config or load_config()
        return cls(
            connect_wait=config.connect_wait_seconds,
            lock_timeout=config.lock_timeout_seconds,
            idle_in_transaction_timeout=config.idle_in_transaction_timeout_seconds,
            statement_timeout=config.statement_timeout_seconds,
        )

    def server_options(self) -> dict[str, str]:
        """The session settings sent at startup (milliseconds, as the server reads them)."""
        return {
            "idle_in_transaction_session_timeout": str(round(self.idle_in_transaction_timeout * 1000)),
            "lock_timeout": str(round(self.lock_timeout * 1000)),
            "statement_timeout": str(round(self.statement_timeout * 1000)),
            "tcp_keepalives_idle": str(KEEPALIVES_IDLE),
            "tcp_keepalives_interval": str(KEEPALIVES_INTERVAL),
            "tcp_keepalives_count": str(KEEPALIVES_COUNT),
            "tcp_user_timeout": str(TCP_USER_TIMEOUT_MS),
        }


def connection_parameters(url: str, settings: ConnectionSettings) -> dict[str, str | int]:
    """libpq parameters to add to ``url``: keepalives (unless the URL sets them) and the startup options."""
    given = conninfo_to_dict(url)
    params: dict[str, str | int] = {
        key: value
        for key, value in {
            "keepalives": 1,
            "keepalives_idle": KEEPALIVES_IDLE,
            "keepalives_interval": KEEPALIVES_INTERVAL,
            "keepalives_count": KEEPALIVES_COUNT,
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
            "connect_timeout": 10,
        }.items()
        if given.get(key) in (None, "")
    }
    ours = " ".join(f"-c {name}={value}" for name, value in settings.server_options().items())
    theirs = given.get("options") or os.environ.get("PGOPTIONS") or ""
    params["options"] = f"{ours} {theirs}".strip()  # the later setting wins: the user's own, when given
    return params


# -- what is worth waiting for -----------------------------------------------------------

_TRANSIENT_ERRORS: tuple[type[psycopg.Error], ...] = (
    pg_errors.SerializationFailure,  # 40001
    pg_errors.DeadlockDetected,  # 40P01
    pg_errors.AdminShutdown,  # 57P01
    pg_errors.CrashShutdown,  # 57P02
    pg_errors.CannotConnectNow,  # 57P03
    pg_errors.TooManyConnections,  # 53300
    pg_errors.ConnectionException,  # 08000
    pg_errors.ConnectionDoesNotExist,  # 08003
    pg_errors.ConnectionFailure,  # 08006
    pg_errors.SqlclientUnableToEstablishSqlconnection,  # 08001
    pg_errors.SqlserverRejectedEstablishmentOfSqlconnection,  # 08004
)
_TRANSIENT_STATES = frozenset(error.sqlstate for error in _TRANSIENT_ERRORS)

# The server's report of a refused connection attempt, which psycopg gives without a SQLSTATE.
_BUSY_TEXTS = (
    "too many connections",  # 53300: the role's or the database's connection limit
    "remaining connection slots are reserved",  # 53300: max_connections less the reserved slots
    "sorry, too many clients already",  # 53300: max_connections
)
_STARTING_TEXTS = (
    "the database system is starting up",  # 57P03
    "the database system is shutting down",  # 57P03
    "the database system is in recovery mode",  # 57P03
    "the database system is not yet accepting connections",  # 57P03
    "the database system is not accepting connections",  # 57P03
)
_REFUSED_TEXTS = ("Connection refused", "No such file or directory")  # nothing listens (yet)


def _is_transient(error: BaseException) -> bool:
    """Errors worth retrying: lost connections, restarts, serialization failures, deadlocks."""
    if isinstance(error, EtlError) or not isinstance(error, psycopg.Error):
        return False
    if isinstance(error, _TRANSIENT_ERRORS):
        return True
    # A connection lost in the middle of a session: psycopg has no SQLSTATE (no server report) for it.
    return isinstance(error, psycopg.OperationalError) and error.sqlstate is None


def _connect_failure_kind(error: psycopg.Error) -> str | None:
    """``busy``, ``starting`` or ``refused`` for a failed attempt worth repeating; ``None`` otherwise."""
    if isinstance(error, pg_errors.TooManyConnections):
        return "busy"
    if isinstance(error, pg_errors.CannotConnectNow):
        return "starting"
    if not isinstance(error, psycopg.OperationalError) or error.sqlstate is not None:
        return None
    message = str(error)
    for kind, texts in (("busy", _BUSY_TEXTS), ("starting", _STARTING_TEXTS), ("refused", _REFUSED_TEXTS)):
        if any(text in message for text in texts):
            return kind
    return None


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error and str(error).strip() else type(error).__name__


def _retrying(operation: Callable[[], T]) -> T:
    """Run ``operation``, retrying transient database errors with exponential backoff for 90 s."""
    for attempt in Retrying(
        retry=retry_if_exception(_is_transient),
        wait=wait_exponential(multiplier=0.5, max=8),
        stop=stop_after_delay(RETRY_WINDOW),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "transient database error, retrying (%s): %s", state.attempt_number, _first_line(state.outcome.exception())
        ),
    ):
        with attempt:
            return operation()
    raise AssertionError("unreachable")


def _connect(url: str, autocommit: bool, settings: ConnectionSettings | None = None) -> psycopg.Connection:
    """Connect with the timeouts and keepalives set; wait for a free slot or a starting server.

    Fails with :class:`ConnectError` (server named, password redacted) when the wait is over
    or the failure is not one that waiting can cure (authentication, unknown database).
    """
    settings = settings or ConnectionSettings.from_config()
    params = connection_parameters(url, settings)
    started = time.monotonic()

    def worth_waiting(error: BaseException) -> bool:
        kind = _connect_failure_kind(error) if isinstance(error, psycopg.Error) else None
        window = min(REFUSED_WAIT, settings.connect_wait) if kind == "refused" else settings.connect_wait
        return kind is not None and time.monotonic() - started < window

    try:
        for attempt in Retrying(
            retry=retry_if_exception(worth_waiting),
            wait=wait_exponential(multiplier=0.25, max=4),
            reraise=True,
            before_sleep=lambda state: log.info(
                "waiting for %s: %s", redact(url), scrub(_first_line(state.outcome.exception()), url)
            ),
        ):
            with attempt:
                return psycopg.connect(url, autocommit=autocommit, **params)
    except psycopg.Error as e:
        reason = scrub(_first_line(e), url)
        kind = _connect_failure_kind(e)
        if kind == "busy":
            reason += (
                f" (no free connection after {settings.connect_wait:g} s: the role's or the server's connection limit is "
                "reached; the load needs up to 4 connections at once; ETL_CONNECT_WAIT_SECONDS sets the wait)"
            )
        elif kind is not None:
            reason += f" (still after {time.monotonic() - started:.0f} s)"
        raise ConnectError(f"cannot connect to {redact(url)}: {reason}") from None
    raise AssertionError("unreachable")


# -- the export lock -----------------------------------------------------------------------


def export_lock_key(sha256: str) -> str:
    """The advisory lock one load of an export holds."""
    return f"skype-etl:export:{sha256}"


def staging_lock_key(sha256: str) -> str:
    """Shared by every load whose staging tables carry this sha256 prefix; exclusive for their cleanup."""
    return f"skype-etl:staging:{sha256[:12]}"


@contextmanager
def export_lock(
    url: str, sha256: str, *, wait: float | None = None, settings: ConnectionSettings | None = None
) -> Iterator[psycopg.Connection]:
    """Hold the export's lock for the block, on a connection of its own, which it yields.

    The lock lives in an open transaction that a background heartbeat keeps busy: while
    this process runs, the lock is kept however long the load takes; when the process
    hangs or its host vanishes, the server ends the session (idle-in-transaction timeout,
    keepalives) and the lock is free for the next load. Waits up to ``wait`` seconds
    (default ``ETL_LOCK_TIMEOUT_SECONDS``) for another load of the export, then raises
    :class:`LockTimeout` naming the session that holds it.
    """
    settings = settings or ConnectionSettings.from_config()
    wait = settings.lock_timeout if wait is None else wait
    conn = _connect(url, False, settings)
    stop = threading.Event()
    beat: threading.Thread | None = None
    try:
        conn.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", (staging_lock_key(sha256),))
        _acquire(conn, export_lock_key(sha256), time.monotonic() + wait, wait, sha256)
        interval = min(30.0, settings.idle_in_transaction_timeout / 3) if settings.idle_in_transaction_timeout else 30.0
        beat = threading.Thread(target=_heartbeat, args=(conn, stop, max(0.2, interval)), daemon=True)
        beat.start()
        yield conn
    finally:
        stop.set()
        if beat is not None:
            beat.join()
        conn.close()  # ends the transaction: the locks go with it


def _acquire(conn: psycopg.Connection, key: str, deadline: float, wait: float, sha256: str) -> None:
    """Poll for the lock until ``deadline`` (no server-side wait: a dead holder cannot block us past it)."""
    delay = 0.05
    while not conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]:
        if time.monotonic() >= deadline:
            holder = _holder(conn, key)
            raise LockTimeout(
                f"export {sha256[:12]}: another load of it still holds its lock after {wait:g} s{holder} "
                "(ETL_LOCK_TIMEOUT_SECONDS sets the wait)"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 2.0)


def _holder(conn: psycopg.Connection, key: str) -> str:
    """Which server session holds the advisory lock ``key``, as far as this role may see."""
    row = conn.execute(
        "SELECT a.pid, a.state, a.client_addr::text, date_trunc('second', now() - a.state_change)::text "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.mode = 'ExclusiveLock' AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(%s, 0) "
        "LIMIT 1",
        (key,),
    ).fetchone()
    if row is None:
        return ""
    pid, state, client, since = row
    where = f" from {client}" if client else ""
    return f" (server process {pid}{where}, {state or 'state hidden'}{f' for {since}' if since else ''})"


def _heartbeat(conn: psycopg.Connection, stop: threading.Event, interval: float) -> None:
    """Keep the lock's transaction busy while this process lives; stop quietly if the session ended."""
    while not stop.wait(interval):
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as e:
            log.warning("the export lock's session ended: %s", _first_line(e))
            return
