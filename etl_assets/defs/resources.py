"""Resources: the warehouse PostgreSQL and the pipeline's options, both built from one ``ETLConfig``."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field, field_validator

from etl_assets.etl import secrets
from etl_assets.etl.config import ETLConfig, PipelineOptions
from etl_assets.etl.identifiers import check_schema_name
from etl_assets.etl.load.database import resolve_database_url
from etl_assets.etl.pipeline import ETLPipeline

DATABASE_URL_ENV = "ETL_DATABASE_URL"


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


class PipelineSettings(dg.ConfigurableResource, PipelineOptions):
    """The pipeline's options (every field of ``PipelineOptions``), settable per run in the launchpad."""

    def config(self, postgres: PostgresResource) -> ETLConfig:
        return ETLConfig(**self.run_options(), database_url=postgres.url(), schema_name=postgres.schema_name)

    def pipeline(self, postgres: PostgresResource, run_id: str) -> ETLPipeline:
        return ETLPipeline(self.config(postgres), run_id=run_id, copy_raw=self.raw_copy)


def resources_from_config(config: ETLConfig) -> dict[str, object]:
    """The resources for a Definitions object.

    The database URL reaches the resource through ``ETL_DATABASE_URL`` (an ``EnvVar``),
    never as a literal: Dagster stores resource config with every run and shows it in
    the UI, and the URL may hold a password.
    """
    from .io_managers import HandleIOManager

    if config.database_url and os.environ.get(DATABASE_URL_ENV) != config.database_url:
        os.environ[DATABASE_URL_ENV] = config.database_url
    return {
        "postgres": PostgresResource(
            database_url=dg.EnvVar(DATABASE_URL_ENV) if config.database_url else None,
            schema_name=config.schema_name,
            home=config.home,
        ),
        "pipeline_settings": PipelineSettings(**config.run_options()),
        "handle_io_manager": HandleIOManager(root=config.handles_url),
    }
