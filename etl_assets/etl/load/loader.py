"""Loader: schema migrations, binary COPY, and one transaction that publishes an export.

Into a warehouse that already holds messages, each table's Parquet parts are copied
(binary COPY, see ``binary_copy``) into unlogged staging tables in ``<schema>_staging``,
one committed part at a time so that a crash resumes where it stopped; publishing then
merges every staging table into the warehouse in one transaction, so readers see all of
an export or none of it. Merges follow natural keys: the newest message ``version`` wins;
a message's child rows are replaced only when the message changed. Loading the same export
twice therefore changes no row. Every choice between exports depends only on the exports
(their dates, their sha256, the rows' values), never on the order in which they are loaded.

A first load (no messages yet) skips staging for the message tables: the publishing
transaction copies them straight into the tables and builds their indexes afterwards
(``first_load``), which gives the same rows in a fraction of the time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .. import schema as s
from .binary_copy import copy_batches, parquet_batches
from ..config import ETLConfig, load_config
from .connect import ConnectionSettings, _connect, _retrying, export_lock
from .copy_order import COPY_ORDER, child_order, message_order, sorts_before
from ..errors import DatabaseError
from ..faults import crash_point
from .first_load import FIRST_LOAD_TABLES, is_first_load, load_first

log = logging.getLogger(__name__)
_MIGRATION_LOCK = 0x736B797065  # "skype": one advisory lock id for schema changes
_PUBLISH_LOCK = 0x736B797066  # publishes run one at a time: no deadlocks between exports
STAGE_CONNECTIONS = 2
STAGED_FIRST: tuple[s.Table, ...] = tuple(t for t in s.TRANSFORMED_TABLES if t not in FIRST_LOAD_TABLES)
"""Tables staged even for a first load: small ones whose merges keep the best value across exports."""


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
    """Tables a first load filled by COPY straight into the table (indexes built after the rows)."""


class Loader:
    """Creates and migrates the warehouse schema and publishes transformed exports."""

    def __init__(self, database_url: str, schema: str = "skype", *, config: ETLConfig | None = None) -> None:
        """``config`` gives the text search configuration and the connections' waits and timeouts."""
        config = config or load_config()
        self.database_url = database_url
        self.schema = schema
        self.text_search_config = config.text_search_config
        self.connection_settings = ConnectionSettings.from_config(config)
        self.staging_schema = f"{schema}_staging"
        self._schema_sql = sql.Identifier(schema)
        self._staging_sql = sql.Identifier(self.staging_schema)
        self._migrated = False

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; waits up to ``CONNECT_WAIT`` seconds for a server that is (re)starting."""
        conn = _connect(self.database_url, autocommit, self.connection_settings)
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
        with export_lock(self.database_url, export.sha256, settings=self.connection_settings) as lock_conn:
            crash_point("load.locked")
            published = self._published(lock_conn, export)
            if published is not None:
                return published
            with self.connect() as conn:
                self._drop_other_staging(conn, export.sha256, tag)
                conn.commit()
                started = time.perf_counter()
                # A guess, settled under the publishing lock: a first load stages only the small tables.
                first = is_first_load(conn.cursor(), self._schema_sql)
                conn.commit()
                staged, resumed = self._stage_all(conn, parquet_dir, tag, STAGED_FIRST if first else s.TRANSFORMED_TABLES)
                staged_at = time.perf_counter()
                crash_point("load.staged")
                result = self._publish(conn, export, tag, parquet_dir, staged_all=not first)
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

    def _stage_all(
        self, conn: psycopg.Connection, parquet_dir: Path, tag: str, tables: tuple[s.Table, ...]
    ) -> tuple[dict[str, int], int]:
        """COPY every part file of ``tables`` not staged yet, one transaction per part."""
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
        for table in tables:
            self._create_staging(conn, table, tag)
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
        staged = {table.name: 0 for table in tables}
        for (table_name, _), rows in done.items():
            if table_name in staged:
                staged[table_name] += rows
        return staged, resumed

    def _create_staging(self, conn: psycopg.Connection, table: s.Table, tag: str) -> None:
        ddl = s.create_table_sql(table, self._staging_sql.as_string(conn), staging_name=f"{table.name}_{tag}")
        conn.execute(ddl.encode())

    def _stage_parts(self, pending: list[tuple[s.Table, Path]], tag: str) -> dict[tuple[str, str], int]:
        """COPY the parts over ``STAGE_CONNECTIONS`` connections at once.

        While one connection's server process stores a COPY, the other thread reads and encodes
        its next batch (Arrow and the encoder release the GIL).
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
        with conn.cursor() as cur:
            rows = _copy_part(cur, table, target, [path])
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

    def _publish(
        self, conn: psycopg.Connection, export: ExportInfo, tag: str, parquet_dir: Path, *, staged_all: bool
    ) -> LoadResult:
        """Merge every staging table into the warehouse and record the export: one transaction.

        Unless ``staged_all``, the message tables were not staged: into a warehouse still without
        messages they are copied straight into their tables; if another export was published since
        the guess, they are staged now, inside this transaction, and merged like the rest.
        """
        changed: dict[str, int] = {}
        seconds: dict[str, float] = {}
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PUBLISH_LOCK,))
        key = self._register_export(cur, export)
        first = not staged_all and is_first_load(cur, self._schema_sql)
        if not staged_all and not first:
            for table in s.TRANSFORMED_TABLES:
                if table not in STAGED_FIRST:
                    self._create_staging(conn, table, tag)
                    _copy_part(cur, table, self._staging_table(table, tag), sorted((parquet_dir / table.name).glob("*.parquet")))
        merged = STAGED_FIRST if first else (*s.TRANSFORMED_TABLES, s.MESSAGE_SOURCES)
        if not first:
            cur.execute(
                "CREATE TEMP TABLE changed_messages (conversation_id text, message_id text, version bigint) ON COMMIT DROP"
            )
            self._settle_media_statuses(cur, export, self._staging_table(s.ATTACHMENTS, tag))
        for table in merged:
            started = time.perf_counter()
            changed[table.name] = self._publish_table(cur, table, tag, key)
            seconds[table.name] = round(time.perf_counter() - started, 3)
            log.debug("merged %s: %d rows changed in %.2f s", table.name, changed[table.name], seconds[table.name])
            crash_point("load.merged_table")
        bulk_loaded: list[str] = []
        if first:
            copied = load_first(
                cur, self._schema_sql, parquet_dir, key["export_id"],
                lambda c, target: self._settle_media_statuses(c, export, target),
            )
            changed.update(copied.rows)
            seconds.update(copied.seconds)
            bulk_loaded = list(copied.rows)
            log.debug("first load: %s rows in %s s", copied.rows, copied.seconds)
        cur.execute(_fill_one_to_one_names(self._schema_sql))
        # After a first load the message table holds exactly this export's winning copies.
        winners = (
            _target(self, s.MESSAGES)
            if first
            else sql.SQL("(SELECT DISTINCT ON (conversation_id, message_id) message_type FROM {m} ORDER BY {order})").format(
                m=self._staging_table(s.MESSAGES, tag), order=message_order()
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

    def _settle_media_statuses(self, cur: psycopg.Cursor, export: ExportInfo, attachments: sql.Composed) -> None:
        """Attachments ``pending`` their media copy get its outcome, in the publishing transaction.

        ``attachments`` is the export's staged table, or the warehouse table during a first load.
        The copy finished before the publish (its outcome lists every file not stored), so
        ``stored`` is published only for files renamed into place complete.
        """
        if export.media is None:
            return
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
                ).format(attachments),
                (paths, statuses, notes),
            )
        cur.execute(sql.SQL("UPDATE {} SET media_status = 'stored' WHERE media_status = 'pending'").format(attachments))

    def _publish_table(self, cur: psycopg.Cursor, table: s.Table, tag: str, key: dict[str, object]) -> int:
        """Merge one staged table (``message_sources``: derived from the staged messages); rows changed."""
        staging = self._staging_table(s.MESSAGES if table is s.MESSAGE_SOURCES else table, tag)
        count = 0
        for statement in _MERGES[table.merge](self, table, staging):
            cur.execute(statement, key)
            count += max(cur.rowcount, 0)
        if table is s.MESSAGES:
            cur.execute("ANALYZE changed_messages")
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


def _copy_part(cur: psycopg.Cursor, table: s.Table, target: sql.Composed, paths: list[Path]) -> int:
    """COPY the Parquet parts ``paths`` of ``table`` into its staging table ``target``; rows copied."""
    columns = table.staging_columns
    return copy_batches(cur, target, columns, parquet_batches(paths, [c.name for c in columns]))


def _cols(columns) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name if hasattr(c, "name") else c) for c in columns)


def _target(loader: Loader, table: s.Table) -> sql.Composed:
    return sql.SQL("{}.{}").format(loader._schema_sql, sql.Identifier(table.name))


def _merge_message(loader: Loader, table: s.Table, staging: sql.Composed) -> list[sql.Composed]:
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
        for n in table.column_names
        if n not in table.primary_key
    )
    others = [expr for expr, _ in COPY_ORDER[1:]]
    # Most conflicts are the same copy again: one cheap comparison settles those.
    conflict = sql.SQL(
        " ON CONFLICT (conversation_id, message_id) DO UPDATE SET {} WHERE CASE "
        "WHEN t.version <> EXCLUDED.version THEN t.version < EXCLUDED.version "
        "WHEN ROW({}) IS NOT DISTINCT FROM ROW({}) THEN false ELSE {} END"
    ).format(
        updates,
        sql.SQL(", ".join(e.format("t.") for e in others)),
        sql.SQL(", ".join(e.format("EXCLUDED.") for e in others)),
        sorts_before("EXCLUDED", "t", COPY_ORDER[1:]),
    )
    return [_insert_messages(loader, table, staging, conflict)]


def _insert_messages(loader: Loader, table: s.Table, staging: sql.Composed, conflict: sql.Composable) -> sql.Composed:
    """The winning copy of each staged message into the table; what changed into ``changed_messages``."""
    return sql.SQL(
        "WITH up AS (INSERT INTO {tgt} AS t ({cols}) SELECT DISTINCT ON (conversation_id, message_id) {cols} "
        "FROM {stg} ORDER BY {order}{conflict} RETURNING conversation_id, message_id, version) "
        "INSERT INTO changed_messages SELECT * FROM up"
    ).format(
        tgt=_target(loader, table), cols=_cols(table.column_names), stg=staging, order=message_order(), conflict=conflict
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
        ).format(tgt=target, cols=_cols(names), stg=staging, **child_order(table)),
    ]


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
