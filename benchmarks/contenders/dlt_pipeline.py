"""dlt: a dlt resource over the same ijson stream, loaded by ``dlt.pipeline(...).run`` with its defaults.

The columns are hinted as text so dlt loads the same raw fields as floor (no type detection).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from .common import MESSAGES_PREFIX, RAW_COLUMNS, messages_member, raw_row, run_contender

TABLE = "messages"


def load(path: str, url: str, schema: str) -> None:
    """Run a dlt pipeline into dataset ``schema`` (table ``messages``)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    import ijson

    @dlt.resource(name=TABLE, write_disposition="append", columns={c: {"data_type": "text"} for c in RAW_COLUMNS})
    def messages() -> Iterator[dict[str, Any]]:
        with messages_member(path) as member:
            for message in ijson.items(member, MESSAGES_PREFIX):
                yield dict(zip(RAW_COLUMNS, raw_row(message)))

    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = PostgresCredentials(url)
    if not credentials.host and "host" in credentials.query:  # a Unix socket, as the embedded server's URL has it
        credentials.host = "localhost"  # dlt wants one; the query's host (the socket) wins in libpq
    if not credentials.password:
        credentials.password = "unused"  # dlt insists on one; a server with trust or peer auth never asks for it
    pipelines_dir = tempfile.mkdtemp(prefix="dlt_")
    try:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{schema}",
            destination=dlt.destinations.postgres(credentials=credentials),
            dataset_name=schema,
            pipelines_dir=pipelines_dir,
        )
        pipeline.run(messages())
    finally:
        shutil.rmtree(pipelines_dir, ignore_errors=True)


def main() -> None:
    run_contender(load, TABLE)


if __name__ == "__main__":
    main()
