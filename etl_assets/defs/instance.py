"""The Dagster instance: ``dagster.yaml`` under ``$ETL_HOME/dagster`` with PostgreSQL storage.

Runs, sensor cursors and event logs live in schema ``dagster`` of the warehouse
database (embedded by default), so they survive restarts and nothing uses SQLite.
The URL reaches Dagster through ``DAGSTER_POSTGRES_URL``; the file never holds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from ..etl.database import resolve_database_url, sqlalchemy_url
from ..settings import Settings

INSTANCE_SCHEMA = "dagster"

DAGSTER_YAML = """\
# Written by skype-etl: Dagster's own storage in PostgreSQL (schema "dagster").
storage:
  postgres:
    postgres_url:
      env: DAGSTER_POSTGRES_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
telemetry:
  enabled: false
"""


def instance_url(database_url: str) -> str:
    """SQLAlchemy URL for dagster-postgres, using schema ``dagster`` of the same database."""
    parts = urlsplit(sqlalchemy_url(database_url))
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={INSTANCE_SCHEMA}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def ensure_instance(settings: Settings) -> dict[str, str]:
    """Create ``dagster.yaml`` and the instance schema; return the environment Dagster needs."""
    database_url = resolve_database_url(settings.database_url, home=settings.home)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{INSTANCE_SCHEMA}"')
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    for folder in (settings.inbox, settings.artifacts):
        Path(folder).mkdir(parents=True, exist_ok=True)
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": instance_url(database_url),
        "ETL_HOME": str(settings.home),
    }


def apply_instance_env(settings: Settings) -> dict[str, str]:
    """``ensure_instance`` and put its variables into this process's environment."""
    env = ensure_instance(settings)
    os.environ.update(env)
    return env
