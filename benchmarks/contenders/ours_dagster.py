"""ours_dagster: the Dagster job ``load_skype_export`` for one partition, executed in process.

Builds ``build_definitions(load_config(...))`` for the given database and schema, in the
ETL_HOME it is given (artifacts, handles; other settings from the environment, as the
Dagster code location gets them) and an ephemeral Dagster instance, like
``etl_assets.demo`` does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .common import count_rows, emit, parse_argv

TABLE = "messages"


def load(path: str, url: str, schema: str) -> str:
    """Materialize every asset of the export's partition; return the run id."""
    import dagster as dg

    from etl_assets.materialize import failure_reason, materialize_export
    from etl_assets.etl.config import load_config

    # the fresh ETL_HOME the benchmark gives every run (removed by it, untimed, as for the command)
    given = os.environ.get("ETL_HOME")
    home = Path(given) if given else Path(tempfile.mkdtemp(prefix="etl_home_"))
    try:
        os.environ.update({"ETL_HOME": str(home), "ETL_ARTIFACTS": "", "ETL_INBOX": "", "ETL_HANDLES_URL": ""})
        config = load_config(database_url=url, schema_name=schema)
        with dg.DagsterInstance.ephemeral() as instance:
            _, result = materialize_export(config, instance, path, quiet=True)
            if not result.success:
                raise SystemExit(f"dagster run {result.run_id} failed: {failure_reason(result)}")
            return result.run_id
    finally:
        if not given:
            shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    path, url, schema = parse_argv()
    started = time.perf_counter()
    run_id = load(path, url, schema)
    emit(rows=count_rows(url, schema, TABLE), seconds=round(time.perf_counter() - started, 3), run_id=run_id)


if __name__ == "__main__":
    main()
