"""ours_dagster: the Dagster job ``load_skype_export`` for one partition, executed in process.

Builds ``build_definitions(Settings(...))`` for the given database and schema, with a
temporary ETL_HOME (artifacts, handles; other settings from the environment, as the\nDagster code location gets them) and an ephemeral Dagster instance, like
``etl_assets.demo`` does.
"""

from __future__ import annotations

import dataclasses
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

    from etl_assets.definitions import build_definitions
    from etl_assets.defs.partitions import partition_key_for, skype_exports
    from etl_assets.etl.extractor import Extractor
    from etl_assets.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="etl_home_"))
    try:
        os.environ.update({"ETL_HOME": str(home), "ETL_ARTIFACTS": "", "ETL_INBOX": "", "ETL_HANDLES_URL": ""})
        settings = dataclasses.replace(Settings.from_env(), database_url=url, schema=schema)
        sha, _ = Extractor(path).sha256()
        key = partition_key_for(Path(path).name, sha)
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions(skype_exports.name, [key])
            job = build_definitions(settings).resolve_job_def("load_skype_export")
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                run_config={
                    "ops": {"raw_export": {"config": {"path": str(path)}}},
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                },
                raise_on_error=False,
            )
            if not result.success:
                failure = next((e for e in result.all_events if e.is_step_failure), None)
                reason = failure.step_failure_data.error.message.strip() if failure and failure.step_failure_data.error else "unknown"
                raise SystemExit(f"dagster run {result.run_id} failed: {reason}")
            return result.run_id
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    path, url, schema = parse_argv()
    started = time.perf_counter()
    run_id = load(path, url, schema)
    emit(rows=count_rows(url, schema, TABLE), seconds=round(time.perf_counter() - started, 3), run_id=run_id)


if __name__ == "__main__":
    main()
