"""The demo: a generated export, materialized through the real Dagster job and instance."""

from __future__ import annotations

from collections.abc import Callable

from etl_assets.etl.config import ETLConfig

DEMO_FILE = "8_live_demo_export.tar"


def run_demo(config: ETLConfig, *, messages: int, seed: int, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Generate, materialize every asset of the export's partition, and print what landed."""
    import dagster as dg

    from etl_assets.defs.instance import apply_instance_env
    from etl_assets.etl import secrets
    from etl_assets.etl.errors import EtlError
    from etl_assets.etl.warehouse.queries import Warehouse
    from etl_assets.samples import generate_export
    from etl_assets.materialize import failure_reason, materialize_export

    if config.database_url:  # a malformed URL fails here, in one line, before Dagster starts
        secrets.remember(config.database_url)
        secrets.parse(config.database_url)
    env = apply_instance_env(config)
    path = config.inbox_dir / DEMO_FILE
    echo(f"Generating a sample export of {messages} messages: {path}")
    generate_export(path, messages=messages, seed=seed)
    instance = dg.DagsterInstance.get()
    echo("Materializing the export's partition with the Dagster job load_skype_export ...")
    key, result = materialize_export(config, instance, path, quiet=True)
    if not result.success:
        raise EtlError(f"the demo run {result.run_id} failed: {secrets.scrub(failure_reason(result))}")

    from psycopg import sql

    from etl_assets.etl.load.database import resolve_database_url

    warehouse = Warehouse(resolve_database_url(config.database_url, home=config.home_dir), config.schema_name, config=config)
    counts = warehouse.table_counts()
    echo(f"\nRun {result.run_id} succeeded. Rows per table in schema {config.schema_name}:")
    for name, count in counts.items():
        echo(f"  {name:<18} {count:>8}")
    echo("\nA few messages:")
    with warehouse.connect() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT m.sent_at, coalesce(m.sender_name, m.sender_id), c.display_name, left(m.content_text, 60) "
                "FROM {s}.messages m JOIN {s}.conversations c USING (conversation_id) "
                "WHERE m.message_type = 'RichText' AND m.content_text <> '' ORDER BY m.sent_at DESC LIMIT 5"
            ).format(s=sql.Identifier(config.schema_name))
        ).fetchall()
    for sent_at, sender, conversation, text in rows:
        echo(f"  {sent_at:%Y-%m-%d %H:%M}  {sender} in {conversation}: {text}")
    echo(
        "\nOpen the Dagster UI with `python3 run.py dev` (or `skype-etl dev`), then http://127.0.0.1:3000, "
        "to see the asset graph, "
        f"the partition {key} and each phase's statistics.\nDagster home: {env['DAGSTER_HOME']}"
    )
    return counts
