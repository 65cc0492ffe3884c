"""Export assets, one partition per export file: the file in the inbox, its checked copy, its Parquet tables, its media."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from etl_assets.etl.errors import InvalidExportError, MemoryLimitExceeded
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.locations import location
from etl_assets.etl.media.copy import MediaReport
from etl_assets.etl.pipeline import RawHandle, TransformedHandle
from etl_assets.etl.progress import PhaseStats
from etl_assets.etl.transform.transformer import TRANSFORM_VERSION

from ..metadata import phase_metadata
from ..partitions import export_stem, key_id, skype_exports
from ..resources import PipelineSettings, PostgresResource
from .inbox import inbox_files

EXPORT_GROUP = "export"

inbox_export = dg.AssetSpec(
    key=dg.AssetKey(["inbox", "skype_export"]),
    description="An export file dropped into the inbox folder (ETL_INBOX); lineage starts here.",
    group_name="inbox",
    partitions_def=skype_exports,
    kinds={"file"},
)

retry_policy = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class RawExportConfig(dg.Config):
    """Which file a partition is; filled in by the sensor, found by key when empty."""

    path: str | None = Field(default=None, description="Path of the export file for this partition.")


def locate_export(partition_key: str, settings: PipelineSettings) -> Path:
    """Find the file of a partition by name and fingerprint: in the inbox, else in the raw store."""
    wanted = key_id(partition_key)
    stem = partition_key[: -len(wanted) - 1]
    inbox = settings.inbox_dir
    candidates = [p for p, _ in inbox_files(inbox) if export_stem(p.name) == stem]
    candidates += sorted(p for p in (Path(settings.artifacts_dir) / "raw").glob("*.*") if not p.name.startswith("."))
    for candidate in candidates:
        try:
            if content_fingerprint(candidate).digest.startswith(wanted):
                return candidate
        except OSError:
            continue
    raise dg.Failure(
        description=f"no export file for partition {partition_key} in {inbox} or the raw store",
        allow_retries=False,
    )


def check_content_matches_key(partition_key: str, source: Path, raw: RawHandle) -> str:
    """The fingerprint of the bytes just copied (and hashed); fails if it is not the key's.

    The copy in the raw store is exactly what was hashed, so its fingerprint says what
    this run read, even if ``source`` changed again since.
    """
    wanted = key_id(partition_key)
    found = content_fingerprint(raw.path).digest
    if not found.startswith(wanted):
        raise dg.Failure(
            description=(
                f"{source}: the file's content is not the one partition {partition_key} was made for: "
                f"the partition expects fingerprint {wanted}, the file now has fingerprint {found[:len(wanted)]} "
                f"(sha256 {raw.sha256}); it was replaced after the sensor saw it. "
                "The sensor adds a partition for the new content; load that one."
            ),
            allow_retries=False,
        )
    return found


def _fail_on_bad_input(error: Exception) -> dg.Failure:
    """Unusable input and memory limits are permanent: fail at once, no retries."""
    return dg.Failure(description=str(error), allow_retries=False)


@dg.asset(
    partitions_def=skype_exports,
    deps=[inbox_export],
    group_name=EXPORT_GROUP,
    io_manager_key="handle_io_manager",
    code_version="1",
    retry_policy=retry_policy,
    kinds={"python"},
)
def raw_export(
    context: dg.AssetExecutionContext,
    config: RawExportConfig,
    pipeline_settings: PipelineSettings,
    postgres: PostgresResource,
) -> dg.Output[RawHandle]:
    """The export validated end to end and copied into the content-addressed raw store.

    Its sha256 comes from the read that copies it; the copy must have the fingerprint
    the partition key was made from.
    """
    path = location(config.path) if config.path else locate_export(context.partition_key, pipeline_settings)
    pipeline = pipeline_settings.pipeline(postgres, context.run.run_id)
    try:
        raw, stats = pipeline.extract(path, file_name=path.name)
    except (InvalidExportError, MemoryLimitExceeded) as e:
        raise _fail_on_bad_input(e) from None
    fingerprint = check_content_matches_key(context.partition_key, path, raw)
    pipeline.record_stats(raw.sha256, [stats])
    return dg.Output(
        raw,
        data_version=dg.DataVersion(raw.sha256),
        metadata={
            **phase_metadata(stats),
            "sha256": raw.sha256,
            "fingerprint": fingerprint,
            "file_name": raw.file_name,
            "container": raw.container,
            "user_id": raw.user_id or "",
            "export_date": raw.export_date or "",
            "media_files": raw.media_files,
            "dagster/uri": raw.path,
        },
    )


@dg.asset(
    partitions_def=skype_exports,
    group_name=EXPORT_GROUP,
    io_manager_key="handle_io_manager",
    code_version=TRANSFORM_VERSION,
    retry_policy=retry_policy,
    kinds={"python", "parquet"},
)
def transformed_export(
    context: dg.AssetExecutionContext,
    raw_export: RawHandle,
    pipeline_settings: PipelineSettings,
    postgres: PostgresResource,
) -> dg.Output[TransformedHandle]:
    """Normalized rows of every table as Parquet, keyed by (sha256, transform version)."""
    pipeline = pipeline_settings.pipeline(postgres, context.run.run_id)
    try:
        handle, stats = pipeline.transform(raw_export)
    except (InvalidExportError, MemoryLimitExceeded) as e:
        raise _fail_on_bad_input(e) from None
    pipeline.record_stats(raw_export.sha256, [stats])
    return dg.Output(
        handle,
        data_version=dg.DataVersion(f"{handle.sha256}:{handle.transform_version}"),
        metadata={
            **phase_metadata(stats),
            "rows": dg.MetadataValue.json(handle.rows),
            "resumed_parts": handle.resumed_parts,
            "parts": handle.parts,
            "by_type": dg.MetadataValue.json(dict(sorted(handle.by_type.items()))),
            "dagster/uri": handle.directory,
        },
    )


export_media = dg.AssetSpec(
    key=dg.AssetKey("export_media"),
    description="The export's media files copied into ``<artifacts>/media``; attachments name them by docid. "
    "Copied by the load's step, beside the load (the load publishes the copy's outcome).",
    deps=[raw_export],
    group_name=EXPORT_GROUP,
    partitions_def=skype_exports,
    kinds={"file"},
    code_version="1",
)


def media_metadata(raw: RawHandle, stats: PhaseStats, report: MediaReport, artifacts_dir: str) -> dict:
    """The ``export_media`` materialization's metadata: the copy's phase statistics and counts."""
    return {
        **phase_metadata(stats),
        "files_in_archive": raw.media_files,
        "files_stored": report.stored,
        "files_skipped": len(report.skipped),
        "files_damaged": len(report.damaged),
        "dagster/uri": str(Path(artifacts_dir) / "media"),
    }
