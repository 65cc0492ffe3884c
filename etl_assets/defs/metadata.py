"""Turn component statistics and table definitions into Dagster metadata."""

from __future__ import annotations

import dagster as dg

from etl_assets.etl import schema as s
from etl_assets.etl.progress import PhaseStats


def phase_metadata(stats: PhaseStats) -> dict[str, dg.RawMetadataValue]:
    """One phase's statistics, each as its own metadata entry (plotted by the UI over runs)."""
    return {f"{stats.phase}/{name}": value for name, value in stats.to_dict().items() if name != "phase"}


def column_schema(table: s.Table) -> dg.TableSchema:
    """``dagster/column_schema`` from the one table definition."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.pg_type,
                description=c.doc,
                constraints=dg.TableColumnConstraints(nullable=c.nullable),
            )
            for c in table.columns
        ]
    )


def table_spec_metadata(table: s.Table, schema_name: str) -> dict[str, dg.RawMetadataValue]:
    """Metadata that describes a warehouse table before any materialization."""
    return {
        "dagster/table_name": f"{schema_name}.{table.name}",
        "dagster/column_schema": column_schema(table),
        "primary_key": ", ".join(table.primary_key),
    }
