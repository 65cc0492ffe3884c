"""floor: the least work that still loads every message: ijson (C) -> binary COPY into one UNLOGGED table.

No extraction to disk, no transformation, no indexes, no deduplication.
"""

from __future__ import annotations


import ijson
import psycopg
from psycopg import sql

from .common import MESSAGES_PREFIX, RAW_COLUMNS, messages_member, raw_row, run_contender

TABLE = "messages_raw"


def load(path: str, url: str, schema: str) -> None:
    """Stream the messages of ``path`` into ``schema.messages_raw``."""
    table = sql.Identifier(schema, TABLE)
    columns = sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
                table, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in RAW_COLUMNS)
            )
        )
        with conn.cursor() as cur, messages_member(path) as member:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, columns)) as copy:
                copy.set_types(["text"] * len(RAW_COLUMNS))
                for message in ijson.items(member, MESSAGES_PREFIX):
                    copy.write_row(raw_row(message))


def main() -> None:
    run_contender(load, TABLE, backend=ijson.backend)


if __name__ == "__main__":
    main()
