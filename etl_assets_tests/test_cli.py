"""The ``skype-etl`` command as a user runs it: a real process, a real database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from psycopg import sql

from etl_assets.samples import generate_export

from .conftest import table_checksums
from .helpers import run_cli


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
    from etl_assets.etl.embedded import embedded_pgdata, start_embedded

    home = tmp_path / "home"
    start_embedded(home)
    assert (embedded_pgdata(home) / "postmaster.pid").exists()
    done = run_cli("stop", home=home)
    assert done.returncode == 0 and "Stopped" in done.stdout
    assert not (embedded_pgdata(home) / "postmaster.pid").exists()
    assert "No embedded PostgreSQL" in run_cli("stop", home=home).stdout
