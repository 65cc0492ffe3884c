"""SQL views over the warehouse for everyday questions (per conversation, per day, per person)."""

from __future__ import annotations

from psycopg import sql

from .queries import Warehouse

VIEWS: dict[str, str] = {
    "conversation_stats": """
        SELECT c.conversation_id, c.kind, c.display_name,
               count(m.message_id) AS messages,
               count(DISTINCT m.sender_id) AS senders,
               min(m.sent_at) AS first_message_at,
               max(m.sent_at) AS last_message_at
        FROM {s}.conversations c LEFT JOIN {s}.messages m USING (conversation_id)
        GROUP BY c.conversation_id, c.kind, c.display_name
    """,
    "daily_activity": """
        SELECT date_trunc('day', sent_at)::date AS day, conversation_id,
               count(*) AS messages, count(DISTINCT sender_id) AS senders
        FROM {s}.messages GROUP BY 1, 2
    """,
    "person_stats": """
        SELECT p.person_id, p.display_name, p.is_owner,
               count(m.message_id) AS messages_sent,
               count(DISTINCT m.conversation_id) AS conversations,
               max(m.sent_at) AS last_message_at
        FROM {s}.people p LEFT JOIN {s}.messages m ON m.sender_id = p.person_id
        GROUP BY p.person_id, p.display_name, p.is_owner
    """,
}
"""View name -> query; ``{s}`` is the warehouse schema."""


def create_views(warehouse: Warehouse) -> dict[str, int]:
    """Create or replace every view; return each view's row count."""
    schema = sql.Identifier(warehouse.schema)
    counts: dict[str, int] = {}
    with warehouse.connect() as conn:
        for name, query in VIEWS.items():
            view = sql.SQL("{}.{}").format(schema, sql.Identifier(name))
            body = sql.SQL(query).format(s=schema)
            conn.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(view, body))
            counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(view)).fetchone()[0]
    return counts
