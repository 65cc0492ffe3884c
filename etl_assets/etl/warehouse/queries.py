"""Queries on a loaded warehouse: row counts, an export's consistency, phase statistics, throughput, the owner's name.

The demo, the asset checks and metadata, the compatibility layer and the phase statistics
read and annotate the warehouse here; the loader only creates and publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NamedTuple

import psycopg
from psycopg import sql

from .. import schema as s
from ..config import ETLConfig
from ..load.connect import ConnectionSettings, _connect


class Warehouse:
    """The warehouse schema ``schema`` of the database at ``database_url`` (its tables must exist)."""

    def __init__(self, database_url: str, schema: str = "skype", *, config: ETLConfig | None = None) -> None:
        self.database_url = database_url
        self.schema = schema
        self._schema_sql = sql.Identifier(schema)
        self._settings = ConnectionSettings.from_config(config)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        conn = _connect(self.database_url, False, self._settings)
        with conn:
            yield conn

    def table_counts(self) -> dict[str, int]:
        """Row counts of every warehouse table."""
        with self.connect() as conn:
            return {
                t.name: conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(self._schema_sql, sql.Identifier(t.name))
                ).fetchone()[0]
                for t in s.ALL_TABLES
            }

    def export_consistency(self, sha256: str) -> tuple[int | None, int, int]:
        """(messages recorded for the export, messages whose provenance names it, its rejected records)."""
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

    def export_throughput(self, sha256: str) -> float | None:
        """Messages per second of the export's latest extract, transform and load, end to end.

        The media copy runs beside the load, so it adds no time of its own.
        """
        with self.connect() as conn:
            messages, seconds = conn.execute(
                sql.SQL(
                    "SELECT (SELECT messages FROM {s}.exports WHERE sha256 = %(sha)s), sum(duration_seconds) FROM ("
                    "SELECT DISTINCT ON (phase) duration_seconds FROM {s}.etl_phase_stats "
                    "WHERE export_sha256 = %(sha)s AND phase IN ('extract', 'transform', 'load') "
                    "ORDER BY phase, recorded_at DESC) latest"
                ).format(s=self._schema_sql),
                {"sha": sha256},
            ).fetchone()
        return round(messages / seconds, 1) if messages is not None and seconds else None

    def batch_throughput(self, since: datetime | None) -> BatchThroughput:
        """The exports published after ``since`` (all when ``None``): how many, their messages, and
        their messages per second from the first phase's start to the last publish."""
        with self.connect() as conn:
            exports, messages, seconds = conn.execute(
                sql.SQL(
                    "WITH batch AS (SELECT sha256, messages, loaded_at FROM {s}.exports "
                    "WHERE loaded_at > coalesce(%(since)s, '-infinity'::timestamptz)) "
                    "SELECT count(*), coalesce(sum(messages), 0), extract(epoch FROM max(loaded_at) - ("
                    "SELECT min(recorded_at - make_interval(secs => duration_seconds)) FROM {s}.etl_phase_stats "
                    "WHERE export_sha256 IN (SELECT sha256 FROM batch))) FROM batch"
                ).format(s=self._schema_sql),
                {"since": since},
            ).fetchone()
        messages, seconds = int(messages), float(seconds) if seconds is not None else None
        return BatchThroughput(exports, messages, seconds, round(messages / seconds, 1) if seconds else None)


class BatchThroughput(NamedTuple):
    """What a batch of loads published, and how fast."""

    exports: int
    messages: int
    seconds: float | None
    messages_per_second: float | None
