"""Load one Skype export with ETLPipeline and query it.

    python examples/basic.py ~/Downloads/8_live_me_export.tar

Uses ETL_DATABASE_URL when set, else the embedded PostgreSQL under ETL_HOME (started on
first use). Prints what was loaded and the five busiest conversations.
"""

from __future__ import annotations

import sys

import psycopg
from psycopg import sql

from etl_assets.etl.config import load_config
from etl_assets.etl.load.database import resolve_database_url
from etl_assets.etl.pipeline import ETLPipeline


def main(path: str) -> None:
    config = load_config()
    result = ETLPipeline(config, copy_raw=False).run(path)
    print(f"loaded {result.load.messages} messages in {result.load.conversations} conversations "
          f"({result.load.rejected} rejected)")

    url = resolve_database_url(config.database_url, home=config.home_dir)
    query = sql.SQL(
        "SELECT coalesce(nullif(c.display_name, ''), c.conversation_id), count(*), max(m.sent_at) "
        "FROM {messages} m JOIN {conversations} c USING (conversation_id) "
        "GROUP BY c.conversation_id, 1 ORDER BY 2 DESC, 1 LIMIT 5"
    ).format(
        messages=sql.Identifier(config.schema_name, "messages"),
        conversations=sql.Identifier(config.schema_name, "conversations"),
    )
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for name, messages, last in conn.execute(query):
            print(f"{messages:>8}  {last:%Y-%m-%d}  {name}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python examples/basic.py EXPORT_FILE")
    main(sys.argv[1])
