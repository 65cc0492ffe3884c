"""The Loader against a real PostgreSQL: schema, COPY, one-transaction publish, idempotency."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.config import ETLConfig
from etl_assets.etl import schema as s
from etl_assets.etl.extract import Extractor
from etl_assets.etl.load.loader import ExportInfo, Loader
from etl_assets.etl.warehouse.queries import Warehouse
from etl_assets.etl.transform.transformer import Transformer

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import drop_schema


def _transform(path: Path, out: Path, sha: str) -> Path:
    Transformer(out, export_sha256=sha, config=ETLConfig(workers=1)).run(Extractor(path))
    return out


def _info(sha: str, name: str = "export.tar") -> ExportInfo:
    return ExportInfo(sha256=sha, file_name=name, user_id="8:live:me", export_date="2025-04-30T18:02", bytes=1)


def test_migrate_is_idempotent_and_creates_every_table(loader: Loader, database_url: str, schema: str) -> None:
    loader.migrate()
    loader.migrate()
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
        }
        assert tables == {t.name for t in s.ALL_TABLES}
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'messages' "
            "ORDER BY ordinal_position",
            (schema,),
        ).fetchall()
    assert [c[0] for c in columns] == [c.name for c in s.MESSAGES.columns]


def test_load_matches_truth_and_reload_changes_nothing(
    loader: Loader, database_url: str, schema: str, small_export, tmp_path: Path
) -> None:
    sha = "a" * 64
    out = _transform(small_export.path, tmp_path / "t", sha)
    result = loader.load(out, _info(sha))
    assert result.messages == small_export.messages
    assert result.rejected == small_export.rejected
    counts = Warehouse(database_url, schema).table_counts()
    assert counts["messages"] == small_export.messages
    assert counts["conversations"] == small_export.conversations
    assert counts["rejected_records"] == small_export.rejected
    for table, expected in small_export.rows.items():
        if table in counts:
            assert counts[table] == expected, table
    before = table_checksums(database_url, schema)
    again = loader.load(out, _info(sha))
    assert again.already_loaded
    assert sum(again.rows_changed.values()) == 0
    assert table_checksums(database_url, schema) == before
    with psycopg.connect(database_url) as conn:
        staging = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (f"{schema}_staging",)
        ).fetchall()
        parts = conn.execute(sql.SQL("SELECT count(*) FROM {}.staged_parts").format(sql.Identifier(f"{schema}_staging"))).fetchone()[0]
    assert staging == [("staged_parts",)] and parts == 0  # publishing dropped the export's staging


def _export_doc(version: int, text: str, extra: list[dict] | None = None) -> dict:
    message = {
        "id": "1600000000000",
        "conversationid": "8:live:bob",
        "originalarrivaltime": "2020-09-13T12:26:40.123Z",
        "messagetype": "RichText",
        "version": version,
        "from": "8:live:bob",
        "displayName": "Bob",
        "content": text,
        "properties": None,
    }
    return {
        "userId": "8:live:me",
        "exportDate": "2025-04-30T18:02",
        "conversations": [
            {"id": "8:live:bob", "displayName": None, "MessageList": [message, *(extra or [])]},
        ],
    }


def test_newer_version_wins_across_exports_and_older_does_not_overwrite(
    loader: Loader, database_url: str, schema: str, tmp_path: Path
) -> None:
    def load(version: int, text: str, sha: str, extra=None) -> None:
        path = tmp_path / f"{sha[:4]}.json"
        path.write_text(json.dumps(_export_doc(version, text, extra)))
        loader.load(_transform(path, tmp_path / sha[:4], sha), _info(sha, path.name))

    load(1, "first <at id=\"8:live:me\">Me</at>", "1" * 64)
    load(3, "edited", "3" * 64)
    load(2, "stale", "2" * 64)
    with psycopg.connect(database_url) as conn:
        text, version = conn.execute(
            sql.SQL("SELECT content_text, version FROM {}.messages").format(sql.Identifier(schema))
        ).fetchone()
        mentions = conn.execute(sql.SQL("SELECT count(*) FROM {}.mentions").format(sql.Identifier(schema))).fetchone()[0]
        sources = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.message_sources").format(sql.Identifier(schema))
        ).fetchone()[0]
        name = conn.execute(sql.SQL("SELECT display_name FROM {}.conversations").format(sql.Identifier(schema))).fetchone()[0]
    assert (text, version) == ("edited", 3)
    assert mentions == 0  # the edited copy has no mention: the old child rows went with the old version
    assert sources == 3
    assert name == "Bob"  # a 1:1 chat without displayName is named after the other person


_PLACEHOLDER = "zz:placeholder"
_PLACEHOLDER_VALUES = {"text": _PLACEHOLDER, "bigint": 0, "integer": 0, "boolean": False, "jsonb": "{}"}


def _occupy(database_url: str, schema: str, tables: tuple[s.Table, ...]) -> None:
    """Give each table one unrelated row, so that a load must merge into it."""
    with psycopg.connect(database_url) as conn:
        for table in tables:
            columns = [c for c in table.data_columns if not c.nullable]
            values = [
                "2020-01-01T00:00:00Z" if c.pg_type == "timestamptz" else _PLACEHOLDER_VALUES[c.pg_type]
                for c in columns
            ]
            conn.execute(
                sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                    sql.Identifier(schema),
                    sql.Identifier(table.name),
                    sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
                    sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                ),
                values,
            )


def _indexes(database_url: str, schema: str) -> set[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return {
            (name, definition.replace(f"{schema}.", "S."))
            for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,)
            )
        }


def test_first_load_into_empty_tables_equals_a_merge(
    database_url: str, schema: str, small_export, tmp_path: Path
) -> None:
    sha = "b" * 64
    out = _transform(small_export.path, tmp_path / "t", sha)
    merged_schema = f"{schema}_m"
    tables = (s.MESSAGES, *(t for t in s.TRANSFORMED_TABLES if t.merge == "message_child"), s.MESSAGE_SOURCES)
    try:
        bulk = Loader(database_url, schema)
        bulk.migrate()
        created = _indexes(database_url, schema)
        first = bulk.load(out, _info(sha))
        assert set(first.bulk_loaded) == {t.name for t in tables}
        assert _indexes(database_url, schema) == created  # every key and index is back, under its name

        merge = Loader(database_url, merged_schema)
        merge.migrate()
        _occupy(database_url, merged_schema, tables)
        merged = merge.load(out, _info(sha))
        assert merged.bulk_loaded == [] and merged.rows_staged["messages"] > 0
        with psycopg.connect(database_url) as conn:
            for table in tables:
                conn.execute(
                    sql.SQL("DELETE FROM {}.{} WHERE conversation_id = %s").format(
                        sql.Identifier(merged_schema), sql.Identifier(table.name)
                    ),
                    (_PLACEHOLDER,),
                )
        assert table_checksums(database_url, merged_schema) == table_checksums(database_url, schema)
        assert Warehouse(database_url, schema).table_counts()["messages"] == small_export.messages
    finally:
        drop_schema(database_url, merged_schema)


def test_duplicates_inside_one_export_keep_the_highest_version(loader: Loader, database_url: str, schema: str, tmp_path: Path) -> None:
    doc = _export_doc(5, "final")
    older = dict(doc["conversations"][0]["MessageList"][0], version=4, content="draft")
    doc["conversations"][0]["MessageList"].append(older)
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(doc))
    sha = "d" * 64
    result = loader.load(_transform(path, tmp_path / "d", sha), _info(sha))
    assert result.messages == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            sql.SQL("SELECT content_text FROM {}.messages").format(sql.Identifier(schema))
        ).fetchone()[0] == "final"


def test_phase_stats_are_recorded(loader: Loader, database_url: str, schema: str) -> None:
    loader.migrate()
    row = {"export_sha256": "e" * 64, "run_id": "r1", "phase": "load", "messages_processed": 10, "duration_seconds": 0.5}
    Warehouse(database_url, schema).record_phase_stats([row])
    Warehouse(database_url, schema).record_phase_stats([{**row, "messages_processed": 11}])
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT phase, messages_processed FROM {}.etl_phase_stats").format(sql.Identifier(schema))
        ).fetchall()
    assert rows == [("load", 11)]


def test_text_search_configuration_is_configurable(database_url: str, schema: str) -> None:
    Loader(database_url, schema, config=ETLConfig(text_search_config="english")).migrate()
    with psycopg.connect(database_url) as conn:
        expression = conn.execute(
            "SELECT generation_expression FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'messages' AND column_name = 'content_tsv'",
            (schema,),
        ).fetchone()[0]
    assert "english" in expression
    with pytest.raises(ValueError):
        Loader(database_url, schema, config=ETLConfig(text_search_config="english; DROP TABLE x")).migrate()


def test_first_load_settles_duplicate_copies_like_a_merge(database_url: str, schema: str, tmp_path: Path) -> None:
    """A message held three times (an older edit with another mention, and the final copy twice):
    the first load keeps the final copy and its rows once, exactly as a merge does."""
    final = 'final <at id="8:live:ann">Ann</at>'
    doc = _export_doc(5, final)
    messages = doc["conversations"][0]["MessageList"]
    messages.append(dict(messages[0], version=4, content='draft <at id="8:live:cat">Cat</at>'))
    messages.append(dict(messages[0]))
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(doc))
    sha = "f" * 64
    out = _transform(path, tmp_path / "t", sha)
    merged_schema = f"{schema}_m"
    tables = (s.MESSAGES, *(t for t in s.TRANSFORMED_TABLES if t.merge == "message_child"), s.MESSAGE_SOURCES)
    try:
        first = Loader(database_url, schema)
        result = first.load(out, _info(sha))
        assert s.MESSAGES.name in result.bulk_loaded and result.messages == 1
        merge = Loader(database_url, merged_schema)
        merge.migrate()
        _occupy(database_url, merged_schema, tables)
        assert merge.load(out, _info(sha)).bulk_loaded == []
        with psycopg.connect(database_url) as conn:
            for table in tables:
                conn.execute(
                    sql.SQL("DELETE FROM {}.{} WHERE conversation_id = %s").format(
                        sql.Identifier(merged_schema), sql.Identifier(table.name)
                    ),
                    (_PLACEHOLDER,),
                )
            mentions = conn.execute(
                sql.SQL("SELECT person_id FROM {}.mentions").format(sql.Identifier(schema))
            ).fetchall()
        assert mentions == [("8:live:ann",)]
        assert table_checksums(database_url, merged_schema) == table_checksums(database_url, schema)
    finally:
        drop_schema(database_url, merged_schema)
