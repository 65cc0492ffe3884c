"""Loader: schema migrations, COPY into staging, and one transaction that publishes an export.

Each table's Parquet file is copied (CSV written by Arrow, parsed by PostgreSQL's
COPY) into an unlogged staging table in ``<schema>_staging``. Publishing then merges
every staging table into the warehouse in one transaction, so readers see all of an
export or none of it. Merges follow natural keys: the newest message ``version``
wins; a message's child rows are replaced only when the message changed. Loading
the same export twice therefore changes no row. Every choice between exports
depends only on the exports (their dates, their sha256, the rows' values), never on
the order in which they are loaded. A table that is still empty (the
first load into a warehouse) is filled by plain inserts and its indexes are built
afterwards, which gives the same rows about twice as fast.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.types.json import Jsonb
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from . import schema as s
from .errors import EtlError
from .faults import crash_point

log = logging.getLogger(__name__)
_MIGRATION_LOCK = 0x736B797065  # "skype": one advisory lock id for schema changes
_PUBLISH_LOCK = 0x736B797066  # publishes run one at a time: no deadlocks between exports
CONNECT_WAIT = 15.0
STAGE_CONNECTIONS = 2
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, batch_size=8192)


@dataclass
class ExportInfo:
    """Who an export is, for the ``exports`` table."""

    sha256: str
    file_name: str
    user_id: str | None
    export_date: str | None
    bytes: int | None
    transform_version: str = ""
    transform_id: str = ""
    media: dict[str, dict[str, str]] | None = None
    """Outcome of the media copy: ``{"skipped": {path: reason}, "damaged": {...}}``; every other
    file was stored. ``None`` when no copy finished: attachment statuses stay ``pending``."""


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
    resumed_parts: int = 0
    """Part files staged by an interrupted earlier run and not copied again."""
    stage_seconds: float = 0.0
    publish_seconds: float = 0.0
    table_seconds: dict[str, float] = field(default_factory=dict)
    """Publishing time per table: where a slow load spends it."""
    bulk_loaded: list[str] = field(default_factory=list)
    """Tables that were empty and were filled by bulk (indexes built after the rows)."""


class DatabaseError(EtlError):
    """A database operation failed; the message never contains a password."""


class Loader:
    """Creates and migrates the warehouse schema and publishes transformed exports."""

    def __init__(self, database_url: str, schema: str = "skype", *, text_search_config: str = s.DEFAULT_TEXT_SEARCH_CONFIG) -> None:
        self.database_url = database_url
        self.schema = schema
        self.text_search_config = text_search_config
        self.staging_schema = f"{schema}_staging"
        self._schema_sql = sql.Identifier(schema)
        self._staging_sql = sql.Identifier(self.staging_schema)
        self._migrated = False

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; waits up to ``CONNECT_WAIT`` seconds for a server that is (re)starting."""
        conn = _connect(self.database_url, autocommit)
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
            # Unlogged like the staging tables: a server crash empties both together.
            conn.execute(
                sql.SQL(
                    "CREATE UNLOGGED TABLE IF NOT EXISTS {}.staged_parts (tag text, table_name text, part text, "
                    "rows bigint NOT NULL, PRIMARY KEY (tag, table_name, part))"
                ).format(self._staging_sql)
            )
            for table in s.ALL_TABLES:
                ddl = s.create_table_sql(table, self._schema_sql.as_string(conn), tsconfig=self.text_search_config)
                conn.execute(ddl.encode())
            self._upgrade_columns(conn)
            for table in s.ALL_TABLES:
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

    def _upgrade_columns(self, conn: psycopg.Connection) -> None:
        """Bring tables created by an earlier schema version up to date: missing columns, wider ids.

        Only what is missing is altered (ALTER TABLE locks the table even when it changes nothing).
        """
        existing = {
            (table, column): data_type
            for table, column, data_type in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s",
                (self.schema,),
            )
        }
        for table in s.ALL_TABLES:
            for column in table.data_columns:
                target = sql.SQL("{}.{}").format(self._schema_sql, sql.Identifier(table.name))
                found = existing.get((table.name, column.name))
                if found is None:
                    default = sql.SQL(
                        (f" DEFAULT {column.default}" if column.default else "")
                        + (" NOT NULL" if column.default and not column.nullable else "")
                    )
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(
                            target, sql.Identifier(column.name), sql.SQL(column.pg_type), default
                        )
                    )
                elif found == "integer" and column.pg_type == "bigint":
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE bigint").format(target, sql.Identifier(column.name))
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
        """Stage every part of ``parquet_dir`` and publish the export in one transaction.

        Holds a lock per export for the whole load: a second load of the same export
        waits, then finds it published. Staged parts survive a crash of this process
        and are not copied again. Transient database errors (lost connection, server
        restart, serialization failure, deadlock) are retried with backoff.
        """
        self.ensure_schema()
        return _retrying(lambda: self._load_once(Path(parquet_dir), export))

    def _load_once(self, parquet_dir: Path, export: ExportInfo) -> LoadResult:
        tag = f"{export.sha256[:12]}_{export.transform_id[:8]}"
        with self.connect(autocommit=True) as lock_conn:
            lock_conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (_export_lock_key(export.sha256),))
            crash_point("load.locked")
            published = self._published(lock_conn, export)
            if published is not None:
                return published
            with self.connect() as conn:
                self._drop_other_staging(conn, export.sha256, tag)
                conn.commit()
                started = time.perf_counter()
                staged, resumed = self._stage_all(conn, parquet_dir, tag)
                staged_at = time.perf_counter()
                crash_point("load.staged")
                result = self._publish(conn, export, tag)
            result.rows_staged = staged
            result.resumed_parts = resumed
            result.stage_seconds = round(staged_at - started, 3)
            result.publish_seconds = round(time.perf_counter() - staged_at, 3)
            return result

    def _published(self, conn: psycopg.Connection, export: ExportInfo) -> LoadResult | None:
        """The earlier result if this export was already published by the same transform version."""
        row = conn.execute(
            sql.SQL(
                "SELECT conversations, messages, rejected, by_type FROM {}.exports "
                "WHERE sha256 = %s AND transform_version = %s"
            ).format(self._schema_sql),
            (export.sha256, export.transform_version),
        ).fetchone()
        if row is None:
            return None
        return LoadResult(row[0], row[1], row[2], by_type=dict(row[3] or {}), already_loaded=True)

    def _staging_table(self, table: s.Table, tag: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self._staging_sql, sql.Identifier(f"{table.name}_{tag}"))

    def _drop_other_staging(self, conn: psycopg.Connection, sha256: str, tag: str) -> None:
        """Drop staging left by an earlier transform of the same export (a different tag)."""
        names = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE %s",
            (self.staging_schema, f"%\\_{sha256[:12]}\\_%"),
        ).fetchall()
        for (name,) in names:
            if not name.endswith(f"_{tag}"):
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(self._staging_sql, sql.Identifier(name)))
        conn.execute(
            sql.SQL("DELETE FROM {}.staged_parts WHERE tag LIKE %s AND tag <> %s").format(self._staging_sql),
            (f"{sha256[:12]}%", tag),
        )

    def _stage_all(self, conn: psycopg.Connection, parquet_dir: Path, tag: str) -> tuple[dict[str, int], int]:
        """COPY every part file not staged yet, one transaction per part."""
        done = {
            (table, part): rows
            for table, part, rows in conn.execute(
                sql.SQL("SELECT table_name, part, rows FROM {}.staged_parts WHERE tag = %s").format(self._staging_sql),
                (tag,),
            )
        }
        conn.commit()
        resumed = len(done)
        pending: list[tuple[s.Table, Path]] = []
        for table in s.TRANSFORMED_TABLES:
            ddl = s.create_table_sql(table, self._staging_sql.as_string(conn), staging_name=f"{table.name}_{tag}")
            conn.execute(ddl.encode())
            pending += [
                (table, path)
                for path in (parquet_dir / table.name).glob("*.parquet")
                if (table.name, path.stem) not in done
            ]
        conn.commit()
        started = time.perf_counter()
        pending.sort(key=lambda item: item[1].stat().st_size, reverse=True)  # big parts first: even shares
        done.update(self._stage_parts(pending, tag))
        log.debug("staged %d parts in %.2f s", len(pending), time.perf_counter() - started)
        staged = {table.name: 0 for table in s.TRANSFORMED_TABLES}
        for (table_name, _), rows in done.items():
            staged[table_name] += rows
        return staged, resumed

    def _stage_parts(self, pending: list[tuple[s.Table, Path]], tag: str) -> dict[tuple[str, str], int]:
        """COPY the parts over ``STAGE_CONNECTIONS`` connections at once.

        While one connection's server process parses a COPY, the other thread converts its
        next batch to CSV (Arrow releases the GIL): on two cores staging takes about half as long.
        """
        work: queue.SimpleQueue[tuple[s.Table, Path]] = queue.SimpleQueue()
        for item in pending:
            work.put(item)
        rows: dict[tuple[str, str], int] = {}
        failed = threading.Event()

        def stage() -> None:
            with self.connect() as conn:
                # Staging tables and staged_parts are unlogged: a server crash empties them
                # anyway, so their commits need not wait for the WAL flush.
                conn.execute("SET synchronous_commit = off")
                while not failed.is_set():
                    try:
                        table, path = work.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        target = self._staging_table(table, tag)
                        rows[(table.name, path.stem)] = self._stage_part(conn, table, target, path, tag)
                    except BaseException:
                        failed.set()
                        raise

        with ThreadPoolExecutor(STAGE_CONNECTIONS) as pool:
            for future in [pool.submit(stage) for _ in range(min(STAGE_CONNECTIONS, len(pending)))]:
                future.result()
        return rows

    def _stage_part(self, conn: psycopg.Connection, table: s.Table, target: sql.Composed, path: Path, tag: str) -> int:
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.staging_columns)
        rows = 0
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)) as copy:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, use_threads=False):
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, _CSV_OPTIONS)
                copy.write(buffer.getbuffer())
                rows += batch.num_rows
        conn.execute(
            sql.SQL("INSERT INTO {}.staged_parts (tag, table_name, part, rows) VALUES (%s, %s, %s, %s)").format(
                self._staging_sql
            ),
            (tag, table.name, path.stem, rows),
        )
        crash_point("load.part_copied")
        conn.commit()
        crash_point("load.part_committed")
        return rows

    def _publish(self, conn: psycopg.Connection, export: ExportInfo, tag: str) -> LoadResult:
        """Merge every staging table into the warehouse and record the export: one transaction."""
        changed: dict[str, int] = {}
        seconds: dict[str, float] = {}
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PUBLISH_LOCK,))
        cur.execute(
            "CREATE TEMP TABLE changed_messages (conversation_id text, message_id text, version bigint) ON COMMIT DROP"
        )
        key = self._register_export(cur, export)
        self._settle_media_statuses(cur, export, tag)
        bulk_loaded: list[str] = []
        for table in (*s.TRANSFORMED_TABLES, s.MESSAGE_SOURCES):
            started = time.perf_counter()
            changed[table.name] = self._publish_table(cur, table, tag, key, bulk_loaded)
            seconds[table.name] = round(time.perf_counter() - started, 3)
            how = "bulk-loaded" if table.name in bulk_loaded else "merged"
            log.debug("%s %s: %d rows changed in %.2f s", how, table.name, changed[table.name], seconds[table.name])
            crash_point("load.merged_table")
        cur.execute(_fill_one_to_one_names(self._schema_sql))
        # After a bulk load the message table holds exactly this export's winning copies.
        winners = (
            _target(self, s.MESSAGES)
            if s.MESSAGES.name in bulk_loaded
            else sql.SQL("(SELECT DISTINCT ON (conversation_id, message_id) message_type FROM {m} ORDER BY {order})").format(
                m=self._staging_table(s.MESSAGES, tag), order=_copy_order()
            )
        )
        by_type = dict(
            cur.execute(
                sql.SQL("SELECT message_type, count(*) FROM {} d GROUP BY 1 ORDER BY 1").format(winners)
            ).fetchall()
        )
        conversations, rejected = cur.execute(
            sql.SQL("SELECT (SELECT count(DISTINCT conversation_id) FROM {c}), (SELECT count(*) FROM {r})").format(
                c=self._staging_table(s.CONVERSATIONS, tag), r=self._staging_table(s.REJECTED_RECORDS, tag)
            )
        ).fetchone()
        messages = sum(by_type.values())
        cur.execute(
            sql.SQL(
                "UPDATE {}.exports SET file_name = %s, user_id = %s, export_date = %s::timestamp AT TIME ZONE 'UTC', "
                "bytes = %s, conversations = %s, messages = %s, rejected = %s, by_type = %s, transform_version = %s, "
                "loaded_at = clock_timestamp() WHERE sha256 = %s"
            ).format(self._schema_sql),
            (
                export.file_name, export.user_id, export.export_date, export.bytes,
                conversations, messages, rejected, Jsonb(by_type), export.transform_version, export.sha256,
            ),
        )
        for table in s.TRANSFORMED_TABLES:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._staging_table(table, tag)))
        cur.execute(sql.SQL("DELETE FROM {}.staged_parts WHERE tag = %s").format(self._staging_sql), (tag,))
        crash_point("load.before_commit")
        conn.commit()
        crash_point("load.committed")
        return LoadResult(
            conversations, messages, rejected, by_type=by_type, rows_changed=changed,
            table_seconds=seconds, bulk_loaded=bulk_loaded,
        )

    def _register_export(self, cur: psycopg.Cursor, export: ExportInfo) -> dict[str, object]:
        """Insert or find the export's row; its key (``export_id``, ``export_date``) for the merges.

        The id comes from the sha256, not from the publishing order, so that every load order
        gives the same ids; the date is stored first, because the merges compare it.
        """
        export_id = export_id_of(export.sha256)
        taken = cur.execute(
            sql.SQL("SELECT sha256 FROM {}.exports WHERE export_id = %s AND sha256 <> %s").format(self._schema_sql),
            (export_id, export.sha256),
        ).fetchone()
        if taken is not None:
            raise DatabaseError(
                f"{export.file_name}: export id {export_id} (from sha256 {export.sha256[:15]}) is already used by the "
                f"export with sha256 {taken[0]}"
            )
        # An export published before keeps its id (warehouses from before ids came from the sha256).
        export_id, export_date = cur.execute(
            sql.SQL(
                "INSERT INTO {}.exports (sha256, file_name, export_id, export_date) "
                "VALUES (%s, %s, %s, %s::timestamp AT TIME ZONE 'UTC') ON CONFLICT (sha256) DO UPDATE SET "
                "file_name = EXCLUDED.file_name, export_date = EXCLUDED.export_date "
                "RETURNING export_id, coalesce(export_date, '-infinity')::text"
            ).format(self._schema_sql),
            (export.sha256, export.file_name, export_id, export.export_date),
        ).fetchone()
        return {"export_id": export_id, "export_date": export_date}

    def _settle_media_statuses(self, cur: psycopg.Cursor, export: ExportInfo, tag: str) -> None:
        """Staged attachments ``pending`` their media copy get its outcome, in the publishing transaction.

        The copy finished before the publish (its outcome lists every file not stored), so
        ``stored`` is published only for files renamed into place complete.
        """
        if export.media is None:
            return
        staging = self._staging_table(s.ATTACHMENTS, tag)
        paths, statuses, notes = [], [], []
        for status, files in export.media.items():
            for path, note in files.items():
                paths.append(path)
                statuses.append(status)
                notes.append(note)
        if paths:
            cur.execute(
                sql.SQL(
                    "UPDATE {} a SET media_status = o.status, media_note = o.note "
                    "FROM unnest(%s::text[], %s::text[], %s::text[]) AS o(path, status, note) "
                    "WHERE a.media_status = 'pending' AND a.media_path = o.path"
                ).format(staging),
                (paths, statuses, notes),
            )
        cur.execute(sql.SQL("UPDATE {} SET media_status = 'stored' WHERE media_status = 'pending'").format(staging))

    def _publish_table(
        self, cur: psycopg.Cursor, table: s.Table, tag: str, key: dict[str, object], bulk_loaded: list[str]
    ) -> int:
        """Merge one staged table (``message_sources``: derived from the staged messages); rows changed.

        A table that is still empty is loaded by bulk instead (same rows, indexes built after);
        child rows only when their messages were, since then every message is new.
        """
        target = _target(self, table)
        if table is not s.MESSAGE_SOURCES:
            staging = self._staging_table(table, tag)
        elif s.MESSAGES.name in bulk_loaded:
            staging = sql.SQL("changed_messages")  # every message of the export, and narrow
        else:
            staging = self._staging_table(s.MESSAGES, tag)
        bulk = (
            table.merge in _BULK_LOADS
            and (table.merge != "message_child" or s.MESSAGES.name in bulk_loaded)
            and _is_empty(cur, target)
        )
        count = 0
        with _indexes_rebuilt(cur, target) if bulk else nullcontext():
            for statement in (_BULK_LOADS if bulk else _MERGES)[table.merge](self, table, staging):
                cur.execute(statement, key)
                count += max(cur.rowcount, 0)
        if bulk:
            bulk_loaded.append(table.name)
        if table is s.MESSAGES:
            cur.execute("ANALYZE changed_messages")
            if bulk:
                cur.execute(_superseded(staging))
        return count

    def export_consistency(self, sha256: str) -> tuple[int | None, int, int]:
        """(messages recorded for the export, messages whose provenance names it, its rejected records)."""
        self.ensure_schema()
        with self.connect() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT (SELECT messages FROM {s}.exports WHERE sha256 = %(sha)s), "
                    "(SELECT count(*) FROM {s}.message_sources WHERE export_id = "
                    "(SELECT export_id FROM {s}.exports WHERE sha256 = %(sha)s)), "
                    "(SELECT count(*) FROM {s}.rejected_records WHERE export_sha256 = %(sha)s)"
                ).format(s=self._schema_sql),
                {"sha": sha256},
            ).fetchone()
        return row[0], row[1], row[2]

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


_COPY_ORDER: tuple[tuple[str, str], ...] = (
    ("{}version", "DESC"),
    ("{}server_generated", "ASC"),
    ("length({}content_raw)", "DESC"),
    ("{}content_raw", "ASC"),
    ("{}properties", "ASC"),
    ("{}sender_name", "ASC"),
    ("{}edited_at", "ASC"),
    ("{}deleted_at", "ASC"),
    ("{}sent_at", "ASC"),
    ("{}sender_id", "ASC"),
    ("{}message_type", "ASC"),
    ("{}content_text", "ASC"),
    ("{}ams_references", "ASC"),
)
"""Which copy of a message wins, inside one export and across exports: highest version, then a
real copy over a server-generated one, then the longer content, then the first by every other
column (NULLs last). A total order, so the winner is the same whatever the order in which parts
were staged (in parallel) or exports were loaded."""


def _copy_order(prefix: str = "") -> sql.Composed:
    """``_COPY_ORDER`` as an ``ORDER BY`` list after the message key."""
    return sql.SQL(", ").join(
        [sql.SQL("conversation_id, message_id")]
        + [sql.SQL(f"{expr.format(prefix)} {direction} NULLS LAST") for expr, direction in _COPY_ORDER]
    )


def _sorts_before(new: str, old: str, order: tuple[tuple[str, str], ...]) -> sql.Composed:
    """True when the row ``new`` comes strictly before the row ``old`` in ``order`` (NULLs last)."""
    terms = []
    for i, (expr, direction) in enumerate(order):
        a, b = expr.format(f"{new}."), expr.format(f"{old}.")
        operator = ">" if direction == "DESC" else "<"
        equal_before = [f"{e.format(new + '.')} IS NOT DISTINCT FROM {e.format(old + '.')}" for e, _ in order[:i]]
        terms.append(" AND ".join([*equal_before, f"{a} IS NOT NULL AND ({b} IS NULL OR {a} {operator} {b})"]))
    return sql.SQL("(" + " OR ".join(f"({term})" for term in terms) + ")")


def _merge_message(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
        for n in table.column_names
        if n not in table.primary_key
    )
    others = [expr for expr, _ in _COPY_ORDER[1:]]
    # Most conflicts are the same copy again: one cheap comparison settles those.
    conflict = sql.SQL(
        " ON CONFLICT (conversation_id, message_id) DO UPDATE SET {} WHERE CASE "
        "WHEN t.version <> EXCLUDED.version THEN t.version < EXCLUDED.version "
        "WHEN ROW({}) IS NOT DISTINCT FROM ROW({}) THEN false ELSE {} END"
    ).format(
        updates,
        sql.SQL(", ".join(e.format("t.") for e in others)),
        sql.SQL(", ".join(e.format("EXCLUDED.") for e in others)),
        _sorts_before("EXCLUDED", "t", _COPY_ORDER[1:]),
    )
    return [_insert_messages(loader, table, staging, conflict)]


def _insert_messages(loader: Loader, table: s.Table, staging: sql.Composed, conflict: sql.Composable) -> sql.Composed:
    """The winning copy of each staged message into the table; what changed into ``changed_messages``."""
    return sql.SQL(
        "WITH up AS (INSERT INTO {tgt} AS t ({cols}) SELECT DISTINCT ON (conversation_id, message_id) {cols} "
        "FROM {stg} ORDER BY {order}{conflict} RETURNING conversation_id, message_id, version) "
        "INSERT INTO changed_messages SELECT * FROM up"
    ).format(
        tgt=_target(loader, table), cols=_cols(table.column_names), stg=staging, order=_copy_order(), conflict=conflict
    )


def _merge_message_child(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    target = _target(loader, table)
    return [
        sql.SQL(
            "DELETE FROM {tgt} t USING changed_messages c "
            "WHERE t.conversation_id = c.conversation_id AND t.message_id = c.message_id"
        ).format(tgt=target),
        sql.SQL(
            "INSERT INTO {tgt} ({cols}) SELECT DISTINCT ON ({keys}) {scols} FROM {stg} s JOIN changed_messages c "
            "ON s.conversation_id = c.conversation_id AND s.message_id = c.message_id AND s.version = c.version "
            "ORDER BY {order} ON CONFLICT DO NOTHING"
        ).format(tgt=target, cols=_cols(names), stg=staging, **_child_selection(table)),
    ]


def _child_selection(table: s.Table) -> dict[str, sql.Composable]:
    """One row per key of a child table, the same one whichever order the parts were staged in."""
    names = table.column_names
    others = [n for n in names if n not in table.primary_key]

    def columns(which) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(n)) for n in which)

    return {"keys": columns(table.primary_key), "scols": columns(names), "order": columns((*table.primary_key, *others))}


def _merge_insert_new(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    names = table.column_names
    return [
        sql.SQL("INSERT INTO {tgt} ({cols}) SELECT DISTINCT {cols} FROM {stg} ON CONFLICT DO NOTHING").format(
            tgt=_target(loader, table), cols=_cols(names), stg=staging
        )
    ]


def _not_older(loader: Loader, column: str) -> sql.Composed:
    """True when the export being published is not older than the one ``t.<column>`` names.

    Exports compare by (``export_date``, ``export_id``): the newest wins, and the id (from the
    sha256) breaks ties between equal dates. A row naming no export (or an unknown one) loses.
    """
    return sql.SQL(
        "COALESCE((%(export_date)s::timestamptz, %(export_id)s::bigint) >= (SELECT COALESCE(e.export_date, "
        "'-infinity'::timestamptz), e.export_id FROM {s}.exports e WHERE e.export_id = t.{c}), true)"
    ).format(s=loader._schema_sql, c=sql.Identifier(column))


def _merge_conversation(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    """The newest export's copy of each conversation, whole: the same whichever export came first."""
    names = [c.name for c in table.staging_columns]
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names if n != "conversation_id"
    )
    rest = sql.SQL(", ").join(
        sql.SQL("{} NULLS LAST").format(sql.Identifier(n)) for n in names if n not in ("conversation_id", "version")
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t ({cols}, source_export, named_after_person) "
            "SELECT DISTINCT ON (conversation_id) {cols}, %(export_id)s::bigint, false FROM {stg} "
            "ORDER BY conversation_id, version DESC NULLS LAST, {rest} "
            "ON CONFLICT (conversation_id) DO UPDATE SET {updates}, source_export = EXCLUDED.source_export, "
            "named_after_person = false WHERE {newer}"
        ).format(
            tgt=_target(loader, table), cols=_cols(names), stg=staging, rest=rest, updates=updates,
            newer=_not_older(loader, "source_export"),
        )
    ]


def _merge_person(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    """A person's display name from the newest export that knows one; owner once owner."""
    newer_name = sql.SQL("(EXCLUDED.display_name IS NOT NULL AND (t.display_name IS NULL OR {}))").format(
        _not_older(loader, "name_export")
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t (person_id, display_name, is_owner, name_export) "
            "SELECT person_id, max(display_name), bool_or(is_owner), "
            "CASE WHEN max(display_name) IS NOT NULL THEN %(export_id)s::bigint END FROM {stg} GROUP BY person_id "
            "ON CONFLICT (person_id) DO UPDATE SET "
            "display_name = CASE WHEN {newer} THEN EXCLUDED.display_name ELSE t.display_name END, "
            "name_export = CASE WHEN {newer} THEN EXCLUDED.name_export ELSE t.name_export END, "
            "is_owner = t.is_owner OR EXCLUDED.is_owner "
            "WHERE {newer} OR (EXCLUDED.is_owner AND NOT t.is_owner)"
        ).format(tgt=_target(loader, table), stg=staging, newer=newer_name)
    ]


def _merge_membership(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    """A member's role from the newest export that lists one; the source that came with a role, else the first."""
    newer_role = sql.SQL("(EXCLUDED.role IS NOT NULL AND (t.role IS NULL OR {}))").format(
        _not_older(loader, "role_export")
    )
    source = sql.SQL(
        "(CASE WHEN (EXCLUDED.role IS NULL) = (t.role IS NULL) THEN LEAST(t.source, EXCLUDED.source) "
        "WHEN EXCLUDED.role IS NOT NULL THEN EXCLUDED.source ELSE t.source END)"
    )
    return [
        sql.SQL(
            "INSERT INTO {tgt} AS t (conversation_id, person_id, role, source, role_export) "
            "SELECT DISTINCT ON (conversation_id, person_id) conversation_id, person_id, role, source, "
            "CASE WHEN role IS NOT NULL THEN %(export_id)s::bigint END FROM {stg} "
            "ORDER BY conversation_id, person_id, role NULLS LAST, source "
            "ON CONFLICT (conversation_id, person_id) DO UPDATE SET "
            "role = CASE WHEN {newer} THEN EXCLUDED.role ELSE t.role END, "
            "role_export = CASE WHEN {newer} THEN EXCLUDED.role_export ELSE t.role_export END, source = {source} "
            "WHERE {newer} OR {source} IS DISTINCT FROM t.source"
        ).format(tgt=_target(loader, table), stg=staging, newer=newer_role, source=source)
    ]


def _merge_provenance(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [_insert_provenance(loader, table, staging, sql.SQL(" ON CONFLICT DO NOTHING"))]


def _insert_provenance(loader: Loader, table: s.Table, staging: sql.Composed, conflict: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {tgt} (conversation_id, message_id, export_id) "
        "SELECT DISTINCT conversation_id, message_id, %(export_id)s FROM {stg}{conflict}"
    ).format(tgt=_target(loader, table), stg=staging, conflict=conflict)


_MERGES = {
    "message": _merge_message,
    "message_child": _merge_message_child,
    "export": _merge_insert_new,
    "conversation": _merge_conversation,
    "person": _merge_person,
    "membership": _merge_membership,
    "provenance": _merge_provenance,
}


# -- bulk loads: the same result for a table that is still empty ------------------------------
#
# Into an empty table nothing can conflict, so the rows go in with plain INSERTs and the
# indexes are built afterwards in one sorted pass each (see ``_indexes_rebuilt``), which is
# about twice as fast as maintaining them row by row.


def _bulk_message(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [_insert_messages(loader, table, staging, sql.SQL(""))]


def _superseded(staging: sql.Composed) -> sql.Composed:
    """The few staged copies of messages that lost to a higher version: their child rows are left out.

    Testing child rows against this small table is much cheaper than joining every winning copy.
    """
    return sql.SQL(
        "CREATE TEMP TABLE superseded ON COMMIT DROP AS SELECT s.conversation_id, s.message_id, s.version "
        "FROM {stg} s JOIN changed_messages c USING (conversation_id, message_id) WHERE s.version < c.version"
    ).format(stg=staging)


def _bulk_message_child(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [
        sql.SQL(
            "INSERT INTO {tgt} ({cols}) SELECT DISTINCT ON ({keys}) {scols} FROM {stg} s WHERE NOT EXISTS "
            "(SELECT FROM superseded x WHERE s.conversation_id = x.conversation_id "
            "AND s.message_id = x.message_id AND s.version = x.version) "
            "ORDER BY {order}"
        ).format(tgt=_target(loader, table), cols=_cols(table.column_names), stg=staging, **_child_selection(table))
    ]


def _bulk_provenance(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    return [_insert_provenance(loader, table, staging, sql.SQL(""))]


_BULK_LOADS = {
    "message": _bulk_message,
    "message_child": _bulk_message_child,
    "provenance": _bulk_provenance,
}


def _is_empty(cur: psycopg.Cursor, target: sql.Composed) -> bool:
    return cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(target)).fetchone()[0]


@contextmanager
def _indexes_rebuilt(cur: psycopg.Cursor, target: sql.Composed) -> Iterator[None]:
    """Drop the table's primary key and indexes, and build them again when the block ends.

    Inside the publishing transaction: readers never see the table without them (they
    wait for the commit, which only happens for a table that was empty).
    """
    indexes = cur.execute(
        "SELECT pg_get_indexdef(i.indexrelid), i.indexrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
        "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
        "WHERE i.indrelid = %s::regclass ORDER BY c.conname NULLS LAST",
        (target.as_string(cur.connection),),
    ).fetchall()
    for _, index, constraint, _ in indexes:
        if constraint:
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(constraint)))
        else:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
    # A table emptied in this transaction gets new files: with wal_level = minimal (the
    # embedded server) its rows and indexes are written without WAL and synced at commit.
    cur.execute(sql.SQL("TRUNCATE {}").format(target))
    yield
    for definition, _, constraint, constraint_definition in indexes:
        if constraint:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    target, sql.Identifier(constraint), sql.SQL(constraint_definition)
                )
            )
        else:
            cur.execute(sql.SQL(definition))


def _fill_one_to_one_names(schema_sql: sql.Identifier) -> sql.Composed:
    """Name a 1:1 chat without ``displayName`` after the other person, and follow that name when it changes.

    Runs over every such chat at every publish: a later export may rename the person without
    containing the chat, and the result must not depend on which came first.
    """
    return sql.SQL(
        "UPDATE {s}.conversations c SET display_name = p.display_name, named_after_person = true FROM {s}.people p "
        "WHERE c.kind = 'one_to_one' AND (c.display_name IS NULL OR c.named_after_person) "
        "AND p.display_name IS NOT NULL AND (NOT c.named_after_person OR c.display_name IS DISTINCT FROM p.display_name) "
        "AND p.person_id = CASE WHEN c.conversation_id ~ '^([0-9]+|guest):' THEN c.conversation_id "
        "ELSE '8:' || c.conversation_id END"
    ).format(s=schema_sql)


def export_id_of(sha256: str) -> int:
    """The export's short id: its sha256's first 15 hex digits (60 bits), whatever the load order."""
    return int(sha256[:15], 16)


def _export_lock_key(sha256: str) -> str:
    return f"skype-etl:export:{sha256}"


_TRANSIENT_STATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004"}


def _is_transient(error: BaseException) -> bool:
    """Errors worth retrying: lost connections, restarts, serialization failures, deadlocks."""
    if isinstance(error, DatabaseError):
        return False
    if isinstance(error, psycopg.Error):
        return error.sqlstate in _TRANSIENT_STATES or (
            isinstance(error, psycopg.OperationalError) and error.sqlstate is None
        )
    return False


def _retrying(operation):
    """Run ``operation``, retrying transient database errors with exponential backoff for 90 s."""
    for attempt in Retrying(
        retry=retry_if_exception(_is_transient),
        wait=wait_exponential(multiplier=0.5, max=8),
        stop=stop_after_delay(90),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "transient database error, retrying (%s): %s", state.attempt_number, _first_line(state.outcome.exception())
        ),
    ):
        with attempt:
            return operation()
    raise AssertionError("unreachable")


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error and str(error).strip() else type(error).__name__


def _connect(url: str, autocommit: bool) -> psycopg.Connection:
    """Connect, waiting a little for a server that is starting; fail clearly (no password) otherwise."""
    from .database import redact_url, scrub_secret

    deadline = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
        except psycopg.Error as e:
            message = str(e)
            starting = any(
                hint in message
                for hint in ("starting up", "shutting down", "Connection refused", "No such file or directory")
            )
            if starting and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            reason = scrub_secret(_first_line(e), url)
            raise DatabaseError(f"cannot connect to {redact_url(url)}: {reason}") from None
