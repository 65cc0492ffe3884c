"""Your own PostgreSQL, an extra step after the load, and the Dagster job run from Python.

    ETL_DATABASE_URL=postgresql://etl:secret@db.example.com:5432/archive \
        python examples/advanced.py ~/Downloads/8_live_me_export.tar

1. The export goes through the whole Dagster asset graph (``load_skype_export``) in this
   process, with ``materialize_export``: the same run the inbox sensor would start.
2. A step of our own follows the load: ``monthly_summary``, a table of messages and
   active senders per month, rebuilt in one transaction after every load.
3. A second load of the same export changes nothing, which the example shows.

The database URL is needed (this example is about your own server); it is never printed.
"""

from __future__ import annotations

import sys

import dagster as dg
import psycopg
from psycopg import sql

from etl_assets.etl import secrets
from etl_assets.etl.config import ETLConfig, load_config
from etl_assets.materialize import failure_reason, materialize_export


def build_monthly_summary(config: ETLConfig) -> list[tuple]:
    """The custom post-load step: ``<schema>.monthly_summary`` from the published messages."""
    schema = sql.Identifier(config.schema_name)
    with psycopg.connect(config.database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.monthly_summary "
            "(month date PRIMARY KEY, messages bigint NOT NULL, senders integer NOT NULL)"
        ).format(schema))
        conn.execute(sql.SQL("DELETE FROM {}.monthly_summary").format(schema))
        conn.execute(sql.SQL(
            "INSERT INTO {s}.monthly_summary "
            "SELECT date_trunc('month', sent_at)::date, count(*), count(DISTINCT sender_id) "
            "FROM {s}.messages GROUP BY 1"
        ).format(s=schema))
        return conn.execute(sql.SQL("SELECT * FROM {}.monthly_summary ORDER BY month").format(schema)).fetchall()


def main(path: str) -> int:
    config = load_config()
    if not config.database_url:
        print("advanced.py: set ETL_DATABASE_URL to your PostgreSQL", file=sys.stderr)
        return 2
    secrets.remember(config.database_url)  # so nothing printed below can show the password
    print(f"warehouse: {secrets.redact(config.database_url)}, schema {config.schema_name}")

    with dg.DagsterInstance.ephemeral() as instance:
        for attempt in ("first load", "second load"):
            partition, result = materialize_export(config, instance, path, quiet=True)
            if not result.success:
                print(f"advanced.py: the run failed: {secrets.scrub(failure_reason(result))}", file=sys.stderr)
                return 1
            tables = {
                e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()
            }
            messages = tables["skype/messages"]
            print(f"{attempt}: partition {partition}: {messages['dagster/row_count'].value} messages, "
                  f"{messages['rows_changed'].value} changed, already loaded: {messages['already_loaded'].value}")

    for month, messages, senders in build_monthly_summary(config):
        print(f"{month:%Y-%m}  {messages:>7} messages  {senders:>4} senders")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python examples/advanced.py EXPORT_FILE")
    sys.exit(main(sys.argv[1]))
