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
from etl_assets.etl.config import ETLConfig, load_config
from etl_assets.materialize import materialize_export



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


def config_for_test(tmp_path: Path, database_url: str, schema: str) -> ETLConfig:
    home = tmp_path / "home"
    return load_config(
        home=str(home),
        database_url=database_url,
        schema_name=schema,
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
    config = config_for_test(tmp_path, url, schema)
    with dg.instance_for_test() as instance:
        _, result = materialize_export(config, instance, small_export.path)
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
    config = config_for_test(tmp_path, url, "skype")
    job = build_definitions(config).resolve_job_def("load_skype_export")
    snapshot = serialize_value(JobSnap.from_job_def(job))
    assert password not in snapshot


# The matrix: every way of giving a password x every output. Each way has its own role and
# database with a password of the form ``Pw-<uuid>`` (some with characters that URLs and
# key=value strings must encode), so a leak of any spelling, or of the uuid alone, shows.

WAYS = ("userinfo", "encoded_userinfo", "query", "keyvalue", "pgpassword_env")


@dataclasses.dataclass(frozen=True)
class GivenPassword:
    """A connection target, the environment it needs, and the password it carries."""

    target: str
    env: dict[str, str]
    password: str

    @property
    def in_target(self) -> bool:
        return not self.env

    def leaks(self, text: str) -> list[str]:
        """The spellings of the password found in ``text`` (raw, percent-encoded, its uuid)."""
        from urllib.parse import quote, quote_plus

        hex_part = self.password.removeprefix("Pw-")[:32]
        spellings = {self.password, quote(self.password, safe=""), quote(self.password), quote_plus(self.password),
                     hex_part}
        return sorted(s for s in spellings if s in text)


def _password(way: str) -> str:
    special = {"encoded_userinfo": " @:/?#%'\\", "query": "&=+ %", "keyvalue": " 'q' \\"}.get(way, "")
    return f"Pw-{uuid.uuid4().hex}{special}"


def _url(params: dict[str, str], *, password: str | None = None, in_query: bool = False) -> str:
    """A URL for ``params`` (host, port, dbname, user), a Unix socket host going into the query."""
    from urllib.parse import quote, urlencode

    host, port = params.get("host", ""), params.get("port", "")
    query: dict[str, str] = {}
    if host.startswith("/") or not host:
        netloc_host = ""
        query.update({k: v for k, v in (("host", host), ("port", port)) if v})
    else:
        netloc_host = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    userinfo = quote(params["user"], safe="")
    if password and not in_query:
        userinfo += ":" + quote(password, safe="")
    if password and in_query:
        query["password"] = password
    text = urlencode(query, quote_via=quote)
    return f"postgresql://{userinfo}@{netloc_host}/{quote(params['dbname'], safe='')}" + (f"?{text}" if text else "")


def _given(way: str, params: dict[str, str], password: str) -> GivenPassword:
    from psycopg.conninfo import make_conninfo

    if way == "keyvalue":
        return GivenPassword(make_conninfo("", **params, password=password), {}, password)
    if way == "pgpassword_env":
        return GivenPassword(_url(params), {"PGPASSWORD": password}, password)
    return GivenPassword(_url(params, password=password, in_query=way == "query"), {}, password)


@pytest.fixture(scope="module")
def given_passwords(server_url: str) -> Iterator[dict[str, GivenPassword]]:
    """For each way: a fresh role with a password owning a fresh database, given that way."""
    from psycopg.conninfo import conninfo_to_dict

    server = {k: str(v) for k, v in conninfo_to_dict(server_url).items() if k in ("host", "port") and v}
    made: dict[str, GivenPassword] = {}
    names = []
    with psycopg.connect(server_url, autocommit=True) as conn:
        for way in WAYS:
            name = f"etl_m_{way}_{uuid.uuid4().hex[:8]}"
            password = _password(way)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
            names.append(name)
            made[way] = _given(way, {**server, "dbname": name, "user": name}, password)
    try:
        for given in made.values():  # each target really logs in as its role
            with psycopg.connect(given.target, **({"password": given.env["PGPASSWORD"]} if given.env else {})) as c:
                assert c.execute("SELECT current_user").fetchone()[0].startswith("etl_m_")
        yield made
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _command(*args: str, home: Path, given: GivenPassword, url_env: bool = False) -> subprocess.Popen:
    """``skype-etl ARGS`` with the password given one way (``ETL_DATABASE_URL`` when ``url_env``)."""
    env = {**os.environ, "ETL_HOME": str(home), **given.env}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT", "ETL_PAUSE_AT", "PGPASSWORD"):
        if name not in given.env:
            env.pop(name, None)
    if url_env:
        env["ETL_DATABASE_URL"] = given.target
    return subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def _psql_cmdline_while_it_runs(process: subprocess.Popen) -> str:
    """``/proc/<pid>/cmdline`` of the psql that ``skype-etl psql`` became, read while it runs."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            break
        if Path(argv[0].decode()).name == "psql":
            return " ".join(a.decode() for a in argv)
        time.sleep(0.02)
    raise AssertionError(f"psql did not start: {_finish(process)}")


@pytest.mark.parametrize("way", WAYS)
def test_matrix_working_database_load_psql_and_dagster_run_never_show_the_password(
    way: str, given_passwords: dict[str, GivenPassword], small_export, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = given_passwords[way]
    schema = f"s_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    load = ("-v", "load", str(small_export.path), "--database-url", given.target, "--schema", schema)

    code, out, err = _finish(_command(*load, "--json", home=home, given=given))  # --json and -v logs
    assert code == 0, given.leaks(err) or "load failed"
    assert not given.leaks(out + err)
    report = json.loads(out)
    assert report["exports"][0]["messages"] == small_export.messages
    assert ("***" in report["database"]) is given.in_target

    code, out, err = _finish(_command(*load, home=home, given=given))  # text and -v logs
    assert code == 0 and "already loaded" in out and "INFO" in err
    assert not given.leaks(out + err)

    psql = _command("psql", "-Atc", "select 'slept', pg_sleep(2)", home=home, given=given, url_env=True)
    cmdline = _psql_cmdline_while_it_runs(psql)
    code, out, err = _finish(psql)
    assert code == 0 and "slept" in out, err if not given.leaks(err) else "psql failed"
    assert not given.leaks(cmdline), "the password is on psql's command line"
    assert not given.leaks(out + err)

    for name, value in given.env.items():
        monkeypatch.setenv(name, value)
    config = config_for_test(tmp_path / "dagster", given.target, f"{schema}_dg")
    with dg.instance_for_test() as instance:
        _, result = materialize_export(config, instance, small_export.path)
        assert result.success
        for record in instance.all_logs(result.run_id):
            assert not given.leaks(str(record) + repr(record))
        materializations = result.get_asset_materialization_events()
        assert len(materializations) > 3
        shown = []
        for event in materializations:
            for name, value in event.materialization.metadata.items():
                assert not given.leaks(f"{name}={value!r}={getattr(value, 'value', value)}")
            if "database" in event.materialization.metadata:
                shown.append(event.materialization.metadata["database"].value)
        assert shown and all(("***" in v) is given.in_target for v in shown)
    assert not _files_containing(tmp_path, given.password.removeprefix("Pw-")[:32])


def _broken(way: str, case: str) -> GivenPassword:
    """A target that cannot work: malformed (libpq rejects it), or a server that refuses connections."""
    from urllib.parse import quote

    from psycopg.conninfo import make_conninfo

    password = _password(way)
    if case == "unreachable":
        return _given(way, {"host": "127.0.0.1", "port": "9", "dbname": "db", "user": "etl"}, password)
    malformed = {
        "userinfo": f"postgresql://etl:{password}@127.0.0.1:notaport/db",
        "encoded_userinfo": f"postgresql://etl:{quote(password, safe='')}%zz@127.0.0.1:5432/db",
        "query": f"postgresql://etl@[::1/db?password={quote(password, safe='')}",
        "keyvalue": make_conninfo("", host="127.0.0.1", port="9", user="etl", password=password) + " dbname='db",
        "pgpassword_env": "postgresql://etl@127.0.0.1:notaport/db",
    }[way]
    return GivenPassword(malformed, {"PGPASSWORD": password} if way == "pgpassword_env" else {}, password)


@pytest.mark.parametrize("case", ("malformed", "unreachable"))
@pytest.mark.parametrize("way", WAYS)
def test_matrix_load_dev_demo_psql_fail_in_one_line_without_the_password(
    way: str, case: str, small_export, tmp_path: Path
) -> None:
    given = _broken(way, case)
    runs = {
        "load": _command("-v", "load", str(small_export.path), "--database-url", given.target,
                         home=tmp_path / "load", given=given),
        "dev": _command("-v", "dev", "--port", "1", home=tmp_path / "dev", given=given, url_env=True),
        "demo": _command("-v", "demo", "--messages", "50", home=tmp_path / "demo", given=given, url_env=True),
        "psql": _command("psql", "-c", "select 1", home=tmp_path / "psql", given=given, url_env=True),
    }
    for command, process in runs.items():
        code, out, err = _finish(process)
        assert not given.leaks(out + err), f"{command} shows the password: {given.leaks(out + err)}"
        assert code != 0, command
        if command == "psql" and case == "unreachable":
            continue  # psql's own message (two lines), from a connection string without the password
        lines = [line for line in err.strip().splitlines() if not line.startswith("INFO ")]
        assert len(lines) == 1 and lines[0].startswith("skype-etl: "), f"{command}: {err[-2000:]}"
        if case == "malformed":
            assert "invalid database URL" in lines[0], lines[0]
        else:
            assert "Connection refused" in lines[0] or "cannot connect" in lines[0], lines[0]
    assert not _files_containing(tmp_path, given.password.removeprefix("Pw-")[:32])
