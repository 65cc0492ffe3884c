"""``skype/html_archive``: every conversation as HTML pages in the artifact store, kept current after loads.

Unpartitioned and downstream of the warehouse tables; its automation condition (``AFTER_LOADS``)
has ``warehouse_refresh_sensor`` run it once the loads in progress are done. Each run writes only the conversations whose
messages changed since the last one (``etl_assets.etl.read.export.archive``), and the
statistics pictures on its index page.
"""


from pathlib import Path

import dagster as dg

from etl_assets.etl import schema as s

from ..resources import PipelineSettings, PostgresResource
from .assets import AFTER_LOADS, WAREHOUSE_GROUP, table_key
from .plots import statistics_pictures

ARCHIVE_DIR = "html_archive"

ARCHIVE_TABLES = (s.MESSAGES, s.CONVERSATIONS, s.PEOPLE, s.MEMBERSHIPS, s.ATTACHMENTS)
"""What the pages show: messages (and their child tables, published with them), names, members, files."""


@dg.asset(
    key=dg.AssetKey(["skype", "html_archive"]),
    deps=[table_key(t) for t in ARCHIVE_TABLES],
    group_name=WAREHOUSE_GROUP,
    automation_condition=AFTER_LOADS,
    kinds={"html"},
    code_version="1",
)
def skype_html_archive(
    context: dg.AssetExecutionContext, pipeline_settings: PipelineSettings, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Every conversation as HTML under ``<artifacts>/html_archive/``; only changed conversations are rewritten."""
    from etl_assets.etl.private import private_directory
    from etl_assets.etl.read.export.archive import Picture, update_archive

    artifacts = private_directory(Path(pipeline_settings.artifacts_dir))
    url = postgres.url()
    pictures = [Picture(stat.name, data, stat.title) for stat, data in statistics_pictures(url, postgres.schema_name)]
    summary = update_archive(url, postgres.schema_name, artifacts / ARCHIVE_DIR, artifacts=artifacts, pictures=pictures)
    context.log.info(
        "html archive: %d conversations, %d written, %d unchanged, %d removed",
        summary.conversations, len(summary.written), summary.unchanged, len(summary.removed),
    )
    index = Path(summary.index)
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.url(index.as_uri()),
            "index": dg.MetadataValue.path(str(index)),
            "conversations": summary.conversations,
            "messages": summary.messages,
            "conversations_written": len(summary.written),
            "conversations_unchanged": summary.unchanged,
            "conversations_removed": len(summary.removed),
            "media_files_placed": summary.media_files,
        }
    )
