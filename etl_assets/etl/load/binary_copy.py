"""Arrow record batches into PostgreSQL by binary COPY, encoded without Python per row.

pgpq encodes a whole batch into PostgreSQL's binary COPY format in compiled code, so a
row costs about a microsecond on our side and the server skips parsing text: CSV took
several times as long at both ends. Columns declared ``jsonb`` are encoded as jsonb (their
binary form carries a version byte); ``timestamptz`` and ``timestamp`` share one binary
form, so Arrow's UTC microseconds go through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq.encoders import StringEncoderBuilder
from pgpq.schema import Jsonb
from psycopg import sql

from ..schema import Column

READ_BATCH_ROWS = 16_384
"""Rows per batch read from a Parquet part: big enough to amortize the calls, small enough for memory."""



def copy_batches(
    cur: psycopg.Cursor, target: sql.Composable, columns: Sequence[Column], batches: Iterable[pa.RecordBatch]
) -> int:
    """COPY ``batches`` (holding at least ``columns``, by name) into ``target``; the rows copied."""
    names = [c.name for c in columns]
    schema = pa.schema([pa.field(c.name, c.arrow_type, nullable=True) for c in columns])
    encoder = ArrowToPostgresBinaryEncoder.new_with_encoders(
        schema,
        {
            c.name: StringEncoderBuilder.new_with_output(schema.field(c.name), Jsonb())
            if c.pg_type == "jsonb"
            else ArrowToPostgresBinaryEncoder.infer_encoder(schema.field(c.name))
            for c in columns
        },
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, names))
    )
    rows = 0
    with cur.copy(statement) as copy:
        copy.write(encoder.write_header())
        for batch in batches:
            if batch.num_rows:
                copy.write(encoder.write_batch(pa.record_batch(batch.select(names).columns, schema=schema)))
                rows += batch.num_rows
        copy.write(encoder.finish())
    return rows


def parquet_batches(paths: Iterable[Path], columns: Sequence[str]) -> Iterable[pa.RecordBatch]:
    """The ``columns`` of every Parquet part in ``paths``, batch by batch."""
    for path in paths:
        yield from pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH_ROWS, columns=list(columns), use_threads=False)
