"""Helpers shared by tests: settings for Definitions, running the command, dropping schemas, waiting, stopping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.config import ETLConfig, load_config

T = TypeVar("T")


def config_for_test(tmp_path: Path, database_url: str, schema: str, **options: object) -> ETLConfig:
    """A configuration under ``tmp_path/home``: what the Definitions and resources of a test use."""
    return load_config(**{"home": str(tmp_path / "home"), "database_url": database_url, "schema_name": schema,
                          "batch_size": 5000, "workers": 2, "chunk_messages": 100_000, **options})


def run_cli(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``skype-etl ARGS`` in a fresh process with its own ETL_HOME, as a user runs it."""
    full_env = {**os.environ, "ETL_HOME": str(home), **(env or {})}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT", "ETL_PAUSE_AT"):
        if name not in (env or {}):
            full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "etl_assets.cli", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def drop_schema(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in (schema, f"{schema}_staging"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def published_exports(database_url: str, schema: str) -> int:
    """How many exports the warehouse ``schema`` records as published (0 before its first load)."""
    with psycopg.connect(database_url) as conn:
        if conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'exports'", (schema,)
        ).fetchone() is None:
            return 0
        return conn.execute(sql.SQL("SELECT count(*) FROM {}.exports").format(sql.Identifier(schema))).fetchone()[0]


def pipeline_config(database_url: str, artifacts: Path, schema: str, **options: object) -> ETLConfig:
    """The configuration of an in-process ``ETLPipeline``: one transform process unless a test asks for more."""
    return ETLConfig(database_url=database_url, artifacts=str(artifacts), schema_name=schema,
                     **{"workers": 1, **options})


def restart_embedded(home: Path) -> None:
    """Stop the embedded server under ``home`` and start it again with the same settings, as a crash and restart would."""
    from etl_assets.etl.load.embedded import start_embedded, stop_embedded

    stop_embedded(home)
    start_embedded(home)


def wait_for(what: str, condition: Callable[[], T], timeout: float, log: Path, *, every: float = 1.0) -> T:
    """``condition()``'s first truthy value within ``timeout`` seconds, or fail showing the end of ``log``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}; log:\n{log.read_text()[-4000:]}")


def stop_process_group(process: subprocess.Popen, stop: signal.Signals, wait: float) -> None:
    """Send ``stop`` to the process's group; kill the group if it has not ended within ``wait`` seconds."""
    os.killpg(process.pid, stop)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
