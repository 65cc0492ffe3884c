"""The export area: its assets and the inbox sensor."""

from __future__ import annotations

import dagster as dg

from .assets import inbox_export, raw_export, transformed_export
from .sensors import new_export_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[inbox_export, raw_export, transformed_export], sensors=[new_export_sensor])
