"""Schedules of the maintenance jobs (off by default: a user turns them on in the UI)."""

from __future__ import annotations

import dagster as dg

from .jobs import collect_garbage_job

gc_schedule = dg.ScheduleDefinition(
    name="daily_garbage_collection",
    job=collect_garbage_job,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Runs the garbage collection every night at 03:30 once turned on.",
)
