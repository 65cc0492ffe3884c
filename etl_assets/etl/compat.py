"""SkypeETLPipeline: the one-call interface of the original project, on top of ETLPipeline.

Kept so scripts written against the original project keep working::

    SkypeETLPipeline(db_config={...}, output_dir="out").run_pipeline(file_path="export.tar")
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from .config import load_config
from .pipeline import ETLPipeline


def db_config_to_url(db_config: dict | str | None) -> str | None:
    """A PostgreSQL URL from the original ``db_config`` dict (host, port, dbname, user, password)."""
    if db_config is None or isinstance(db_config, str):
        return db_config
    user = quote(str(db_config.get("user", "postgres")), safe="")
    password = db_config.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    host = db_config.get("host", "localhost")
    port = db_config.get("port", 5432)
    dbname = db_config.get("dbname") or db_config.get("database") or "postgres"
    return f"postgresql://{auth}@{host}:{port}/{quote(str(dbname), safe='')}"


class SkypeETLPipeline:
    """``run_pipeline`` extracts, transforms and loads one export and returns a summary dict."""

    def __init__(self, db_config: dict | str | None = None, output_dir: str | Path = "output", schema: str = "skype") -> None:
        self.config = load_config(database_url=db_config_to_url(db_config), artifacts=str(output_dir), schema_name=schema)

    def run_pipeline(
        self,
        file_path: str | Path,
        is_tar: bool | None = None,
        user_display_name: str | None = None,
    ) -> dict:
        """Run all phases. ``is_tar`` is accepted for compatibility; the container is detected.

        ``user_display_name`` names the export owner in ``people`` when the export does not.
        """
        pipeline = ETLPipeline(self.config, copy_raw=False)
        result = pipeline.run(file_path)
        if user_display_name and result.raw.user_id:
            pipeline.warehouse.name_owner(result.transformed.user_id, user_display_name)
        return {
            "file_path": str(file_path),
            "export_sha256": result.raw.sha256,
            "user_id": result.transformed.user_id,
            "export_date": result.raw.export_date,
            "conversations": result.load.conversations,
            "message_count": result.load.messages,
            "rejected": result.load.rejected,
            "phases": {name: stats.to_dict() for name, stats in result.phases.items()},
        }
