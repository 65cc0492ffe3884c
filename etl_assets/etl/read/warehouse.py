"""What the read commands need to know about a warehouse before reading messages.

Only table and column names of the published tables are used (``messages``,
``conversations``, ``people``, ``memberships`` and the message child tables), so the
read package depends on the warehouse's shape, not on the loader's code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from .errors import ReadInputError

DEFAULT_TSCONFIG = "simple"
_TSCONFIG_IN_EXPRESSION = re.compile(r"to_tsvector\('([A-Za-z0-9_.\"]+)'::regconfig")


@contextmanager
def read_connection(url: str, schema: str) -> Iterator[psycopg.Connection]:
    """A connection that reads in UTC inside one snapshot (repeatable read, read only).

    One snapshot makes the counts taken first agree with the rows streamed afterwards,
    even while a load publishes.
    """
    with psycopg.connect(url, application_name="skype-etl read") as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        if conn.execute("SELECT to_regclass(format('%%I.messages', %s::text))", (schema,)).fetchone()[0] is None:
            raise ReadInputError(f"no warehouse in schema {schema!r}: load an export first (skype-etl load)")
        yield conn


def table(schema: str, name: str) -> sql.Composed:
    """``"schema"."name"`` as a composed identifier."""
    return sql.Identifier(schema, name)


def text_search_config(conn: psycopg.Connection, schema: str) -> str:
    """The configuration ``messages.content_tsv`` was generated with, so queries use the same one."""
    row = conn.execute(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
        "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
        "WHERE d.adrelid = format('%%I.messages', %s::text)::regclass AND a.attname = 'content_tsv'",
        (schema,),
    ).fetchone()
    match = _TSCONFIG_IN_EXPRESSION.search(row[0]) if row and row[0] else None
    return match.group(1) if match else DEFAULT_TSCONFIG


@dataclass(frozen=True)
class Conversation:
    """A conversation as the read commands show it."""

    conversation_id: str
    name: str
    kind: str
    members: tuple[str, ...]
    member_count: int


CONVERSATION_NAME = sql.SQL(
    "coalesce(nullif(c.display_name, ''), nullif(c.topic, ''), c.conversation_id)"
)
"""How a conversation is named: its display name, else its topic, else its id."""


def conversations(conn: psycopg.Connection, schema: str) -> list[Conversation]:
    """Every conversation with its members' names (a few thousand rows at most, so read at once)."""
    query = sql.SQL(
        "SELECT c.conversation_id, {name}, c.kind, "
        "coalesce(array_agg(coalesce(nullif(p.display_name, ''), ms.person_id) ORDER BY ms.person_id) "
        "FILTER (WHERE ms.person_id IS NOT NULL), '{{}}') "
        "FROM {conversations} c "
        "LEFT JOIN {memberships} ms ON ms.conversation_id = c.conversation_id "
        "LEFT JOIN {people} p ON p.person_id = ms.person_id "
        "GROUP BY c.conversation_id ORDER BY lower({name}), c.conversation_id"
    ).format(
        name=CONVERSATION_NAME,
        conversations=table(schema, "conversations"),
        memberships=table(schema, "memberships"),
        people=table(schema, "people"),
    )
    return [
        Conversation(cid, name, kind, tuple(members), len(members))
        for cid, name, kind, members in conn.execute(query)
    ]


def select_conversations(all_conversations: list[Conversation], selectors: tuple[str, ...]) -> list[Conversation]:
    """The conversations named by ``--conversation`` values (an id, or a name in any case).

    A name held by several conversations selects all of them; a value that names none is
    an input error, so a typo never exports an empty folder.
    """
    if not selectors:
        return list(all_conversations)
    chosen: dict[str, Conversation] = {}
    for selector in selectors:
        wanted = selector.strip()
        found = [c for c in all_conversations if c.conversation_id == wanted]
        if not found:
            folded = wanted.casefold()
            found = [c for c in all_conversations if c.name.casefold() == folded]
        if not found:
            raise ReadInputError(f"--conversation: no conversation has the id or name {selector!r}")
        for c in found:
            chosen.setdefault(c.conversation_id, c)
    return [c for c in all_conversations if c.conversation_id in chosen]


def person_exists(conn: psycopg.Connection, schema: str, person: str) -> bool:
    """Whether ``person`` is a known id, or a display or sender name (any case)."""
    query = sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM {people} WHERE person_id = %(p)s OR lower(display_name) = lower(%(p)s)) "
        "OR EXISTS (SELECT 1 FROM {messages} WHERE lower(sender_name) = lower(%(p)s))"
    ).format(people=table(schema, "people"), messages=table(schema, "messages"))
    return bool(conn.execute(query, {"p": person.strip()}).fetchone()[0])


def person_names(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    """Person id -> display name, for names in member events, reactions and calls."""
    query = sql.SQL("SELECT person_id, display_name FROM {} WHERE coalesce(display_name, '') <> ''").format(
        table(schema, "people")
    )
    return dict(conn.execute(query).fetchall())


@dataclass(frozen=True)
class Span:
    """How many messages a conversation has in the selection, when the first and last were sent,
    and how many of them are calls or carry files."""

    messages: int
    first: datetime
    last: datetime
    calls: int = 0
    with_files: int = 0
    """Messages that carry attachments."""
