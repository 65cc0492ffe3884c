"""The one place that wires the Dagster definitions together."""

from __future__ import annotations

import dagster as dg

from etl_assets.defs.assets import export_media, inbox_export, raw_export, skype_analytics, skype_tables, transformed_export
from etl_assets.defs.gc import collect_garbage_job, gc_schedule
from etl_assets.defs.resources import resources_from_config
from etl_assets.defs.sensors import load_skype_export, new_export_sensor
from etl_assets.etl.config import ETLConfig, load_config
from etl_assets.etl.private import private_directory, restrict_new_files


def build_definitions(config: ETLConfig | None = None) -> dg.Definitions:
    """Definitions for the given configuration (the environment's by default)."""
    config = config or load_config()
    restrict_new_files()  # run workers write message data; the instance keeps logs under ETL_HOME
    private_directory(config.home_dir)
    return dg.Definitions(
        assets=[inbox_export, raw_export, transformed_export, export_media, skype_tables, skype_analytics],
        jobs=[load_skype_export, collect_garbage_job],
        sensors=[new_export_sensor],
        schedules=[gc_schedule],
        resources=resources_from_config(config),
    )


defs = build_definitions()
