"""Loader: schema migrations, COPY into staging, and one transaction that publishes an export.

Each table's Parquet file is copied (CSV written by Arrow, parsed by PostgreSQL's
COPY) into an unlogged staging table in ``<schema>_staging``. Publishing then merges
every staging table into the warehouse in one transaction, so readers see all of an
export or none of it. Merges follow natural keys: the newest message ``version``
wins; a message's child rows are replaced only when the message changed. Loading
the same export twice therefore changes no row.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from psycopg import sql

from . import schema as s
from .errors import EtlError

log = logging.getLogger(__name__)
_MIGRATION_LOCK = 0x736B797065  # "skype": one advisory lock id for schema changes
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, batch_size=8192)


@dataclass
class ExportInfo:
    """Who an export is, for the ``exports`` table."""

    sha256: str
    file_name: str
    user_id: str | None
    export_date: str | None
    bytes: int | None


@dataclass
class LoadResult:
    """What one publish did."""

    conversations: int
    messages: int
    rejected: int
    by_type: dict[str, int] = field(default_factory=dict)
    rows_staged: dict[str, int] = field(default_factory=dict)
    rows_changed: dict[str, int] = field(default_factory=dict)
    already_loaded: bool = False


class DatabaseError(EtlError):
    """A database operation failed; the message never contains a password."""


class Loader:
    """Creates and migrates the warehouse schema and publishes transformed exports."""

    def __init__(self, database_url: str, schema: str = "skype", *, text_search_config: str = "simple") -> None:
        self.database_url = database_url
        self.schema = schema
        self.text_search_config = text_search_config
        self.staging_schema = f"{schema}_staging"
        self._schema_sql = sql.Identifier(schema)
        self._staging_sql = sql.Identifier(self.staging_schema)
        self._migrated = False

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        try:
            conn = psycopg.connect(self.database_url)
        except psycopg.OperationalError as e:
            from .database import redact_url

            reason = str(e).replace(self.database_url, redact_url(self.database_url)).strip().splitlines()[0]
            raise DatabaseError(f"cannot connect to {redact_url(self.database_url)}: {reason}") from None
        with conn:
            yield conn

    # -- schema -------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """``migrate`` once per Loader."""
        if not self._migrated:
            self.migrate()

    def migrate(self) -> None:
        """Create the schema, tables and indexes if missing (under an advisory lock)."""
        self._migrated = True
        with self.connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            for name in (self._schema_sql, self._staging_sql):
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            for table in s.ALL_TABLES:
                ddl = s.create_table_sql(table, self._schema_sql.as_string(conn), tsconfig=self.text_search_config)
                conn.execute(ddl.encode())
                for column in table.indexes:
                    conn.execute(
                        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} USING {} ({})").format(
                            sql.Identifier(f"{table.name}_{column}_idx"),
                            self._schema_sql,
                            sql.Identifier(table.name),
                            sql.SQL(s.index_method(table, column)),
                            sql.Identifier(column),
                        )
                    )

    def table_counts(self) -> dict[str, int]:
        """Row counts of every warehouse table."""
        self.ensure_schema()
        with self.connect() as conn:
            return {
                t.name: conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(self._schema_sql, sql.Identifier(t.name))
                ).fetchone()[0]
                for t in s.ALL_TABLES
            }

    # -- load -----------------------------------------------------------------------

    def load(self, parquet_dir: str | Path, export: ExportInfo) -> LoadResult:
        """Stage every table of ``parquet_dir`` and publish it in one transaction."""
        self.ensure_schema()
        parquet_dir = Path(parquet_dir)
        tag = export.sha256[:16]
        staged: dict[str, int] = {}
        with self.connect() as conn:
            for table in s.TRANSFORMED_TABLES:
                started = time.perf_counter()
                staged[table.name] = self._stage(conn, table, sorted((parquet_dir / table.name).glob("*.parquet")), tag)
                conn.commit()
                log.debug("staged %s: %d rows in %.2f s", table.name, staged[table.name], time.perf_counter() - started)
        with self.connect() as conn:
            result = self._publish(conn, export, tag)
        result.rows_staged = staged
        return result

    def _staging_table(self, table: s.Table, tag: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self._staging_sql, sql.Identifier(f"{table.name}_{tag}"))

    def _stage(self, conn: psycopg.Connection, table: s.Table, paths: list[Path], tag: str) -> int:
        target = self._staging_table(table, tag)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        ddl = s.create_table_sql(table, self._staging_sql.as_string(conn), staging_name=f"{table.name}_{tag}")
        conn.execute(ddl.encode())
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.staging_columns)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
        rows = 0
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for path in paths:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, use_threads=False):
                    buffer = io.BytesIO()
                    pa_csv.write_csv(batch, buffer, _CSV_OPTIONS)
                    copy.write(buffer.getbuffer())
                    rows += batch.num_rows
        return rows

    def _publish(self, conn: psycopg.Connection, export: ExportInfo, tag: str) -> LoadResult:
        changed: dict[str, int] = {}
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"skype-etl:{export.sha256}",))
        cur.execute(
            sql.SQL("CREATE TEMP TABLE changed_messages (conversation_id text, message_id text, version bigint, "
                    "PRIMARY KEY (conversation_id, message_id)) ON COMMIT DROP")
        )
        for table in s.TRANSFORMED_TABLES:
            statements = _MERGES[table.merge](self, table, self._staging_table(table, tag))
            count = 0
            started = time.perf_counter()
            for statement in statements:
                cur.execute(statement)
                count += max(cur.rowcount, 0)
            changed[table.name] = count
            log.debug("merged %s: %d rows changed in %.2f s", table.name, count, time.perf_counter() - started)
        cur.execute(_fill_one_to_one_names(self._schema_sql))
        by_type = dict(
            cur.execute(
                sql.SQL(
                    "SELECT message_type, count(*) FROM (SELECT DISTINCT ON (conversation_id, message_id) message_type "
                    "FROM {m} ORDER BY {order}) d GROUP BY 1 ORDER BY 1"
                ).format(m=self._staging_table(s.MESSAGES, tag), order=_FINAL_COPY_ORDER)
            ).fetchall()
        )
        conversations, rejected = cur.execute(
            sql.SQL("SELECT (SELECT count(DISTINCT conversation_id) FROM {c}), (SELECT count(*) FROM {r})").format(
                c=self._staging_table(s.CONVERSATIONS, tag), r=self._staging_table(s.REJECTED_RECORDS, tag)
            )
        ).fetchone()
        counts = (conversations, sum(by_type.values()), rejected)
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.exports (sha256, file_name, user_id, export_date, bytes, conversations, messages, rejected) "
                "VALUES (%s, %s, %s, %s::timestamp AT TIME ZONE 'UTC', %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING"
            ).format(self._schema_sql),
            (export.sha256, export.file_name, export.user_id, export.export_date, export.bytes, *counts),
        )
        already = cur.rowcount == 0
        for table in s.TRANSFORMED_TABLES:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._staging_table(table, tag)))
        conn.commit()
        return LoadResult(*counts, by_type=by_type, rows_changed=changed, already_loaded=already)

    def name_owner(self, person_id: str, display_name: str) -> None:
        """Give the export owner a display name where the export had none."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL(
                    "UPDATE {}.people SET display_name = %s WHERE person_id = %s AND display_name IS NULL"
                ).format(self._schema_sql),
                (display_name, person_id),
            )

    def record_phase_stats(self, rows: list[dict]) -> None:
        """Append phase statistics rows to ``etl_phase_stats`` (same run and phase: replaced)."""
        if not rows:
            return
        self.ensure_schema()
        names = [c.name for c in s.PHASE_STATS.columns if c.name != "recorded_at"]
        statement = sql.SQL(
            "INSERT INTO {}.etl_phase_stats ({}) VALUES ({}) ON CONFLICT (export_sha256, run_id, phase) DO UPDATE SET {}"
        ).format(
            self._schema_sql,
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names[3:]
            ),
        )
        with self.connect() as conn:
            conn.cursor().executemany(statement, [tuple(row.get(n) for n in names) for row in rows])


# -- merge statements, one builder per Table.merge kind -----------------------------------


def _cols(columns) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name if hasattr(c, "name") else c) for c in columns)


def _target(loader: Loader, table: s.Table) -> sql.Composed:
    return sql.SQL("{}.{}").format(loader._schema_sql, sql.Identifier(table.name))


_FINAL_COPY_ORDER = sql.SQL(
    "conversation_id, message_id, version DESC, server_generated ASC, length(content_raw) DESC NULLS LAST"
)
"""Which copy of a message wins inside one export: highest version, then a real copy over a server-generated one."""


def _merge_message(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    keys = table.primary_key
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names if n not in keys
    )
    return [
        sql.SQL(
            "WITH src AS (SELECT DISTINCT ON (conversation_id, message_id) {cols} FROM {stg} "
            "ORDER BY {order}), "
            "up AS (INSERT INTO {tgt} AS t ({cols}) SELECT {cols} FROM src "
            "ON CONFLICT (conversation_id, message_id) DO UPDATE SET {updates} WHERE t.version < EXCLUDED.version "
            "RETURNING conversation_id, message_id, version) "
            "INSERT INTO changed_messages SELECT * FROM up"
        ).format(cols=_cols(names), stg=staging, tgt=_target(loader, table), updates=updates, order=_FINAL_COPY_ORDER)
    ]


def _merge_message_child(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    target = _target(loader, table)
    return [
        sql.SQL(
            "DELETE FROM {tgt} t USING changed_messages c "
            "WHERE t.conversation_id = c.conversation_id AND t.message_id = c.message_id"
        ).format(tgt=target),
        sql.SQL(
            "INSERT INTO {tgt} ({cols}) SELECT {scols} FROM {stg} s JOIN changed_messages c "
            "ON s.conversation_id = c.conversation_id AND s.message_id = c.message_id AND s.version = c.version "
            "ON CONFLICT DO NOTHING"
        ).format(
            tgt=target,
            cols=_cols(names),
            scols=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(n)) for n in names),
            stg=staging,
        ),
    ]


def _merge_insert_new(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    return [
        sql.SQL("INSERT INTO {tgt} ({cols}) SELECT DISTINCT {cols} FROM {stg} ON CONFLICT DO NOTHING").format(
            tgt=_target(loader, table), cols=_cols(names), stg=staging
        )
    ]


def _merge_conversation(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = COALESCE(EXCLUDED.{0}, t.{0})").format(sql.Identifier(n))
        for n in names
        if n != "conversation_id"
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t ({cols}) SELECT DISTINCT ON (conversation_id) {cols} FROM {stg} "
            "ORDER BY conversation_id, version DESC NULLS LAST "
            "ON CONFLICT (conversation_id) DO UPDATE SET {updates} "
            "WHERE COALESCE(EXCLUDED.version, 0) > COALESCE(t.version, 0)"
        ).format(tgt=_target(loader, table), cols=_cols(names), stg=staging, updates=updates)
    ]


def _merge_person(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t (person_id, display_name, is_owner) "
            "SELECT person_id, max(display_name), bool_or(is_owner) FROM {stg} GROUP BY person_id "
            "ON CONFLICT (person_id) DO UPDATE SET "
            "display_name = COALESCE(t.display_name, EXCLUDED.display_name), is_owner = t.is_owner OR EXCLUDED.is_owner "
            "WHERE (t.display_name IS NULL AND EXCLUDED.display_name IS NOT NULL) OR (EXCLUDED.is_owner AND NOT t.is_owner)"
        ).format(tgt=_target(loader, table), stg=staging)
    ]


def _merge_membership(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t (conversation_id, person_id, role, source) "
            "SELECT DISTINCT ON (conversation_id, person_id) conversation_id, person_id, role, source FROM {stg} "
            "ORDER BY conversation_id, person_id, role NULLS LAST "
            "ON CONFLICT (conversation_id, person_id) DO UPDATE SET role = EXCLUDED.role "
            "WHERE EXCLUDED.role IS NOT NULL AND EXCLUDED.role IS DISTINCT FROM t.role"
        ).format(tgt=_target(loader, table), stg=staging)
    ]


_MERGES = {
    "message": _merge_message,
    "message_child": _merge_message_child,
    "export": _merge_insert_new,
    "conversation": _merge_conversation,
    "person": _merge_person,
    "membership": _merge_membership,
}


def _fill_one_to_one_names(schema_sql: sql.Identifier) -> sql.Composed:
    """Name a 1:1 chat without ``displayName`` after the other person."""
    return sql.SQL(
        "UPDATE {s}.conversations c SET display_name = p.display_name FROM {s}.people p "
        "WHERE c.kind = 'one_to_one' AND c.display_name IS NULL AND p.display_name IS NOT NULL "
        "AND p.person_id = CASE WHEN c.conversation_id ~ '^([0-9]+|guest):' THEN c.conversation_id "
        "ELSE '8:' || c.conversation_id END"
    ).format(s=schema_sql)


def wait_for_database(url: str, timeout: float = 30.0) -> None:
    """Wait until the server accepts connections (after a restart), or raise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
