"""Jobs: the load of one export partition, from the raw file to the warehouse tables."""

from __future__ import annotations

import dagster as dg

from .exports.assets import raw_export, transformed_export
from .warehouse.assets import skype_tables

load_skype_export = dg.define_asset_job(
    "load_skype_export",
    selection=dg.AssetSelection.assets(raw_export, transformed_export, skype_tables),
    description="Raw, transformed and loaded tables for one export partition.",
)
