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
from collections.abc import Callable, Iterator
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
from .copy_order import message_order
from ..errors import DatabaseError
from ..faults import crash_point
from .merge import MERGES, export_id_of, fill_one_to_one_names, table_sql
from .first_load import FIRST_LOAD_TABLES, is_first_load, load_first
from .media_statuses import MediaOutcome, settle_media_statuses, share_stored_media

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
    media: MediaOutcome | Callable[[], MediaOutcome | None] | None = None
    """Outcome of the media copy: ``{"skipped": {path: reason}, "damaged": {...}}``; every other
    file was stored. ``None`` when no copy finished: attachment statuses stay ``pending``.
    A callable is a copy still running beside the load: the publish calls it (waiting for the
    copy to end) when it sets the attachments' statuses, inside the publishing transaction."""

    def media_outcome(self) -> MediaOutcome | None:
        """The media copy's outcome, waiting for a copy that is still running."""
        return self.media() if callable(self.media) else self.media


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
            settle_media_statuses(cur, self._staging_table(s.ATTACHMENTS, tag), parquet_dir, export.media_outcome)
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
                lambda c, target: settle_media_statuses(c, target, parquet_dir, export.media_outcome),
            )
            changed.update(copied.rows)
            seconds.update(copied.seconds)
            bulk_loaded = list(copied.rows)
            log.debug("first load: %s rows in %s s", copied.rows, copied.seconds)
        attachments = table_sql(self._schema_sql, s.ATTACHMENTS)
        share_stored_media(cur, attachments, attachments if first else self._staging_table(s.ATTACHMENTS, tag))
        cur.execute(fill_one_to_one_names(self._schema_sql))
        # After a first load the message table holds exactly this export's winning copies.
        winners = (
            table_sql(self._schema_sql, s.MESSAGES)
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

    def _publish_table(self, cur: psycopg.Cursor, table: s.Table, tag: str, key: dict[str, object]) -> int:
        """Merge one staged table (``message_sources``: derived from the staged messages); rows changed."""
        staging = self._staging_table(s.MESSAGES if table is s.MESSAGE_SOURCES else table, tag)
        count = 0
        for statement in MERGES[table.merge](self._schema_sql, table, staging):
            cur.execute(statement, key)
            count += max(cur.rowcount, 0)
        if table is s.MESSAGES:
            cur.execute("ANALYZE changed_messages")
        return count



def _copy_part(cur: psycopg.Cursor, table: s.Table, target: sql.Composed, paths: list[Path]) -> int:
    """COPY the Parquet parts ``paths`` of ``table`` into its staging table ``target``; rows copied."""
    columns = table.staging_columns
    return copy_batches(cur, target, columns, parquet_batches(paths, [c.name for c in columns]))
