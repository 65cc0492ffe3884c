"""One immutable configuration of a load, read from ``ETL_*`` environment variables.

Every setting is one field below, with its default and meaning; the command, the
Dagster resources and the components all take the whole object. A new setting is one
field here plus its use. ``PipelineOptions`` holds what a Dagster run may set (the
resource of the same fields shows them in the launchpad); ``ETLConfig`` adds the
warehouse (URL and schema), which Dagster keeps in its own resource so that a password
never reaches run config.

``ETL_CRASH_AT``, ``ETL_PAUSE_AT``, ``ETL_FAIL_AT`` and ``ETL_FSYNC_LOG`` are fault hooks
for the tests (``faults.py``), not settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidSettingError
from .identifiers import check_schema_name
from .locations import is_url, location

def default_workers() -> int:
    """One transform process per core, up to four (the load is one PostgreSQL backend anyway)."""
    return max(1, min(4, os.cpu_count() or 1))


def _shown(default: str) -> dict[str, str]:
    """How the settings table shows a default that is computed or best read in other units."""
    return {"shown_default": default}


class PipelineOptions(BaseModel):
    """Where a load keeps its files and how it works: the settings a Dagster run may change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: str = Field(default=".etl_home", description="embedded PostgreSQL, Dagster instance, artifacts, inbox")
    inbox: str | None = Field(default=None, description="folder (or bucket prefix: `s3://bucket/inbox`) watched by `new_export_sensor`", json_schema_extra=_shown("$ETL_HOME/inbox"))
    artifacts: str | None = Field(default=None, description="raw copies (`raw/<sha256>.<ext>`), Parquet (`transformed/<sha256>/<version>/`), media", json_schema_extra=_shown("$ETL_HOME/artifacts"))
    handles_url: str | None = Field(default=None, description="where the IO manager keeps handles: a path or an fsspec URL", json_schema_extra=_shown("$ETL_ARTIFACTS/handles"))
    batch_size: int = Field(default=2000, gt=0, description="rows per Parquet row group; small groups keep memory flat at any export size")
    workers: int = Field(default_factory=default_workers, gt=0, description="processes that transform messages in parallel", json_schema_extra=_shown("cores, at most 4"))
    chunk_messages: int = Field(default=50_000, gt=0, description="messages per transform checkpoint: a crashed run resumes from the last one")
    text_search_config: str = Field(default="simple", description="text search configuration of `messages.content_tsv` (e.g. `english`), set before the first load")
    memory_limit_mb: int | None = Field(default=None, gt=0, description="stop with a clear error past this memory use of the process tree")
    max_member_bytes: int | None = Field(default=None, gt=0, description="largest `messages.json` accepted (guards against decompression bombs)")
    media_max_file_bytes: int | None = Field(default=None, gt=0, description="largest media file copied, counted in written bytes (larger ones are `skipped`)", json_schema_extra=_shown("512 MiB"))
    media_max_total_bytes: int | None = Field(default=None, gt=0, description="media bytes copied per export", json_schema_extra=_shown("free disk of `ETL_ARTIFACTS` minus 5% (at least 1 GiB)"))
    connect_wait_seconds: float = Field(default=60.0, ge=0, description="how long a connection waits for a free slot (connection limit) or a starting server")
    lock_timeout_seconds: float = Field(default=1800.0, ge=0, description="longest wait for a lock, e.g. another load of the same export (then a clear error)")
    idle_in_transaction_timeout_seconds: float = Field(default=300.0, ge=0, description="the server ends a session idle inside a transaction this long, freeing its locks")
    statement_timeout_seconds: float = Field(default=0.0, ge=0, description="longest single statement (`0`: none; a first load's index builds take minutes)")
    raw_copy: bool = Field(default=True, description="Dagster keeps a content-addressed copy of each export under `$ETL_ARTIFACTS/raw` (`false`: reads the inbox file in place; one changed after it was hashed fails the run)")
    sensor_bytes_per_tick: int = Field(default=256 << 20, gt=0, description="most bytes the inbox sensor reads in one tick to fingerprint new files", json_schema_extra=_shown("256 MiB"))

    @model_validator(mode="before")
    @classmethod
    def _paths_under_home(cls, data: Any) -> Any:
        """Absolute paths, with the inbox and artifacts under the home unless set."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None}
        home = Path(str(data.get("home") or ".etl_home")).expanduser().absolute()
        artifacts = Path(str(data.get("artifacts") or home / "artifacts")).expanduser().absolute()
        data["home"] = str(home)
        data["artifacts"] = str(artifacts)
        inbox = str(data.get("inbox") or home / "inbox")
        data["inbox"] = inbox if is_url(inbox) else str(Path(inbox).expanduser().absolute())
        data.setdefault("handles_url", str(artifacts / "handles"))
        return data

    @property
    def home_dir(self) -> Path:
        return Path(self.home)

    @property
    def inbox_dir(self) -> Path:
        """A local folder, or a ``UPath`` for a bucket prefix (``s3://bucket/inbox``)."""
        return location(self.inbox or str(Path(self.home) / "inbox"))

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.artifacts or Path(self.home) / "artifacts")

    @property
    def dagster_home(self) -> Path:
        return Path(self.home) / "dagster"

    def run_options(self) -> dict[str, Any]:
        """The run-settable fields only (for the Dagster resource)."""
        return {name: getattr(self, name) for name in PipelineOptions.model_fields}


class ETLConfig(PipelineOptions, BaseSettings):
    """Every setting: ``ETL_<FIELD>`` in the environment (``ETL_SCHEMA`` for ``schema_name``), or given by keyword."""

    model_config = SettingsConfigDict(
        env_prefix="ETL_", frozen=True, extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    database_url: str | None = Field(default=None, repr=False, description="warehouse PostgreSQL (also holds Dagster's storage)", json_schema_extra=_shown("embedded server"))
    schema_name: str = Field(default="skype", validation_alias=AliasChoices("schema_name", "ETL_SCHEMA"), description="warehouse schema")
    concurrent_runs: int = Field(default=2, gt=0, description="Dagster runs in progress at once (the run queue of the generated `dagster.yaml`); a backfill or a full inbox queues the rest")

    @field_validator("schema_name")
    @classmethod
    def _schema_fits_with_its_staging_schema(cls, value: str) -> str:
        return check_schema_name(value, "ETL_SCHEMA")


def load_config(**overrides: Any) -> ETLConfig:
    """The configuration from the environment and ``overrides`` (``None`` values ignored), or a clear error.

    Raises :class:`InvalidSettingError` naming the variable and the reason (never its value,
    which may be a URL with a password).
    """
    try:
        return ETLConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        problem = e.errors()[0]
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidSettingError):
            raise cause from None
        field = str(problem["loc"][0]) if problem["loc"] else "setting"
        name = variable_name("schema_name" if field == "ETL_SCHEMA" else field)
        raise InvalidSettingError(name, problem["msg"].lower()) from None


def variable_name(field: str) -> str:
    """The environment variable of a field."""
    return "ETL_SCHEMA" if field == "schema_name" else f"ETL_{field.upper()}"


def _shown_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def settings_table() -> str:
    """Every setting as a Markdown table (the README's, checked by a test against this)."""
    order = ["home", "inbox", "artifacts", "handles_url", "database_url", "schema_name"]
    fields = ETLConfig.model_fields
    names = order + [name for name in fields if name not in order]
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name in names:
        info = fields[name]
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        shown = extra.get("shown_default") or _shown_value(info.default)
        lines.append(f"| `{variable_name(name)}` | {shown} | {info.description} |")
    return "\n".join(lines) + "\n"
