"""Helpers for tests that build Definitions against the test database."""

from __future__ import annotations

from pathlib import Path

from etl_assets.settings import Settings


def settings_for_test(tmp_path: Path, database_url: str, schema: str) -> Settings:
    home = tmp_path / "home"
    artifacts = home / "artifacts"
    return Settings(
        home=home,
        inbox=home / "inbox",
        artifacts=artifacts,
        handles_url=str(artifacts / "handles"),
        database_url=database_url,
        schema=schema,
        batch_size=5000,
        workers=2,
        memory_limit_mb=None,
        max_member_bytes=None,
    )
