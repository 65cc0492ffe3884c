"""``skype/html_archive`` and the statistics pictures, materialized through Dagster on a real warehouse.

The archive is compared with independent SQL over the same tables: one page set per
conversation holding exactly its messages, and a second run that rewrites only the
conversation a new message went into.
"""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from etl_assets.definitions import build_definitions
from etl_assets.defs.warehouse.plots import statistics
from etl_assets.etl.read.export.archive import STATE_FILE, folder_key
from etl_assets.samples import generate_export
from etl_assets.materialize import materialize_export

from .helpers import config_for_test, drop_schema

ARCHIVE = dg.AssetKey(["skype", "html_archive"])
ANALYTICS = dg.AssetKey(["skype", "analytics"])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def loaded(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("archive")
    schema = "t_archive_" + root.name[-6:].replace("-", "_").lower()
    schema = re.sub(r"[^a-z0-9_]", "_", schema)
    config = config_for_test(root, database_url, schema)
    truth = generate_export(root / "8_live_archive_export.tar", messages=900, seed=31)
    with dg.instance_for_test() as instance:
        _, result = materialize_export(config, instance, truth.path, quiet=True)
        assert result.success
        yield config, instance, schema
    drop_schema(database_url, schema)


def _run(config, instance, *keys: dg.AssetKey) -> dict[str, dict]:
    job = build_definitions(config).resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(keys))
    result = job.execute_in_process(instance=instance)
    assert result.success
    return {
        e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()
    }


def _rows(url: str, schema: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute(query, params).fetchall()


def _pages(archive: Path, conversation_id: str) -> list[Path]:
    return sorted((archive / "conversations" / folder_key(conversation_id) / "conversations").glob("*.html"))


def _messages_on_pages(pages: list[Path]) -> set[str]:
    ids: set[str] = set()
    for page in pages:
        ids |= set(re.findall(r'<div class="msg[^"]*" id="m-([^"]+)"', page.read_text(encoding="utf-8")))
    return ids


def test_archive_holds_every_conversation_and_rewrites_only_changed_ones(loaded, database_url: str) -> None:
    config, instance, schema = loaded
    graph = build_definitions(config).resolve_asset_graph()
    node = graph.get(ARCHIVE)
    assert not node.is_partitioned
    assert node.automation_condition is not None and node.automation_condition.get_label() == "after_loads"
    assert dg.AssetKey(["skype", "messages"]) in node.parent_keys

    meta = _run(config, instance, ARCHIVE)["skype/html_archive"]
    expected = dict(_rows(database_url, schema, "SELECT conversation_id, count(*) FROM messages GROUP BY 1"))
    assert len(expected) > 3
    assert meta["conversations"].value == len(expected)
    assert meta["messages"].value == sum(expected.values())
    assert meta["conversations_written"].value == len(expected)
    assert meta["conversations_unchanged"].value == 0

    index = Path(unquote(urlsplit(meta["dagster/uri"].value).path))
    assert index == Path(config.artifacts_dir) / "html_archive" / "index.html" == Path(meta["index"].value)
    archive = index.parent
    html = index.read_text(encoding="utf-8")
    links = re.findall(r'<a href="(conversations/[^"]+)"', html)
    assert len(links) == len(expected)
    for link in links:
        assert (archive / unquote(link)).is_file(), link
    pictures = re.findall(r'<img src="(stats/[^"]+\.png)"', html)
    assert sorted(pictures) == ["stats/messages_per_hour.png", "stats/messages_per_month.png", "stats/messages_per_person.png"]
    for picture in pictures:
        width, height = _png_size((archive / picture).read_bytes())
        assert width >= 600 and height >= 200

    first_page = archive / unquote(links[0])
    assert 'href="../index.html"' in first_page.read_text(encoding="utf-8")
    assert 'href="../../index.html"' in (first_page.parent.parent / "index.html").read_text(encoding="utf-8")
    for cid, count in expected.items():
        shown = _messages_on_pages(_pages(archive, cid))
        ids = {r[0] for r in _rows(database_url, schema, "SELECT message_id FROM messages WHERE conversation_id = %s", (cid,))}
        assert shown == ids and len(ids) == count, cid

    # nothing changed: nothing is written again
    before = {p: p.stat().st_mtime_ns for cid in expected for p in _pages(archive, cid)}
    meta = _run(config, instance, ARCHIVE)["skype/html_archive"]
    assert meta["conversations_written"].value == 0
    assert meta["conversations_unchanged"].value == len(expected)
    assert {p: p.stat().st_mtime_ns for p in before} == before

    # one new message in one conversation: only that conversation is written again
    target = min(expected, key=lambda c: (expected[c], c))
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(
            "INSERT INTO messages (conversation_id, message_id, sent_at, sender_id, sender_name, message_type, "
            "content_raw, content_text, version, server_generated) "
            "SELECT %s, '9100000000001', max(sent_at) + interval '1 minute', '8:live:late', 'Late Comer', 'RichText', "
            "'the newest words', 'the newest words', 1, false FROM messages WHERE conversation_id = %s",
            (target, target),
        )
    meta = _run(config, instance, ARCHIVE)["skype/html_archive"]
    assert meta["conversations_written"].value == 1
    assert meta["conversations_unchanged"].value == len(expected) - 1
    assert meta["messages"].value == sum(expected.values()) + 1
    assert "9100000000001" in _messages_on_pages(_pages(archive, target))
    assert "the newest words" in "".join(p.read_text(encoding="utf-8") for p in _pages(archive, target))
    for page, mtime in before.items():
        if folder_key(target) not in str(page):
            assert page.stat().st_mtime_ns == mtime, page
    assert (archive / STATE_FILE).is_file()

    # a conversation without messages any more leaves the archive
    gone = next(c for c in expected if c != target)
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("DELETE FROM messages WHERE conversation_id = %s", (gone,))
    meta = _run(config, instance, ARCHIVE)["skype/html_archive"]
    assert meta["conversations_removed"].value == 1 and meta["conversations_written"].value == 0
    assert not (archive / "conversations" / folder_key(gone)).exists()
    assert len(re.findall(r'<a href="(conversations/[^"]+)"', index.read_text(encoding="utf-8"))) == len(expected) - 1

    # a renamed conversation is written again; its name is text on every page, never markup
    renamed = next(c for c in expected if c not in (target, gone))
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("UPDATE conversations SET display_name = '<script>alert(1)</script> Renamed' WHERE conversation_id = %s",
                     (renamed,))
    meta = _run(config, instance, ARCHIVE)["skype/html_archive"]
    assert meta["conversations_written"].value == 1
    for page in [index, *_pages(archive, renamed)]:
        text = page.read_text(encoding="utf-8")
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Renamed" in text and "<script>" not in text, page


def test_statistics_pictures_in_analytics_metadata(loaded, database_url: str) -> None:
    config, instance, schema = loaded
    stats = {s.name: s for s in statistics(database_url, schema)}
    total = _rows(database_url, schema, "SELECT count(*) FROM messages")[0][0]
    months = _rows(database_url, schema, "SELECT count(DISTINCT date_trunc('month', sent_at)) FROM messages")[0][0]
    top = _rows(database_url, schema, "SELECT count(*) FROM messages GROUP BY sender_id ORDER BY 1 DESC LIMIT 1")[0][0]
    senders = _rows(database_url, schema, "SELECT count(DISTINCT sender_id) FROM messages")[0][0]
    assert sum(stats["messages_per_month.png"].values) == total and len(stats["messages_per_month.png"].labels) == months
    assert sum(stats["messages_per_hour.png"].values) == total and len(stats["messages_per_hour.png"].values) == 24
    person = stats["messages_per_person.png"]
    assert person.values[0] == top and len(person.values) == min(20, senders)
    assert person.values == sorted(person.values, reverse=True)

    meta = _run(config, instance, ANALYTICS)["skype/analytics"]
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", meta["statistics"].value)
    assert len(embedded) == 3
    for data in embedded:
        width, height = _png_size(base64.b64decode(data))
        assert width >= 600 and height >= 200
    for name in ("messages_per_month", "messages_per_hour", "messages_per_person"):
        path = Path(meta[f"plot/{name}"].value)
        assert path.parent == Path(config.artifacts_dir) / "statistics"
        assert path.read_bytes()[:8] == PNG_MAGIC
