"""Crash safety, database restarts and concurrent loads, with real processes and a real server.

Each crash test kills ``skype-etl load`` with SIGKILL at a named point, runs it again,
and compares every table (ordered checksum) with an uninterrupted load of the same export.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.load.loader import STAGE_CONNECTIONS
from etl_assets.samples import ExportTruth, generate_export

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import drop_schema, restart_embedded, run_cli

CRASH_ENV = {"ETL_CHUNK_MESSAGES": "400", "ETL_WORKERS": "1"}

CRASH_POINTS = [
    "extract.hashed",
    "transform.scanned",
    "transform.scan_marked",
    "transform.chunk_written:1",
    "transform.chunk_marked:1",
    "transform.chunk_written:3",
    "transform.chunk_marked:3",
    "transform.chunk_marked:5",
    "transform.before_manifest",
    "transform.before_rename",
    "load.locked",
    "load.part_copied:1",
    "load.part_committed:1",
    "load.part_copied:6",
    "load.part_committed:9",
    "load.staged",
    "load.merged_table:1",
    "load.merged_table:4",
    "load.copied_table:1",
    "load.copied_table:8",
    "load.copied_table:14",
    "load.indexes_built",
    "load.before_commit",
    "load.committed",
]


@pytest.fixture(scope="module")
def crash_export(tmp_path_factory: pytest.TempPathFactory) -> ExportTruth:
    return generate_export(tmp_path_factory.mktemp("crash") / "8_live_crash_export.tar", messages=2500, seed=21, bad_records=3)


@pytest.fixture(scope="module")
def reference(crash_export: ExportTruth, database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Checksums of every table after one uninterrupted load."""
    schema = f"ref_{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "load", str(crash_export.path), "--database-url", database_url, "--schema", schema,
        home=tmp_path_factory.mktemp("ref_home"), env=CRASH_ENV,
    )
    assert done.returncode == 0, done.stderr
    yield table_checksums(database_url, schema)
    drop_schema(database_url, schema)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_any_point_then_rerun_equals_an_uninterrupted_load(
    point: str, crash_export: ExportTruth, reference: dict, database_url: str, tmp_path: Path
) -> None:
    schema = f"crash_{uuid.uuid4().hex[:8]}"
    args = ("load", str(crash_export.path), "--database-url", database_url, "--schema", schema, "--json")
    try:
        crashed = run_cli(*args, home=tmp_path, env={**CRASH_ENV, "ETL_CRASH_AT": point})
        assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr[-2000:])
        if point != "load.committed":
            assert _published_messages(database_url, schema) == 0  # readers never see part of an export
        staged = _parts_staged(database_url, schema)
        if point.startswith(THREAD_SHARED_POINTS):
            nth = int(point.partition(":")[2])
            # the nth commit has happened; at the nth copy, each staging connection may hold one uncommitted part
            assert staged >= (nth if point.startswith("load.part_committed") else nth - STAGE_CONNECTIONS), staged
        rerun = run_cli(*args, home=tmp_path, env=CRASH_ENV)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert table_checksums(database_url, schema) == reference
        report = json.loads(rerun.stdout)
        resumed = report["exports"][0]["resumed"]
        if point.startswith("load.") and point != "load.committed":
            assert report["phases"]["transform"]["messages_per_second"] == 0  # transform reused: less work
        if point.startswith("transform.chunk_marked") or point in ("transform.before_manifest", "transform.before_rename"):
            assert resumed["transform_parts"] >= 2  # the scan and at least one chunk were kept
        if point.startswith(("load.part_committed", "load.copied_table")) or point in (
            "load.staged", "load.indexes_built", "load.before_commit"
        ):
            assert resumed["load_parts"] >= 1  # staged parts were not copied again
        if point.startswith(THREAD_SHARED_POINTS):
            assert resumed["load_parts"] == staged  # exactly the parts committed before the crash were kept
        if point == "load.committed":
            assert report["exports"][0]["already_loaded"]
    finally:
        drop_schema(database_url, schema)


# Staging runs on two threads (two connections), both visiting load.part_copied and
# load.part_committed: the n-th visit counts over both threads, so at a crash the other
# thread may have committed one part more. Those points are checked by measuring what was
# staged (at least n parts, and exactly those resumed). With two transform workers each
# process counts its own visits: transform.chunk_* points would kill whichever process
# reaches them first, so the two-worker runs use points of the main process only, and a
# worker is killed by the test itself. The transform gives a worker at least 25,000
# messages, so these runs use an export of 52,000.
THREAD_SHARED_POINTS = ("load.part_copied", "load.part_committed")

TWO_WORKER_ENV = {"ETL_CHUNK_MESSAGES": "5000", "ETL_WORKERS": "2"}
TWO_WORKER_CRASH_POINTS = ["transform.before_manifest", "load.staged", "load.before_commit"]


@pytest.fixture(scope="module")
def two_worker_export(tmp_path_factory: pytest.TempPathFactory) -> ExportTruth:
    return generate_export(tmp_path_factory.mktemp("two") / "8_live_two_worker_export.tar", messages=52_000, seed=25,
                           bad_records=3)


@pytest.fixture(scope="module")
def two_worker_reference(two_worker_export: ExportTruth, database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Checksums after one uninterrupted load with a single transform worker."""
    schema = f"ref2_{uuid.uuid4().hex[:8]}"
    done = run_cli("load", str(two_worker_export.path), "--database-url", database_url, "--schema", schema,
                   home=tmp_path_factory.mktemp("ref2_home"), env={**TWO_WORKER_ENV, "ETL_WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    yield table_checksums(database_url, schema)
    drop_schema(database_url, schema)


def _second_share_was_written(home: Path) -> bool:
    return bool(list(home.glob("artifacts/transformed/*/*/messages/messages-1-00000.parquet")))


@pytest.mark.slow
@pytest.mark.parametrize("point", TWO_WORKER_CRASH_POINTS)
def test_crash_with_two_transform_workers_then_rerun_equals_an_uninterrupted_load(
    point: str, two_worker_export: ExportTruth, two_worker_reference: dict, database_url: str, tmp_path: Path
) -> None:
    schema = f"crash2_{uuid.uuid4().hex[:8]}"
    args = ("load", str(two_worker_export.path), "--database-url", database_url, "--schema", schema, "--json")
    try:
        crashed = run_cli(*args, home=tmp_path, env={**TWO_WORKER_ENV, "ETL_CRASH_AT": point})
        assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr[-2000:])
        assert _published_messages(database_url, schema) == 0
        rerun = run_cli(*args, home=tmp_path, env=TWO_WORKER_ENV)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert _second_share_was_written(tmp_path)  # two workers really ran
        assert table_checksums(database_url, schema) == two_worker_reference  # one worker or two: the same tables
        resumed = json.loads(rerun.stdout)["exports"][0]["resumed"]
        if point.startswith("load."):
            assert json.loads(rerun.stdout)["phases"]["transform"]["messages_per_second"] == 0
        if point == "transform.before_manifest":
            assert resumed["transform_parts"] >= 3  # the scan and the chunks of both workers were kept
    finally:
        drop_schema(database_url, schema)


@pytest.mark.slow
def test_a_transform_worker_killed_mid_chunk_then_rerun_equals_an_uninterrupted_load(
    two_worker_export: ExportTruth, two_worker_reference: dict, database_url: str, tmp_path: Path
) -> None:
    """SIGKILL of the transform worker process alone, after it wrote a chunk's files and before
    its marker; the load fails, and a re-run keeps the finished chunks and equals a clean load."""
    import os

    import psutil

    schema = f"wkill_{uuid.uuid4().hex[:8]}"
    args = ("load", str(two_worker_export.path), "--database-url", database_url, "--schema", schema, "--json")
    home = tmp_path / "home"
    # Each process waits 6 s the first time it has written a chunk's files (before the marker).
    env = {**os.environ, **TWO_WORKER_ENV, "ETL_HOME": str(home), "ETL_PAUSE_AT": "transform.chunk_written:6"}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT"):
        env.pop(name, None)
    load = subprocess.Popen([sys.executable, "-m", "etl_assets.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        worker = None
        while worker is None:
            assert load.poll() is None and time.monotonic() < deadline, load.communicate()[1][-2000:]
            written = list(home.glob("artifacts/transformed/*/*/messages/messages-1-00000.parquet"))
            if written and not list(home.glob("artifacts/transformed/*/*/_parts/messages-1-00000.json")):
                worker = _transform_worker(psutil.Process(load.pid))
            time.sleep(0.05)
        assert worker.pid != load.pid
        worker.kill()  # the worker alone, in the middle of its first chunk: files written, no marker
        worker.wait(30)
        out, err = load.communicate(timeout=300)
        assert load.returncode == 1, (load.returncode, err[-2000:])
        assert _published_messages(database_url, schema) == 0
        assert not list(home.glob("artifacts/transformed/*/*/_parts/messages-1-00000.json"))
        rerun = run_cli(*args, home=home, env=TWO_WORKER_ENV)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert table_checksums(database_url, schema) == two_worker_reference
        assert json.loads(rerun.stdout)["exports"][0]["resumed"]["transform_parts"] >= 2  # the scan and a chunk of the main share
    finally:
        if load.poll() is None:
            load.kill()
        drop_schema(database_url, schema)


def _transform_worker(load):
    """The transform worker among the load's children: the process that runs ``transform_share``
    (a spawned Python child that is not multiprocessing's resource tracker)."""
    import psutil

    for child in load.children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing" in cmdline and "spawn_main" in cmdline and "resource_tracker" not in cmdline:
            return child
    return None


MERGE_CRASH_POINTS = ["load.part_committed:20", "load.staged", "load.merged_table:5", "load.merged_table:12", "load.before_commit"]
"""Crash points of a load that merges into a warehouse already holding another export."""


@pytest.fixture(scope="module")
def earlier_export(tmp_path_factory: pytest.TempPathFactory) -> ExportTruth:
    return generate_export(tmp_path_factory.mktemp("earlier") / "8_live_earlier_export.tar", messages=800, seed=22)


def _load_both(schema: str, earlier: ExportTruth, later: ExportTruth, database_url: str, home: Path, env: dict) -> None:
    for export in (earlier, later):
        done = run_cli("load", str(export.path), "--database-url", database_url, "--schema", schema, home=home, env=env)
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def merged_reference(crash_export: ExportTruth, earlier_export: ExportTruth, database_url: str, tmp_path_factory):
    """Checksums after loading ``earlier_export`` and then ``crash_export``, uninterrupted."""
    schema = f"mref_{uuid.uuid4().hex[:8]}"
    _load_both(schema, earlier_export, crash_export, database_url, tmp_path_factory.mktemp("mref_home"), CRASH_ENV)
    yield table_checksums(database_url, schema)
    drop_schema(database_url, schema)


@pytest.mark.parametrize("point", MERGE_CRASH_POINTS)
def test_crash_while_merging_into_a_warehouse_with_data_then_rerun(
    point: str, crash_export: ExportTruth, earlier_export: ExportTruth, merged_reference: dict, database_url: str,
    tmp_path: Path,
) -> None:
    schema = f"mcrash_{uuid.uuid4().hex[:8]}"
    args = ("load", str(crash_export.path), "--database-url", database_url, "--schema", schema, "--json")
    try:
        done = run_cli(*args[:1], str(earlier_export.path), *args[2:6], home=tmp_path, env=CRASH_ENV)
        assert done.returncode == 0, done.stderr[-2000:]
        before = _published_messages(database_url, schema)
        crashed = run_cli(*args, home=tmp_path, env={**CRASH_ENV, "ETL_CRASH_AT": point})
        assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr[-2000:])
        assert _published_messages(database_url, schema) == before  # nothing of the second export is visible
        rerun = run_cli(*args, home=tmp_path, env=CRASH_ENV)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert json.loads(rerun.stdout)["exports"][0]["resumed"]["load_parts"] >= 1
        assert table_checksums(database_url, schema) == merged_reference
    finally:
        drop_schema(database_url, schema)


DAGSTER_RUN = """
import sys
import dagster as dg
from etl_assets.materialize import materialize_export
from etl_assets.etl.config import load_config

with dg.instance_for_test() as instance:
    _, result = materialize_export(load_config(), instance, sys.argv[1])
    sys.exit(0 if result.success else 1)
"""


@pytest.mark.parametrize("point", ["transform.chunk_marked:2", "load.part_committed:4"])
def test_crash_inside_a_dagster_run_then_rerun(
    point: str, crash_export: ExportTruth, reference: dict, database_url: str, tmp_path: Path
) -> None:
    schema = f"dcrash_{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("ETL_")},
        **CRASH_ENV,
        "ETL_HOME": str(tmp_path),
        "ETL_DATABASE_URL": database_url,
        "ETL_SCHEMA": schema,
    }
    command = [sys.executable, "-c", DAGSTER_RUN, str(crash_export.path)]
    try:
        crashed = subprocess.run(command, env={**env, "ETL_CRASH_AT": point}, capture_output=True, text=True, timeout=300)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert table_checksums(database_url, schema) == reference
    finally:
        drop_schema(database_url, schema)


def _dagster_env(database_url: str, schema: str, home: Path) -> dict[str, str]:
    import os

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DAGSTER_"))},
        **CRASH_ENV,
        "ETL_HOME": str(home),
        "ETL_DATABASE_URL": database_url,
        "ETL_SCHEMA": schema,
    }


def test_a_dagster_run_killed_mid_step_then_reexecuted_from_failure_equals_a_clean_load(
    crash_export: ExportTruth, reference: dict, database_url: str, tmp_path: Path
) -> None:
    """The run's process is SIGKILLed inside the transform step (its steps run in that process);
    marked failed as the code server marks a run whose worker died, the run is re-executed
    from failure in the same instance: only the steps that had not succeeded run, the
    transform resumes from its chunks, and the tables equal a clean load."""
    schema = f"reexec_{uuid.uuid4().hex[:8]}"
    env = _dagster_env(database_url, schema, tmp_path / "home")
    command = [sys.executable, "-m", "etl_assets_tests.reexecute_job", str(tmp_path / "instance"), str(crash_export.path)]
    repo = Path(__file__).resolve().parent.parent
    try:
        first = subprocess.run(command, env={**env, "ETL_CRASH_AT": "transform.chunk_marked:3"}, cwd=repo,
                               capture_output=True, text=True, timeout=300)
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
        assert _published_messages(database_url, schema) == 0
        again = subprocess.run([*command, "--from-failure"], env=env, cwd=repo, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        retried = json.loads(again.stdout.strip().splitlines()[-1])
        assert retried["parent_status"] == "STARTED" and retried["status"] == "SUCCESS", json.dumps(retried)
        assert retried["parent"] is not None
        assert "raw_export" not in retried["steps"] and "transformed_export" in retried["steps"], retried
        assert retried["transform_resumed_parts"] >= 4, retried  # the scan and the three chunks marked before the kill
        assert table_checksums(database_url, schema) == reference
    finally:
        drop_schema(database_url, schema)


def test_database_restart_in_the_middle_of_a_load(
    postgres_server, crash_export: ExportTruth, reference: dict, database_url: str, tmp_path: Path
) -> None:
    _, home = postgres_server
    if home is None:
        pytest.skip("restarts only the embedded server this test session owns, not a shared one")
    schema = f"restart_{uuid.uuid4().hex[:8]}"
    args = ("load", str(crash_export.path), "--database-url", database_url, "--schema", schema, "--json")
    # The first staging thread to commit a part waits there 8 s (the other goes on staging):
    # the restart lands inside the load, after parts it has committed and before its publish.
    env = {**CRASH_ENV, "ETL_PAUSE_AT": "load.part_committed:8"}
    import os

    before = _server_started_at(database_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", *args],
        env={**os.environ, **env, "ETL_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _parts_staged(database_url, schema) < 2:  # the staged_parts rows the load commits are its marker
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.05)
        assert process.poll() is None and _published_messages(database_url, schema) == 0  # still loading
        restart_embedded(home)
        after = _server_started_at(database_url)
        alive = process.poll() is None
        assert after > before and alive, (before, after, alive)  # the server went down while the load ran
        out, err = process.communicate(timeout=300)
        if process.returncode != 0:  # allowed: a clear one-line failure, then a re-run finishes
            assert process.returncode == 1 and len(err.strip().splitlines()) == 1, err[-2000:]
            again = run_cli(*args, home=tmp_path, env=CRASH_ENV)
            assert again.returncode == 0, again.stderr[-2000:]
        assert table_checksums(database_url, schema) == reference
    finally:
        if process.poll() is None:
            process.kill()
        drop_schema(database_url, schema)


def _published_messages(database_url: str, schema: str) -> int:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.messages",)).fetchone()[0]
        if exists is None:
            return 0
        return conn.execute(sql.SQL("SELECT count(*) FROM {}.messages").format(sql.Identifier(schema))).fetchone()[0]


def test_embedded_server_listens_on_a_unix_socket_only(postgres_server) -> None:
    url, home = postgres_server
    if home is None:
        pytest.skip("checks the embedded server")
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""
    assert "host=/" in url and "@/" in url


def test_dagster_ui_binds_to_localhost_only() -> None:
    from etl_assets.cli import dev_command

    argv = dev_command(3000)
    assert argv[argv.index("-h") + 1] == "127.0.0.1"


def _parts_staged(database_url: str, schema: str) -> int:
    """Parts the load has committed to staging (its ``staged_parts`` rows); 0 before there are any."""
    try:
        with psycopg.connect(database_url) as conn:
            return conn.execute(
                sql.SQL("SELECT count(*) FROM {}.staged_parts").format(sql.Identifier(f"{schema}_staging"))
            ).fetchone()[0]
    except psycopg.Error:
        return 0


def _server_started_at(database_url: str):
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_concurrent_loads_equal_sequential_loads(database_url: str, tmp_path: Path) -> None:
    exports = [
        generate_export(tmp_path / f"8_live_{name}_export.tar", messages=1500, seed=seed)
        for name, seed in (("ann", 31), ("bob", 32), ("cat", 33))
    ]
    concurrent, sequential = f"conc_{uuid.uuid4().hex[:8]}", f"seq_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    import os

    try:
        started = [
            subprocess.Popen(
                [sys.executable, "-m", "etl_assets.cli", "load", str(export.path), "--database-url", database_url,
                 "--schema", concurrent, "--json"],
                env={**os.environ, "ETL_HOME": str(home), "ETL_WORKERS": "1"},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for export in (exports[0], exports[0], exports[1], exports[2])
        ]
        outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in started]
        assert all(code == 0 for code, _, _ in outcomes), [err[-1500:] for _, _, err in outcomes]
        loaded_twice = [json.loads(out)["exports"][0]["already_loaded"] for _, out, _ in outcomes[:2]]
        assert sorted(loaded_twice) == [False, True]  # one load published, the other found it done
        with psycopg.connect(database_url) as conn:
            order = [
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT file_name FROM {}.exports ORDER BY export_id").format(sql.Identifier(concurrent))
                )
            ]
        by_name = {e.path.name: e for e in exports}
        for name in order:
            done = run_cli("load", str(by_name[name].path), "--database-url", database_url, "--schema", sequential,
                           home=tmp_path / "seq_home")
            assert done.returncode == 0, done.stderr
        assert table_checksums(database_url, concurrent) == table_checksums(database_url, sequential)
    finally:
        drop_schema(database_url, concurrent)
        drop_schema(database_url, sequential)
