"""The warehouse area: the tables, their checks, the analytics views and the HTML archive."""

from __future__ import annotations

import dagster as dg

from .archive import skype_html_archive
from .assets import skype_analytics, skype_tables


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[skype_tables, skype_analytics, skype_html_archive])
