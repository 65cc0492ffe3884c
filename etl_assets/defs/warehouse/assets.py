"""Warehouse assets: every table, published per export partition, and the analytics views over all exports."""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from etl_assets.etl import schema as s
from etl_assets.etl.pipeline import RawHandle, TransformedHandle

from ..exports.assets import export_media, media_metadata, raw_export, retry_policy, transformed_export
from ..metadata import phase_metadata, table_spec_metadata
from ..partitions import skype_exports
from ..resources import PipelineSettings, PostgresResource

WAREHOUSE_GROUP = "warehouse"
WAREHOUSE_SCHEMA_FOR_SPECS = "skype"

WAREHOUSE_TABLES = s.ALL_TABLES

AFTER_LOADS = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after_loads")
"""Refresh once the loads in progress are done: once after a backfill or a full inbox, not once per export.

Unlike ``eager`` it does not wait for every export partition to exist: an export that failed
for good (a damaged file) must not keep the views and pages of all the others stale.
"""


def table_key(table: s.Table) -> dg.AssetKey:
    return dg.AssetKey(["skype", table.name])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key=table_key(t),
            description=t.doc,
            # attachments: their media statuses are the copy's outcome
            deps=[transformed_export, *([export_media] if t is s.ATTACHMENTS else [])],
            group_name=WAREHOUSE_GROUP,
            partitions_def=skype_exports,
            metadata=table_spec_metadata(t, WAREHOUSE_SCHEMA_FOR_SPECS),
            kinds={"postgres", "table"},
            code_version=f"{s.SCHEMA_VERSION}",
        )
        for t in WAREHOUSE_TABLES
    ]
    + [export_media],
    ins={"transformed_export": dg.AssetIn(key=transformed_export.key), "raw_export": dg.AssetIn(key=raw_export.key)},
    partitions_def=skype_exports,
    retry_policy=retry_policy,
    name="skype_tables",
    # one pool for every run's publishing step: a deployment limits how many load the warehouse at once
    pool="skype_warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            "export_fully_published",
            asset=table_key(s.EXPORTS),
            description="The export is recorded, and every one of its messages names it as a source.",
        ),
        dg.AssetCheckSpec(
            "no_rejected_records",
            asset=table_key(s.REJECTED_RECORDS),
            description="Warns when records of the export could not be loaded (they are kept verbatim).",
        ),
    ],
)
def skype_tables(
    context: dg.AssetExecutionContext,
    raw_export: RawHandle,
    transformed_export: TransformedHandle,
    pipeline_settings: PipelineSettings,
    postgres: PostgresResource,
):
    """Publish the export into the warehouse in one transaction, one materialization per table,
    with the media copy (``export_media``) beside it: the load is mostly the server's work."""
    pipeline = pipeline_settings.pipeline(postgres, context.run.run_id)
    result, stats, copied = pipeline.load_with_media(raw_export, transformed_export, always_copy=True)
    assert copied is not None
    media_stats, report = copied
    pipeline.record_stats(transformed_export.sha256, [media_stats, stats])
    yield dg.MaterializeResult(
        asset_key=export_media.key,
        metadata=media_metadata(raw_export, media_stats, report, pipeline_settings.artifacts_dir),
    )
    counts = pipeline.warehouse.table_counts()
    shared = {
        **phase_metadata(stats),
        "export_sha256": transformed_export.sha256,
        "already_loaded": result.already_loaded,
        "resumed_parts": result.resumed_parts,
        "load/stage_seconds": result.stage_seconds,
        "load/publish_seconds": result.publish_seconds,
        "database": postgres.display_url(),
        # end to end, extract to publish: plotted per export on the asset's page
        "export/messages_per_second": pipeline.warehouse.export_throughput(transformed_export.sha256) or 0.0,
    }
    recorded, sourced, rejected = pipeline.warehouse.export_consistency(transformed_export.sha256)
    yield dg.AssetCheckResult(
        asset_key=table_key(s.EXPORTS),
        check_name="export_fully_published",
        passed=recorded is not None and recorded == sourced,
        metadata={"messages_recorded": recorded or 0, "messages_with_this_source": sourced},
    )
    yield dg.AssetCheckResult(
        asset_key=table_key(s.REJECTED_RECORDS),
        check_name="no_rejected_records",
        passed=rejected == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected": rejected},
    )
    for table in WAREHOUSE_TABLES:
        yield dg.MaterializeResult(
            asset_key=table_key(table),
            metadata={
                **shared,
                **table_spec_metadata(table, postgres.schema_name),
                "dagster/row_count": counts[table.name],
                "rows_staged": result.rows_staged.get(table.name, 0),
                "rows_changed": result.rows_changed.get(table.name, 0),
                "publish_seconds": result.table_seconds.get(table.name, 0.0),
                "published_by": "bulk" if table.name in result.bulk_loaded else "merge",
            },
        )


@dg.asset(
    key=dg.AssetKey(["skype", "analytics"]),
    deps=[table_key(s.MESSAGES), table_key(s.CONVERSATIONS), table_key(s.PEOPLE)],
    group_name=WAREHOUSE_GROUP,
    automation_condition=AFTER_LOADS,
    kinds={"postgres", "view"},
    code_version="1",
)
def skype_analytics(
    context: dg.AssetExecutionContext, pipeline_settings: PipelineSettings, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Views over all exports: conversation_stats, daily_activity, person_stats (refreshed after loads).

    Its metadata also shows messages per month, per hour of day and per person as pictures
    (embedded in Markdown, and as PNG files under ``<artifacts>/statistics/``), and the batch
    of exports published since its last refresh, with their messages per second overall.
    """
    from etl_assets.etl.private import private_directory
    from etl_assets.etl.warehouse.analytics import create_views
    from etl_assets.etl.warehouse.queries import Warehouse

    from .plots import markdown, statistics_pictures

    warehouse = Warehouse(postgres.url(), postgres.schema_name)
    previous = context.instance.get_latest_materialization_event(context.asset_key)
    batch = warehouse.batch_throughput(
        datetime.fromtimestamp(previous.timestamp, timezone.utc) if previous is not None else None
    )
    counts = create_views(warehouse)
    pictures = statistics_pictures(postgres.url(), postgres.schema_name)
    folder = private_directory(Path(pipeline_settings.artifacts_dir) / "statistics")
    files = {}
    for stat, data in pictures:
        path = folder / stat.name
        temporary = path.with_name(f".{stat.name}.partial")
        temporary.write_bytes(data)
        temporary.replace(path)
        files[f"plot/{stat.name.removesuffix('.png')}"] = dg.MetadataValue.path(str(path))
    return dg.MaterializeResult(
        metadata={f"{name}/row_count": count for name, count in counts.items()}
        | {"views": ", ".join(f"{postgres.schema_name}.{name}" for name in counts)}
        | {"statistics": dg.MetadataValue.md(markdown(pictures))}
        | {
            "batch/exports": batch.exports,
            "batch/messages": batch.messages,
            "batch/seconds": round(batch.seconds or 0.0, 1),
            "batch/messages_per_second": batch.messages_per_second or 0.0,
        }
        | files
    )
