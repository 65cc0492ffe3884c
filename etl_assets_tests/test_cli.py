"""The ``skype-etl`` command as a user runs it: a real process, a real database."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.samples import generate_export

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import published_exports, run_cli


def _distinct_pairs(path: Path) -> int:
    import tarfile

    with tarfile.open(path) as archive:
        doc = json.load(archive.extractfile("messages.json"))
    pairs = set()
    for conv in doc["conversations"]:
        for m in conv.get("MessageList") or []:
            if isinstance(m, dict) and isinstance(m.get("id"), (str, int)) and m.get("conversationid"):
                pairs.add((m["conversationid"], str(m["id"])))
    return len(pairs)


def test_load_json_contract_and_idempotent_reload(database_url: str, schema: str, tmp_path: Path) -> None:
    truth = generate_export(tmp_path / "8_live_cli_export.tar", messages=5000, seed=5)
    args = ("load", str(truth.path), "--database-url", database_url, "--schema", schema, "--json")
    done = run_cli(*args, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    export = report["exports"][0]
    assert export["messages"] == truth.messages == _distinct_pairs(truth.path)
    assert export["conversations"] == truth.conversations
    assert export["by_type"] == dict(sorted(truth.by_type.items()))
    assert set(export) >= {"path", "sha256", "conversations", "messages", "rejected", "by_type"}
    for phase in ("extract", "transform", "load"):
        assert set(report["phases"][phase]) >= {"duration_seconds", "messages_per_second", "peak_rss_mb", "cpu_seconds"}
    before = table_checksums(database_url, schema)
    again = run_cli(*args, home=tmp_path / "home")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["exports"][0]["already_loaded"] is True
    assert table_checksums(database_url, schema) == before


def test_unusable_input_exits_2_with_one_line_and_loads_nothing(database_url: str, schema: str, tmp_path: Path) -> None:
    bad = tmp_path / "notes.tar"
    bad.write_bytes(b"this is not an archive at all" * 40)
    done = run_cli("load", str(bad), "--database-url", database_url, "--schema", schema, home=tmp_path / "home")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "not a Skype export" in lines[0]
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)).fetchone()
        if exists:
            assert conn.execute(sql.SQL("SELECT count(*) FROM {}.messages").format(sql.Identifier(schema))).fetchone()[0] == 0


def test_other_failures_exit_1_without_the_password(tmp_path: Path, small_export) -> None:
    url = "postgresql://etl:s3cret-pa55@127.0.0.1:9/nowhere"
    done = run_cli("load", str(small_export.path), "--database-url", url, home=tmp_path / "home")
    assert done.returncode == 1
    assert "s3cret-pa55" not in done.stderr + done.stdout
    assert "cannot connect" in done.stderr


def test_stop_stops_the_embedded_server(tmp_path: Path) -> None:
    from etl_assets.etl.load.embedded import embedded_pgdata, start_embedded

    home = tmp_path / "home"
    start_embedded(home)
    assert (embedded_pgdata(home) / "postmaster.pid").exists()
    done = run_cli("stop", home=home)
    assert done.returncode == 0 and "Stopped" in done.stdout
    assert not (embedded_pgdata(home) / "postmaster.pid").exists()
    assert "No embedded PostgreSQL" in run_cli("stop", home=home).stdout


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{pattern} never appeared under {root}"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["replaced", "rewritten_in_place"])
def test_a_file_changed_after_it_was_hashed_is_not_loaded_and_the_real_file_loads_later(
    database_url: str, schema: str, tmp_path: Path, how: str
) -> None:
    """The bytes hashed are the bytes loaded: a change between the hash and the reads fails the load (exit 2)."""
    path = tmp_path / "download.tar"
    first = generate_export(path, messages=3000, seed=31)
    second = generate_export(tmp_path / "finished.tar", messages=3500, seed=32)
    home = tmp_path / "home"
    args = ["load", str(path), "--database-url", database_url, "--schema", schema, "--json"]
    env = {**os.environ, "ETL_HOME": str(home), "ETL_PAUSE_AT": "transform.scan_marked:5", "ETL_WORKERS": "2"}
    env.pop("ETL_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "etl_assets.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for("artifacts/transformed/*/*.partial/_parts/conversations.json", home, proc)  # hashed and scanned
    if how == "replaced":
        os.replace(second.path, path)
    else:
        data = second.path.read_bytes()
        with open(path, "r+b") as f:
            f.write(data)
            f.truncate()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and str(path) in err and "changed while it was being loaded" in err
    assert published_exports(database_url, schema) == 0

    again = run_cli(*args, home=home)
    assert again.returncode == 0, again.stderr
    export = json.loads(again.stdout)["exports"][0]
    assert export["already_loaded"] is False
    assert export["messages"] == second.messages != first.messages
    assert export["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
