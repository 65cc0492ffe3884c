"""Faults that are not crashes: a full connection limit, a hung load holding a lock, a dead peer.

Real processes (``skype-etl load``), a real PostgreSQL: the TCP server of
``ETL_TEST_SERVER_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) for
connection limits and keepalives, the test run's database for the locks.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.load.connect import export_lock_key
from etl_assets.etl.load.loader import Loader

from etl_assets_tests.helpers import run_cli

TCP_SERVER = os.environ.get("ETL_TEST_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/test")
LOAD_ENV = {"ETL_WORKERS": "1"}


def _server_or_skip() -> str:
    try:
        psycopg.connect(TCP_SERVER, connect_timeout=3).close()
    except psycopg.Error as e:
        pytest.skip(f"no PostgreSQL server at {TCP_SERVER}: {e}")
    return TCP_SERVER


@pytest.fixture
def limited_role() -> Iterator[tuple[str, str, str]]:
    """A login role limited to 4 connections (what a load uses at most), owning a database of its own.

    Yields (the role's URL, with a password that must never be shown; the password; the role).
    """
    admin = _server_or_skip()
    name = f"etl_limit_{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 4 PASSWORD {}").format(sql.Identifier(name), password))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
    parts = urlsplit(admin)
    url = urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port or 5432}", path=f"/{name}"))
    try:
        yield url, password, name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _hold(url: str, count: int) -> list[psycopg.Connection]:
    return [psycopg.connect(url, autocommit=True) for _ in range(count)]


def _cli(*args: str, home: Path, env: dict[str, str]) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    full_env.update({"ETL_HOME": str(home), **LOAD_ENV, **env})
    return subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=full_env,
    )


def _published(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{schema}.exports",)).fetchone()[0] is None:
            return 0
        return conn.execute(sql.SQL("SELECT count(*) FROM {}.messages").format(sql.Identifier(schema))).fetchone()[0]


def test_load_waits_for_a_free_connection_and_succeeds_when_one_is_released(limited_role, small_export, tmp_path: Path) -> None:
    url, password, _ = limited_role
    held = _hold(url, 4)  # every slot of the role taken
    load = _cli("-v", "load", str(small_export.path), "--database-url", url, "--schema", "w", "--json",
                home=tmp_path / "home", env={"ETL_CONNECT_WAIT_SECONDS": "120"})
    stderr: list[str] = []
    waiting = threading.Event()

    def read() -> None:
        for line in load.stderr:
            stderr.append(line)
            if "waiting for" in line and "too many connections" in line:
                waiting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert waiting.wait(120), "".join(stderr)[-3000:]  # the load met the limit and waits
        time.sleep(2)
        assert load.poll() is None  # still waiting, not failed
    finally:
        for conn in held:
            conn.close()
    stdout = load.stdout.read()
    assert load.wait(300) == 0, "".join(stderr)[-3000:]
    reader.join(10)
    assert password not in stdout + "".join(stderr)
    assert _published(url, "w") == small_export.messages


def test_connection_limit_held_past_the_wait_gives_one_clear_error_and_loads_nothing(
    limited_role, small_export, tmp_path: Path
) -> None:
    url, password, role = limited_role
    held = _hold(url, 4)
    try:
        started = time.monotonic()
        load = _cli("load", str(small_export.path), "--database-url", url, "--schema", "w",
                    home=tmp_path / "home", env={"ETL_CONNECT_WAIT_SECONDS": "3"})
        stdout, stderr = load.communicate(timeout=300)
        elapsed = time.monotonic() - started
    finally:
        for conn in held:
            conn.close()
    assert load.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert password not in stdout + stderr
    assert f"cannot connect to postgresql://{role}:***@" in lines[0]
    assert "too many connections" in lines[0] and "no free connection after 3 s" in lines[0], lines[0]
    assert elapsed >= 3
    assert _published(url, "w") == 0  # nothing half-loaded


def test_every_connection_has_keepalives_and_timeouts(limited_role) -> None:
    url, _, _ = limited_role
    with Loader(url, "w").connect() as conn:
        params = conn.info.get_parameters()
        assert (params.get("keepalives"), params.get("keepalives_idle"), params.get("tcp_user_timeout")) == ("1", "30", "60000")
        shown = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
            for name in ("idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout",
                         "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")
        }
    assert shown == {
        "idle_in_transaction_session_timeout": "5min", "lock_timeout": "30min", "statement_timeout": "0",
        "tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3",
        "tcp_user_timeout": "60000",
    }
    # The user's own options (in the URL) come after ours and win; the rest stay.
    with Loader(f"{url}?options=-c%20statement_timeout%3D5000", "w").connect() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5s"
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "30min"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock_holder(url: str, sha256: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock' "
            "AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)",
            (export_lock_key(sha256),),
        ).fetchone()
    return row[0] if row else None


def _wait_for_holder(url: str, sha256: str, process: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-3000:]
        pid = _lock_holder(url, sha256)
        if pid is not None:
            return pid
        time.sleep(0.2)
    raise AssertionError("the first load never took the export's lock")


def test_a_hung_load_holding_the_export_lock_is_ended_by_the_server_and_the_next_load_proceeds(
    database_url: str, schema: str, small_export, tmp_path: Path
) -> None:
    sha = _sha256(small_export.path)
    args = ("load", str(small_export.path), "--database-url", database_url, "--schema", schema, "--json")
    timeouts = {"ETL_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "2", "ETL_LOCK_TIMEOUT_SECONDS": "120"}
    hung = _cli(*args, home=tmp_path / "a", env={**timeouts, "ETL_PAUSE_AT": "load.locked:600"})
    try:
        _wait_for_holder(database_url, sha, hung)
        os.kill(hung.pid, signal.SIGSTOP)  # the process hangs: no heartbeat, the lock's session sits idle
        started = time.monotonic()
        done = run_cli(*args, home=tmp_path / "b", env={**LOAD_ENV, **timeouts}, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert time.monotonic() - started < 120
        assert _published(database_url, schema) == small_export.messages
    finally:
        hung.kill()
        hung.communicate()


def test_a_live_load_keeps_the_lock_past_the_idle_timeout_and_a_second_load_times_out_clearly(
    database_url: str, schema: str, small_export, tmp_path: Path
) -> None:
    sha = _sha256(small_export.path)
    args = ("load", str(small_export.path), "--database-url", database_url, "--schema", schema)
    first = _cli(*args, home=tmp_path / "a", env={"ETL_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "1", "ETL_PAUSE_AT": "load.locked:600"})
    try:
        holder = _wait_for_holder(database_url, sha, first)
        time.sleep(3)  # three idle timeouts: the heartbeat keeps the live load's lock
        assert _lock_holder(database_url, sha) == holder
        started = time.monotonic()
        second = run_cli(*args, home=tmp_path / "b", env={**LOAD_ENV, "ETL_LOCK_TIMEOUT_SECONDS": "3"}, timeout=300)
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"export {sha[:12]}: another load of it still holds its lock after 3 s" in lines[0]
        assert f"server process {holder}" in lines[0]
        assert time.monotonic() - started >= 3
        assert _published(database_url, schema) == 0
    finally:
        first.kill()
        first.communicate()
