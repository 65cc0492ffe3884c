"""The maintenance area: garbage collection, as a job and a schedule."""

from __future__ import annotations

import dagster as dg

from .jobs import collect_garbage_job
from .schedules import gc_schedule


def definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[collect_garbage_job], schedules=[gc_schedule])
