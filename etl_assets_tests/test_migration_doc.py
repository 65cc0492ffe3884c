"""Every code block of docs/migration.md runs: Python against a real warehouse and a generated export, SQL on its tables."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.samples import generate_export

from .helpers import drop_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "migration.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
PLACEHOLDERS = ("DATABASE_URL", "SCHEMA", "ARTIFACTS", "HOME", "EXPORT_PATH")


def _blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(DOC.read_text(encoding="utf-8"))]


def _substitute(code: str, values: dict[str, str]) -> str:
    for name in PLACEHOLDERS:
        code = code.replace(f'"{name}"', repr(values[name]))
    return code


def _count(url: str, schema: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()[0]


def test_every_block_is_python_or_sql_and_uses_the_placeholders() -> None:
    blocks = _blocks()
    assert {lang for lang, _ in blocks} == {"python", "sql"}
    assert sum(lang == "python" for lang, _ in blocks) == 4
    for lang, body in blocks:
        if lang == "python":
            assert '"EXPORT_PATH"' in body and '"DATABASE_URL"' in body, body
        else:
            assert "skype." in body


def test_every_block_runs(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = generate_export(tmp_path / "8_live_migrating_export.tar", messages=700, seed=41)
    monkeypatch.setenv("ETL_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("ETL_WORKERS", "1")
    schemas: list[str] = []
    try:
        for number, (lang, body) in enumerate(_blocks()):
            if lang == "python":
                schema = f"t_doc_{uuid.uuid4().hex[:8]}"
                schemas.append(schema)
                values = {
                    "DATABASE_URL": database_url, "SCHEMA": schema, "EXPORT_PATH": str(truth.path),
                    "ARTIFACTS": str(tmp_path / f"artifacts-{number}"), "HOME": str(tmp_path / f"home-{number}"),
                }
                code = _substitute(body, values)
                exec(compile(code, f"{DOC.name} block {number}", "exec"), {"__name__": f"migration_block_{number}"})
                # every Python block loads the export into its schema, whole
                assert _count(database_url, schema, "messages") == truth.messages, number
                assert _count(database_url, schema, "conversations") == truth.conversations, number
            else:
                first = schemas[0]
                statement = body.replace("skype.", sql.Identifier(first).as_string() + ".")
                with psycopg.connect(database_url) as conn:
                    cursor = conn.execute(statement)
                    rows = cursor.fetchall() if cursor.description else None
                if rows is not None:
                    assert rows and sum(n for _, n in rows) > 0
        views = {name: _count(database_url, schemas[0], name) for name in ("raw_messages", "raw_conversations")}
        assert views == {"raw_messages": truth.messages, "raw_conversations": truth.conversations}
        with psycopg.connect(database_url) as conn:
            owner = conn.execute(
                sql.SQL("SELECT p.display_name FROM {} p JOIN {} e ON e.user_id = p.person_id").format(
                    sql.Identifier(schemas[0], "people"), sql.Identifier(schemas[0], "exports")
                )
            ).fetchone()[0]
        assert owner  # the owner has a name: the export's own, else user_display_name of the old call
    finally:
        for schema in schemas:
            drop_schema(database_url, schema)
