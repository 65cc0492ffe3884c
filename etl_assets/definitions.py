"""The one place that wires the Dagster definitions together: each area's, the jobs, the resources."""

from __future__ import annotations

import dagster as dg

from etl_assets.defs.exports.definitions import definitions as export_definitions
from etl_assets.defs.jobs import load_skype_export
from etl_assets.defs.maintenance.definitions import definitions as maintenance_definitions
from etl_assets.defs.resources import resources_from_config
from etl_assets.defs.warehouse.definitions import definitions as warehouse_definitions
from etl_assets.etl.config import ETLConfig, load_config
from etl_assets.etl.private import private_directory, restrict_new_files


def build_definitions(config: ETLConfig | None = None) -> dg.Definitions:
    """Definitions for the given configuration (the environment's by default)."""
    config = config or load_config()
    restrict_new_files()  # run workers write message data; the instance keeps logs under ETL_HOME
    private_directory(config.home_dir)
    return dg.Definitions.merge(
        export_definitions(),
        warehouse_definitions(),
        maintenance_definitions(),
        dg.Definitions(jobs=[load_skype_export], resources=resources_from_config(config)),
    )


defs = build_definitions()
