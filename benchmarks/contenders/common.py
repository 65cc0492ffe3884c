"""What the hand-written contenders share: the messages member of a tar, raw rows, argv, output."""

from __future__ import annotations

import json
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import psycopg
from psycopg import sql

#: ijson prefix of every message record in messages.json.
MESSAGES_PREFIX = "conversations.item.MessageList.item"
#: Raw message fields as stored by floor, original and dlt (all as text, no transformation).
RAW_COLUMNS = ("conversationid", "id", "originalarrivaltime", "messagetype", "from", "displayname", "content", "version")


@contextmanager
def messages_member(path: str) -> Iterator[IO[bytes]]:
    """The ``messages.json`` member of a tar, streamed (nothing is extracted to disk)."""
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if member.name.removeprefix("./") == "messages.json":
                fileobj = tar.extractfile(member)
                assert fileobj is not None
                yield fileobj
                return
    raise SystemExit(f"{path}: no messages.json in the archive")


def _text(value: Any) -> str | None:
    return value if value is None or type(value) is str else str(value)


def raw_row(m: dict[str, Any]) -> tuple[str | None, ...]:
    """A message record's raw fields in ``RAW_COLUMNS`` order; ids and versions as text."""
    return (
        m.get("conversationid"),
        _text(m.get("id")),
        m.get("originalarrivaltime"),
        m.get("messagetype"),
        m.get("from"),
        m.get("displayName"),
        m.get("content"),
        _text(m.get("version")),
    )


def parse_argv(argv: list[str] | None = None) -> tuple[str, str, str]:
    """``FILE URL SCHEMA`` from the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        raise SystemExit(f"usage: python -m {sys.argv[0]} FILE DATABASE_URL SCHEMA")
    return args[0], args[1], args[2]


def count_rows(url: str, schema: str, table: str) -> int:
    """``count(*)`` of ``schema.table``."""
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def emit(**result: Any) -> None:
    """Print the contender's one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def run_contender(load: Callable[[str, str, str], object], table: str, **extra: Any) -> None:
    """The ``main()`` of a contender: load the file given on the command line, print rows and seconds."""
    path, url, schema = parse_argv()
    started = time.perf_counter()
    load(path, url, schema)
    emit(rows=count_rows(url, schema, table), seconds=round(time.perf_counter() - started, 3), **extra)
