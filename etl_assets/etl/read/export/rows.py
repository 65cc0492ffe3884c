"""The messages of one conversation, streamed in time order with their child rows.

Every format reads through here. The rows come from a server-side cursor in batches, so
memory stays bounded whatever the size of a conversation; the child rows (reactions,
attachments, quotes, ...) of a batch come as JSON aggregated by PostgreSQL, one query
per child table and batch (only tables with rows in the conversation), instead of one
query per message or a subquery per message and table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql

from ..warehouse import Span, table
from ..zones import Bound, Zone, since_instant, until_instant

BATCH_ROWS = 1000
"""Rows fetched from the server per round trip."""

CHILD_TABLES: tuple[tuple[str, str, bool], ...] = (
    # (table, order of its rows, one row per message at most)
    ("quotes", "position", False),
    ("mentions", "position", False),
    ("links", "position", False),
    ("url_previews", "position", False),
    ("attachments", "position", False),
    ("reactions", "reacted_at NULLS LAST, reaction, person_id", False),
    ("calls", "message_id", True),
    ("call_participants", "position", False),
    ("thread_events", "message_id", True),
    ("polls", "message_id", True),
    ("locations", "message_id", True),
    ("contact_cards", "position", False),
    ("translations", "message_id", True),
)
"""The message child tables of the warehouse and how their rows are ordered."""

_HIDDEN_CHILD_COLUMNS = ("conversation_id", "message_id", "version")


@dataclass(frozen=True)
class Selection:
    """Which messages to read: conversations, a time window, senders."""

    since: Bound | None = None
    until: Bound | None = None
    senders: tuple[str, ...] = ()


@dataclass
class Message:
    """One message as every format sees it; times are aware, in the requested zone."""

    conversation_id: str
    message_id: str
    sent_at: datetime
    sender_id: str | None
    sender_name: str
    message_type: str
    text: str
    edited_at: datetime | None
    deleted_at: datetime | None
    children: dict[str, list[dict]] = field(default_factory=dict)

    def child(self, name: str) -> list[dict]:
        return self.children.get(name) or []

    def single(self, name: str) -> dict | None:
        rows = self.children.get(name)
        return rows[0] if rows else None


SENDER_NAME = sql.SQL("coalesce(nullif(m.sender_name, ''), nullif(p.display_name, ''), m.sender_id, '')")
"""How a sender is named: the name on the message, else the person's name, else the id."""


def selection_filter(selection: Selection, zone: Zone) -> tuple[sql.Composable, dict]:
    """The WHERE conditions (on ``m`` = messages, ``p`` = people) and their parameters."""
    conditions: list[sql.Composable] = []
    params: dict = {}
    if selection.since is not None:
        conditions.append(sql.SQL("m.sent_at >= %(since)s"))
        params["since"] = since_instant(selection.since, zone)
    if selection.until is not None:
        instant, inclusive = until_instant(selection.until, zone)
        conditions.append(sql.SQL("m.sent_at <= %(until)s" if inclusive else "m.sent_at < %(until)s"))
        params["until"] = instant
    if selection.senders:
        conditions.append(
            sql.SQL(
                "(m.sender_id = ANY(%(senders)s) OR lower(m.sender_name) = ANY(%(senders_folded)s) "
                "OR lower(p.display_name) = ANY(%(senders_folded)s))"
            )
        )
        params["senders"] = [s.strip() for s in selection.senders]
        params["senders_folded"] = [s.strip().lower() for s in selection.senders]
    if not conditions:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ").join(conditions), params


def spans(
    conn: psycopg.Connection, schema: str, conversation_ids: list[str], selection: Selection, zone: Zone
) -> dict[str, Span]:
    """Messages, first and last send time per conversation in the selection (none: left out)."""
    where, params = selection_filter(selection, zone)
    query = sql.SQL(
        "SELECT m.conversation_id, count(*), min(m.sent_at), max(m.sent_at), "
        "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {calls} x "
        "WHERE x.conversation_id = m.conversation_id AND x.message_id = m.message_id)), "
        "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {attachments} x "
        "WHERE x.conversation_id = m.conversation_id AND x.message_id = m.message_id)) "
        "FROM {messages} m LEFT JOIN {people} p ON p.person_id = m.sender_id "
        "WHERE m.conversation_id = ANY(%(conversations)s) AND {where} GROUP BY m.conversation_id"
    ).format(
        calls=table(schema, "calls"), attachments=table(schema, "attachments"),
        messages=table(schema, "messages"), people=table(schema, "people"), where=where,
    )
    rows = conn.execute(query, {**params, "conversations": conversation_ids}).fetchall()
    return {
        cid: Span(n, zone.local(first), zone.local(last), calls, files)
        for cid, n, first, last, calls, files in rows
    }


def _children_of(
    conn: psycopg.Connection, schema: str, name: str, order: str, conversation_id: str, message_ids: list[str]
) -> dict[str, list[dict]]:
    """Message id -> its rows of child table ``name``, for one batch of messages (one index scan)."""
    query = _children_query(schema, name, order)
    return dict(conn.execute(query, {"c": conversation_id, "ids": message_ids}).fetchall())


@functools.lru_cache(maxsize=64)
def _children_query(schema: str, name: str, order: str) -> sql.Composed:
    hidden = sql.SQL(" - ").join(sql.Literal(c) for c in _HIDDEN_CHILD_COLUMNS)
    return sql.SQL(
        "SELECT x.message_id, jsonb_agg(to_jsonb(x) - {hidden} ORDER BY {order}) FROM {child} x "
        "WHERE x.conversation_id = %(c)s AND x.message_id = ANY(%(ids)s) GROUP BY x.message_id"
    ).format(
        hidden=hidden,
        order=sql.SQL(", ").join(sql.SQL("x.") + sql.SQL(part.strip()) for part in order.split(",")),
        child=table(schema, name),
    )


def messages(
    conn: psycopg.Connection, schema: str, conversation_id: str, selection: Selection, zone: Zone
) -> Iterator[Message]:
    """The conversation's selected messages, oldest first (ties by message id), streamed.

    Messages come from a server-side cursor ``BATCH_ROWS`` at a time; the child rows of
    each batch are read with one query per child table that has rows in the conversation.
    """
    where, params = selection_filter(selection, zone)
    present = [(name, order) for name, order, _ in CHILD_TABLES if name in _child_tables_in(conn, schema, conversation_id)]
    query = sql.SQL(
        "SELECT m.conversation_id, m.message_id, m.sent_at, m.sender_id, {sender}, m.message_type, "
        "coalesce(m.content_text, ''), m.edited_at, m.deleted_at "
        "FROM {messages} m LEFT JOIN {people} p ON p.person_id = m.sender_id "
        "WHERE m.conversation_id = %(conversation)s AND {where} "
        "ORDER BY m.sent_at, m.message_id"
    ).format(
        sender=SENDER_NAME,
        messages=table(schema, "messages"),
        people=table(schema, "people"),
        where=where,
    )
    with conn.cursor(name="read_messages") as cursor:
        cursor.execute(query, {**params, "conversation": conversation_id})
        while batch := cursor.fetchmany(BATCH_ROWS):
            ids = [row[1] for row in batch]
            children = {name: _children_of(conn, schema, name, order, conversation_id, ids) for name, order in present}
            for cid, mid, sent_at, sender_id, sender_name, mtype, text, edited_at, deleted_at in batch:
                yield Message(
                    conversation_id=cid,
                    message_id=mid,
                    sent_at=zone.local(sent_at),
                    sender_id=sender_id,
                    sender_name=sender_name,
                    message_type=mtype,
                    text=text,
                    edited_at=zone.local(edited_at) if edited_at else None,
                    deleted_at=zone.local(deleted_at) if deleted_at else None,
                    children={
                        name: [_local_times(r, zone) for r in rows[mid]]
                        for name, rows in children.items()
                        if mid in rows
                    },
                )


def _child_tables_in(conn: psycopg.Connection, schema: str, conversation_id: str) -> set[str]:
    """The child tables with rows in this conversation: the others are not probed per message.

    Most conversations use few of them (no polls, no calls), and a probe per message and
    table is most of the cost of reading.
    """
    checks = sql.SQL(", ").join(
        sql.SQL("EXISTS (SELECT 1 FROM {} WHERE conversation_id = %(c)s)").format(table(schema, name))
        for name, _, _ in CHILD_TABLES
    )
    row = conn.execute(sql.SQL("SELECT {}").format(checks), {"c": conversation_id}).fetchone()
    return {name for (name, _, _), present in zip(CHILD_TABLES, row) if present}


def _local_times(row: dict, zone: Zone) -> dict:
    """Child-row times (``*_at``, JSON strings in UTC) as aware datetimes in ``zone``."""
    for key, value in row.items():
        if key.endswith("_at") and isinstance(value, str):
            try:
                row[key] = zone.local(datetime.fromisoformat(value))
            except ValueError:
                pass
    return row
