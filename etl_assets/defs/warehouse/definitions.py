"""The warehouse area: the tables, their checks, the analytics views, the HTML archive and their refresh."""

from __future__ import annotations

import dagster as dg

from .archive import skype_html_archive
from .assets import skype_analytics, skype_tables
from .sensors import warehouse_refresh_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[skype_tables, skype_analytics, skype_html_archive], sensors=[warehouse_refresh_sensor])
