"""The generated instance: a run whose worker is killed ends failed and the daemon retries it.

A real ``dagster-daemon`` on the ``dagster.yaml`` that ``ensure_instance`` writes, its
PostgreSQL storage in a database of this test, a real run worker killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from etl_assets.defs.instance import dagster_yaml, ensure_instance
from etl_assets.etl.config import load_config

from etl_assets_tests.helpers import config_for_test, stop_process_group, wait_for

REPO = Path(__file__).resolve().parent.parent


def test_generated_instance_monitors_runs_and_retries_crashed_workers_only() -> None:
    config = yaml.safe_load(dagster_yaml(load_config(concurrent_runs=3)))
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 3
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 60 <= monitoring["start_timeout_seconds"] <= 600
    assert 60 <= monitoring["cancel_timeout_seconds"] <= 600
    assert monitoring["poll_interval_seconds"] <= 60
    assert monitoring["max_resume_run_attempts"] == 0  # the default launcher cannot resume a run
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


@pytest.mark.slow
def test_killed_run_worker_ends_failed_and_one_retry_succeeds(
    tmp_path: Path, own_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for_test(tmp_path, own_database, "unused")
    env = {**os.environ, **ensure_instance(config), "CRASH_JOB_DIR": str(tmp_path)}
    for name, value in env.items():
        if name.startswith("DAGSTER_"):
            monkeypatch.setenv(name, value)
    workspace = ["-m", "etl_assets_tests.crash_job"]
    log_path = tmp_path / "daemon.log"
    log = open(log_path, "w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", *workspace],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            subprocess.run(
                [sys.executable, "-m", "dagster", "job", "launch", *workspace, "-j", "crash_job"],
                env=env, cwd=REPO, check=True, capture_output=True, timeout=120,
            )
            pid_file = tmp_path / "worker.pid"
            wait_for("the run worker to start", pid_file.exists, 180, log_path)
            (first,) = instance.get_runs()
            assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.STARTED
            (tmp_path / "killed").touch()  # the retry returns at once
            os.kill(int(pid_file.read_text()), signal.SIGKILL)

            def retried_and_done():
                runs = instance.get_runs()
                retries = [r for r in runs if r.parent_run_id == first.run_id]
                return retries if retries and all(r.is_finished for r in retries) else None

            retries = wait_for("the automatic retry to finish", retried_and_done, 240, log_path)
            assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.FAILURE
            assert [r.status for r in retries] == [dg.DagsterRunStatus.SUCCESS]
            assert retries[0].tags.get("dagster/retry_number") == "1"
            time.sleep(3)
            assert len(instance.get_runs()) == 2  # one retry, no more
    finally:
        stop_process_group(daemon, signal.SIGTERM, 30)
        log.close()
