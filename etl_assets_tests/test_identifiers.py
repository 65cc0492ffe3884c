"""Warehouse schema names: a name whose ``_staging`` schema PostgreSQL would truncate is refused."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.definitions import build_definitions
from etl_assets.defs.resources import PostgresResource
from etl_assets.etl.identifiers import MAX_SCHEMA_BYTES, InvalidSettingError, check_schema_name, staging_schema_name

from etl_assets_tests.helpers import drop_schema, run_cli, config_for_test

TOO_LONG = "s" * 63  # fits PostgreSQL by itself; its staging schema would not


def _schemas_like(database_url: str, prefix: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (prefix + "%",)
        ).fetchall()
    return [r[0] for r in rows]


def test_the_longest_accepted_name_keeps_its_staging_schema_distinct(database_url: str) -> None:
    """At the limit PostgreSQL stores both names untruncated; one byte more is refused."""
    longest = "w" * MAX_SCHEMA_BYTES
    assert check_schema_name(longest) == longest
    with pytest.raises(InvalidSettingError, match="ETL_SCHEMA"):
        check_schema_name(longest + "w")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in (longest, staging_schema_name(longest)):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        assert sorted(_schemas_like(database_url, longest)) == sorted([longest, staging_schema_name(longest)])
    finally:
        drop_schema(database_url, longest)


@pytest.mark.parametrize("name", ["", "Skype", "1skype", "sky pe", "sky-pe", "pg_skype", "sk\u00fdpe"])
def test_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(InvalidSettingError, match="--schema"):
        check_schema_name(name, "--schema")


@pytest.mark.parametrize("via_env", [False, True], ids=["option", "environment"])
def test_cli_refuses_a_too_long_schema_with_exit_2_and_creates_nothing(
    via_env: bool, database_url: str, small_export, tmp_path: Path
) -> None:
    args = ["load", str(small_export.path), "--database-url", database_url]
    env = {"ETL_SCHEMA": TOO_LONG} if via_env else {}
    if not via_env:
        args += ["--schema", TOO_LONG]
    try:
        done = run_cli(*args, home=tmp_path / "home", env=env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert ("ETL_SCHEMA" if via_env else "--schema") in lines[0]
        assert "63-byte" in lines[0]
        assert _schemas_like(database_url, TOO_LONG[:40]) == []
    finally:
        drop_schema(database_url, TOO_LONG)


def test_dagster_definitions_and_resource_refuse_a_too_long_schema(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(InvalidSettingError, match="ETL_SCHEMA.*63-byte"):
        build_definitions(config_for_test(tmp_path, database_url, TOO_LONG))
    with pytest.raises(ValueError, match="ETL_SCHEMA.*63-byte"):
        PostgresResource(schema_name=TOO_LONG)
    assert PostgresResource(schema_name="skype").schema_name == "skype"
