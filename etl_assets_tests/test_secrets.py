"""A database password never shows: not in the command's output, logs or errors, not in
Dagster's event log, run records or metadata, not in any file the pipeline writes.

The tests create a role with a password on the server under test and load through a URL
carrying it. On the embedded server (Unix socket, trust authentication) the password is
not checked, but it is still in the URL the code handles, which is what matters here;
with ``ETL_TEST_DATABASE_URL`` pointing at a TCP server it is a real password login.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from etl_assets.definitions import build_definitions
from etl_assets.materialize import materialize_export
from etl_assets.settings import Settings



@pytest.fixture(scope="module")
def secret_url(server_url: str) -> Iterator[tuple[str, str]]:
    """A URL of a fresh database owned by a fresh role with a password, and the password."""
    tag = uuid.uuid4().hex[:10]
    role, database = f"etl_secret_{tag}", f"etl_secret_{tag}"
    password = f"Pw{uuid.uuid4().hex}Zq"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))
    parts = urlsplit(server_url)
    host = parts.hostname or ""
    if host and ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    url = urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}", path=f"/{database}"))
    with psycopg.connect(url) as conn:  # the role can log in and owns its database
        assert conn.execute("SELECT current_user").fetchone()[0] == role
    yield url, password
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def settings_for_test(tmp_path: Path, database_url: str, schema: str) -> Settings:
    home = tmp_path / "home"
    return dataclasses.replace(
        Settings.from_env(),
        home=home,
        inbox=home / "inbox",
        artifacts=home / "artifacts",
        handles_url=str(home / "artifacts" / "handles"),
        database_url=database_url,
        schema=schema,
        workers=1,
    )


def _cli(*args: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "ETL_HOME": str(home)}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT", "ETL_PAUSE_AT"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def _files_containing(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _with_port(url: str, port: int) -> str:
    """The same URL on another port (a TCP port, or another socket name for a Unix socket)."""
    parts = urlsplit(url)
    user_info = parts.netloc.rsplit("@", 1)[0]
    host = parts.hostname or ""
    netloc = f"{user_info}@{host}:{port}" if host else f"{user_info}@"
    query = parts.query if host else "&".join([q for q in parts.query.split("&") if q] + [f"port={port}"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def test_cli_output_logs_and_errors_never_show_the_password(
    secret_url: tuple[str, str], small_export, tmp_path: Path
) -> None:
    url, password = secret_url
    home = tmp_path / "home"
    schema = f"s_{uuid.uuid4().hex[:8]}"
    # The connection that fails waits for a server that might be starting: run it meanwhile.
    refused = _cli("load", str(small_export.path), "--database-url", _with_port(url, 9), home=tmp_path / "home2")

    code, out, err = _finish(_cli("-v", "load", str(small_export.path), "--database-url", url, "--schema", schema,
                                  home=home))
    assert code == 0, err
    assert "messages" in out and "load" in out and "INFO" in err
    assert password not in out + err

    code, out, err = _finish(_cli("-v", "load", str(small_export.path), "--database-url", url, "--schema", schema,
                                  "--json", home=home))
    assert code == 0, err
    report = json.loads(out)
    assert report["exports"][0]["already_loaded"] is True
    assert "***" in report["database"]
    assert password not in out + err

    code, out, err = _finish(refused)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err, err
    assert password not in out + err
    assert "***" in err

    assert not _files_containing(tmp_path, password)


def test_malformed_url_error_never_shows_the_password(small_export, tmp_path: Path) -> None:
    """libpq quotes the offending part of a URL it cannot parse; the command must not pass a password on."""
    secret = "Pw%zzNotEncoded9"
    code, out, err = _finish(
        _cli("load", str(small_export.path), "--database-url", f"postgresql://etl:{secret}@127.0.0.1:5432/db",
             home=tmp_path / "home")
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert secret not in err and "NotEncoded" not in err, err
    assert "NotEncoded" not in out


def test_dagster_run_events_metadata_and_records_never_show_the_password(
    secret_url: tuple[str, str], small_export, tmp_path: Path
) -> None:
    url, password = secret_url
    schema = f"s_{uuid.uuid4().hex[:8]}"
    settings = settings_for_test(tmp_path, url, schema)
    with dg.instance_for_test() as instance:
        _, result = materialize_export(settings, instance, small_export.path)
        assert result.success
        run_id = result.run_id

        records = instance.all_logs(run_id)
        assert records
        for record in records:
            assert password not in str(record) and password not in repr(record)

        materializations = result.get_asset_materialization_events()
        assert len(materializations) > 3
        for event in materializations:
            metadata = event.materialization.metadata
            assert metadata
            for name, value in metadata.items():
                assert password not in f"{name}={value!r}={getattr(value, 'value', value)}"
        database_entries = [
            m.materialization.metadata["database"].value
            for m in materializations
            if "database" in m.materialization.metadata
        ]
        assert database_entries and all("***" in v for v in database_entries)

        run = instance.get_run_by_id(run_id)
        assert password not in repr(run.run_config) and password not in repr(run.tags)

    assert not _files_containing(tmp_path, password)


def test_dagster_job_snapshot_never_shows_the_password(secret_url: tuple[str, str], tmp_path: Path) -> None:
    """What the UI shows of a job and its resources (config schema with defaults) carries no password."""
    from dagster._core.snap import JobSnap
    from dagster._serdes import serialize_value

    url, password = secret_url
    settings = settings_for_test(tmp_path, url, "skype")
    job = build_definitions(settings).resolve_job_def("load_skype_export")
    snapshot = serialize_value(JobSnap.from_job_def(job))
    assert password not in snapshot
