"""Load order does not change the warehouse: any order of the same exports gives the same rows.

Three exports of overlapping accounts are built here: Ann's export of 10 January, Ann's
later export of 1 March (a member promoted from User to Admin, a new display name, a new
topic with the same conversation ``version``, an edited message) and Bob's export of
10 January (the same date as Ann's first: the tie-break decides) sharing the group chat.
Loaded in all six orders into fresh schemas they must give identical checksums of every
table and the newest values.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import psycopg
from psycopg import sql

from etl_assets.etl.pipeline import ETLPipeline

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import drop_schema, pipeline_config

GROUP = "19:trip0rder@thread.skype"
ANN, BOB, CAT = "8:live:ann", "8:live:bob", "8:live:cat"


def _message(mid: int, conversation: str, sender: str, content: str, *, name: str | None, version: int | None = None,
             props: dict | None = None) -> dict:
    return {
        "id": str(mid),
        "conversationid": conversation,
        "originalarrivaltime": f"2024-12-0{mid % 9 + 1}T10:00:00.000Z",
        "messagetype": "RichText",
        "version": version if version is not None else mid,
        "from": sender,
        "displayName": name,
        "content": content,
        "properties": props,
        "amsreferences": None,
    }


def _group(topic: str, members: list, messages: list[dict]) -> dict:
    return {
        "id": GROUP,
        "displayName": topic,
        "version": 1733000000000,  # the same in every export: the export date must decide
        "properties": {"conversationstatus": "Accepted"},
        "threadProperties": {"topic": topic, "membercount": len(members), "members": json.dumps(members)},
        "MessageList": messages,
    }


def _documents() -> dict[str, dict]:
    hello = _message(1733000000001, GROUP, BOB, "hello all", name="Bob")
    plan = _message(1733000000002, GROUP, ANN, "draft plan", name=None)
    cat_says = _message(1733000000003, GROUP, CAT, "count me in", name="Cat")
    ann_d1 = {
        "userId": ANN,
        "exportDate": "2025-01-10T10:00",
        "conversations": [
            _group("Trip", [{"MemberMri": ANN, "Role": "Admin"}, {"MemberMri": BOB, "Role": "User"},
                            {"MemberMri": CAT, "Role": "User"}], [hello, plan, cat_says]),
            # Only in the first export: named after Bob, whose name changes later.
            {"id": BOB, "displayName": None, "MessageList": [_message(1733000000010, BOB, BOB, "hi", name="Bob")]},
        ],
    }
    edited = _message(1733000000002, GROUP, ANN, "final plan", name=None, version=1733000999999,
                      props={"edittime": "1733000999999"})
    ann_d2 = {
        "userId": ANN,
        "exportDate": "2025-03-01T09:30",
        "conversations": [
            _group("Trip 2025", [{"MemberMri": ANN, "Role": "Admin"}, {"MemberMri": BOB, "Role": "Admin"}, CAT],
                   [hello, edited, cat_says,
                    _message(1733000000004, GROUP, BOB, "booked", name="Robert")]),
        ],
    }
    bob_d3 = {
        "userId": BOB,
        "exportDate": "2025-01-10T10:00",  # the same date as Ann's first export
        "conversations": [
            _group("Trip", [{"MemberMri": ANN, "Role": "Admin"}, {"MemberMri": BOB, "Role": "User"},
                            {"MemberMri": CAT, "Role": "User"}],
                   [dict(hello, displayName=None), plan, dict(cat_says, displayName="Catherine"),
                    _message(1733000000005, GROUP, BOB, "only in bob's export", name=None)]),
            {"id": ANN, "displayName": "Ann", "MessageList": [_message(1733000000011, ANN, ANN, "hey", name="Ann")]},
        ],
    }
    return {"ann_d1": ann_d1, "ann_d2": ann_d2, "bob_d3": bob_d3}


def _values(database_url: str, schema: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql.SQL(query).format(s=sql.Identifier(schema))).fetchall()


def test_every_load_order_gives_the_same_tables_and_the_newest_values(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    paths = {}
    for name, document in _documents().items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(document))
    checksums: dict[tuple[str, ...], dict[str, str]] = {}
    for number, order in enumerate(itertools.permutations(paths)):
        target = f"{schema}_{number}"
        try:
            pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", target))
            for name in order:
                pipeline.run(paths[name])
            checksums[order] = table_checksums(database_url, target)
            newest = {
                "role": _values(database_url, target, f"SELECT role FROM {{s}}.memberships WHERE conversation_id = '{GROUP}' AND person_id = '{BOB}'"),
                "cat_role": _values(database_url, target, f"SELECT role FROM {{s}}.memberships WHERE conversation_id = '{GROUP}' AND person_id = '{CAT}'"),
                "name": _values(database_url, target, f"SELECT display_name FROM {{s}}.people WHERE person_id = '{BOB}'"),
                "chat": _values(database_url, target, f"SELECT display_name FROM {{s}}.conversations WHERE conversation_id = '{BOB}'"),
                "topic": _values(database_url, target, f"SELECT topic, display_name FROM {{s}}.conversations WHERE conversation_id = '{GROUP}'"),
                "plan": _values(database_url, target, "SELECT content_text FROM {s}.messages WHERE message_id = '1733000000002'"),
                "sources": _values(database_url, target, "SELECT count(*) FROM {s}.message_sources"),
            }
            assert newest == {
                "role": [("Admin",)],  # promoted in the newest export
                "cat_role": [("User",)],  # the newest export lists Cat without a role: the known role stays
                "name": [("Robert",)],
                "chat": [("Robert",)],  # the 1:1 chat follows the person's newest name
                "topic": [("Trip 2025", "Trip 2025")],
                "plan": [("final plan",)],
                "sources": [(4 + 4 + 5,)],  # one row per message and export it came from
            }, order
        finally:
            drop_schema(database_url, target)
    first = next(iter(checksums.values()))
    differing = {
        " -> ".join(order): sorted(table for table in first if sums[table] != first[table])
        for order, sums in checksums.items()
        if sums != first
    }
    assert differing == {}, differing


def test_a_warehouse_from_the_previous_schema_is_upgraded_and_keeps_its_export_ids(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    from etl_assets.etl import schema as s
    from etl_assets.etl.load.loader import Loader

    path = tmp_path / "ann_d1.json"
    path.write_text(json.dumps(_documents()["ann_d1"]))
    ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema)).run(path)
    published = [c.name for t in s.ALL_TABLES for c in t.columns if c.published]
    with psycopg.connect(database_url) as conn:  # as the previous schema had it
        for table, column in (("conversations", "source_export"), ("conversations", "named_after_person"),
                              ("people", "name_export"), ("memberships", "role_export")):
            conn.execute(sql.SQL("ALTER TABLE {}.{} DROP COLUMN {}").format(*map(sql.Identifier, (schema, table, column))))
        conn.execute(sql.SQL("UPDATE {}.exports SET export_id = 1").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("UPDATE {}.message_sources SET export_id = 1").format(sql.Identifier(schema)))
        for table in ("exports", "message_sources"):
            conn.execute(sql.SQL("ALTER TABLE {}.{} ALTER COLUMN export_id TYPE integer").format(
                sql.Identifier(schema), sql.Identifier(table)))
    Loader(database_url, schema).migrate()
    later = tmp_path / "ann_d2.json"
    later.write_text(json.dumps(_documents()["ann_d2"]))
    again = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema))
    again.run(later)
    again.run(path)  # republished by another transform run: keeps its old id
    columns = _values(database_url, schema, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                      f"WHERE table_schema = '{schema}' AND (column_name = 'export_id' OR column_name IN "
                      f"({', '.join(repr(c) for c in published)}))")
    assert {(t, c) for t, c, _ in columns} >= {(t.name, c.name) for t in s.ALL_TABLES for c in t.columns if c.published}
    assert {d for _, c, d in columns if c == "export_id"} == {"bigint"}
    ids = _values(database_url, schema, "SELECT export_id, count(*) FROM {s}.message_sources GROUP BY 1 ORDER BY 1")
    assert ids[0] == (1, 4) and len(ids) == 2
    assert _values(database_url, schema, f"SELECT role FROM {{s}}.memberships WHERE conversation_id = '{GROUP}' "
                   f"AND person_id = '{BOB}'") == [("Admin",)]


def test_an_organisations_exports_in_either_order_give_the_same_tables(database_url: str, tmp_path: Path) -> None:
    """Colleagues' exports share a group chat whose media only one archive holds: its attachments
    point at the stored file whichever export came first."""
    from etl_assets.samples.organisation import generate_organisation

    exports = generate_organisation(tmp_path / "org", exports=3, messages=150, seed=5)
    schemas = {"forward": list(exports), "backward": list(reversed(exports))}
    try:
        for schema, order in schemas.items():
            pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / schema, schema))
            for path in order:
                pipeline.run(path)
        assert table_checksums(database_url, "forward") == table_checksums(database_url, "backward")
    finally:
        for schema in schemas:
            drop_schema(database_url, schema)
