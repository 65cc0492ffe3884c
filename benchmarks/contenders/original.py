"""original: the original project's approach: ``json.load`` of the whole messages.json,
then psycopg2 ``execute_values`` in batches of 100 into raw tables (raw fields only).

Memory grows with the file: the whole document is parsed into Python objects first.
"""

from __future__ import annotations

import json

import psycopg2
from psycopg2.extras import execute_values

from .common import RAW_COLUMNS, messages_member, raw_row, run_contender

TABLE = "raw_messages"
BATCH = 100


def load(path: str, url: str, schema: str) -> None:
    """Parse all of ``path``'s messages.json, then insert conversations and messages 100 rows at a time."""
    with messages_member(path) as member:
        data = json.load(member)
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            cur.execute(f'CREATE TABLE "{schema}".raw_conversations (id text, displayname text, version text)')
            columns = ", ".join(f'"{c}" text' for c in RAW_COLUMNS)
            cur.execute(f'CREATE TABLE "{schema}".{TABLE} ({columns})')
            conversations = [(c.get("id"), c.get("displayName"), str(c.get("version"))) for c in data["conversations"]]
            execute_values(cur, f'INSERT INTO "{schema}".raw_conversations VALUES %s', conversations, page_size=BATCH)
            insert = f'INSERT INTO "{schema}".{TABLE} VALUES %s'
            batch: list[tuple] = []
            for conversation in data["conversations"]:
                for message in conversation.get("MessageList") or ():
                    batch.append(raw_row(message))
                    if len(batch) == BATCH:
                        execute_values(cur, insert, batch, page_size=BATCH)
                        batch.clear()
            if batch:
                execute_values(cur, insert, batch, page_size=BATCH)
    finally:
        conn.close()


def main() -> None:
    run_contender(load, TABLE)


if __name__ == "__main__":
    main()
