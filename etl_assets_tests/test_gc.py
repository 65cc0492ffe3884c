"""``skype-etl gc`` and the Dagster job: real leftovers of real crashed loads, and loads still running."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from etl_assets.definitions import build_definitions
from etl_assets.samples import generate_export
from etl_assets.etl.transform.transformer import TRANSFORM_VERSION

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import run_cli, config_for_test

ENV = {"ETL_WORKERS": "1", "ETL_CHUNK_MESSAGES": "100"}
OLD = time.time() - 2 * 3600


def _staging(database_url: str, schema: str) -> dict[str, set[str]]:
    """sha256 prefix -> the staging tables of that export."""
    out: dict[str, set[str]] = {}
    with psycopg.connect(database_url) as conn:
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name <> 'staged_parts'",
            (f"{schema}_staging",),
        ):
            out.setdefault(name.rsplit("_", 2)[-2], set()).add(name)
    return out


def _staged_tags(database_url: str, schema: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        query = sql.SQL("SELECT DISTINCT tag FROM {}.staged_parts").format(sql.Identifier(f"{schema}_staging"))
        return {tag for (tag,) in conn.execute(query)}


def _load(path: Path, database_url: str, schema: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    return run_cli("load", str(path), "--database-url", database_url, "--schema", schema, "--json",
                   home=home, env={**ENV, **env})


def _gc(database_url: str, schema: str, home: Path, *extra: str) -> dict:
    done = run_cli("gc", "--database-url", database_url, "--schema", schema, "--json", *extra, home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gc_removes_leftovers_and_keeps_what_loads_use_or_would_resume(database_url: str, schema: str, tmp_path: Path) -> None:
    exports = {
        name: generate_export(tmp_path / f"8_live_{name}_export.tar", messages=300, seed=seed)
        for name, seed in (("a", 41), ("b", 42), ("d", 43), ("e", 44))
    }
    sha = {name: _sha(truth.path) for name, truth in exports.items()}
    home, other, running_home = tmp_path / "home", tmp_path / "other", tmp_path / "running"
    artifacts = home / "artifacts"
    assert _load(exports["a"].path, database_url, schema, home).returncode == 0  # published
    crashed = _load(exports["b"].path, database_url, schema, home, ETL_CRASH_AT="load.part_committed:2")
    assert crashed.returncode == -signal.SIGKILL  # resumable: its dataset is here
    crashed = _load(exports["d"].path, database_url, schema, other, ETL_CRASH_AT="load.part_committed:2")
    assert crashed.returncode == -signal.SIGKILL  # an orphan here: its dataset is in another store
    running = subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", "load", str(exports["e"].path), "--database-url", database_url,
         "--schema", schema],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ETL_")}, **ENV,
             "ETL_HOME": str(running_home), "ETL_PAUSE_AT": "load.staged:600"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while sha["e"][:12] not in _staging(database_url, schema) or len(_staged_tags(database_url, schema)) < 3:
            assert running.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        staging = _staging(database_url, schema)
        (d_tag,) = [t for t in _staged_tags(database_url, schema) if t.startswith(sha["d"][:12])]
        assert set(staging) == {sha["b"][:12], sha["d"][:12], sha["e"][:12]}

        # Leftovers of interrupted runs and of older transform versions, beside what is still needed.
        raw = artifacts / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        (raw / ".incoming-old").write_bytes(b"x" * 1000)
        os.utime(raw / ".incoming-old", (OLD, OLD))
        (raw / ".incoming-fresh").write_bytes(b"y" * 10)  # a copy that may be under way
        a_dir = artifacts / "transformed" / sha["a"]
        shutil.copytree(a_dir / TRANSFORM_VERSION, a_dir / "0.1")  # an older transform version
        shutil.copytree(a_dir / TRANSFORM_VERSION, a_dir / f"{TRANSFORM_VERSION}.partial")  # completed since
        b_dir = artifacts / "transformed" / sha["b"]
        (b_dir / "0.1.partial" / "messages").mkdir(parents=True)  # unfinished work of an older version
        media = artifacts / "media"
        media.mkdir(parents=True, exist_ok=True)
        (media / ".photo.jpg.99999999.part").write_bytes(b"z" * 100)  # its process is gone
        (media / f".live.jpg.{os.getpid()}.part").write_bytes(b"z")  # its process runs
        published = table_checksums(database_url, schema)

        # A transform of export b is running (it holds the pipeline's file lock).
        with open(artifacts / "transformed" / f"{sha['b']}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            dry = _gc(database_url, schema, home, "--dry-run")
            report = _gc(database_url, schema, home)
        assert dry["dry_run"] and not report["dry_run"]
        assert [(i["kind"], i["target"]) for i in dry["removed"]] == [(i["kind"], i["target"]) for i in report["removed"]]
        removed = {(i["kind"], Path(i["target"]).name if "/" in i["target"] else i["target"]) for i in report["removed"]}
        d_tables = {("staging_table", f"{schema}_staging.{t}") for t in staging[sha["d"][:12]]}
        assert removed == {
            ("incoming", ".incoming-old"),
            ("temporary", ".photo.jpg.99999999.part"),
            ("old_transform", "0.1"),
            ("partial", f"{TRANSFORM_VERSION}.partial"),
            ("staged_parts", f"{schema}_staging.staged_parts tag {d_tag}"),
        } | d_tables
        kept = {(i["kind"], i["target"].rsplit("/", 1)[-1], i["reason"]) for i in report["kept"]}
        assert ("partial", "0.1.partial", "an extract or transform of this export is running") in kept
        assert ("incoming", ".incoming-fresh", "recently written: a copy may be under way") in kept
        assert {("staging_table", f"{schema}_staging.{t}", "a load of this export is running") for t in staging[sha["e"][:12]]} <= kept
        assert report["bytes_freed"] >= 1100

        assert not (raw / ".incoming-old").exists() and (raw / ".incoming-fresh").exists()
        assert not (a_dir / "0.1").exists() and not (a_dir / f"{TRANSFORM_VERSION}.partial").exists()
        assert (a_dir / TRANSFORM_VERSION / "_manifest.json").exists()  # the published export's dataset stays
        assert (b_dir / "0.1.partial").exists() and (b_dir / TRANSFORM_VERSION / "_manifest.json").exists()
        assert not (media / ".photo.jpg.99999999.part").exists() and (media / f".live.jpg.{os.getpid()}.part").exists()
        after = _staging(database_url, schema)
        assert set(after) == {sha["b"][:12], sha["e"][:12]} and after[sha["b"][:12]] == staging[sha["b"][:12]]
        assert not any(t.startswith(sha["d"][:12]) for t in _staged_tags(database_url, schema))
        assert table_checksums(database_url, schema) == published  # published rows untouched
    finally:
        running.kill()
        running.wait()

    # Once the load and the transform are gone, their leftovers go too; b still resumes.
    report = _gc(database_url, schema, home)
    assert {i["target"].rsplit("/", 1)[-1] for i in report["removed"] if i["kind"] == "partial"} == {"0.1.partial"}
    assert sha["e"][:12] not in _staging(database_url, schema)
    resumed = _load(exports["b"].path, database_url, schema, home)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["exports"][0]["resumed"]["load_parts"] >= 2
    assert _staging(database_url, schema) == {}


def test_the_dagster_job_collects_and_the_daily_schedule_is_off_by_default(database_url: str, schema: str, tmp_path: Path) -> None:
    config = config_for_test(tmp_path, database_url, schema)
    leftover = Path(config.artifacts_dir) / "raw" / ".incoming-123"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 64)
    os.utime(leftover, (OLD, OLD))
    defs = build_definitions(config)
    assert defs.resolve_schedule_def("daily_garbage_collection").default_status == dg.DefaultScheduleStatus.STOPPED
    job = defs.resolve_job_def("collect_garbage_job")
    with dg.instance_for_test() as instance:
        dry = job.execute_in_process(instance=instance, run_config={"ops": {"collect_garbage_op": {"config": {"dry_run": True}}}})
        assert dry.success and leftover.exists()
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert not leftover.exists()
    report = result.output_for_node("collect_garbage_op")
    assert [i["target"] for i in report["removed"]] == [str(leftover)]
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert event.event_specific_data.metadata["gc/bytes_freed"].value == 64
