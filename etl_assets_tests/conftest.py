"""Shared fixtures: a real PostgreSQL per test session, a fresh schema per test, generated exports.

By default the session starts the embedded PostgreSQL in a temporary ETL_HOME. With
``ETL_TEST_DATABASE_URL`` set (for example ``postgresql://postgres@127.0.0.1:5432/test``)
the tests run against that server instead, in a database they create and drop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.load.embedded import start_embedded, stop_embedded
from etl_assets.etl.load.loader import Loader
from etl_assets.samples import ExportTruth, generate_export


def _with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[str, Path | None]]:
    """Admin URL of the PostgreSQL server under test, and its ETL_HOME when it is the embedded one."""
    external = os.environ.get("ETL_TEST_DATABASE_URL")
    if external:
        yield external, None
        return
    # Not under pytest's basetemp: pytest prunes old basetemps while a server may still use one.
    home = Path(tempfile.mkdtemp(prefix="skype-etl-test-"))
    try:
        yield start_embedded(home), home
    finally:
        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(postgres_server: tuple[str, Path | None]) -> str:
    return postgres_server[0]


@contextmanager
def _new_database(server_url: str, prefix: str) -> Iterator[str]:
    """A database with a unique name on the server, dropped (whoever is still connected) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A database created for this test session and dropped after it."""
    with _new_database(server_url, "skype_etl_test") as url:
        yield url


@pytest.fixture
def own_database(server_url: str) -> Iterator[str]:
    """A database for one test alone: a Dagster daemon started on it sees no other test's runs."""
    with _new_database(server_url, "skype_etl_own") as url:
        yield url


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    """A unique warehouse schema for one test, dropped after it."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        for s in (name, f"{name}_staging"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))


@pytest.fixture
def loader(database_url: str, schema: str) -> Loader:
    return Loader(database_url, schema)


@pytest.fixture(scope="session")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> ExportTruth:
    """A generated export with every type and quirk, a few bad records, as a .tar."""
    folder = tmp_path_factory.mktemp("exports")
    return generate_export(folder / "8_live_small_export.tar", messages=600, seed=11, bad_records=4,
                           digest=folder / "small.digest.jsonl")


def table_checksums(database_url: str, schema: str) -> dict[str, str]:
    """An ordered checksum of every row of every warehouse table (bookkeeping times excluded)."""
    from etl_assets.etl import schema as s

    out: dict[str, str] = {}
    with psycopg.connect(database_url) as conn:
        for table in s.TRANSFORMED_TABLES + s.DERIVED_TABLES + (s.EXPORTS,):
            columns = [c.name for c in table.columns if c.name != "loaded_at"]
            query = sql.SQL("SELECT md5(string_agg(row_text, '|' ORDER BY row_text)) FROM (SELECT ROW({}){} AS row_text FROM {}.{}) r").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL("::text"),
                sql.Identifier(schema),
                sql.Identifier(table.name),
            )
            out[table.name] = conn.execute(query).fetchone()[0] or ""
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that touches PostgreSQL as ``db`` (CI runs those against a second server)."""
    for item in items:
        if {"server_url", "database_url", "postgres_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


@pytest.fixture(autouse=True)
def _isolated_database_url_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without ETL_DATABASE_URL and leaves none behind (Definitions set it)."""
    monkeypatch.delenv("ETL_DATABASE_URL", raising=False)
