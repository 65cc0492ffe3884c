"""The contenders: each a module runnable as ``python -m benchmarks.contenders.<module> FILE URL SCHEMA``.

``CONTENDERS`` maps a contender's name to its module and a one-line description.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Contender:
    name: str
    module: str
    description: str
    in_variants: bool = False
    """Also run on the other server and media variants, not only in the main case."""
    setup_first_export: bool = False
    """Load the earlier export of the same account first (not measured): the second-export case."""

    def load_module(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.module}")

    @property
    def table(self) -> str:
        """The table whose ``count(*)`` is the number of messages loaded."""
        return self.load_module().TABLE

    def command(self, path: str, url: str, schema: str) -> list[str]:
        """The command line of one run."""
        module = self.load_module()
        if hasattr(module, "command"):
            return module.command(path, url, schema)
        return [sys.executable, "-m", f"{__name__}.{self.module}", path, url, schema]


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("ours_cli", "ours_cli", "`skype-etl load --json`: extract, transform, load into all tables with all indexes, media copied", in_variants=True),
        Contender("ours_second", "ours_cli", "`skype-etl load --json` of a later export of the same account (10% new messages, 2% edited) "
                  "into the warehouse that holds the earlier one (loaded first, not measured)", setup_first_export=True),
        Contender("ours_dagster", "ours_dagster", "the Dagster job `load_skype_export` via `execute_in_process` (ephemeral instance)"),
        Contender("floor", "floor", "ijson (C) streamed from the tar member, binary COPY of raw fields into one UNLOGGED table, no indexes", in_variants=True),
        Contender("original", "original", "the original approach: `json.load` of the whole file, psycopg2 `execute_values` in batches of 100"),
        Contender("dlt", "dlt_pipeline", "dlt 1.x with defaults: a resource over the same ijson stream, `pipeline.run` into PostgreSQL"),
    )
}
