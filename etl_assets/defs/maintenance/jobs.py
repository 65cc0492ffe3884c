"""The garbage collection job and its daily schedule (off by default): the same code as ``skype-etl gc``."""


from pathlib import Path

import dagster as dg
from pydantic import Field

from etl_assets.etl.gc import DEFAULT_MIN_AGE_SECONDS, collect_garbage

from ..resources import PipelineSettings, PostgresResource


class GcConfig(dg.Config):
    """What one collection may do."""

    dry_run: bool = Field(default=False, description="Only report what would be removed.")
    min_age_seconds: float = Field(
        default=DEFAULT_MIN_AGE_SECONDS, description="Seconds a leftover must be untouched before it is removed."
    )


@dg.op(description="Removes leftovers of interrupted runs and artifacts no published export needs.")
def collect_garbage_op(
    context: dg.OpExecutionContext, config: GcConfig, postgres: PostgresResource, pipeline_settings: PipelineSettings
) -> dg.Output[dict]:
    report = collect_garbage(
        Path(pipeline_settings.artifacts_dir), postgres.url(), postgres.schema_name,
        dry_run=config.dry_run, min_age_seconds=config.min_age_seconds,
    )
    for item in report.kept:
        context.log.info(f"kept {item.kind} {item.target}: {item.reason}")
    return dg.Output(
        report.to_json(),
        metadata={
            "gc/removed": len(report.removed),
            "gc/kept_in_use": len(report.kept),
            "gc/bytes_freed": report.bytes_freed,
            "gc/dry_run": report.dry_run,
        },
    )


@dg.job(description="Removes leftovers and unneeded artifacts; never what a running load uses.")
def collect_garbage_job() -> None:
    collect_garbage_op()
