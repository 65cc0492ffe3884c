"""The examples in examples/ run as a user runs them: real processes, a real warehouse, a real web server."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.pipeline import ETLPipeline
from etl_assets.samples import generate_export

from .helpers import free_port, pipeline_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    return generate_export(tmp_path_factory.mktemp("examples") / "8_live_example_export.tar", messages=800, seed=53)


def _env(home: Path, database_url: str, schema: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ETL_CRASH_AT", "ETL_PAUSE_AT", "ETL_INBOX", "ETL_ARTIFACTS")}
    return {**env, "ETL_HOME": str(home), "ETL_DATABASE_URL": database_url, "ETL_SCHEMA": schema,
            "ETL_WORKERS": "1", **extra}


def _rows(url: str, schema: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute(query).fetchall()


def test_basic_loads_and_lists_the_busiest_conversations(export, tmp_path: Path, database_url: str, schema: str) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLES / "basic.py"), str(export.path)], capture_output=True,
                         text=True, env=_env(tmp_path, database_url, schema), timeout=600)
    assert run.returncode == 0, run.stderr
    assert f"loaded {export.messages} messages in {export.conversations} conversations" in run.stdout
    busiest = _rows(database_url, schema, "SELECT conversation_id, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5")
    counts = [int(line.split()[0]) for line in run.stdout.splitlines()[1:]]
    assert counts == [n for _, n in busiest]


def test_advanced_runs_the_dagster_job_and_its_own_step(export, tmp_path: Path, database_url: str, schema: str) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLES / "advanced.py"), str(export.path)], capture_output=True,
                         text=True, env=_env(tmp_path, database_url, schema), timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(rf"first load: partition \S+: {export.messages} messages, {export.messages} changed, already loaded: False", run.stdout), run.stdout
    assert re.search(rf"second load: partition \S+: {export.messages} messages, 0 changed, already loaded: True", run.stdout), run.stdout
    summary = _rows(database_url, schema, "SELECT month, messages, senders FROM monthly_summary ORDER BY month")
    expected = _rows(database_url, schema, "SELECT date_trunc('month', sent_at)::date, count(*), count(DISTINCT sender_id) "
                                           "FROM messages GROUP BY 1 ORDER BY 1")
    assert summary == expected and sum(n for _, n, _ in summary) == export.messages
    shown = re.findall(r"^(\d{4}-\d{2})\s+(\d+) messages\s+(\d+) senders$", run.stdout, re.M)
    assert shown == [(f"{m:%Y-%m}", str(n), str(s)) for m, n, s in expected]


def test_advanced_refuses_to_run_without_a_database_url(export, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ETL_DATABASE_URL"} | {"ETL_HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, str(EXAMPLES / "advanced.py"), str(export.path)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 2 and "ETL_DATABASE_URL" in run.stderr


def _request(port: int, method: str, path: str, body: bytes | None = None, chunked: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if chunked:
            conn.putrequest(method, path)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for start in range(0, len(body or b""), 4096):
                piece = body[start:start + 4096]
                try:
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_web_upload_saves_safely_refuses_bad_uploads_and_shows_loads(
    export, tmp_path: Path, database_url: str, schema: str
) -> None:
    data = export.path.read_bytes()
    limit = len(data) + 1000
    port = free_port()
    inbox = tmp_path / "inbox"
    env = _env(tmp_path / "home", database_url, schema, ETL_INBOX=str(inbox), UPLOAD_MAX_BYTES=str(limit))
    server = subprocess.Popen([sys.executable, str(EXAMPLES / "web_upload.py"), "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _request(port, "GET", "/status.json")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert status == 200

        status, body = _request(port, "POST", "/upload?name=" + "my%20export%3A%202024%3F.tar", data)
        assert status == 201, body
        saved = json.loads(body)
        assert saved == {"saved": "my export_ 2024.tar", "bytes": len(data)}
        assert sorted(p.name for p in inbox.iterdir()) == ["my export_ 2024.tar"]
        assert (inbox / "my export_ 2024.tar").read_bytes() == data

        # the same name again is kept beside the first, never over it
        status, body = _request(port, "POST", "/upload?name=my%20export%3A%202024%3F.tar", data, chunked=True)
        assert status == 201 and json.loads(body)["saved"] == "my export_ 2024 (2).tar"
        (inbox / "my export_ 2024 (2).tar").unlink()

        for name in ("../escaped.tar", "..%2F..%2Fescaped.tar", "%2Ftmp%2Fescaped.tar", "sub%5Cescaped.tar",
                     ".hidden.tar", "notes.txt", ""):
            status, body = _request(port, "POST", f"/upload?name={name}", b"x" * 100)
            assert status == 400, (name, body)
        assert not (tmp_path / "escaped.tar").exists() and not Path("/tmp/escaped.tar").exists()

        too_big = b"\0" * (limit + 1)
        status, _ = _request(port, "POST", "/upload?name=big.tar", too_big)
        assert status == 413
        status, _ = _request(port, "POST", "/upload?name=big_streamed.tar", too_big, chunked=True)
        assert status == 413
        assert sorted(p.name for p in inbox.iterdir()) == ["my export_ 2024.tar"]  # nothing else, no leftovers

        status, body = _request(port, "GET", "/status.json")
        assert json.loads(body)["inbox"] == ["my export_ 2024.tar"] and json.loads(body)["loads"] == []

        # what the sensor does with the file: load it; the page then lists the load
        ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema)).run(inbox / "my export_ 2024.tar")
        status, body = _request(port, "GET", "/status.json")
        loads = json.loads(body)["loads"]
        assert [(x["file_name"], x["messages"], x["conversations"]) for x in loads] == [
            ("my export_ 2024.tar", export.messages, export.conversations)
        ]
        status, page = _request(port, "GET", "/")
        assert status == 200
        assert re.search(rf"<td>my export_ 2024\.tar</td><td>{export.conversations}</td><td>{export.messages}</td>", page.decode())
    finally:
        server.terminate()
        server.wait(timeout=30)
