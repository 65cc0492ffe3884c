"""Buffered Parquet writers, one per table, that flush a row group every ``batch_size`` rows.

Memory is bounded by the batch size, not the input.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import Table


class TableSink:
    """Accumulates rows of one table and writes them as row groups of one Parquet file."""

    def __init__(self, table: Table, path: Path, batch_size: int) -> None:
        self.table = table
        self.path = path
        self.batch_size = batch_size
        self.schema = table.arrow_schema()
        self._rows: list[tuple] = []
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def add(self, row: tuple) -> None:
        """Append one row, given in the table's column order."""
        self._rows.append(row)
        if len(self._rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        columns = zip(*self._rows)  # rows to columns in C
        batch = pa.record_batch(
            [pa.array(col, type=field.type) for col, field in zip(columns, self.schema)],
            schema=self.schema,
        )
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self._rows = []

    def close(self) -> int:
        """Flush and close; returns the row count. A sink with no rows writes no file."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
        return self.rows
