"""Materialize one export's partition in this process: for the demo, scripts and tests."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from etl_assets.definitions import build_definitions
from etl_assets.defs.partitions import partition_key_for, skype_exports
from etl_assets.etl.errors import InvalidExportError
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.config import ETLConfig
from etl_assets.etl.locations import location


def materialize_export(
    config: ETLConfig, instance: dg.DagsterInstance, path: str | Path, *, quiet: bool = False
) -> tuple[str, dg.ExecuteInProcessResult]:
    """Add the export's partition and run ``load_skype_export`` for it; returns the key and result."""
    path = location(path)
    try:
        fingerprint = content_fingerprint(path).digest
    except OSError as e:
        raise InvalidExportError(path, f"cannot be read ({e.strerror})") from None
    key = partition_key_for(path.name, fingerprint)
    instance.add_dynamic_partitions(skype_exports.name, [key])
    run_config: dict = {"ops": {"raw_export": {"config": {"path": str(path)}}}}
    if quiet:
        run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
    job = build_definitions(config).resolve_job_def("load_skype_export")
    return key, job.execute_in_process(partition_key=key, instance=instance, run_config=run_config, raise_on_error=False)


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """The first step failure's message, for a one-line report."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    return failure.step_failure_data.error.message.strip() if failure else "see the run in the UI"
