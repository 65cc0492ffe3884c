"""Resources: the warehouse PostgreSQL and the pipeline settings."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from etl_assets.etl import secrets
from etl_assets.etl.load.database import resolve_database_url
from etl_assets.etl.identifiers import check_schema_name
from etl_assets.etl.pipeline import ETLPipeline
from etl_assets.etl.schema import DEFAULT_TEXT_SEARCH_CONFIG
from etl_assets.etl.transform.transformer import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_MESSAGES
from etl_assets.settings import Settings


class PostgresResource(dg.ConfigurableResource):
    """The warehouse: ``database_url`` (or ``ETL_DATABASE_URL``), else the embedded server under ``home``."""

    database_url: str | None = Field(default=None, description="PostgreSQL URL; empty for the embedded server.")
    schema_name: str = Field(default="skype", description="Warehouse schema.")
    home: str = Field(default=".etl_home", description="ETL_HOME of the embedded server.")

    @field_validator("schema_name")
    @classmethod
    def _schema_fits_with_its_staging_schema(cls, value: str) -> str:
        """Refuse a name whose ``_staging`` schema PostgreSQL would truncate (ETL_SCHEMA sets it)."""
        return check_schema_name(value, "ETL_SCHEMA (postgres resource schema_name)")

    def url(self) -> str:
        return resolve_database_url(self.database_url, home=self.home)

    def display_url(self) -> str:
        """The URL without any secret, for metadata and logs."""
        return secrets.redact(self.url())


DEFAULT_SENSOR_BYTES_PER_TICK = 256 << 20  # 128 files a tick; a few seconds even on a slow disk


class PipelineSettings(dg.ConfigurableResource):
    """Where artifacts go and how big batches are."""

    artifacts_dir: str = Field(description="Raw copies and Parquet datasets.")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="Rows per Parquet row group.")
    workers: int = Field(default=1, description="Processes that transform messages.")
    chunk_messages: int = Field(default=DEFAULT_CHUNK_MESSAGES, description="Messages per transform checkpoint.")
    memory_limit_mb: int | None = Field(default=None, description="Stop with a clear error past this RSS.")
    max_member_bytes: int | None = Field(default=None, description="Largest messages.json accepted.")
    inbox_dir: str = Field(description="Folder watched for new exports.")
    text_search_config: str = Field(default=DEFAULT_TEXT_SEARCH_CONFIG, description="Text search configuration of content_tsv.")
    media_max_file_bytes: int | None = Field(default=None, description="Largest media file copied (default 512 MiB).")
    media_max_total_bytes: int | None = Field(default=None, description="Media bytes copied per export (default: free disk minus a margin).")
    sensor_bytes_per_tick: int = Field(
        default=DEFAULT_SENSOR_BYTES_PER_TICK,
        description="Most bytes the inbox sensor reads in one tick to fingerprint new files (2 MiB per file at most).",
    )

    def pipeline(self, postgres: PostgresResource, run_id: str) -> ETLPipeline:
        return ETLPipeline(
            postgres.url(),
            Path(self.artifacts_dir),
            schema=postgres.schema_name,
            batch_size=self.batch_size,
            workers=self.workers,
            chunk_messages=self.chunk_messages,
            memory_limit_mb=self.memory_limit_mb,
            max_member_bytes=self.max_member_bytes,
            run_id=run_id,
            text_search_config=self.text_search_config,
            media_max_file_bytes=self.media_max_file_bytes,
            media_max_total_bytes=self.media_max_total_bytes,
        )


DATABASE_URL_ENV = "ETL_DATABASE_URL"


def resources_from_settings(settings: Settings) -> dict[str, object]:
    """The resources for a Definitions object.

    The database URL reaches the resource through ``ETL_DATABASE_URL`` (an ``EnvVar``),
    never as a literal: Dagster stores resource config with every run and shows it in
    the UI, and the URL may hold a password.
    """
    from .io_managers import HandleIOManager

    check_schema_name(settings.schema, "ETL_SCHEMA")
    if settings.database_url and os.environ.get(DATABASE_URL_ENV) != settings.database_url:
        os.environ[DATABASE_URL_ENV] = settings.database_url
    return {
        "postgres": PostgresResource(
            database_url=dg.EnvVar(DATABASE_URL_ENV) if settings.database_url else None,
            schema_name=settings.schema,
            home=str(settings.home),
        ),
        "pipeline_settings": PipelineSettings(
            artifacts_dir=str(settings.artifacts),
            batch_size=settings.batch_size,
            workers=settings.workers,
            chunk_messages=settings.chunk_messages,
            memory_limit_mb=settings.memory_limit_mb,
            max_member_bytes=settings.max_member_bytes,
            inbox_dir=str(settings.inbox),
            text_search_config=settings.text_search_config,
            media_max_file_bytes=settings.media_max_file_bytes,
            media_max_total_bytes=settings.media_max_total_bytes,
        ),
        "handle_io_manager": HandleIOManager(root=settings.handles_url),
    }
