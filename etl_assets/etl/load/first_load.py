"""First load: binary COPY straight into the empty message tables, inside the publishing transaction.

Into tables that are still empty nothing can conflict, so staging the rows and then
``INSERT … SELECT``-ing them would write and sort every row twice for nothing. Instead each
Parquet part goes into the real table by binary COPY, with its keys and indexes dropped. A
key that turns out duplicated (a message copied twice in one export, at several versions)
is settled by the merge's own rules (``copy_order``), and each index is built once over the
whole table. Everything happens in the publishing transaction: readers see the empty tables
until the commit, then the whole export, and a crash leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import errors, sql

from .. import schema as s
from .binary_copy import copy_batches, parquet_batches
from .copy_order import child_order, message_order
from ..faults import crash_point

CHILD_TABLES: tuple[s.Table, ...] = tuple(t for t in s.TRANSFORMED_TABLES if t.merge == "message_child")
FIRST_LOAD_TABLES: tuple[s.Table, ...] = (s.MESSAGES, *CHILD_TABLES, s.MESSAGE_SOURCES)
"""The tables a first load fills directly: messages, the rows they own, and their provenance."""

WORK_MEM = "64MB"
"""Memory per sort or hash of the first load's statements, for this transaction only."""
_T = TypeVar("_T")
_KEY_SEPARATOR = "\x00"  # cannot occur in a PostgreSQL text value: keys joined by it stay distinct


@dataclass
class FirstLoadResult:
    """Rows published per table and where the time went."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    duplicate_messages: int = 0
    """Message keys the export held more than once (the losing copies were left out)."""


@dataclass(frozen=True)
class _Index:
    definition: str
    name: str
    constraint: str | None
    constraint_definition: str | None


@dataclass(frozen=True)
class _Winners:
    """The winning version of each message key the export holds more than once."""

    keys: pa.Array
    versions: pa.Array
    losers: int
    """Copies deleted."""


def is_first_load(cur: psycopg.Cursor, schema_sql: sql.Identifier) -> bool:
    """True when every table a first load fills is empty (asked under the publishing lock)."""
    checks = sql.SQL(" AND ").join(
        sql.SQL("NOT EXISTS (SELECT FROM {}.{})").format(schema_sql, sql.Identifier(t.name)) for t in FIRST_LOAD_TABLES
    )
    return cur.execute(sql.SQL("SELECT {}").format(checks)).fetchone()[0]


def load_first(
    cur: psycopg.Cursor,
    schema_sql: sql.Identifier,
    parquet_dir: Path,
    export_id: int,
    settle_media: Callable[[psycopg.Cursor, sql.Composed], None],
) -> FirstLoadResult:
    """COPY the export's messages and their rows into the empty tables; build their keys and indexes.

    ``settle_media`` gives the attachments their media status once their rows are in.
    """
    result = FirstLoadResult()
    # Settling duplicates aggregates every key: with PostgreSQL's default 4 MB it spills to disk.
    cur.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))
    targets = {t.name: sql.SQL("{}.{}").format(schema_sql, sql.Identifier(t.name)) for t in FIRST_LOAD_TABLES}
    indexes = {t.name: _drop_indexes(cur, targets[t.name]) for t in FIRST_LOAD_TABLES}

    with _timed(result, s.MESSAGES.name):
        target = targets[s.MESSAGES.name]
        copied = copy_batches(cur, target, s.MESSAGES.staging_columns, _parts(parquet_dir, s.MESSAGES))
        crash_point("load.copied_table")
        winners = _build_primary_key(cur, target, indexes[s.MESSAGES.name], lambda: _drop_losing_copies(cur, target))
        result.duplicate_messages = 0 if winners is None else len(winners.keys)
        result.rows[s.MESSAGES.name] = copied - (0 if winners is None else winners.losers)

    for table in CHILD_TABLES:
        with _timed(result, table.name):
            target = targets[table.name]
            columns = _target_columns(table)
            batches = (_winning_copies(batch, winners) for batch in _parts(parquet_dir, table))
            result.rows[table.name] = copy_batches(cur, target, columns, batches)
            crash_point("load.copied_table")
            if table is s.ATTACHMENTS:
                settle_media(cur, target)
            dropped = _build_primary_key(
                cur, target, indexes[table.name], lambda: _drop_duplicate_children(cur, table, target)
            )
            result.rows[table.name] -= dropped or 0

    with _timed(result, s.MESSAGE_SOURCES.name):
        target = targets[s.MESSAGE_SOURCES.name]
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (conversation_id, message_id, export_id) SELECT conversation_id, message_id, %s FROM {}"
            ).format(target, targets[s.MESSAGES.name]),
            (export_id,),
        )
        result.rows[s.MESSAGE_SOURCES.name] = cur.rowcount
        _build_indexes(cur, target, indexes[s.MESSAGE_SOURCES.name])

    for table in (s.MESSAGES, *CHILD_TABLES):
        with _timed(result, table.name):
            _build_indexes(cur, targets[table.name], [i for i in indexes[table.name] if i.constraint is None])
    crash_point("load.indexes_built")
    return result


def _parts(parquet_dir: Path, table: s.Table) -> Iterable[pa.RecordBatch]:
    paths = sorted((parquet_dir / table.name).glob("*.parquet"))
    return parquet_batches(paths, [c.name for c in table.staging_columns])


def _target_columns(table: s.Table) -> tuple[s.Column, ...]:
    """The child's Parquet columns that the table holds (``version`` only picks the winning copy)."""
    names = set(table.column_names)
    return tuple(c for c in table.staging_columns if c.name in names)


# -- duplicates -----------------------------------------------------------------------------


def _drop_losing_copies(cur: psycopg.Cursor, target: sql.Composed) -> _Winners:
    """Delete every copy of a duplicated message but the winning one; the winners' versions."""
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE duplicate_copies ON COMMIT DROP AS SELECT ctid AS row_id, conversation_id, message_id, "
            "version, row_number() OVER (PARTITION BY conversation_id, message_id ORDER BY {order}) AS rank FROM {t} "
            "WHERE (conversation_id, message_id) IN "
            "(SELECT conversation_id, message_id FROM {t} GROUP BY 1, 2 HAVING count(*) > 1)"
        ).format(t=target, order=message_order(with_key=False))
    )
    cur.execute(
        sql.SQL("DELETE FROM {} WHERE ctid = ANY (ARRAY(SELECT row_id FROM duplicate_copies WHERE rank > 1))").format(
            target
        )
    )
    losers = cur.rowcount
    rows = cur.execute("SELECT conversation_id, message_id, version FROM duplicate_copies WHERE rank = 1").fetchall()
    keys = pc.binary_join_element_wise(
        pa.array([r[0] for r in rows], pa.string()), pa.array([r[1] for r in rows], pa.string()), _KEY_SEPARATOR
    )
    return _Winners(keys, pa.array([r[2] for r in rows], pa.int64()), losers)


def _winning_copies(batch: pa.RecordBatch, winners: _Winners | None) -> pa.RecordBatch:
    """Leave out the rows of message copies that lost (a lower version of a duplicated message)."""
    if winners is None or batch.num_rows == 0:
        return batch
    keys = pc.binary_join_element_wise(batch["conversation_id"], batch["message_id"], _KEY_SEPARATOR)
    at = pc.index_in(keys, value_set=winners.keys)
    keep = pc.or_kleene(pc.is_null(at), pc.equal(batch["version"], pc.take(winners.versions, at)))
    return batch.filter(keep)


def _drop_duplicate_children(cur: psycopg.Cursor, table: s.Table, target: sql.Composed) -> int:
    """Keep one row per key of a child table (the one a merge keeps); the rows deleted."""
    order = child_order(table, prefix="")
    cur.execute(
        sql.SQL(
            "DELETE FROM {t} WHERE ctid = ANY (ARRAY(SELECT row_id FROM (SELECT ctid AS row_id, row_number() OVER "
            "(PARTITION BY {keys} ORDER BY {order}) AS rank FROM {t}) r WHERE rank > 1))"
        ).format(t=target, keys=order["keys"], order=order["order"])
    )
    return cur.rowcount


# -- keys and indexes -------------------------------------------------------------------------


def _drop_indexes(cur: psycopg.Cursor, target: sql.Composed) -> list[_Index]:
    """Drop the table's primary key and indexes (and empty it, so its files are new); what to rebuild."""
    indexes = [
        _Index(*row)
        for row in cur.execute(
            "SELECT pg_get_indexdef(i.indexrelid), i.indexrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
            "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
            "WHERE i.indrelid = %s::regclass ORDER BY c.conname NULLS LAST, 2",
            (target.as_string(cur.connection),),
        ).fetchall()
    ]
    for index in indexes:
        if index.constraint:
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(index.constraint)))
        else:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index.name)))
    # Emptied in this transaction, the table gets new files: COPY may then skip the WAL where
    # wal_level = minimal (the embedded server).
    cur.execute(sql.SQL("TRUNCATE {}").format(target))
    return indexes


def _build_primary_key(
    cur: psycopg.Cursor, target: sql.Composed, indexes: list[_Index], resolve: Callable[[], _T]
) -> _T | None:
    """Add the primary key; where rows share a key, ``resolve`` them first. What ``resolve`` returned.

    Building the key is the duplicate check: it costs nothing extra when there are none.
    """
    key = next(i for i in indexes if i.constraint)
    cur.execute("SAVEPOINT primary_key")
    try:
        _build_indexes(cur, target, [key])
        resolved = None
    except errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT primary_key")
        resolved = resolve()
        _build_indexes(cur, target, [key])
    cur.execute("RELEASE SAVEPOINT primary_key")
    return resolved


def _build_indexes(cur: psycopg.Cursor, target: sql.Composed, indexes: list[_Index]) -> None:
    for index in indexes:
        if index.constraint:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    target, sql.Identifier(index.constraint), sql.SQL(index.constraint_definition)
                )
            )
        else:
            cur.execute(sql.SQL(index.definition))


@contextmanager
def _timed(result: FirstLoadResult, name: str) -> Iterator[None]:
    """Adds the time spent in the block to ``result.seconds[name]``."""
    started = time.perf_counter()
    yield
    result.seconds[name] = round(result.seconds.get(name, 0.0) + time.perf_counter() - started, 3)
