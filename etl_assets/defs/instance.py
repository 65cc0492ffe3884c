"""The Dagster instance: ``dagster.yaml`` under ``$ETL_HOME/dagster`` with PostgreSQL storage.

Runs, sensor cursors and event logs live in schema ``dagster`` of the warehouse
database (embedded by default), so they survive restarts and nothing uses SQLite.
Run monitoring and run retries are on, so a run whose worker was killed ends failed
and is started again by the daemon.
The URL reaches Dagster through ``DAGSTER_POSTGRES_URL``; the file never holds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from etl_assets.etl.config import ETLConfig
from etl_assets.etl.locations import is_remote
from etl_assets.etl.load.database import resolve_database_url, sqlalchemy_url

INSTANCE_SCHEMA = "dagster"

DAGSTER_YAML_TEMPLATE = """\
# Written by skype-etl: Dagster's own storage in PostgreSQL (schema "dagster").
storage:
  postgres:
    postgres_url:
      env: DAGSTER_POSTGRES_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {concurrent_runs}
# The daemon fails runs stuck starting or canceling (a worker that never came up or
# never went down). The default launcher cannot resume a run in a new worker.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
# A run whose worker died is started again (from the failed steps; the pipeline resumes
# from its checkpoints). A step that failed on bad data is not: assets retry transient
# errors themselves, and unusable input fails for good.
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""


def dagster_yaml(config: ETLConfig) -> str:
    """The instance's ``dagster.yaml`` for ``config`` (its run queue holds ``ETL_CONCURRENT_RUNS``)."""
    return DAGSTER_YAML_TEMPLATE.format(concurrent_runs=config.concurrent_runs)


def instance_url(database_url: str) -> str:
    """SQLAlchemy URL for dagster-postgres, using schema ``dagster`` of the same database."""
    parts = urlsplit(sqlalchemy_url(database_url))
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={INSTANCE_SCHEMA}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def ensure_instance(config: ETLConfig) -> dict[str, str]:
    """Create ``dagster.yaml`` and the instance schema; return the environment Dagster needs."""
    database_url = resolve_database_url(config.database_url, home=config.home_dir)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{INSTANCE_SCHEMA}"')
    home = config.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    yaml_file = home / "dagster.yaml"
    wanted = dagster_yaml(config)
    if not yaml_file.exists() or yaml_file.read_text() != wanted:
        yaml_file.write_text(wanted)
    for folder in (config.inbox_dir, config.artifacts_dir):
        if not is_remote(folder):  # a bucket prefix needs no folder
            Path(folder).mkdir(parents=True, exist_ok=True)
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": instance_url(database_url),
        "ETL_HOME": config.home,
    }


def apply_instance_env(config: ETLConfig) -> dict[str, str]:
    """``ensure_instance`` and put its variables into this process's environment."""
    env = ensure_instance(config)
    os.environ.update(env)
    return env
