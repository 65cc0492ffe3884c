"""Settings read from the environment, shared by the command and the Dagster definitions.

| variable | default | meaning |
|---|---|---|
| ``ETL_HOME`` | ``.etl_home`` | embedded PostgreSQL, Dagster instance, artifacts, inbox |
| ``ETL_INBOX`` | ``$ETL_HOME/inbox`` | folder watched for new exports |
| ``ETL_ARTIFACTS`` | ``$ETL_HOME/artifacts`` | raw copies, Parquet datasets, handles |
| ``ETL_HANDLES_URL`` | ``$ETL_ARTIFACTS/handles`` | where the IO manager keeps handles (path or URL) |
| ``ETL_DATABASE_URL`` | embedded server | warehouse PostgreSQL |
| ``ETL_SCHEMA`` | ``skype`` | warehouse schema |
| ``ETL_BATCH_SIZE`` | ``2000`` | rows per Parquet row group |
| ``ETL_WORKERS`` | cores, at most 4 | processes that transform messages |
| ``ETL_CHUNK_MESSAGES`` | ``50000`` | messages per transform checkpoint |
| ``ETL_TEXT_SEARCH_CONFIG`` | ``simple`` | PostgreSQL text search configuration of ``content_tsv`` |
| ``ETL_MEMORY_LIMIT_MB`` | none | stop with a clear error past this RSS |
| ``ETL_MAX_MEMBER_BYTES`` | none | largest ``messages.json`` accepted |
| ``ETL_MEDIA_MAX_FILE_BYTES`` | 512 MiB | largest media file copied (expanded bytes) |
| ``ETL_MEDIA_MAX_TOTAL_BYTES`` | free disk of ``ETL_ARTIFACTS`` minus 5% (at least 1 GiB) | media bytes copied per export |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from etl_assets.etl.schema import DEFAULT_TEXT_SEARCH_CONFIG
from etl_assets.etl.transform.transformer import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_MESSAGES


def _int_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def default_workers() -> int:
    """One transform process per core, up to four (the load is one PostgreSQL backend anyway)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Settings:
    home: Path
    inbox: Path
    artifacts: Path
    handles_url: str
    database_url: str | None
    schema: str
    batch_size: int
    workers: int
    chunk_messages: int
    memory_limit_mb: int | None
    max_member_bytes: int | None
    text_search_config: str = DEFAULT_TEXT_SEARCH_CONFIG
    media_max_file_bytes: int | None = None
    media_max_total_bytes: int | None = None

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("ETL_HOME") or ".etl_home").expanduser().absolute()
        artifacts = Path(os.environ.get("ETL_ARTIFACTS") or home / "artifacts").expanduser().absolute()
        return cls(
            home=home,
            inbox=Path(os.environ.get("ETL_INBOX") or home / "inbox").expanduser().absolute(),
            artifacts=artifacts,
            handles_url=os.environ.get("ETL_HANDLES_URL") or str(artifacts / "handles"),
            database_url=os.environ.get("ETL_DATABASE_URL") or None,
            schema=os.environ.get("ETL_SCHEMA") or "skype",
            batch_size=_int_env("ETL_BATCH_SIZE") or DEFAULT_BATCH_SIZE,
            workers=_int_env("ETL_WORKERS") or default_workers(),
            chunk_messages=_int_env("ETL_CHUNK_MESSAGES") or DEFAULT_CHUNK_MESSAGES,
            memory_limit_mb=_int_env("ETL_MEMORY_LIMIT_MB"),
            max_member_bytes=_int_env("ETL_MAX_MEMBER_BYTES"),
            text_search_config=os.environ.get("ETL_TEXT_SEARCH_CONFIG") or DEFAULT_TEXT_SEARCH_CONFIG,
            media_max_file_bytes=_int_env("ETL_MEDIA_MAX_FILE_BYTES"),
            media_max_total_bytes=_int_env("ETL_MEDIA_MAX_TOTAL_BYTES"),
        )
