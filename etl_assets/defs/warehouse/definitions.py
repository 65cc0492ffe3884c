"""The warehouse area: the tables, their checks, and the analytics views."""

from __future__ import annotations

import dagster as dg

from .assets import skype_analytics, skype_tables


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[skype_tables, skype_analytics])
