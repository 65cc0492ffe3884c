"""The merge statements of a publish, one builder per ``Table.merge`` kind.

Each builder takes the warehouse schema, the table and its staging table and returns
the statements that merge the staged rows: newest version wins, child rows replaced only
when their message changed, provenance appended. See docs/architecture.md (load order).
"""

from __future__ import annotations

from psycopg import sql
from .. import schema as s
from .copy_order import COPY_ORDER, child_order, message_order, sorts_before


def _cols(columns) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name if hasattr(c, "name") else c) for c in columns)


def table_sql(schema_sql: sql.Identifier, table: s.Table) -> sql.Composed:
    return sql.SQL("{}.{}").format(schema_sql, sql.Identifier(table.name))


def _merge_message(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
        for n in table.column_names
        if n not in table.primary_key
    )
    others = [expr for expr, _ in COPY_ORDER[1:]]
    # Most conflicts are the same copy again: one cheap comparison settles those.
    conflict = sql.SQL(
        " ON CONFLICT (conversation_id, message_id) DO UPDATE SET {} WHERE CASE "
        "WHEN t.version <> EXCLUDED.version THEN t.version < EXCLUDED.version "
        "WHEN ROW({}) IS NOT DISTINCT FROM ROW({}) THEN false ELSE {} END"
    ).format(
        updates,
        sql.SQL(", ".join(e.format("t.") for e in others)),
        sql.SQL(", ".join(e.format("EXCLUDED.") for e in others)),
        sorts_before("EXCLUDED", "t", COPY_ORDER[1:]),
    )
    return [_insert_messages(schema_sql, table, staging, conflict)]


def _insert_messages(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed, conflict: sql.Composable) -> sql.Composed:
    """The winning copy of each staged message into the table; what changed into ``changed_messages``."""
    return sql.SQL(
        "WITH up AS (INSERT INTO {tgt} AS t ({cols}) SELECT DISTINCT ON (conversation_id, message_id) {cols} "
        "FROM {stg} ORDER BY {order}{conflict} RETURNING conversation_id, message_id, version) "
        "INSERT INTO changed_messages SELECT * FROM up"
    ).format(
        tgt=table_sql(schema_sql, table), cols=_cols(table.column_names), stg=staging, order=message_order(), conflict=conflict
    )


def _merge_message_child(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    target = table_sql(schema_sql, table)
    return [
        sql.SQL(
            "DELETE FROM {tgt} t USING changed_messages c "
            "WHERE t.conversation_id = c.conversation_id AND t.message_id = c.message_id"
        ).format(tgt=target),
        sql.SQL(
            "INSERT INTO {tgt} ({cols}) SELECT DISTINCT ON ({keys}) {scols} FROM {stg} s JOIN changed_messages c "
            "ON s.conversation_id = c.conversation_id AND s.message_id = c.message_id AND s.version = c.version "
            "ORDER BY {order} ON CONFLICT DO NOTHING"
        ).format(tgt=target, cols=_cols(names), stg=staging, **child_order(table)),
    ]


def _merge_insert_new(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    return [
        sql.SQL("INSERT INTO {tgt} ({cols}) SELECT DISTINCT {cols} FROM {stg} ON CONFLICT DO NOTHING").format(
            tgt=table_sql(schema_sql, table), cols=_cols(names), stg=staging
        )
    ]


def _not_older(schema_sql: sql.Identifier, column: str) -> sql.Composed:
    """True when the export being published is not older than the one ``t.<column>`` names.

    Exports compare by (``export_date``, ``export_id``): the newest wins, and the id (from the
    sha256) breaks ties between equal dates. A row naming no export (or an unknown one) loses.
    """
    return sql.SQL(
        "COALESCE((%(export_date)s::timestamptz, %(export_id)s::bigint) >= (SELECT COALESCE(e.export_date, "
        "'-infinity'::timestamptz), e.export_id FROM {s}.exports e WHERE e.export_id = t.{c}), true)"
    ).format(s=schema_sql, c=sql.Identifier(column))


def _merge_conversation(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    """The newest export's copy of each conversation, whole: the same whichever export came first."""
    names = [c.name for c in table.staging_columns]
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names if n != "conversation_id"
    )
    rest = sql.SQL(", ").join(
        sql.SQL("{} NULLS LAST").format(sql.Identifier(n)) for n in names if n not in ("conversation_id", "version")
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t ({cols}, source_export, named_after_person) "
            "SELECT DISTINCT ON (conversation_id) {cols}, %(export_id)s::bigint, false FROM {stg} "
            "ORDER BY conversation_id, version DESC NULLS LAST, {rest} "
            "ON CONFLICT (conversation_id) DO UPDATE SET {updates}, source_export = EXCLUDED.source_export, "
            "named_after_person = false WHERE {newer}"
        ).format(
            tgt=table_sql(schema_sql, table), cols=_cols(names), stg=staging, rest=rest, updates=updates,
            newer=_not_older(schema_sql, "source_export"),
        )
    ]


def _merge_person(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    """A person's display name from the newest export that knows one; owner once owner."""
    newer_name = sql.SQL("(EXCLUDED.display_name IS NOT NULL AND (t.display_name IS NULL OR {}))").format(
        _not_older(schema_sql, "name_export")
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t (person_id, display_name, is_owner, name_export) "
            "SELECT person_id, max(display_name), bool_or(is_owner), "
            "CASE WHEN max(display_name) IS NOT NULL THEN %(export_id)s::bigint END FROM {stg} GROUP BY person_id "
            "ON CONFLICT (person_id) DO UPDATE SET "
            "display_name = CASE WHEN {newer} THEN EXCLUDED.display_name ELSE t.display_name END, "
            "name_export = CASE WHEN {newer} THEN EXCLUDED.name_export ELSE t.name_export END, "
            "is_owner = t.is_owner OR EXCLUDED.is_owner "
            "WHERE {newer} OR (EXCLUDED.is_owner AND NOT t.is_owner)"
        ).format(tgt=table_sql(schema_sql, table), stg=staging, newer=newer_name)
    ]


def _merge_membership(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    """A member's role from the newest export that lists one; the source that came with a role, else the first."""
    newer_role = sql.SQL("(EXCLUDED.role IS NOT NULL AND (t.role IS NULL OR {}))").format(
        _not_older(schema_sql, "role_export")
    )
    source = sql.SQL(
        "(CASE WHEN (EXCLUDED.role IS NULL) = (t.role IS NULL) THEN LEAST(t.source, EXCLUDED.source) "
        "WHEN EXCLUDED.role IS NOT NULL THEN EXCLUDED.source ELSE t.source END)"
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t (conversation_id, person_id, role, source, role_export) "
            "SELECT DISTINCT ON (conversation_id, person_id) conversation_id, person_id, role, source, "
            "CASE WHEN role IS NOT NULL THEN %(export_id)s::bigint END FROM {stg} "
            "ORDER BY conversation_id, person_id, role NULLS LAST, source "
            "ON CONFLICT (conversation_id, person_id) DO UPDATE SET "
            "role = CASE WHEN {newer} THEN EXCLUDED.role ELSE t.role END, "
            "role_export = CASE WHEN {newer} THEN EXCLUDED.role_export ELSE t.role_export END, source = {source} "
            "WHERE {newer} OR {source} IS DISTINCT FROM t.source"
        ).format(tgt=table_sql(schema_sql, table), stg=staging, newer=newer_role, source=source)
    ]


def _merge_provenance(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [_insert_provenance(schema_sql, table, staging, sql.SQL(" ON CONFLICT DO NOTHING"))]


def _insert_provenance(schema_sql: sql.Identifier, table: s.Table, staging: sql.Composed, conflict: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {tgt} (conversation_id, message_id, export_id) "
        "SELECT DISTINCT conversation_id, message_id, %(export_id)s FROM {stg}{conflict}"
    ).format(tgt=table_sql(schema_sql, table), stg=staging, conflict=conflict)


MERGES = {
    "message": _merge_message,
    "message_child": _merge_message_child,
    "export": _merge_insert_new,
    "conversation": _merge_conversation,
    "person": _merge_person,
    "membership": _merge_membership,
    "provenance": _merge_provenance,
}


def fill_one_to_one_names(schema_sql: sql.Identifier) -> sql.Composed:
    """Name a 1:1 chat without ``displayName`` after the other person, and follow that name when it changes.

    Runs over every such chat at every publish: a later export may rename the person without
    containing the chat, and the result must not depend on which came first.
    """
    return sql.SQL(
        "UPDATE {s}.conversations c SET display_name = p.display_name, named_after_person = true FROM {s}.people p "
        "WHERE c.kind = 'one_to_one' AND (c.display_name IS NULL OR c.named_after_person) "
        "AND p.display_name IS NOT NULL AND (NOT c.named_after_person OR c.display_name IS DISTINCT FROM p.display_name) "
        "AND p.person_id = CASE WHEN c.conversation_id ~ '^([0-9]+|guest):' THEN c.conversation_id "
        "ELSE '8:' || c.conversation_id END"
    ).format(s=schema_sql)


def export_id_of(sha256: str) -> int:
    """The export's short id: its sha256's first 15 hex digits (60 bits), whatever the load order."""
    return int(sha256[:15], 16)
