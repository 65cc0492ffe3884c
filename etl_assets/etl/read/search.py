"""``skype-etl search``: full-text search over ``messages.content_tsv``, newest first.

The parsed query (``query.py``) becomes SQL by composition only: identifiers through
``psycopg.sql.Identifier`` and every value a person typed as a parameter. Words and
phrases use the text search configuration the column was generated with, so the GIN
index serves them; snippets come from ``ts_headline`` on the hits only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from .query import MESSAGE_TYPES, Query, Term, parse_query
from .warehouse import CONVERSATION_NAME, read_connection, table, text_search_config
from .zones import Zone, parse_zone

START, STOP = "\ue000", "\ue001"
"""Private-use characters that mark a highlighted match in a snippet (removed from texts first)."""
SNIPPET_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Hit:
    conversation_id: str
    conversation: str
    message_id: str
    sent_at: datetime
    sender_name: str
    text: str
    snippet: str
    """With ``START``/``STOP`` around each match."""
    message_type: str = ""

    def to_json(self) -> dict:
        return {
            "conversation_id": self.conversation_id,
            "conversation": self.conversation,
            "message_id": self.message_id,
            "sent_at": self.sent_at.isoformat(),
            "sender_name": self.sender_name,
            "text": self.text,
            "snippet": plain(self.snippet),
        }


def plain(snippet: str) -> str:
    return snippet.replace(START, "").replace(STOP, "")


def format_hit(hit: Hit, *, color: bool) -> str:
    """One line: local time, conversation, sender, snippet; matches in bold yellow on a terminal.

    Control characters from messages are removed, so no message can drive the terminal.
    """
    snippet = _CONTROL.sub(" ", " ".join(hit.snippet.split())) or f"({hit.message_type})"
    snippet = snippet.replace(START, "\x1b[1;33m").replace(STOP, "\x1b[0m") if color else plain(snippet)
    conversation = _CONTROL.sub(" ", hit.conversation)
    sender = _CONTROL.sub(" ", hit.sender_name)
    return f"{hit.sent_at:%Y-%m-%d %H:%M}  {conversation}  {sender}: {snippet}"


def _tsquery(term: Term, config: sql.Composable) -> sql.Composable:
    function = "phraseto_tsquery" if term.kind == "phrase" or " " in term.value.strip() else "plainto_tsquery"
    return sql.SQL("{}({}, {})").format(sql.SQL(function), config, sql.Literal(term.value))


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filter_condition(term: Term, zone: Zone) -> sql.Composable:
    """The condition one filter term stands for (``m`` messages, ``p`` people, ``c`` conversations)."""
    if term.kind == "from":
        pattern = sql.Literal(_like(term.value))
        return sql.SQL(
            "(m.sender_id ILIKE {v} OR m.sender_name ILIKE {v} OR p.display_name ILIKE {v})"
        ).format(v=pattern)
    if term.kind == "chat":
        pattern = sql.Literal(_like(term.value))
        return sql.SQL(
            "(c.display_name ILIKE {v} OR c.topic ILIKE {v} OR m.conversation_id ILIKE {v})"
        ).format(v=pattern)
    if term.kind == "date":
        parts = []
        if term.start is not None:
            parts.append(sql.SQL("m.sent_at >= {}").format(sql.Literal(zone.at(term.start))))
        if term.end is not None:
            parts.append(sql.SQL("m.sent_at < {}").format(sql.Literal(zone.at(term.end))))
        return sql.SQL("(") + sql.SQL(" AND ").join(parts) + sql.SQL(")")
    if term.kind == "type":
        exact, prefixes = MESSAGE_TYPES[term.value]
        return sql.SQL("(m.message_type = ANY({}) OR m.message_type ^@ ANY({}))").format(
            sql.Literal(list(exact)), sql.Literal(list(prefixes))
        )
    raise ValueError(term.kind)


def build_search(schema: str, query: Query, tsconfig: str, zone: Zone, limit: int) -> sql.Composed:
    """The SQL of a search; only composition and literals, never formatted strings."""
    config = sql.SQL("{}::regconfig").format(sql.Literal(tsconfig))
    conditions: list[sql.Composable] = []
    positive = query.text_terms
    combined: sql.Composable | None = None
    if positive:
        combined = sql.SQL(" && ").join(_tsquery(t, config) for t in positive)
        conditions.append(sql.SQL("m.content_tsv @@ ({})").format(combined))
    for term in query.terms:
        if term.kind in ("word", "phrase") and term.negated:
            conditions.append(sql.SQL("NOT (m.content_tsv @@ {})").format(_tsquery(term, config)))
    for kind in ("from", "chat", "date", "type"):
        wanted = query.of(kind)
        if wanted:
            conditions.append(sql.SQL("(") + sql.SQL(" OR ").join(_filter_condition(t, zone) for t in wanted) + sql.SQL(")"))
        for term in query.of(kind, negated=True):
            conditions.append(sql.SQL("NOT coalesce({}, false)").format(_filter_condition(term, zone)))
    clean = sql.SQL("translate(h.content_text, {}, '')").format(sql.Literal(START + STOP))
    if combined is not None:
        snippet = sql.SQL("ts_headline({cfg}, {text}, ({q}), {options})").format(
            cfg=config, text=clean, q=combined,
            options=sql.Literal(f"StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \""),
        )
    else:
        snippet = sql.SQL("left({}, {})").format(clean, sql.Literal(SNIPPET_CHARS))
    return sql.SQL(
        "SELECT h.conversation_id, h.conversation, h.message_id, h.sent_at, h.sender_name, h.content_text, {snippet}, "
        "h.message_type "
        "FROM (SELECT m.conversation_id, {name} AS conversation, m.message_id, m.sent_at, "
        "coalesce(nullif(m.sender_name, ''), nullif(p.display_name, ''), m.sender_id, '') AS sender_name, "
        "coalesce(m.content_text, '') AS content_text, m.message_type "
        "FROM {messages} m LEFT JOIN {people} p ON p.person_id = m.sender_id "
        "LEFT JOIN {conversations} c ON c.conversation_id = m.conversation_id "
        "WHERE {where} ORDER BY m.sent_at DESC, m.conversation_id, m.message_id LIMIT {limit}) h "
        "ORDER BY h.sent_at DESC, h.conversation_id, h.message_id"
    ).format(
        snippet=snippet,
        name=CONVERSATION_NAME,
        messages=table(schema, "messages"),
        people=table(schema, "people"),
        conversations=table(schema, "conversations"),
        where=sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE"),
        limit=sql.Literal(limit),
    )


def search_messages(url: str, schema: str, text: str, *, limit: int = 50, zone: str | None = None) -> list[Hit]:
    """The newest ``limit`` messages matching ``text``; raises ``QuerySyntaxError`` for a bad query."""
    query = parse_query(text)
    tz = parse_zone(zone)
    with read_connection(url, schema) as conn:
        statement = build_search(schema, query, text_search_config(conn, schema), tz, limit)
        rows = _run(conn, statement)
    return [
        Hit(cid, name, mid, tz.local(sent_at), sender, content, snippet or "", mtype)
        for cid, name, mid, sent_at, sender, content, snippet, mtype in rows
    ]


def _run(conn: psycopg.Connection, statement: sql.Composed) -> list[tuple]:
    return conn.execute(statement).fetchall()
