"""Every message of a large export, row by row, against what the generator wrote.

The generator keeps a digest of each distinct message as it writes it (time to the
millisecond, sender, type, readable text of plain messages, edit and deletion, and how many
rows of each child table it must give), counted from its own choices and never by the
project's parsers. One load of a 100,000-message export with media, through the command
a user runs, is then compared with it: every row of ``messages``, the child rows of every
message, and the row count of every table.
"""

from __future__ import annotations

import json
from collections import Counter

import psycopg
import pytest
from psycopg import sql

from etl_assets.samples import CHILD_TABLES, generate_export

from .helpers import drop_schema, run_cli

MESSAGES = 100_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, database_url: str):
    """The export, its truth and the warehouse schema holding one load of it."""
    root = tmp_path_factory.mktemp("digest")
    truth = generate_export(root / "8_live_digest_export.tar", messages=MESSAGES, seed=42, bad_records=7,
                            media=True, digest=root / "digest.jsonl")
    schema = "digest_" + root.name.replace("-", "_")[-20:].lower()
    done = run_cli("load", str(truth.path), "--database-url", database_url, "--schema", schema, "--json",
                   home=root / "home", env={"ETL_WORKERS": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    yield truth, schema, json.loads(done.stdout)
    drop_schema(database_url, schema)


def _query(database_url: str, query: sql.Composable) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def _messages(database_url: str, schema: str) -> dict[tuple[str, str], tuple]:
    rows = _query(database_url, sql.SQL(
        "SELECT conversation_id, message_id,"
        " (extract(epoch FROM date_trunc('milliseconds', sent_at)) * 1000)::bigint,"
        " sender_id, message_type, content_text, edited_at IS NOT NULL, deleted_at IS NOT NULL FROM {}.messages"
    ).format(sql.Identifier(schema)))
    return {(r[0], r[1]): r[2:] for r in rows}


def _children(database_url: str, schema: str) -> dict[tuple[str, str], dict[str, int]]:
    out: dict[tuple[str, str], dict[str, int]] = {}
    for table in CHILD_TABLES:
        rows = _query(database_url, sql.SQL(
            "SELECT conversation_id, message_id, count(*) FROM {}.{} GROUP BY 1, 2"
        ).format(sql.Identifier(schema), sql.Identifier(table)))
        for cid, mid, n in rows:
            out.setdefault((cid, mid), {})[table] = n
    return out


def test_the_export_is_large_and_has_media(loaded) -> None:
    truth, _, report = loaded
    assert truth.messages == MESSAGES and report["exports"][0]["messages"] == MESSAGES
    assert truth.rows["media_files"] > 1000  # the archive really carries media files


def test_every_message_row_equals_the_digest(loaded, database_url: str) -> None:
    truth, schema, _ = loaded
    stored = _messages(database_url, schema)
    assert len(stored) == truth.messages
    wrong: list[str] = []
    seen = 0
    texts = 0
    for d in truth.digest():
        seen += 1
        row = stored.get((d.conversation_id, d.message_id))
        if row is None:
            wrong.append(f"{d.conversation_id}/{d.message_id}: missing")
            continue
        sent_ms, sender, mtype, text, edited, deleted = row
        expected = (d.sent_ms, d.sender, d.message_type, edited if d.text is None else d.text, d.edited, d.deleted)
        got = (sent_ms, sender, mtype, edited if d.text is None else text, edited, deleted)
        texts += d.text is not None
        if got != expected:
            wrong.append(f"{d.conversation_id}/{d.message_id}: expected {expected}, got {got}")
    assert seen == truth.messages
    assert texts > truth.messages // 2  # most messages are plain text, and their text was compared
    assert not wrong, f"{len(wrong)} messages differ, e.g. " + "; ".join(wrong[:5])


def test_child_rows_of_every_message_equal_the_digest(loaded, database_url: str) -> None:
    truth, schema, _ = loaded
    stored = _children(database_url, schema)
    expected = {(d.conversation_id, d.message_id): d.children for d in truth.digest() if d.children}
    assert len(expected) > 1000
    wrong = [f"{key}: expected {want}, got {stored.get(key, {})}"
             for key, want in expected.items() if stored.get(key, {}) != want]
    extra = [f"{key}: unexpected {got}" for key, got in stored.items() if key not in expected]
    assert not wrong and not extra, f"{len(wrong)} differ, {len(extra)} unexpected: " + "; ".join((wrong + extra)[:5])
    totals = Counter()
    for counts in expected.values():
        totals.update(counts)
    assert {k: totals.get(k, 0) for k in CHILD_TABLES} == {k: truth.tables[k] for k in CHILD_TABLES}


def test_every_table_has_the_rows_of_the_truth(loaded, database_url: str) -> None:
    truth, schema, _ = loaded
    counts = {
        table: _query(database_url, sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))[0][0]
        for table in truth.tables
    }
    assert counts == truth.tables
    media = dict(_query(database_url, sql.SQL(
        "SELECT media_status, count(*) FROM {}.attachments WHERE doc_id IS NOT NULL GROUP BY 1"
    ).format(sql.Identifier(schema))))
    assert media.get("stored") == truth.rows["media_files"]
